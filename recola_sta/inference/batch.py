"""Many videos in one predict run: `--video` a folder, a glob or a list file.

The videos are resolved before any work (`resolve_videos`), so a folder
without videos or a list naming a missing file is one line and exit 2
before the model loads. Each video gets its own folder under --out, named
after its stem (`output_names`: clashes become a_2, a_3, ... in input
order), holding exactly what a single-video predict writes. A video whose
folder already holds complete outputs of it (summary.json, which predict
writes last, naming it, with every file it lists) is skipped unless
`overwrite`. --out/index.csv and --out/index.html list every video handled
so far (one row each: its facts, each target's mean and standard deviation
over the CSV, a status and a one-line error) and are rewritten atomically
after each video, so an interrupted batch leaves a valid index.

A bad or faceless video is recorded and the batch goes on; the exit code
(`exit_code`) is 2 if any video failed, 3 if the only failures were videos
without a face, 0 otherwise. A full disk or Ctrl-C stops the batch (what
was finished stays, and a re-run resumes from there).

Imports no TensorFlow: the model and the per-video predict are passed in
(`run_batch`'s `predict_one`).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import io
import json
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any, Sequence

import numpy as np

from recola_sta import cli, faces, io_utils

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
LIST_SUFFIX = ".txt"
INDEX_CSV = "index.csv"
INDEX_HTML = "index.html"
_GLOB_CHARS = "*?["
# Names in --out that are not a video's folder.
_RESERVED = frozenset({INDEX_CSV, INDEX_HTML, io_utils.LOCK_NAME})

OK, SKIPPED, FAILED, NO_FACE = "ok", "skipped", "failed", "no_face"


def is_batch(video: str | os.PathLike) -> bool:
    """Whether `--video` names many videos: a folder, a list file (.txt) or
    a glob (with * ? or [, unless a file of that very name exists). A camera
    index or a stream URL is one live source, as before."""
    text = os.fspath(video)
    if faces.is_live_source(text):
        return False
    path = pathlib.Path(text)
    if path.is_dir() or path.suffix.lower() == LIST_SUFFIX:
        return True
    if path.exists():
        return False
    return any(c in text for c in _GLOB_CHARS)


def resolve_videos(spec: str | os.PathLike) -> list[pathlib.Path]:
    """The videos `--video=spec` names (`is_batch`): a folder's video files
    (`VIDEO_SUFFIXES`, any case; hidden files left out) sorted by name, the
    files a glob matches sorted by path, or a list file's paths in its
    order (one a line; blank lines and # comments ignored; relative paths
    are relative to the list file).

    Raises:
        ValueError: nothing to predict, or a listed file is missing (one
            line naming them), checked before any work.
    """
    text = os.fspath(spec)
    path = pathlib.Path(text)
    if path.is_dir():
        videos = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                        and p.suffix.lower() in VIDEO_SUFFIXES)
        if not videos:
            raise ValueError(f"--video={text}: the folder holds no video file "
                             f"({' '.join(VIDEO_SUFFIXES)}).")
        return videos
    if path.suffix.lower() == LIST_SUFFIX:
        return _listed_videos(path)
    videos = sorted(pathlib.Path(p) for p in glob.glob(text, recursive=True)
                    if os.path.isfile(p))
    if not videos:
        raise ValueError(f"--video={text}: the pattern matches no file.")
    return videos


def _listed_videos(path: pathlib.Path) -> list[pathlib.Path]:
    """The paths a list file names (see `resolve_videos`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ValueError(f"--video={path}: the list file does not exist.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--video={path}: cannot read the list file ({e}).") from None
    videos = []
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            listed = pathlib.Path(entry).expanduser()
            videos.append(listed if listed.is_absolute() else path.parent / listed)
    if not videos:
        raise ValueError(f"--video={path}: the list names no video.")
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3
                                          else "")
        raise ValueError(f"--video={path}: {len(missing)} of the {len(videos)} listed files "
                         f"do not exist: {shown}.")
    return videos


def output_names(videos: Sequence[pathlib.Path]) -> list[str]:
    """Each video's folder name under --out: its stem, or where an earlier
    video (in the given order) took it, the stem with the first free _2,
    _3, ... (the index files' names are never taken)."""
    used = set(_RESERVED)
    names = []
    for video in videos:
        name = video.stem or video.name
        if name in used:
            k = 2
            while f"{name}_{k}" in used:
                k += 1
            name = f"{name}_{k}"
        used.add(name)
        names.append(name)
    return names


def is_complete(folder: pathlib.Path, video: pathlib.Path) -> bool:
    """Whether `folder` holds complete outputs of `video`: its summary.json
    (predict's commit point, written last) names the video and every file
    it lists exists."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        named = os.path.realpath(str(summary["video"]))
        files = list(summary["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return named == os.path.realpath(video) and all((folder / f).is_file() for f in files)


@dataclasses.dataclass
class Job:
    """One video of the batch: its folder's name under --out, and whether its
    complete outputs are there already (skipped)."""

    video: pathlib.Path
    name: str
    done: bool


def plan(videos: Sequence[pathlib.Path], out_dir: pathlib.Path, overwrite: bool) -> list[Job]:
    """The batch's jobs, in input order; with `overwrite` none is done."""
    return [Job(video, name, not overwrite and is_complete(out_dir / name, video))
            for video, name in zip(videos, output_names(videos))]


def index_columns(targets: Sequence[str]) -> list[str]:
    """index.csv's header."""
    return ["video", "out", "duration_s", "samples", "face_found_rate",
            *(f"{stat}_{t}" for t in targets for stat in ("mean", "std")), "status", "error"]


def index_row(job: Job, out_dir: pathlib.Path, targets: Sequence[str], status: str,
              error: str = "") -> dict[str, Any]:
    """A video's index row; for a finished video (ok, skipped) its facts
    from summary.json and each target's mean and standard deviation over
    every row of its CSV."""
    row: dict[str, Any] = {c: None for c in index_columns(targets)}
    row.update(video=str(job.video), out=job.name, status=status, error=error)
    if status not in (OK, SKIPPED):
        return row
    folder = out_dir / job.name
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    row.update(duration_s=float(summary["duration_s"]), samples=int(summary["samples"]),
               face_found_rate=float(summary["face_found_rate"]))
    path = folder / f"{'_'.join(targets)}.csv"
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2,
                      usecols=[header.index(t) for t in targets])
    if len(data):
        for k, target in enumerate(targets):
            row[f"mean_{target}"] = float(data[:, k].mean())
            row[f"std_{target}"] = float(data[:, k].std())
    return row


