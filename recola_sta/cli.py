"""One exit-code convention and one way to report failures, for every CLI.

Every command (`train`, `preprocess`, `evaluate`, `export`, `predict`,
`synthetic`, `tables`) runs its work through `run`, which turns the failures a
user can cause into one line on stderr and an exit code:

| code | meaning |
|---|---|
| 0 | done |
| 1 | a bug: a traceback is printed (absl's own "Flags parsing error" also exits 1) |
| 2 | bad input: a missing or corrupt file, a wrong flag value, a full disk |
| 3 | no face was found in a video |
| 130 | interrupted (Ctrl-C): what was being written was finished or removed |

`call` runs a command in the calling process, on flags of its own, as its
`python -m recola_sta.<command>` would (tests check a command's errors this
way without starting an interpreter).

This module imports nothing heavy (no TensorFlow), so worker processes and the
TensorFlow-free commands can use it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import shutil
import signal
import sys
import textwrap
import threading
from typing import Callable, Iterator, Sequence

EXIT_DONE = 0
EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_NO_FACE = 3
EXIT_INTERRUPTED = 130

RESUME_HINT = "run the same command to resume"


class NoFaceError(RuntimeError):
    """No face was found in any sampled frame of a video (exit code 3)."""


def _chain(error: BaseException):
    """`error` and the exceptions it was raised from or during, outermost first."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` (or one it wraps) is "no space left on device".

    TensorFlow wraps ENOSPC in its own errors (`ResourceExhaustedError`,
    `UnknownError`) that carry only the message, so the text is checked too.
    """
    for e in _chain(error):
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(e):
            return True
    return False


def _written_path(error: BaseException) -> str | None:
    for e in _chain(error):
        if isinstance(e, OSError) and e.filename:
            return os.fsdecode(e.filename)
    return None


def _free_bytes(path: str | os.PathLike) -> int | None:
    """Free space on the file system holding `path` (or the nearest existing
    folder above it); None where it cannot be read."""
    existing = pathlib.Path(path).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        return shutil.disk_usage(existing).free
    except OSError:
        return None


def disk_full_message(error: BaseException, output: str | os.PathLike | None) -> str:
    """One line for a full disk: the path being written (the file where the
    error names it, else the command's output folder) and the free space."""
    path = _written_path(error) or (os.fspath(output) if output is not None else None)
    where = f" while writing {path}" if path else ""
    free = _free_bytes(path) if path else None
    space = f" ({free / 2**20:.1f} MiB free there)" if free is not None else ""
    return (f"no space left on device{where}{space}; the partial output was removed. "
            f"Free some space and {RESUME_HINT}.")


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C held back for the block and raised (as KeyboardInterrupt) when
    it ends.

    For code that would lose it or be left half-done by it:
    - a process started meanwhile inherits SIGINT blocked (through exec
      too) instead of being interrupted halfway through its start (`pools`);
    - a Keras model saved meanwhile is written whole: h5py, which writes
      the weights through callbacks from the HDF5 library, swallows a
      KeyboardInterrupt raised inside them (train's checkpoints);
    - an import of TensorFlow finishes: a KeyboardInterrupt raised while
      a pybind11 extension initialises becomes an ImportError, which Keras
      and TensorFlow take for a missing optional module (preprocess).
    In the last two the run went on as if Ctrl-C had not been pressed
    (docs/benchmarks.md, "2026-12-03, fourth session, at dfd10a3"). In a
    thread other than the main one, only that thread's SIGINT is blocked
    (Python runs signal handlers in the main thread)."""
    caught: list[tuple] = []
    handler = None
    if threading.current_thread() is threading.main_thread():
        handler = signal.signal(signal.SIGINT, lambda *args: caught.append(args))
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
            if caught and callable(handler):
                handler(*caught[0])


def run(name: str, body: Callable[[], int | None], *,
        output: str | os.PathLike | None = None,
        bad_input: tuple[type[BaseException], ...] = (OSError, ValueError),
        interrupted: str = RESUME_HINT) -> int:
    """Runs a command's work and maps its failures onto the exit codes above.

    Args:
        name: the command, prefixed to every message ("train: ...").
        body: the work; returns an exit code, or None for 0.
        output: the folder the command writes, named in a full-disk message
            when the error itself names no file.
        bad_input: the exception types that mean bad input (exit 2); their
            message is the line printed.
        interrupted: what to tell the user after Ctrl-C.

    Returns:
        The exit code; anything not listed propagates (a bug, exit 1).
    """
    try:
        code = body()
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted; {interrupted}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except NoFaceError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return EXIT_NO_FACE
    except Exception as e:  # noqa: BLE001 -- sorted below; the rest re-raised
        if is_disk_full(e):
            print(f"{name}: {disk_full_message(e, output)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if isinstance(e, bad_input):
            print(f"{name}: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise
    return EXIT_DONE if code is None else int(code)


def flags_parsing_error(error: BaseException) -> str:
    """absl's report of a flag it could not parse (`app.run` prints it and
    exits 1): "FATAL Flags parsing error: ..." and the hint to --helpfull."""
    message = str(error)
    if "\n" in message:
        head = f"FATAL Flags parsing error:\n{textwrap.indent(message, '  ')}\n"
    else:
        head = f"FATAL Flags parsing error: {message}\n"
    return head + "Pass --helpshort or --helpfull to see help on flags.\n"


def call(command, argv: Sequence[str]) -> int:
    """Runs a CLI in this process as `python -m recola_sta.<command>` runs it.

    The command's flags are defined on a `FlagValues` of their own (commands
    that share flag names can run one after the other in one process, and
    absl's global `FLAGS` stays untouched); `argv` is parsed as absl's
    `app.run` parses it (--flagfile included), and a flag it cannot parse is
    absl's message on stderr and exit 1, as from the shell. absl's own flags
    (--help, --helpfull, logging's --verbosity, ...) are not defined here.

    Args:
        command: a CLI module (`recola_sta.training.train`, ...) with
            `define_flags(flag_values)` and `main(argv, flag_values)`.
        argv: the command line, program name first.

    Returns:
        The exit code (0, 1 for a flag-parsing or usage error, 2, 3, 130);
        a bug's exception propagates, as it ends the process with exit 1.
    """
    from absl import app, flags

    flag_values = flags.FlagValues()
    command.define_flags(flag_values)
    try:
        args = flag_values(list(argv))
    except flags.Error as error:
        sys.stderr.write(flags_parsing_error(error))
        return EXIT_BUG
    try:
        return command.main(args, flag_values)
    except app.UsageError as error:  # app.run: the usage text, then the error
        sys.stderr.write(f"{command.__doc__}\n\n{error}\n")
        return error.exitcode
