"""Export a trained model as a self-contained TensorFlow SavedModel.

Keras and TensorFlow are imported only inside the export function, so
`predict` can read the metadata without loading any model-building code.

The SavedModel is what `predict` loads: `tf.saved_model.load(path)` and no
project code or Keras custom objects. Its `serve` signature maps float32 clips
(batch, frames, size, size, 3) in [0, 1] to a dict with `valence`
(batch, frames) and, for the attention variant, `attention`
(batch, frames, size, size). A model of several targets serves one
(batch, frames) entry per target, named after it (`valence`, `arousal`;
`serving_keys`). A `recola_sta.json` file beside `saved_model.pb` names the
targets (`targets`, in the model's output order) and says how to make those
clips (crop size, frames per clip, sampling rate, and
the face aligner's settings: detection scale, upsampling, face rule,
template), so a video is prepared exactly as in training.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
from typing import Any, Mapping, Sequence

from recola_sta import cli, io_utils

METADATA_NAME = "recola_sta.json"
# The largest crop side `read_metadata` accepts. Predict holds a chunk of
# crops (16 clips of 16 frames) before the model's own check of the clip
# shape can run: at this side that is 0.8 GB, and a corrupt or hand-edited
# `size` (100000: 28 GiB per crop) is refused before anything is allocated.
# Crops are 96 px by default.
MAX_SIZE = 1024
# The post-processing chain fitted on dev, copied beside the model by train.
POSTPROCESS_NAME = "postprocess.json"


def serving_keys(targets: Sequence[str]) -> list[str]:
    """The SavedModel's output key of each target: `valence` for a model of
    one target (whatever it is, as models were always served), each
    target's own name for several."""
    targets = list(targets)
    return ["valence"] if len(targets) == 1 else targets


def _serving_model(model, targets: Sequence[str]):
    """A functional model with the dict of outputs the SavedModel serves."""
    import keras

    from recola_sta.model import networks

    keys = serving_keys(targets)
    if model.output.shape[-1] != len(keys):
        raise ValueError(f"The model has {model.output.shape[-1]} outputs per frame but "
                         f"{len(keys)} targets {list(targets)}.")
    outputs = {
        key: keras.layers.Reshape(model.output.shape[1:2], name=f"serving_{key}")(
            model.output[..., k:k + 1])
        for k, key in enumerate(keys)
    }
    try:
        outputs["attention"] = networks.attention_model(model).output
    except ValueError:
        pass  # Variants without attention serve valence only.
    return keras.Model(model.inputs, outputs, name=f"{model.name}_serving")


def export_saved_model(
    model,
    path: str | os.PathLike,
    metadata: dict[str, Any],
    postprocess_json: str | os.PathLike | None = None,
) -> pathlib.Path:
    """Writes `model` as a SavedModel with a `serve` signature, atomically.

    Args:
        model: a model from `networks.build_model`.
        path: destination folder; replaced if it exists.
        metadata: JSON-serialisable facts a predictor needs (variant, size,
            frames, fps, face template); written as `recola_sta.json`.
        postprocess_json: optional fitted post-processing chain(s), copied
            in as `postprocess.json` so `predict` can apply them.

    Returns:
        The destination folder.

    Raises:
        OSError: the disk filled up (errno ENOSPC, naming `path`, also where
            TensorFlow raised its own error). On this or any other failure
            (Ctrl-C included) the partial export is removed and `path` is
            left as it was.
    """
    import keras
    import tensorflow as tf

    path = pathlib.Path(path)
    _, frames, height, width, channels = model.input.shape
    serving = _serving_model(model, metadata.get("targets", ["valence"]))
    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.add_endpoint(
        name="serve",
        fn=lambda clips: serving(clips, training=False),
        input_signature=[
            tf.TensorSpec((None, frames, height, width, channels), tf.float32, name="clips")
        ],
    )
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # left by an export that was killed
    try:
        archive.write_out(str(tmp), verbose=False)
        io_utils.atomic_write_text(tmp / METADATA_NAME, json.dumps(metadata, indent=2) + "\n")
        if postprocess_json is not None and pathlib.Path(postprocess_json).is_file():
            shutil.copyfile(postprocess_json, tmp / POSTPROCESS_NAME)
    except BaseException as e:
        # A partial export (a full disk, Ctrl-C) would hold its space until
        # the next export; `path` is left as it was.
        shutil.rmtree(tmp, ignore_errors=True)
        if cli.is_disk_full(e):
            # TensorFlow's ResourceExhaustedError names no file: name the
            # export folder (the CLI prints it with the free space).
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


