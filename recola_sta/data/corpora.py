"""Corpus readers: RECOLA (AVEC 2016), AV+EC 2017 (SEWA), Aff-Wild2, synthetic and CSV.

Every reader turns a corpus folder into a sorted list of `Recording`s: the
video path plus the label grid (`times`) and one array per label dimension
(`targets`). Recordings whose labels were never released (the test
partitions) are listed with empty arrays, so they can still be preprocessed and
predicted.

Layouts (docs/data.md, "Corpus readers", gives the evidence for each):

* ``recola`` / ``synthetic``: ``recordings_video/{train,dev,test}_N.mp4`` and
  ``ratings_gold_standard/{valence,arousal}/{train,dev}_N.arff``.
* ``avec2017``: ``labels/{Train,Devel}_NN.csv`` (``;``-separated, no header,
  ``instance_name;timestamp;arousal;valence;liking``) and ``.avi`` videos in a
  video folder anywhere under the root, matched by partition and number
  whatever the zero-padding.
* ``affwild2``: a valence-arousal annotation folder (``VA_Set`` or
  ``VA_Estimation_Challenge``) anywhere under the root, with
  ``{Train_Set,Validation_Set}/NAME.txt`` (header ``valence,arousal``, one row
  per video frame, ``-5`` = not annotated), and ``.mp4``/``.avi`` videos
  anywhere under the root. Label times are ``row / fps`` with the video's own
  frame rate. ``NAME_left.txt`` / ``NAME_right.txt`` are two recordings of the
  two-person video ``NAME.mp4``; `Recording.face` says which person.
* ``csv`` (users' own corpora): ``{train,dev,test}/NAME.{mp4,avi,mov,mkv}``
  with ``NAME.csv`` beside it, header ``time,valence[,arousal,...]``.

Malformed input raises `ValueError` / `FileNotFoundError` whose message names
the file and, where it applies, the line.

This module holds `load_corpus` and the readers of the RECOLA, AV+EC 2017 and
csv layouts (which folders hold which files); the `Recording` record and the
helpers all readers share are `recordings`, the label-file parsers `labels`,
and the Aff-Wild2 reader `affwild2`. The public names of those modules that
callers use (`Recording`, `PARTITIONS`, `read_arff`, `write_arff`, ...) are
re-exported here.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import pathlib
import re
from typing import Sequence

import numpy as np

from recola_sta.data.affwild2 import load_affwild2
from recola_sta.data.labels import check_same_grid, read_arff, read_avec2017_labels, read_label_csv, write_arff
from recola_sta.data.recordings import (
    FACE_SIDES, PARTITIONS, VIDEO_EXTENSIONS, Recording, natural_key, nominal_period, unlabeled, visible_files)

__all__ = ["CORPUS_KINDS", "FACE_SIDES", "PARTITIONS", "VIDEO_EXTENSIONS", "Recording", "load_corpus",
           "read_arff", "write_arff"]

CORPUS_KINDS = ("recola", "avec2017", "affwild2", "synthetic", "csv")

# Label period used for recordings without labels (test partitions).
_DEFAULT_LABEL_PERIOD = {
    "recola": 0.04, "synthetic": 0.04, "avec2017": 0.1, "affwild2": round(1 / 30, 6), "csv": 0.04,
}
_AVEC2017_PARTITIONS = {"train": "train", "devel": "dev", "test": "test"}
_RECOLA_NAME = re.compile(r"^(train|dev|test)_(\d+)$")
_AVEC2017_NAME = re.compile(r"^(train|devel|test)_0*(\d+)$", re.IGNORECASE)


def load_corpus(root: str | os.PathLike, kind: str) -> list[Recording]:
    """Lists the recordings of a corpus folder.

    Args:
        root: corpus folder.
        kind: one of `CORPUS_KINDS`; `"synthetic"` reads the RECOLA layout.

    Returns:
        Recordings sorted by partition (train, dev, test), then by number.

    Raises:
        FileNotFoundError: `root` or a required sub-folder is missing, or a
            label file has no video.
        ValueError: unknown `kind`, malformed label files, disagreeing label
            grids, a video whose frame rate cannot be read (affwild2), two
            recordings of one name (csv: one stem in two partitions), or no
            recordings at all.
    """
    if kind not in CORPUS_KINDS:
        raise ValueError(f"Unknown corpus kind {kind!r}; expected one of {CORPUS_KINDS}.")
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Corpus root {root} (kind {kind!r}) does not exist.")
    if kind in ("recola", "synthetic"):
        recordings = _load_recola(root, kind)
    elif kind == "avec2017":
        recordings = _load_avec2017(root)
    elif kind == "affwild2":
        recordings = load_affwild2(root)
    else:
        recordings = _load_csv_corpus(root)
    if not recordings:
        raise ValueError(f"No recordings found under {root} for corpus kind {kind!r}.")
    _check_unique_names(recordings)
    return _with_default_periods(
        sorted(recordings, key=lambda r: (PARTITIONS.index(r.partition), natural_key(r.name))),
        _DEFAULT_LABEL_PERIOD[kind],
    )


# ---------------------------------------------------------------------------
# RECOLA layout (also the synthetic corpus)


def _load_recola(root: pathlib.Path, kind: str) -> list[Recording]:
    video_dir = root / "recordings_video"
    if not video_dir.is_dir():
        raise FileNotFoundError(
            f"{video_dir} does not exist: a {kind} corpus keeps its videos in "
            "recordings_video/{train,dev,test}_N.mp4."
        )
    videos: dict[str, pathlib.Path] = {}
    for path in visible_files(video_dir):
        if path.suffix.lower() in VIDEO_EXTENSIONS and _RECOLA_NAME.match(path.stem):
            if path.stem in videos:
                raise ValueError(f"Two videos for recording {path.stem}: {videos[path.stem]} and {path}.")
            videos[path.stem] = path
    labels: dict[str, dict[str, pathlib.Path]] = collections.defaultdict(dict)
    for target in ("valence", "arousal"):
        label_dir = root / "ratings_gold_standard" / target
        if label_dir.is_dir():
            for path in visible_files(label_dir):
                if path.suffix.lower() == ".arff" and _RECOLA_NAME.match(path.stem):
                    labels[path.stem][target] = path

    recordings = []
    for name in sorted(set(videos) | set(labels)):
        partition = _RECOLA_NAME.match(name).group(1)
        files = labels.get(name, {})
        if name not in videos:
            some_label = next(iter(files.values()))
            raise FileNotFoundError(
                f"No video for label file {some_label}: expected "
                f"{video_dir / (name + '.mp4')}."
            )
        if not files:
            if partition != "test":
                raise FileNotFoundError(
                    f"Video {videos[name]} has no gold-standard label file: expected "
                    f"{root / 'ratings_gold_standard' / 'valence' / (name + '.arff')}."
                )
            recordings.append(unlabeled(name, partition, videos[name]))
            continue
        if "valence" not in files:
            raise FileNotFoundError(
                f"Label file {files['arousal']} has no valence counterpart: expected "
                f"{root / 'ratings_gold_standard' / 'valence' / (name + '.arff')}."
            )
        times, valence = read_arff(files["valence"])
        targets = {"valence": valence}
        if "arousal" in files:
            arousal_times, arousal = read_arff(files["arousal"])
            check_same_grid(files["valence"], times, files["arousal"], arousal_times)
            targets["arousal"] = arousal
        recordings.append(Recording(name, partition, videos[name], times, targets, nominal_period(times)))
    return recordings


# ---------------------------------------------------------------------------
# AV+EC 2017 (SEWA)


def _load_avec2017(root: pathlib.Path) -> list[Recording]:
    label_dir = root / "labels"
    if not label_dir.is_dir():
        raise FileNotFoundError(
            f"{label_dir} does not exist: an avec2017 corpus keeps its labels in "
            "labels/{Train,Devel}_NN.csv."
        )
    videos: dict[tuple[str, int], pathlib.Path] = {}
    for path in sorted(root.rglob("*")):
        if (
            path.suffix.lower() in VIDEO_EXTENSIONS
            and path.is_file()
            and not path.name.startswith(".")
            and _AVEC2017_NAME.match(path.stem)
        ):
            key = _avec2017_key(path.stem)
            if key in videos:
                raise ValueError(f"Two videos for recording {path.stem}: {videos[key]} and {path}.")
            videos[key] = path
    label_files: dict[tuple[str, int], pathlib.Path] = {}
    for path in visible_files(label_dir):
        if path.suffix.lower() == ".csv" and _AVEC2017_NAME.match(path.stem):
            key = _avec2017_key(path.stem)
            if key in label_files:
                raise ValueError(f"Two label files for one recording: {label_files[key]} and {path}.")
            label_files[key] = path

    recordings = []
    for key in sorted(set(videos) | set(label_files)):
        partition = key[0]
        if key not in videos:
            raise FileNotFoundError(
                f"No video for label file {label_files[key]}: no "
                f"{label_files[key].stem}.avi (any zero-padding) under {root}."
            )
        if key not in label_files:
            if partition != "test":
                raise FileNotFoundError(
                    f"Video {videos[key]} has no label file: expected "
                    f"{label_dir / (videos[key].stem + '.csv')}."
                )
            recordings.append(unlabeled(videos[key].stem, partition, videos[key]))
            continue
        path = label_files[key]
        times, targets = read_avec2017_labels(path)
        recordings.append(Recording(path.stem, partition, videos[key], times, targets, nominal_period(times)))
    return recordings


def _avec2017_key(stem: str) -> tuple[str, int]:
    match = _AVEC2017_NAME.match(stem)
    return _AVEC2017_PARTITIONS[match.group(1).lower()], int(match.group(2))


# ---------------------------------------------------------------------------
# CSV layout (users' own corpora)


def _load_csv_corpus(root: pathlib.Path) -> list[Recording]:
    found_partition = False
    recordings = []
    for partition in PARTITIONS:
        folder = root / partition
        if not folder.is_dir():
            continue
        found_partition = True
        videos: dict[str, pathlib.Path] = {}
        label_files: dict[str, pathlib.Path] = {}
        for path in visible_files(folder):
            suffix = path.suffix.lower()
            if suffix in VIDEO_EXTENSIONS:
                if path.stem in videos:
                    raise ValueError(f"Two videos for recording {path.stem}: {videos[path.stem]} and {path}.")
                videos[path.stem] = path
            elif suffix == ".csv":
                label_files[path.stem] = path
        for name in sorted(set(videos) | set(label_files)):
            if name not in videos:
                raise FileNotFoundError(
                    f"No video for label file {label_files[name]}: expected "
                    f"{folder / name}{{{','.join(VIDEO_EXTENSIONS)}}}."
                )
            if name not in label_files:
                if partition != "test":
                    raise FileNotFoundError(
                        f"Video {videos[name]} has no label file: expected {folder / (name + '.csv')}."
                    )
                recordings.append(unlabeled(name, partition, videos[name]))
                continue
            times, targets = read_label_csv(label_files[name])
            recordings.append(Recording(name, partition, videos[name], times, targets, nominal_period(times)))
    if not found_partition:
        raise FileNotFoundError(
            f"{root} has none of the folders {PARTITIONS}: a csv corpus is laid out as "
            "root/{train,dev,test}/NAME.mp4 with NAME.csv beside each video."
        )
    return recordings


# ---------------------------------------------------------------------------
# Checks of the whole corpus


def _check_unique_names(recordings: Sequence[Recording]) -> None:
    """Refuses two recordings of one name (in a csv corpus, `train/a.mp4` and
    `dev/a.mp4`): the cache manifest, the training and evaluation reports and
    the predictions all know a recording by its name alone, so one of the
    two would silently replace the other."""
    seen: dict[str, Recording] = {}
    for r in recordings:
        first = seen.setdefault(r.name, r)
        if first is not r:
            raise ValueError(
                f"Two recordings are named {r.name!r}: {first.video} ({first.partition}) and "
                f"{r.video} ({r.partition}); recording names must be unique across the "
                "partitions, rename one of the two files."
            )


def _with_default_periods(recordings: list[Recording], default: float) -> list[Recording]:
    """Gives unlabeled (or one-row) recordings the corpus's usual label period."""
    periods = [r.label_period for r in recordings if not math.isnan(r.label_period)]
    fill = float(np.median(periods)) if periods else default
    return [
        dataclasses.replace(r, label_period=fill) if math.isnan(r.label_period) else r
        for r in recordings
    ]
