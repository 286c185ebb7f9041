"""The Aff-Wild2 reader (ABAW valence-arousal annotations).

Layout: a valence-arousal annotation folder (``VA_Set`` in older releases,
``VA_Estimation_Challenge`` in newer ones) anywhere under the root, with
``{Train_Set,Validation_Set}/NAME.txt`` (header ``valence,arousal``, one row
per video frame, ``-5`` = not annotated), and ``.mp4``/``.avi`` videos
anywhere under the root. Label times are ``row / fps`` with the video's own
frame rate (`faces.probe_video`). ``NAME_left.txt`` / ``NAME_right.txt`` are
two recordings of the two-person video ``NAME.mp4``; `Recording.face` says
which person.

A module of its own because nothing in it is shared with the other corpora:
the search of a deep, symlinked tree, the frame-indexed annotation format and
its fast parser. `corpora.load_corpus(root, "affwild2")` calls
`load_affwild2`.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import pathlib

import numpy as np

from recola_sta import faces
from recola_sta.data.labels import parse_float, read_lines
from recola_sta.data.recordings import VIDEO_EXTENSIONS, Recording, natural_key, nominal_period, visible_files

# Annotation folder names (old and new releases), partition folders, the "not
# annotated" value, and folders of face crops (millions of JPEGs, never videos
# or annotations) that the search under the root skips.
_AFFWILD2_VA_DIRS = ("va_set", "va_estimation_challenge")
_AFFWILD2_PARTITIONS = {"train_set": "train", "validation_set": "dev"}
_AFFWILD2_MISSING = -5.0
_AFFWILD2_SKIP_DIR_PREFIXES = ("cropped",)
_AFFWILD2_SIDES = {"_left": "left", "_right": "right"}

logger = logging.getLogger(__name__)


def load_affwild2(root: pathlib.Path) -> list[Recording]:
    """Lists the recordings of an Aff-Wild2 corpus (train and dev; test labels
    are not public), in annotation-file order (`load_corpus` sorts them).

    Raises:
        FileNotFoundError: no annotation folder, or annotation files without
            a video (all listed in one message).
        ValueError: several annotation folders, one name annotated twice,
            annotations matching several videos, malformed annotation files,
            or a video whose frame rate cannot be read.
    """
    va_dirs, videos = _scan_affwild2(root)
    va_dir = _one_va_dir(root, va_dirs)
    annotations = _annotation_files(va_dir)
    _check_videos(root, va_dir, annotations, videos)
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
            Recording(name, partition, video, times, targets, nominal_period(times), face=face)
        )
    return recordings


def _one_va_dir(root: pathlib.Path, va_dirs: list[pathlib.Path]) -> pathlib.Path:
    """The one annotation folder the scan found; none or several is an error."""
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
    return va_dirs[0]


def _annotation_files(va_dir: pathlib.Path) -> dict[str, tuple[str, pathlib.Path]]:
    """Recording name -> (partition, annotation file) of the train and dev
    partition folders; one name in two files is an error."""
    annotations: dict[str, tuple[str, pathlib.Path]] = {}
    for folder in sorted(va_dir.iterdir()):
        partition = _AFFWILD2_PARTITIONS.get(folder.name.lower())
        if partition is None or not folder.is_dir():
            continue  # e.g. a Test_Set list: test labels are not public
        for path in visible_files(folder):
            if path.suffix.lower() != ".txt":
                continue
            if path.stem in annotations:
                raise ValueError(
                    f"Two annotation files for recording {path.stem}: "
                    f"{annotations[path.stem][1]} and {path}."
                )
            annotations[path.stem] = (partition, path)
    return annotations


def _check_videos(root: pathlib.Path, va_dir: pathlib.Path,
                  annotations: dict[str, tuple[str, pathlib.Path]],
                  videos: dict[str, list[pathlib.Path]]) -> None:
    """Every annotation has exactly one video (the errors list every file
    that has none, then every one that has several); videos without an
    annotation are only a warning, since Aff-Wild2 ships the videos of
    every ABAW task together."""
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
    unannotated = sorted((stem for stem in videos if stem not in used), key=natural_key)
    if unannotated:
        logger.warning(
            "%d video(s) under %s have no valence-arousal annotation in %s and are not "
            "used (Aff-Wild2 ships the videos of every ABAW task and the test set "
            "together): %s", len(unannotated), root, va_dir, ", ".join(unannotated))


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
    """The frame rate of a video, read by `faces.probe_video`.

    Failures stay the `ValueError` naming the video that this reader raised
    with its own OpenCV helper before: `probe_video`'s `FileNotFoundError` (a
    path that is gone, e.g. a dangling link the scan listed) and
    `faces.VideoError` (cannot open, no usable frame rate, no decodable
    frame) are re-raised as it, with `probe_video`'s message in the
    parentheses. `probe_video` also decodes the first frame, so a video
    whose header reads but whose frames do not fails here, not later in
    preprocess (which probes every video the same way).
    """
    try:
        return faces.probe_video(path).fps
    except (FileNotFoundError, faces.VideoError) as err:
        raise ValueError(
            f"Cannot read the frame rate of video {path} ({err}); "
            "Aff-Wild2 label times are frame index / frame rate, so it is required."
        ) from err


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
    lines = read_lines(path)
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
            value = parse_float(path, lineno, field, column, allow_missing=False)
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
