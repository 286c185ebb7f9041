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
import fcntl
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
# The lock file of a folder that one process writes at a time (`folder_writer`).
LOCK_NAME = ".lock"
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


def _holder(fd: int) -> str:
    """Who holds the lock whose file is open as `fd`, as its holder wrote it
    ("process PID on HOST"), or "another process" before it has written."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"process {int(holder['pid'])} on {holder['host']}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "another process"


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Holds `path` as a lock file for the block; refuses a second holder.

    The lock is the operating system's (`fcntl.flock`, exclusive, not
    waiting) on the file `path`, created if missing and never deleted: two
    processes cannot both hold it, whatever their timing, and the kernel
    releases it when its holder ends, however it ends (killed too), so a
    lock left behind never blocks anyone. Once it holds the lock, the holder
    writes its pid and host into the file, for the message a second process
    gets (`LockedError`, naming `what`, the holder and the file). The lock is
    per open file: a second `exclusive_lock` on the same path conflicts even
    within one process.

    Raises:
        LockedError: another process (or another open of `path`) holds it.
        ValueError: the file system of `path` supports no locks.
    """
    path = pathlib.Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LockedError(
                f"{what} is in use by {holder} (lock file {path}); wait for it to finish. "
                "The lock is released when that process ends, however it ends.") from None
        except OSError as e:
            os.close(fd)
            raise ValueError(f"{what}: cannot lock {path} ({e.strerror or e}); choose a "
                             "folder on a file system that supports file locks.") from None
        # The file may have been deleted (by hand) between the open and the
        # lock; a lock on a file that no longer has that name locks nothing.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        me = json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, me, 0)
        yield
    finally:
        try:
            os.ftruncate(fd, 0)  # no stale holder named once it is free
        finally:
            os.close(fd)  # releases the lock


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


@contextlib.contextmanager
def folder_writer(folder: pathlib.Path, *, started: bool, name: str, what: str,
                  temp_folders: tuple[pathlib.Path, ...] = ()) -> Iterator[None]:
    """Holds `folder`'s lock (`folder/.lock`) while a run may write it.

    A second writer is refused (`LockedError`, naming `what` and the holder;
    `name` names the folder in `check_writable_dir`'s message, e.g. a flag).
    Under the lock the temporaries a killed earlier run left in `folder` and
    `temp_folders` are removed (`remove_temporaries`: this project's only).
    A new folder (`started` False) that cannot be written is refused before
    any work; a started one whose lock file cannot be created (a finished
    corpus or cache on read-only storage) is used without the lock: nothing
    is written into it unless the caller finds work to do, and then its own
    `check_writable_dir` refuses.
    """
    if not started:
        check_writable_dir(folder, name)
        folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(folder / LOCK_NAME, what))
        except OSError:
            if not started:
                raise
        else:
            for each in (folder, *temp_folders):
                remove_temporaries(each)
        yield
