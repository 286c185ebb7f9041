"""Corpus readers: RECOLA (AVEC 2016), AV+EC 2017 (SEWA), Aff-Wild2, synthetic and CSV.

Every reader turns a corpus folder into a sorted list of `Recording`s: the
video path plus the label grid (`times`) and one array per label dimension
(`targets`). Recordings whose labels were never released (the test
partitions) are listed with empty arrays, so they can still be preprocessed and
predicted.

Layouts (BUILD_NOTES.md, "Corpus readers", gives the evidence for each):

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
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import logging
import math
import os
import pathlib
import re
from typing import Iterable, Sequence

import cv2
import numpy as np

from recola_sta import io_utils, resample

CORPUS_KINDS = ("recola", "avec2017", "affwild2", "synthetic", "csv")
PARTITIONS = ("train", "dev", "test")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")
# Which face of a video a recording is about: the largest (tracked) one, or the
# left / right person of a two-person video (Aff-Wild2's NAME_left/NAME_right).
FACE_SIDES = ("largest", "left", "right")

# Label period used for recordings without labels (test partitions).
_DEFAULT_LABEL_PERIOD = {
    "recola": 0.04, "synthetic": 0.04, "avec2017": 0.1, "affwild2": round(1 / 30, 6), "csv": 0.04,
}
# Grids of two label files of one recording agree when every time is this close.
_GRID_TOLERANCE_S = 1e-6
_AVEC2017_PARTITIONS = {"train": "train", "devel": "dev", "test": "test"}
_RECOLA_NAME = re.compile(r"^(train|dev|test)_(\d+)$")
_AVEC2017_NAME = re.compile(r"^(train|devel|test)_0*(\d+)$", re.IGNORECASE)
# Aff-Wild2: annotation folder names (old and new releases), partition folders,
# the "not annotated" value, and folders of face crops (millions of JPEGs, never
# videos or annotations) that the search under the root skips.
_AFFWILD2_VA_DIRS = ("va_set", "va_estimation_challenge")
_AFFWILD2_PARTITIONS = {"train_set": "train", "validation_set": "dev"}
_AFFWILD2_MISSING = -5.0
_AFFWILD2_SKIP_DIR_PREFIXES = ("cropped",)
_AFFWILD2_SIDES = {"_left": "left", "_right": "right"}

logger = logging.getLogger(__name__)


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
        recordings = _load_affwild2(root)
    else:
        recordings = _load_csv_corpus(root)
    if not recordings:
        raise ValueError(f"No recordings found under {root} for corpus kind {kind!r}.")
    _check_unique_names(recordings)
    return _with_default_periods(
        sorted(recordings, key=lambda r: (PARTITIONS.index(r.partition), _natural_key(r.name))),
        _DEFAULT_LABEL_PERIOD[kind],
    )


# ---------------------------------------------------------------------------
# ARFF (RECOLA gold standard)


def read_arff(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Reads a RECOLA gold-standard ARFF file.

    Tolerant of what varies between releases: any `@relation` name, `%`
    comments, blank lines, CRLF line ends, quoted names and the order of the
    attributes (the `frameTime` and `GoldStandard` columns are found by name,
    case-insensitively; a file with a single numeric column besides
    `frameTime` uses that one). `?` values are read as NaN.

    Returns:
        (times, values): float64 arrays of equal length, times strictly
        increasing.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: malformed header or rows; the message names file and line.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ARFF label file {path} does not exist.")
    attributes: list[tuple[str, str]] = []
    rows: list[tuple[int, list[str]]] = []
    in_data = False
    for lineno, raw in enumerate(_read_lines(path), start=1):
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        if not in_data:
            lower = line.lower()
            if lower.startswith("@relation"):
                continue
            if lower.startswith("@attribute"):
                attributes.append(_parse_attribute(path, lineno, line))
                continue
            if lower.startswith("@data"):
                in_data = True
                continue
            raise ValueError(f"{path}:{lineno}: unexpected line in ARFF header: {line!r}")
        if line.startswith("{"):
            raise ValueError(f"{path}:{lineno}: sparse ARFF rows are not supported.")
        rows.append((lineno, [_unquote(f) for f in next(csv.reader([line], skipinitialspace=True))]))
    if not in_data:
        raise ValueError(f"{path}: no @data section.")
    names = [name.lower() for name, _ in attributes]
    if "frametime" not in names:
        raise ValueError(f"{path}: no frameTime attribute (attributes: {[a for a, _ in attributes]}).")
    time_col = names.index("frametime")
    if "goldstandard" in names:
        value_col = names.index("goldstandard")
    else:
        numeric = [
            i for i, (_, kind) in enumerate(attributes)
            if i != time_col and kind.lower() in ("numeric", "real", "integer")
        ]
        if len(numeric) != 1:
            raise ValueError(
                f"{path}: no GoldStandard attribute and not exactly one other numeric "
                f"attribute (attributes: {[a for a, _ in attributes]})."
            )
        value_col = numeric[0]
    times, values, linenos = [], [], []
    for lineno, fields in rows:
        if len(fields) != len(attributes):
            raise ValueError(
                f"{path}:{lineno}: {len(fields)} fields, the header declares {len(attributes)}."
            )
        times.append(_parse_float(path, lineno, fields[time_col], "frameTime", allow_missing=False))
        values.append(_parse_float(path, lineno, fields[value_col], "gold-standard value"))
        linenos.append(lineno)
    times_arr = np.asarray(times, np.float64)
    _check_label_times(path, times_arr, linenos)
    return times_arr, np.asarray(values, np.float64)


def write_arff(
    path: str | os.PathLike,
    instance_name: str,
    times: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    relation: str = "GOLDSTANDARD",
) -> None:
    """Writes a gold-standard ARFF file exactly in RECOLA's layout, atomically.

    Rows look like `train_1,0.04,-0.022925`; NaN values are written as `?`.

    Raises:
        ValueError: `times` and `values` differ in length.
    """
    times = np.asarray(times, np.float64)
    values = np.asarray(values, np.float64)
    if times.shape != values.shape or times.ndim != 1:
        raise ValueError(
            f"write_arff({path}): times {times.shape} and values {values.shape} "
            "must be 1-D of equal length."
        )
    out = io.StringIO()
    out.write(f"@relation {relation}\n\n")
    out.write("@attribute Instance_name string\n")
    out.write("@attribute frameTime numeric\n")
    out.write("@attribute GoldStandard numeric\n\n")
    out.write("@data\n\n")
    for t, v in zip(times, values):
        value = "?" if math.isnan(v) else f"{v:.6f}"
        out.write(f"{instance_name},{_format_time(t)},{value}\n")
    io_utils.atomic_write_text(path, out.getvalue())


def _format_time(t: float) -> str:
    """`0.04` style: six decimals with trailing zeros dropped (`0`, `300`)."""
    text = f"{t:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _parse_attribute(path: pathlib.Path, lineno: int, line: str) -> tuple[str, str]:
    match = re.match(r"@attribute\s+('[^']*'|\"[^\"]*\"|\S+)\s+(.+)$", line, re.IGNORECASE)
    if not match:
        raise ValueError(f"{path}:{lineno}: malformed @attribute line: {line!r}")
    return _unquote(match.group(1)), match.group(2).strip()


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


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
    for path in _visible_files(video_dir):
        if path.suffix.lower() in VIDEO_EXTENSIONS and _RECOLA_NAME.match(path.stem):
            if path.stem in videos:
                raise ValueError(f"Two videos for recording {path.stem}: {videos[path.stem]} and {path}.")
            videos[path.stem] = path
    labels: dict[str, dict[str, pathlib.Path]] = collections.defaultdict(dict)
    for target in ("valence", "arousal"):
        label_dir = root / "ratings_gold_standard" / target
        if label_dir.is_dir():
            for path in _visible_files(label_dir):
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
            recordings.append(_unlabeled(name, partition, videos[name]))
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
            _check_same_grid(files["valence"], times, files["arousal"], arousal_times)
            targets["arousal"] = arousal
        recordings.append(Recording(name, partition, videos[name], times, targets, _period(times)))
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
    for path in _visible_files(label_dir):
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
            recordings.append(_unlabeled(videos[key].stem, partition, videos[key]))
            continue
        path = label_files[key]
        times, targets = _read_avec2017_labels(path)
        recordings.append(Recording(path.stem, partition, videos[key], times, targets, _period(times)))
    return recordings


def _avec2017_key(stem: str) -> tuple[str, int]:
    match = _AVEC2017_NAME.match(stem)
    return _AVEC2017_PARTITIONS[match.group(1).lower()], int(match.group(2))


def _read_avec2017_labels(path: pathlib.Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Reads `instance_name;timestamp;arousal;valence[;liking]` rows."""
    columns = ("arousal", "valence", "liking")
    times: list[float] = []
    values: dict[str, list[float]] = {c: [] for c in columns}
    linenos: list[int] = []
    width = None
    for lineno, raw in enumerate(_read_lines(path), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(";")]
        if lineno == 1 and len(fields) > 1 and fields[1].lower() in ("timestamp", "time", "frametime"):
            continue  # a header some users add; the official files have none
        if len(fields) not in (4, 5):
            raise ValueError(
                f"{path}:{lineno}: expected 5 ';'-separated fields "
                f"(instance_name;timestamp;arousal;valence;liking), got {len(fields)}."
            )
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise ValueError(f"{path}:{lineno}: {len(fields)} fields, earlier rows have {width}.")
        times.append(_parse_float(path, lineno, fields[1], "timestamp", allow_missing=False))
        for column, text in zip(columns, fields[2:]):
            values[column].append(_parse_float(path, lineno, text, column))
        linenos.append(lineno)
    if not times:
        raise ValueError(f"{path}: no label rows.")
    times_arr = np.asarray(times, np.float64)
    _check_label_times(path, times_arr, linenos)
    targets = {c: np.asarray(v, np.float64) for c, v in values.items() if v}
    return times_arr, {"valence": targets.pop("valence"), **targets}


