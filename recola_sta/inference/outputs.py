"""The files one predict run writes into its output folder, as one set:
each written to a temporary name and renamed together at the end,
summary.json last, or all removed when the run fails.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
from typing import Any

from recola_sta import cli, io_utils


class Outputs:
    """The files one predict run writes into --out, committed together.

    Each is written to a temporary name beside its final one
    (`io_utils.atomic_path`), and `commit` renames them all at the end,
    summary.json last; an earlier run's summary.json is removed before the
    first rename. A run that fails or is interrupted anywhere before
    (Ctrl-C while the figures are drawn, a full disk) removes its
    temporaries (`discard`), so --out keeps what it had: a summary.json
    always describes complete outputs of one run, and its absence marks a
    run that did not finish. (Removing this run's partial outputs instead
    would leave an earlier run's files half replaced.) A live source's
    <targets>.live.csv is the exception: it is appended as the samples
    arrive, and kept.
    """

    def __init__(self, out_dir: pathlib.Path):
        self.out_dir = out_dir
        self._files = contextlib.ExitStack()
        self._tmp: dict[str, pathlib.Path] = {}

    def path(self, name: str, suffix: str = "") -> pathlib.Path:
        """The temporary path to write output `name` to (`suffix`: its
        extension, for writers that choose the format from it)."""
        tmp = self._files.enter_context(io_utils.atomic_path(self.out_dir / name, suffix))
        self._tmp[name] = tmp
        return tmp

    def temporary(self, name: str) -> pathlib.Path:
        """Where output `name` was written (its temporary, until `commit`)."""
        return self._tmp[name]

    def drop(self, name: str) -> None:
        """Output `name` is not written after all (no attention to show)."""
        self._tmp.pop(name).unlink(missing_ok=True)

    def commit(self, summary: dict[str, Any]) -> None:
        """Writes summary.json to its temporary (a full disk fails here,
        before any rename), renames every output onto its final name, then
        summary.json."""
        with io_utils.atomic_path(self.out_dir / "summary.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            (self.out_dir / "summary.json").unlink(missing_ok=True)
            self._files.close()

    def discard(self, error: BaseException) -> BaseException:
        """Removes every temporary (no output is renamed); returns the error
        to raise for `error`: itself, or for a full disk reported on a
        temporary, an ENOSPC naming its output."""
        try:
            self._files.__exit__(_Discarded, _Discarded(), None)
        except _Discarded:
            pass
        filename = getattr(error, "filename", None) if isinstance(error, OSError) else None
        if filename is None or not cli.is_disk_full(error):
            return error
        for name, tmp in self._tmp.items():
            if os.fspath(filename) == os.fspath(tmp):
                return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                               str(self.out_dir / name))
        return error


class _Discarded(Exception):
    """Thrown into the temporaries' `atomic_path`s by `Outputs.discard`,
    so that they remove their files."""