# The face aligner of models exported before the aligner's settings were
# recorded (only its crop size was): faces.FaceAligner's defaults then.
# Those exported before `redetect_every` was recorded detected on every sample;
# before `rotate` was, frames were not turned.
_ALIGNER_DEFAULTS = {"upsample": 0, "detect_width": 320, "face": "largest",
                     "template": None, "predictor_path": None, "redetect_every": 1,
                     "rotate": 0}


def export_metadata(
    *,
    variant: str,
    targets: Sequence[str],
    frames: int,
    size: int,
    fps: float,
    face_aligner: Mapping[str, Any],
) -> dict[str, Any]:
    """What `predict` needs to prepare a video exactly as in training.

    Args:
        variant: network name (`networks.VARIANTS`).
        targets: the label dimensions the model predicts, in its output
            order; recorded as `targets`, and as `target` (the names joined
            by commas) for readers of older metadata.
        frames: frames per clip (static in the SavedModel).
        size: side of the aligned crops, pixels.
        fps: sampling rate of the frames, per second.
        face_aligner: the preprocess settings that made the training crops:
            `upsample`, `detect_width`, `face`, `template`, `predictor_path`
            (None for the packaged model), `redetect_every` (missing: today's
            default, `faces.DEFAULT_REDETECT_EVERY`), `rotate` (missing: 0);
            `size` is added.
    """
    from recola_sta import faces# lazily: dlib and OpenCV only where a model is exported

    defaults = {**_ALIGNER_DEFAULTS, "redetect_every": faces.DEFAULT_REDETECT_EVERY}
    aligner = {k: face_aligner.get(k, v) for k, v in defaults.items()}
    aligner["size"] = int(size)
    targets = list(targets)
    return {"variant": variant, "target": ",".join(targets), "targets": targets,
            "frames": int(frames), "size": int(size), "fps": float(fps),
            "face_aligner": aligner}


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Reads and checks the `recola_sta.json` of an exported SavedModel folder.

    Models exported before the face aligner's settings were recorded get the
    aligner's defaults of that time (`face_aligner` always holds every key of
    `export_metadata`).

    Raises:
        FileNotFoundError: `path` is not an exported recola_sta model.
        ValueError: `recola_sta.json` is not valid JSON or lacks a field or
            has one of the wrong type; the message names the file.
    """
    path = pathlib.Path(path)
    meta_path = path / METADATA_NAME
    if not (path / "saved_model.pb").is_file() or not meta_path.is_file():
        raise FileNotFoundError(
            f"{path} is not a recola_sta SavedModel (expected saved_model.pb and "
            f"{METADATA_NAME}); pass RUN_DIR/saved_model from a training run."
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Invalid model metadata {meta_path}: not JSON ({e}).") from e
    problems = []
    if not isinstance(meta, dict):
        raise ValueError(f"Invalid model metadata {meta_path}: expected a JSON object.")
    for key, kind, ok in (
        ("variant", str, lambda v: bool(v)),
        ("frames", int, lambda v: v > 0),
        ("size", int, lambda v: 16 <= v <= MAX_SIZE),
        ("fps", (int, float), lambda v: v > 0),
    ):
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, kind) or not ok(value):
            problems.append(f"{key}={value!r}")
    aligner = meta.get("face_aligner", {})
    if not isinstance(aligner, dict):
        problems.append(f"face_aligner={aligner!r}")
        aligner = {}
    if problems:
        raise ValueError(
            f"Invalid model metadata {meta_path}: missing or bad "
            f"{', '.join(problems)} (expected variant: a name, frames > 0, "
            f"16 <= size <= {MAX_SIZE}, "
            "fps > 0, face_aligner: an object). Re-export the model from its run folder."
        )
    # Models exported before `targets` was recorded predict one target.
    meta.setdefault("target", "valence")
    targets = meta.setdefault("targets", [meta["target"]])
    if (not isinstance(targets, list) or not targets
            or not all(isinstance(t, str) and t for t in targets)
            or len(set(targets)) != len(targets) or "attention" in targets):
        raise ValueError(f"Invalid model metadata {meta_path}: targets={targets!r} (expected "
                         "a list of distinct label names). Re-export the model from its run "
                         "folder.")
    meta["face_aligner"] = {**_ALIGNER_DEFAULTS, **aligner, "size": meta["size"]}
    return meta