# ---------------------------------------------------------------------------
# Aff-Wild2 (ABAW valence-arousal annotations)


def _load_affwild2(root: pathlib.Path) -> list[Recording]:
    va_dirs, videos = _scan_affwild2(root)
    if not va_dirs:
        raise FileNotFoundError(
            f"No Aff-Wild2 valence-arousal annotation folder under {root}: expected "
            "annotations/VA_Set/{Train_Set,Validation_Set}/NAME.txt (older releases) or "
            "<annotations>/VA_Estimation_Challenge/{Train_Set,Validation_Set}/NAME.txt "
            "(newer releases) somewhere under the corpus root."
        )
    if len(va_dirs) > 1:
        raise ValueError(
            f"Several Aff-Wild2 valence-arousal annotation folders under {root}: "
            f"{', '.join(str(d) for d in va_dirs)}. Point the corpus root at a folder "
            "holding one release."
        )
    va_dir = va_dirs[0]
    annotations: dict[str, tuple[str, pathlib.Path]] = {}
    for folder in sorted(va_dir.iterdir()):
        partition = _AFFWILD2_PARTITIONS.get(folder.name.lower())
        if partition is None or not folder.is_dir():
            continue  # e.g. a Test_Set list: test labels are not public
        for path in _visible_files(folder):
            if path.suffix.lower() != ".txt":
                continue
            if path.stem in annotations:
                raise ValueError(
                    f"Two annotation files for recording {path.stem}: "
                    f"{annotations[path.stem][1]} and {path}."
                )
            annotations[path.stem] = (partition, path)

    missing, ambiguous = [], []
    for name, (_, path) in sorted(annotations.items()):
        base, _ = _affwild2_video_stem(name)
        found = videos.get(base, [])
        if not found:
            missing.append(f"{path} (no {base}.mp4 / {base}.avi)")
        elif len(found) > 1:
            ambiguous.append(f"{path}: {', '.join(str(v) for v in found)}")
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} Aff-Wild2 annotation file(s) under {va_dir} have no video "
            f"under {root}: " + "; ".join(missing) + "."
        )
    if ambiguous:
        raise ValueError(
            f"{len(ambiguous)} Aff-Wild2 annotation file(s) match several videos under "
            f"{root} (keep one per name): " + "; ".join(ambiguous) + "."
        )
    used = {_affwild2_video_stem(name)[0] for name in annotations}
    unannotated = sorted((stem for stem in videos if stem not in used), key=_natural_key)
    if unannotated:
        logger.warning(
            "%d video(s) under %s have no valence-arousal annotation in %s and are not "
            "used (Aff-Wild2 ships the videos of every ABAW task and the test set "
            "together): %s", len(unannotated), root, va_dir, ", ".join(unannotated))

    fps_of: dict[pathlib.Path, float] = {}
    recordings = []
    for name, (partition, path) in annotations.items():
        base, face = _affwild2_video_stem(name)
        video = videos[base][0]
        if video not in fps_of:
            fps_of[video] = _video_fps(video)
        targets = _read_affwild2_labels(path)
        # Row i of the annotation file is frame i of the video.
        times = np.arange(targets["valence"].size, dtype=np.float64) / fps_of[video]
        recordings.append(
            Recording(name, partition, video, times, targets, _period(times), face=face)
        )
    return recordings


