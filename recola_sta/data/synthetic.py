"""A RECOLA-layout synthetic corpus made by animating a real face photograph.

Nobody can ship RECOLA or SEWA, so every command of the project also runs on a
corpus generated here: scikit-image's `astronaut` photograph (512 x 512),
animated so that a known valence trace drives the mouth corners, surrounded by
nuisance the network has to see through. The whole pipeline, dlib included,
then runs for real on it.

What a frame shows (docs/data.md, "Synthetic corpus", gives the reasons):

* **valence** moves the mouth corners (dlib landmarks 48 and 54) and the lip
  points beside them: up and outward for positive valence (smile), down and
  inward for negative (frown), `MOUTH_SHIFT_PX` = 16 px at |valence| = 1 at the
  photograph's scale, through a smooth displacement field confined to the
  lower face;
* **unrelated facial motion**: brows raised / lowered (driven half by the
  arousal trace, half by an independent trace) and blinks at random times;
* **head motion**: translation, in-plane rotation and scale drift;
* **lighting**: a global gain and a moving linear gradient;
* **subject differences** per recording: colour tint and gamma, focus blur,
  mirror image, background colour and texture, crop position and zoom.

Every trace is smooth and random, drawn from a generator seeded by
`(seed, partition, number)`, so a recording does not depend on how many others
are generated or in which order. Videos are 25 fps `mp4v` MPEG-4; labels are
RECOLA gold-standard ARFF files with a row every 40 ms from 0 to the duration.
As in RECOLA, the test partition gets videos but no label files.

The `recola_like` preset (`--preset=recola_like`) is harder and closer to
RECOLA's recordings: speech moves the jaw and lips all the time, valence shows
subtly (mouth corners, cheeks, eyelids) and slowly, every recording is another
identity, the head turns out of plane, hands pass over the mouth, and frames
go through lighting changes, sensor noise and JPEG compression (see
`face_animation.RecolaLikeAnimator`, `synthetic_plans._plan_recola_like` and
docs/recola_like.md).

This module writes the corpus (videos, ARFF labels, the `synthetic.json`
marker) and is its CLI; the face animation is `recola_sta.face_animation` and
what each recording shows is `recola_sta.data.synthetic_plans` (drawn) and
`recola_sta.data.synthetic_scenes` (rendered).

Usage::

    python -m recola_sta.synthetic --out data/synthetic
    python -m recola_sta.synthetic --out data/recola_like --preset=recola_like
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import pathlib
import shutil
import sys
import time
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from recola_sta import cli, io_utils, pools, settings
from recola_sta.data import corpora
from recola_sta.data.face_animation import (MOUTH_SHIFT_PX, RECOLA_LIKE_MOUTH_SHIFT_PX,
                                            FaceAnimator, RecolaLikeAnimator,
                                            astronaut_landmarks)
from recola_sta.data.synthetic_plans import (PRESETS, RecolaLikePlan, RecordingPlan,
                                             check_preset, plan_recording)
from recola_sta.data.synthetic_scenes import render_frames, render_frames_recola_like
from recola_sta.settings import setting

MARKER_NAME = "synthetic.json"
# The corpus folder's lock: held by the one run that writes the folder.
LOCK_NAME = io_utils.LOCK_NAME
_FORMAT_VERSION = 1


# ---------------------------------------------------------------------------
# Writing a recording


def _recording_files(out_dir: pathlib.Path, name: str, partition: str) -> list[pathlib.Path]:
    files = [out_dir / "recordings_video" / f"{name}.mp4"]
    if partition != "test":
        files += [out_dir / "ratings_gold_standard" / target / f"{name}.arff"
                  for target in ("valence", "arousal")]
    return files


def write_recording(
    out_dir: pathlib.Path, animator: FaceAnimator, plan: RecordingPlan,
    width: int, height: int, fps: float,
) -> None:
    """Writes one recording's video and (train/dev only) its two ARFF files, atomically."""
    video, *labels = _recording_files(out_dir, plan.name, plan.partition)
    if isinstance(plan, RecolaLikePlan):
        if not isinstance(animator, RecolaLikeAnimator):
            raise TypeError("A recola_like plan needs a RecolaLikeAnimator.")
        frames = render_frames_recola_like(animator, plan, width, height)
    else:
        frames = render_frames(animator, plan, width, height)
    for path, values in zip(labels, (plan.valence_labels, plan.arousal_labels)):
        corpora.write_arff(path, plan.name, plan.label_times, values)
    with io_utils.atomic_path(video, suffix=".mp4") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write an mp4v video to {video}.")
        try:
            for frame in frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()


