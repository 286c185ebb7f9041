"""The `Recording` every corpus reader returns, and what the readers share:
the partition names, the video extensions, the listing of a folder, the
nominal label period, the unlabeled recording and the natural order of names.

The lowest layer of the readers (`corpora`, `affwild2` and `labels` build on
it; it imports none of them), so each reader can live in its own module
without an import circle. `recola_sta.data.corpora` re-exports the public
names; callers keep writing `corpora.Recording`.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import re
from typing import Iterable

import numpy as np

PARTITIONS = ("train", "dev", "test")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")
# Which face of a video a recording is about: the largest (tracked) one, or the
# left / right person of a two-person video (Aff-Wild2's NAME_left/NAME_right).
FACE_SIDES = ("largest", "left", "right")


@dataclasses.dataclass(frozen=True, eq=False)
class Recording:
    """One recording of a corpus.

    `eq=False`: recordings hold NumPy arrays, whose `==` is elementwise, so
    equality is identity (compare fields explicitly in tests).

    Attributes:
        name: recording name as the corpus spells it (`"train_1"`, `"Devel_04"`).
        partition: `"train"`, `"dev"` or `"test"`.
        video: path of the video file.
        times: label grid in seconds, float64, shape (N,); empty if unlabeled.
        targets: label dimension -> float64 values of shape (N,); always has
            `"valence"` (empty if unlabeled), plus `"arousal"` / `"liking"`
            or any other columns the corpus provides.
        label_period: nominal spacing of the label grid in seconds.
        face: which face of the video the labels describe, one of
            `FACE_SIDES`: `"largest"` (every corpus but Aff-Wild2's two-person
            videos), `"left"` or `"right"` (the person on that side of the
            frame; Aff-Wild2's `NAME_left.txt` / `NAME_right.txt`). Two
            recordings may share one video with different sides.
    """

    name: str
    partition: str
    video: pathlib.Path
    times: np.ndarray
    targets: dict[str, np.ndarray]
    label_period: float
    face: str = "largest"

    def __post_init__(self):
        if self.face not in FACE_SIDES:
            raise ValueError(
                f"Recording {self.name}: face {self.face!r} is not one of {FACE_SIDES}."
            )

    @property
    def labeled(self) -> bool:
        """True when the recording has at least one label."""
        return self.times.size > 0


def visible_files(folder: pathlib.Path) -> Iterable[pathlib.Path]:
    """Plain files of a folder, skipping hidden ones (e.g. atomic-write temporaries)."""
    return (p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith("."))


def nominal_period(times: np.ndarray) -> float:
    """Nominal label spacing: the median step, rounded to the microsecond."""
    if times.size < 2:
        return math.nan
    return round(float(np.median(np.diff(times))), 6)


def unlabeled(name: str, partition: str, video: pathlib.Path) -> Recording:
    """A recording whose labels were never released (a test partition): empty
    arrays, and a NaN label period that `corpora.load_corpus` fills in."""
    empty = np.zeros(0, np.float64)
    return Recording(name, partition, video, empty, {"valence": empty}, math.nan)


def natural_key(name: str) -> tuple:
    """Sorts `train_2` before `train_10`."""
    return tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name))