def _scan_affwild2(root: pathlib.Path) -> tuple[list[pathlib.Path], dict[str, list[pathlib.Path]]]:
    """Walks `root` once: valence-arousal annotation folders and videos by stem.

    Follows symbolic links (a corpus often links its big video folder in), each
    real folder once; skips hidden folders and the face-crop folders
    (`cropped_aligned`, ...), which hold millions of JPEGs and nothing this
    reader needs.
    """
    va_dirs: list[pathlib.Path] = []
    videos: dict[str, list[pathlib.Path]] = collections.defaultdict(list)
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and not d.lower().startswith(_AFFWILD2_SKIP_DIR_PREFIXES)
        )
        folder = pathlib.Path(dirpath)
        if folder.name.lower() in _AFFWILD2_VA_DIRS and any(
            d.lower() in _AFFWILD2_PARTITIONS for d in dirnames
        ):
            va_dirs.append(folder)
        for filename in sorted(filenames):
            path = folder / filename
            if not filename.startswith(".") and path.suffix.lower() in VIDEO_EXTENSIONS:
                videos[path.stem].append(path)
    return va_dirs, dict(videos)


def _affwild2_video_stem(name: str) -> tuple[str, str]:
    """`"10-60-1280x720_left"` -> (`"10-60-1280x720"`, `"left"`); no suffix -> largest face."""
    for suffix, side in _AFFWILD2_SIDES.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], side
    return name, "largest"