# ---------------------------------------------------------------------------
# The corpus


@functools.lru_cache(maxsize=2)
def _animator(landmarks_bytes: bytes, preset: str = "default") -> FaceAnimator:
    landmarks = np.frombuffer(landmarks_bytes, np.float64).reshape(68, 2)
    if preset == "recola_like":
        return RecolaLikeAnimator(landmarks)
    return FaceAnimator(landmarks)


def _render_task(out_dir: str, name: str, partition: str, number: int,
                 params: dict, landmarks_bytes: bytes) -> str:
    """Worker entry point: plan and write one recording."""
    cv2.setNumThreads(1)
    preset = params["preset"]
    plan = plan_recording(
        name, partition, number, seed=params["seed"], duration_s=params["duration_s"],
        fps=params["fps"], annotation_delay_s=params["annotation_delay_s"], preset=preset,
    )
    write_recording(pathlib.Path(out_dir), _animator(landmarks_bytes, preset), plan,
                    params["width"], params["height"], params["fps"])
    return name


class CorpusSettingsError(ValueError):
    """A folder holds a synthetic corpus made with other settings or another preset.

    Attributes:
        folder: the corpus folder.
        differences: setting -> (value in the folder, value asked for), for
            each setting that differs.
    """

    def __init__(self, message: str, folder: pathlib.Path,
                 differences: dict[str, tuple[Any, Any]]):
        super().__init__(message)
        self.folder = folder
        self.differences = differences


class SettingError(ValueError):
    """A bad value of one of `ensure_corpus`'s settings.

    Attributes:
        setting: the argument's name, which is also the CLI flag's
            (`--workers`), so the CLI can name the flag.
    """

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting


def _check_params(num_train: int, num_dev: int, num_test: int, duration_s: float,
                  width: int, height: int, fps: float, annotation_delay_s: float,
                  workers: int, preset: str) -> None:
    try:
        check_preset(preset)
    except ValueError as e:
        raise SettingError("preset", str(e)) from None
    for flag, value in (("num_train", num_train), ("num_dev", num_dev), ("num_test", num_test)):
        if value < 0:
            raise SettingError(flag, f"{flag} must be >= 0, got {value}.")
    if num_train + num_dev + num_test == 0:
        raise SettingError("num_train", "num_train + num_dev + num_test must be positive.")
    if duration_s < 1.0:
        raise SettingError("duration_s", f"duration_s must be at least 1 s, got {duration_s}.")
    if width < 64 or height < 64:
        raise SettingError("width" if width < 64 else "height",
                           f"width and height must be at least 64 px, got {width}x{height}.")
    if fps <= 0:
        raise SettingError("fps", f"fps must be positive, got {fps}.")
    if annotation_delay_s < 0:
        raise SettingError("annotation_delay_s",
                           f"annotation_delay_s must be >= 0, got {annotation_delay_s}.")
    if workers < 1:
        raise SettingError("workers", f"workers must be >= 1, got {workers}.")


@contextlib.contextmanager
def _corpus_writer(out_dir: pathlib.Path) -> Iterator[None]:
    """Holds the corpus folder's lock (`LOCK_NAME`) while a run may write it.

    A second run on the folder is refused (`io_utils.LockedError`, a
    ValueError naming the holder). Under the lock the temporary files of a
    killed earlier run (a half-written video or label file) are removed
    (`io_utils.remove_temporaries`: this project's temporaries only). A
    folder no file can be created in is refused before any work, unless it
    holds a corpus already (then it is read without the lock, and
    `ensure_corpus` refuses to write into it only if a recording is missing).
    """
    started = (out_dir / MARKER_NAME).is_file()
    labels = out_dir / "ratings_gold_standard"
    with io_utils.folder_writer(
            out_dir, started=started, name="the synthetic corpus folder",
            what=f"the synthetic corpus folder {out_dir}",
            temp_folders=(out_dir / "recordings_video", labels / "valence", labels / "arousal")):
        yield