def _csv_text(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        digits = 3 if column == "duration_s" else 4 if column.endswith("rate") else 6
        return f"{value:.{digits}f}"
    return str(value)


def write_index(out_dir: pathlib.Path, rows: Sequence[dict[str, Any]],
                targets: Sequence[str], title: str) -> None:
    """index.csv and index.html (`report.write_index`, each finished video
    linking to its report.html), each written atomically."""
    from recola_sta.inference import report

    columns = index_columns(targets)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_csv_text(row[c], c) for c in columns] for row in rows)
    io_utils.atomic_write_text(out_dir / INDEX_CSV, buf.getvalue())
    linked = [{**row, "report": (f"{row['out']}/report.html"
                                 if row["status"] in (OK, SKIPPED)
                                 and (out_dir / row["out"] / "report.html").is_file() else None)}
              for row in rows]
    report.write_index(out_dir / INDEX_HTML, linked, title=title, columns=columns)


def exit_code(rows: Sequence[dict[str, Any]]) -> int:
    """2 if any video failed, else 3 if any had no face, else 0."""
    statuses = {row["status"] for row in rows}
    if FAILED in statuses:
        return cli.EXIT_BAD_INPUT
    if NO_FACE in statuses:
        return cli.EXIT_NO_FACE
    return cli.EXIT_DONE


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def run_batch(jobs: Sequence[Job], out_dir: pathlib.Path,
              predict_one: Callable[[pathlib.Path, pathlib.Path], Any], *,
              targets: Sequence[str], progress: bool = True, title: str = "Predictions",
              log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Predicts each job not done with `predict_one(video, folder)` (which
    writes the folder's outputs) and rewrites the index after each video.

    A video that raises bad input (OSError, ValueError) or `cli.NoFaceError`
    is recorded as failed or no_face with its one-line reason, told to
    `log` (default: stderr), and the batch goes on. A full disk, Ctrl-C or
    anything else stops the batch, the index listing the videos before.

    Returns the index rows, one per job.
    """
    say = log or (lambda line: print(line, file=sys.stderr))
    rows: list[dict[str, Any]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="videos", unit="video", position=0)
        say = log or (lambda line: tqdm.write(line, file=sys.stderr))
    try:
        for job in jobs:
            if bar is not None:
                bar.set_postfix_str(job.video.name)
            rows.append(_run_job(job, out_dir, predict_one, targets, say))
            write_index(out_dir, rows, targets, title)
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return rows


def _run_job(job: Job, out_dir: pathlib.Path,
             predict_one: Callable[[pathlib.Path, pathlib.Path], Any],
             targets: Sequence[str], say: Callable[[str], None]) -> dict[str, Any]:
    """One job's index row, predicting it unless it is done."""
    if job.done:
        return index_row(job, out_dir, targets, SKIPPED)
    try:
        predict_one(job.video, out_dir / job.name)
    except cli.NoFaceError as e:
        status, error = NO_FACE, e
    except (OSError, ValueError) as e:
        if cli.is_disk_full(e):
            raise
        status, error = FAILED, e
    else:
        return index_row(job, out_dir, targets, OK)
    say(f"predict: {job.video}: {_one_line(error)}")
    return index_row(job, out_dir, targets, status, _one_line(error))