def _video_fps(path: pathlib.Path) -> float:
    """The frame rate OpenCV reads from a video's header."""
    capture = cv2.VideoCapture(str(path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else math.nan
    finally:
        capture.release()
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(
            f"Cannot read the frame rate of video {path} (OpenCV reports {fps!r}); "
            "Aff-Wild2 label times are frame index / frame rate, so it is required."
        )
    return float(fps)


def _affwild2_rows_fast(rows: list[str]) -> np.ndarray | None:
    """(N, 2) values with -5 -> NaN if every row is valid, else None.

    NumPy's C parser reads a 50 000-frame file about four times faster than
    the line-by-line loop, which runs only when this fails, to name the first
    bad line. `np.loadtxt` skips blank lines, so the row count must match.
    """
    if not rows:
        return None
    try:
        values = np.loadtxt(rows, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        return None
    if values.shape != (len(rows), 2) or not np.isfinite(values).all():
        return None
    missing = values == _AFFWILD2_MISSING
    if not (missing | (np.abs(values) <= 1.0)).all():
        return None
    values[missing] = np.nan
    return values


def _read_affwild2_labels(path: pathlib.Path) -> dict[str, np.ndarray]:
    """Reads a `valence,arousal` file: one row per video frame, -5 -> NaN.

    Trailing blank lines are dropped; a blank line between rows is an error,
    because skipping it would shift every later label by one frame.
    """
    lines = _read_lines(path)
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    if not end:
        raise ValueError(
            f"{path}: empty annotation file; expected the header 'valence,arousal' and "
            "one row per video frame."
        )
    header = [h.strip().lower() for h in lines[0].split(",")]
    if header != ["valence", "arousal"]:
        raise ValueError(f"{path}:1: header {lines[0].strip()!r}, expected 'valence,arousal'.")
    columns = ("valence", "arousal")
    fast = _affwild2_rows_fast(lines[1:end])
    if fast is not None:
        return {c: fast[:, k].copy() for k, c in enumerate(columns)}
    # Something is wrong (or the file is empty): find and name the first bad line.
    values: dict[str, list[float]] = {c: [] for c in columns}
    for lineno in range(2, end + 1):
        text = lines[lineno - 1].strip()
        if not text:
            raise ValueError(
                f"{path}:{lineno}: blank line between label rows; every row is one video "
                "frame, so a gap would shift all later labels."
            )
        fields = text.split(",")
        if len(fields) != len(columns):
            raise ValueError(
                f"{path}:{lineno}: {len(fields)} fields, expected 2 (valence,arousal)."
            )
        for column, field in zip(columns, fields):
            value = _parse_float(path, lineno, field, column, allow_missing=False)
            if value == _AFFWILD2_MISSING:
                value = math.nan
            elif not -1.0 <= value <= 1.0:
                raise ValueError(
                    f"{path}:{lineno}: {column} {field.strip()!r} is outside [-1, 1] and is "
                    "not the 'not annotated' value -5."
                )
            values[column].append(value)
    if not values["valence"]:
        raise ValueError(f"{path}: no label rows after the header.")
    return {c: np.asarray(v, np.float64) for c, v in values.items()}


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
        for path in _visible_files(folder):
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
                recordings.append(_unlabeled(name, partition, videos[name]))
                continue
            times, targets = _read_label_csv(label_files[name])
            recordings.append(Recording(name, partition, videos[name], times, targets, _period(times)))
    if not found_partition:
        raise FileNotFoundError(
            f"{root} has none of the folders {PARTITIONS}: a csv corpus is laid out as "
            "root/{train,dev,test}/NAME.mp4 with NAME.csv beside each video."
        )
    return recordings


def _read_label_csv(path: pathlib.Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Reads a `time,valence[,arousal,...]` CSV with a header row."""
    lines = [(i, line) for i, line in enumerate(_read_lines(path), start=1) if line.strip()]
    if not lines:
        raise ValueError(f"{path}: empty label file; expected a header time,valence[,...].")
    header_lineno, header_line = lines[0]
    header = [h.strip().lower() for h in next(csv.reader([header_line]))]
    for required in ("time", "valence"):
        if required not in header:
            raise ValueError(
                f"{path}:{header_lineno}: header {header} lacks a {required!r} column "
                "(expected time,valence[,arousal,...])."
            )
    if len(set(header)) != len(header) or "" in header:
        raise ValueError(f"{path}:{header_lineno}: empty or repeated column names in {header}.")
    time_col = header.index("time")
    times: list[float] = []
    values: dict[str, list[float]] = {h: [] for h in header if h != "time"}
    linenos = []
    for lineno, line in lines[1:]:
        fields = next(csv.reader([line]))
        if len(fields) != len(header):
            raise ValueError(f"{path}:{lineno}: {len(fields)} fields, the header has {len(header)}.")
        times.append(_parse_float(path, lineno, fields[time_col], "time", allow_missing=False))
        for column, text in zip(header, fields):
            if column != "time":
                values[column].append(_parse_float(path, lineno, text, column))
        linenos.append(lineno)
    if not times:
        raise ValueError(f"{path}: no label rows after the header.")
    times_arr = np.asarray(times, np.float64)
    _check_label_times(path, times_arr, linenos)
    targets = {c: np.asarray(v, np.float64) for c, v in values.items()}
    return times_arr, {"valence": targets.pop("valence"), **targets}


# ---------------------------------------------------------------------------
# Shared helpers


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


def _read_lines(path: pathlib.Path) -> list[str]:
    """Lines of a text file whatever its line ends (LF, CRLF, CR), BOM dropped."""
    with open(path, encoding="utf-8-sig", errors="replace", newline=None) as f:
        return f.read().splitlines()


def _visible_files(folder: pathlib.Path) -> Iterable[pathlib.Path]:
    """Plain files of a folder, skipping hidden ones (e.g. atomic-write temporaries)."""
    return (p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith("."))


def _parse_float(
    path: pathlib.Path, lineno: int, text: str, what: str, allow_missing: bool = True
) -> float:
    text = text.strip()
    if allow_missing and text in ("?", "", "nan", "NaN"):
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}:{lineno}: non-numeric {what} {text!r}.") from None
    if not allow_missing and not math.isfinite(value):
        raise ValueError(f"{path}:{lineno}: {what} must be finite, got {text!r}.")
    return value


def _check_label_times(path: pathlib.Path, times: np.ndarray, linenos: Sequence[int]) -> None:
    """A label file has rows and strictly increasing times (`resample.first_unordered_step`,
    the one ordering check), or the error names the file and line."""
    if times.size == 0:
        raise ValueError(f"{path}: no label rows.")
    step = resample.first_unordered_step(times, strict=True)
    if step is not None:
        k = step + 1
        raise ValueError(
            f"{path}:{linenos[k]}: times are not strictly increasing "
            f"({times[k - 1]:g} then {times[k]:g})."
        )


def _check_same_grid(
    path_a: pathlib.Path, times_a: np.ndarray, path_b: pathlib.Path, times_b: np.ndarray
) -> None:
    n = min(times_a.size, times_b.size)
    differ = np.flatnonzero(np.abs(times_a[:n] - times_b[:n]) > _GRID_TOLERANCE_S)
    if differ.size:
        k = int(differ[0])
        raise ValueError(
            f"Label grids disagree: {path_a} and {path_b} differ at data row {k + 1} "
            f"(time {times_a[k]:g} vs {times_b[k]:g})."
        )
    if times_a.size != times_b.size:
        raise ValueError(
            f"Label grids disagree: {path_a} has {times_a.size} rows, {path_b} has {times_b.size}."
        )


def _period(times: np.ndarray) -> float:
    """Nominal label spacing: the median step, rounded to the microsecond."""
    if times.size < 2:
        return math.nan
    return round(float(np.median(np.diff(times))), 6)


def _unlabeled(name: str, partition: str, video: pathlib.Path) -> Recording:
    empty = np.zeros(0, np.float64)
    return Recording(name, partition, video, empty, {"valence": empty}, math.nan)


def _with_default_periods(recordings: list[Recording], default: float) -> list[Recording]:
    """Gives unlabeled (or one-row) recordings the corpus's usual label period."""
    periods = [r.label_period for r in recordings if not math.isnan(r.label_period)]
    fill = float(np.median(periods)) if periods else default
    return [
        dataclasses.replace(r, label_period=fill) if math.isnan(r.label_period) else r
        for r in recordings
    ]


def _natural_key(name: str) -> tuple:
    """Sorts `train_2` before `train_10`."""
    return tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name))