@dataclasses.dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """The synthetic CLI's settings (each field is its flag); `ensure_corpus`
    takes its defaults from here."""

    out: str = setting(help="Folder of the corpus (RECOLA layout).")
    num_train: int = setting(20, help="Training recordings.")
    num_dev: int = setting(5, help="Development recordings.")
    num_test: int = setting(5, help="Test recordings (videos only, as in RECOLA).")
    duration_s: float = setting(60.0, help="Length of each recording in seconds.")
    width: int = setting(320, help="Frame width in pixels.")
    height: int = setting(240, help="Frame height in pixels.")
    fps: float = setting(25.0, help="Video frame rate.")
    seed: int = setting(0, help="Random seed; the corpus is a deterministic function of it.")
    annotation_delay_s: float = setting(0.0, help="Labels lag the face by this many seconds.")
    workers: int = setting(2, help="Processes rendering recordings in parallel.")
    preset: str = setting("default", choices=PRESETS,
                          help="Corpus preset: 'default', or 'recola_like' (speech, subtle slow "
                               "valence, identities, head turns, occlusions, lighting and JPEG "
                               "noise).")
    overwrite: bool = setting(False, help="Regenerate everything, replacing an existing "
                                          "synthetic corpus in --out.")


_D = SyntheticConfig  # the defaults of `ensure_corpus`


def ensure_corpus(
    out_dir: str | os.PathLike,
    *,
    num_train: int = _D.num_train,
    num_dev: int = _D.num_dev,
    num_test: int = _D.num_test,
    duration_s: float = _D.duration_s,
    width: int = _D.width,
    height: int = _D.height,
    fps: float = _D.fps,
    seed: int = _D.seed,
    annotation_delay_s: float = _D.annotation_delay_s,
    workers: int = _D.workers,
    progress: bool = False,
    overwrite: bool = _D.overwrite,
    preset: str = _D.preset,
) -> pathlib.Path:
    """Generates the recordings of a synthetic corpus that are not there yet.

    `out_dir/synthetic.json` records the settings; it says `"complete": true`
    once every recording is written. A re-run with the same settings returns
    at once if the corpus is complete, and otherwise writes only the missing
    recordings (each file is written atomically, so a file that exists is
    whole), completing a corpus whose generation was interrupted.

    Args:
        out_dir: corpus folder (RECOLA layout), created if needed.
        num_train, num_dev, num_test: recordings per partition.
        duration_s: length of each recording.
        width, height: video frame size in pixels.
        fps: video frame rate (labels are always every 40 ms).
        seed: random seed; the corpus is a deterministic function of it.
        annotation_delay_s: labels lag the face by this many seconds.
        workers: processes rendering recordings in parallel.
        progress: show a progress bar.
        overwrite: regenerate every recording, replacing an existing
            synthetic corpus (made with any settings) in `out_dir`.
        preset: `"default"` (the corpus described in the module docstring)
            or `"recola_like"` (speech, subtle and slow valence, identities,
            out-of-plane turns, occlusions, compression; see
            `face_animation.RecolaLikeAnimator` and `synthetic_plans._plan_recola_like`). Recorded in
            `synthetic.json`; a marker without it means `"default"`.

    Returns:
        `out_dir` as a path.

    Raises:
        SettingError: a bad setting (a ValueError naming it).
        ValueError: `out_dir` holds a synthetic corpus made with other
            settings or another preset (and `overwrite` is False); or
            `out_dir` is a non-empty folder that is not a synthetic corpus;
            or recordings are missing and `out_dir` cannot be written (checked
            before any rendering); or another run is writing it
            (`io_utils.LockedError`).
    """
    _check_params(num_train, num_dev, num_test, duration_s, width, height, fps,
                  annotation_delay_s, workers, preset)
    out_dir = pathlib.Path(out_dir)
    params = {
        "format_version": _FORMAT_VERSION, "source": "skimage.data.astronaut",
        "num_train": num_train, "num_dev": num_dev, "num_test": num_test,
        "duration_s": float(duration_s), "width": int(width), "height": int(height),
        "fps": float(fps), "seed": int(seed), "annotation_delay_s": float(annotation_delay_s),
        "mouth_shift_px": MOUTH_SHIFT_PX if preset == "default" else RECOLA_LIKE_MOUTH_SHIFT_PX,
        "preset": preset,
    }
    marker = out_dir / MARKER_NAME
    # Checked before the lock, which would leave its file in a foreign folder.
    if (not marker.is_file() and out_dir.is_dir()
            and any(p.name != LOCK_NAME for p in out_dir.iterdir())):
        raise ValueError(
            f"{out_dir} is not empty and has no {MARKER_NAME}: refusing to write a "
            "synthetic corpus into it."
        )
    with _corpus_writer(out_dir):
        _write_corpus(out_dir, params, overwrite, workers, progress)
    return out_dir


