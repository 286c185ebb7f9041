"""Atomic file output: write to a temporary name in the same folder, then rename.

An interrupted run therefore never leaves a half-written file under the final
name, and a resumed run can trust that every file it finds is complete.

Temporary names are `.recola_sta-tmp.NAME.XXXXXXXX.SUFFIX` (`TEMP_PREFIX`): a
prefix no user file has, so that `remove_temporaries` can clean up after a
killed run in a folder that also holds the user's own files (`.env.local`,
`.eslintrc.json`) without touching them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import shutil
import socket
import tempfile
from typing import Iterator

from recola_sta import cli

# Every temporary file (or folder) this project writes beside its outputs
# starts with this; nothing else does.
TEMP_PREFIX = ".recola_sta-tmp."
# Longest part of the target's name kept in a temporary name (bytes), so that
# prefix, name, random part and suffix stay within a file name's 255 bytes.
_TEMP_NAME_BYTES = 160


def temp_prefix(name: str) -> str:
    """The prefix of the temporary names of target file `name` (for
    `tempfile.mkstemp`/`mkdtemp`): `TEMP_PREFIX`, then `name` (shortened
    if long), then a dot."""
    return f"{TEMP_PREFIX}{os.fsdecode(os.fsencode(name)[:_TEMP_NAME_BYTES])}."


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[pathlib.Path]:
    """Yields a temporary path beside `path`; renames it onto `path` on success.

    On an exception the temporary file is removed and `path` is left untouched.
    A caller that removes the temporary file itself (it found nothing to
    write) leaves `path` untouched too.
    `suffix` keeps an extension on the temporary name for writers that choose
    the format from it (OpenCV, matplotlib); it stays last. The temporary
    name starts with `TEMP_PREFIX`, so a run killed before the rename leaves
    a file that `remove_temporaries` recognises.
    A full disk that names no file (a failed write() does not) or only the
    temporary is raised as an ENOSPC `OSError` naming `path`, so the CLI's
    one line says which file could not be written.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=suffix or ".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp_path = pathlib.Path(tmp)
    # mkstemp creates files readable by the owner only; give the final file
    # the permissions an ordinary open() would (0666 minus the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.replace(tmp_path, path)
    except BaseException as e:
        tmp_path.unlink(missing_ok=True)
        if _disk_full_naming_no_file(e, tmp_path):
            # A failed write() names no file (or only the removed temporary):
            # name the file being written, for the CLI's one line.
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path)) from e
        raise


def _disk_full_naming_no_file(error: BaseException, tmp_path: pathlib.Path) -> bool:
    """Whether `error` is a full disk (`cli.is_disk_full`) that names no file
    but the temporary `tmp_path`."""
    if not cli.is_disk_full(error):
        return False
    filename = getattr(error, "filename", None) if isinstance(error, OSError) else None
    return filename is None or os.fspath(filename) == os.fspath(tmp_path)


def check_writable_dir(path: str | os.PathLike, what: str) -> pathlib.Path:
    """Checks, before any work, that output can be written into folder `path`.

    A long run that finds out at its end that it cannot save its results has
    wasted that run, so the CLIs call this first. Where `path` does not exist
    yet, the nearest existing folder above it must be writable (it will be
    created there). The check creates and removes one hidden probe file;
    nothing stays behind.

    Args:
        path: the output folder.
        what: names the folder in the message, e.g. "--out" or "--cache_dir".

    Returns:
        `path` as a `pathlib.Path`.

    Raises:
        ValueError: `path` (or the folder above it) is a file, or no file can
            be created there (read-only, permissions, full disk).
    """
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what}={path} is a file, not a folder; pass a folder (it is "
                         "created if missing).")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what}={path} cannot be created: {existing} is a file, not a folder.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{what}={path}: cannot write into {existing} "
                         f"({e.strerror or e}); choose a writable folder.") from None
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


class LockedError(ValueError):
    """Another live process holds the lock."""


def _holder_alive(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # cannot tell: assume alive
    try:
        os.kill(int(holder["pid"]), 0)
    except (ProcessLookupError, ValueError, KeyError, TypeError):
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Holds `path` as a lock file for the block; refuses a second live holder.

    The file is created with O_EXCL and holds the holder's host and pid. A
    lock left by a process that no longer runs on this host (killed) is
    stale and taken over; a live holder raises `LockedError` naming it.
    Released (removed) when the block ends, however it ends.
    """
    path = pathlib.Path(path)
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                holder = {}
            if holder and _holder_alive(holder):
                raise LockedError(
                    f"{what} is in use by process {holder.get('pid')} on "
                    f"{holder.get('host')} (lock file {path}); wait for it to finish, or "
                    "remove the lock file if that process is gone.") from None
            path.unlink(missing_ok=True)  # stale: its holder is dead
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:
        raise LockedError(f"Could not take the lock {path} for {what}.")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def is_temporary(name: str) -> bool:
    """Whether file name `name` is one of this project's temporary names."""
    return name.startswith(TEMP_PREFIX)


def remove_temporaries(folder: str | os.PathLike) -> list[pathlib.Path]:
    """Removes the temporaries a killed run of this project left in `folder`.

    Those are the files `atomic_path` had not renamed yet (and folders made
    with `temp_prefix`), recognised by their `TEMP_PREFIX`: every other file,
    hidden or not, is the user's and stays. Not recursive. Call this only
    while no other process writes into `folder` (e.g. under
    `exclusive_lock`). Returns what was removed.
    """
    folder = pathlib.Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if not is_temporary(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