def _write_corpus(out_dir: pathlib.Path, params: dict[str, Any], overwrite: bool,
                  workers: int, progress: bool) -> None:
    """`ensure_corpus`'s work under the folder's lock: checks the marker
    against `params`, then renders the missing recordings (none where the
    corpus is complete)."""
    num_train, num_dev, num_test = params["num_train"], params["num_dev"], params["num_test"]
    preset = params["preset"]
    marker = out_dir / MARKER_NAME
    if marker.is_file():
        old = json.loads(marker.read_text())
        old_params = dict(old.get("params") or {})
        old_params.setdefault("preset", "default")  # markers written before presets existed
        if old_params != params:
            if old_params["preset"] != preset and not overwrite:
                # The mouth shift follows from the preset; other settings may differ too.
                differences = {k: (old_params.get(k), v) for k, v in params.items()
                               if old_params.get(k) != v and k != "mouth_shift_px"}
                raise CorpusSettingsError(
                    f"{out_dir} holds a synthetic corpus of preset {old_params['preset']!r}, "
                    f"not {preset!r}; pass overwrite=True (--overwrite) or choose another folder.",
                    out_dir, differences,
                )
            if not overwrite:
                before = old.get("params") if isinstance(old.get("params"), dict) else {}
                differences = {k: (before.get(k), v) for k, v in params.items()
                               if before.get(k) != v}
                raise CorpusSettingsError(
                    f"{out_dir} holds a synthetic corpus made with other settings "
                    f"({old.get('params')}); pass overwrite=True (--overwrite) or choose "
                    "another folder.", out_dir, differences,
                )
        elif old.get("complete") and not overwrite:
            return
        if overwrite:
            io_utils.check_writable_dir(out_dir, "the synthetic corpus folder")
            for sub in ("recordings_video", "ratings_gold_standard"):
                shutil.rmtree(out_dir / sub, ignore_errors=True)

    # Before any rendering: a corpus that cannot be written wastes all of it.
    io_utils.check_writable_dir(out_dir, "the synthetic corpus folder")
    plan = [(f"{p}_{i}", p, i) for p, n in (("train", num_train), ("dev", num_dev),
                                            ("test", num_test)) for i in range(1, n + 1)]
    io_utils.atomic_write_text(marker, json.dumps(
        {"params": params, "complete": False}, indent=2) + "\n")
    todo = [job for job in plan
            if not all(f.is_file() for f in _recording_files(out_dir, job[0], job[1]))]
    landmarks_bytes = astronaut_landmarks().astype(np.float64).tobytes()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc="synthetic recordings", unit="rec")
    tasks = [(str(out_dir), name, partition, number, params, landmarks_bytes)
             for name, partition, number in todo]
    for _, outcome in pools.run_each(_render_task, tasks, workers):
        outcome.result()
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    io_utils.atomic_write_text(marker, json.dumps(
        {"params": params, "complete": True,
         "recordings": [name for name, _, _ in plan],
         "note": "Test recordings have no label files, as in RECOLA; their traces "
                 "follow from the seed (plan_recording)."}, indent=2) + "\n")


# ---------------------------------------------------------------------------
# CLI


def define_flags(flag_values=None) -> None:
    """Defines the CLI's flags, one per `SyntheticConfig` field, in
    `flag_values` where given (`cli.call`), else in absl's global FLAGS."""
    settings.define_flags(SyntheticConfig, flag_values=flag_values)


def main(argv: Sequence[str], flag_values=None) -> int:
    """The CLI: `flag_values` holds the parsed flags (default: absl's global
    FLAGS); `argv` is not read."""
    from absl import flags

    del argv
    config = settings.from_flags(SyntheticConfig,
                                 flags.FLAGS if flag_values is None else flag_values)
    return cli.run("synthetic", lambda: _synthesize(config), output=config.out)


def _synthesize(f: SyntheticConfig) -> None:
    """main()'s work: generate (or complete) the corpus, then print its size."""
    start = time.perf_counter()
    try:
        out = ensure_corpus(
            f.out, num_train=f.num_train, num_dev=f.num_dev, num_test=f.num_test,
            duration_s=f.duration_s, width=f.width, height=f.height, fps=f.fps, seed=f.seed,
            annotation_delay_s=f.annotation_delay_s, workers=f.workers, progress=True,
            overwrite=f.overwrite, preset=f.preset,
        )
    except SettingError as e:  # names its flag
        raise ValueError(f"error: --{e.setting}={getattr(f, e.setting)}: {e}") from e
    except ValueError as e:  # about the folder
        raise ValueError(f"error: --out={f.out}: {e}") from e
    recordings = corpora.load_corpus(out, "synthetic")
    print(f"Synthetic corpus ({f.preset}) in {out}: {len(recordings)} recordings "
          f"({f.num_train} train, {f.num_dev} dev, {f.num_test} test), "
          f"{time.perf_counter() - start:.1f} s.", file=sys.stderr)
