"""Export a trained model as a self-contained TensorFlow SavedModel.

Keras and TensorFlow are imported only inside the export function, so
`predict` can read the metadata without loading any model-building code.

The SavedModel is what `predict` loads: `tf.saved_model.load(path)` and no
project code or Keras custom objects. Its `serve` signature maps float32 clips
(batch, frames, size, size, 3) in [0, 1] to a dict with one (batch, frames)
entry per target, named after it (`valence`, `arousal`; `serving_keys`), and,
for the attention variant, `attention` (batch, frames, size, size). A `recola_sta.json` file beside `saved_model.pb` names the
targets (`targets`, in the model's output order) and says how to make those
clips (frames per clip, sampling rate, and the face settings, crop size
included), so a video is prepared exactly as in training.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
from typing import Any, Sequence

from recola_sta import cli, io_utils
from recola_sta.faces.settings import FaceSettings

METADATA_NAME = "recola_sta.json"
# 2: the face settings as one object (`face`, whose `size` is the crops'),
# the clip length read from the model.
FORMAT_VERSION = 2
# The post-processing chain fitted on dev, copied beside the model by train.
POSTPROCESS_NAME = "postprocess.json"


def serving_keys(targets: Sequence[str]) -> list[str]:
    """The SavedModel's output key of each target: its own name, for one
    target as for several."""
    return list(targets)


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
        metadata: `export_metadata`'s facts a predictor needs; written as
            `recola_sta.json` with the model's clip length (`frames`).
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
    if (height, width) != (metadata["face"]["size"],) * 2:
        raise ValueError(f"The model takes {height}x{width} px crops but the face settings "
                         f"make {metadata['face']['size']} px ones.")
    metadata = {**metadata, "frames": int(frames)}
    serving = _serving_model(model, metadata["targets"])
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


def export_metadata(*, variant: str, targets: Sequence[str], fps: float,
                    face: FaceSettings) -> dict[str, Any]:
    """What `predict` needs to prepare a video exactly as in training
    (`export_saved_model` adds the clip length, read from the model).

    Args:
        variant: network name (`networks.VARIANTS`).
        targets: the label dimensions the model predicts, in its output order.
        fps: sampling rate of the frames, per second.
        face: the face settings that made the training crops (the cache's);
            their `size` is the model's input size.
    """
    return {"format_version": FORMAT_VERSION, "variant": variant, "targets": list(targets),
            "fps": float(fps), "face": face.to_json()}


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Reads and checks the `recola_sta.json` of an exported SavedModel folder.

    Returns its object, with `face` read as `FaceSettings`.

    Raises:
        FileNotFoundError: `path` is not an exported recola_sta model.
        ValueError: `recola_sta.json` is not valid JSON, was written by an
            older version, or lacks a field or has one of the wrong type; the
            message names the file.
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
    if not isinstance(meta, dict):
        raise ValueError(f"Invalid model metadata {meta_path}: expected a JSON object.")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{meta_path} was written by an older recola_sta (metadata format "
            f"{meta.get('format_version')}, this version reads {FORMAT_VERSION}): export the "
            "model again from its run folder by re-running its `python -m recola_sta.train` "
            "command with this version (a finished run is evaluated and exported again).")
    problems = [f"{key}={meta.get(key)!r}" for key, kind, ok in (
        ("variant", str, lambda v: bool(v)),
        ("frames", int, lambda v: v > 0),
        ("fps", (int, float), lambda v: v > 0),
    ) if isinstance(meta.get(key), bool) or not isinstance(meta.get(key), kind)
        or not ok(meta.get(key))]
    targets = meta.get("targets")
    if (not isinstance(targets, list) or not targets
            or not all(isinstance(t, str) and t for t in targets)
            or len(set(targets)) != len(targets) or "attention" in targets):
        problems.append(f"targets={targets!r}")
    if problems:
        raise ValueError(
            f"Invalid model metadata {meta_path}: missing or bad {', '.join(problems)} "
            "(expected variant: a name, frames > 0, fps > 0, targets: a list of distinct "
            "label names). Re-export the model from its run folder.")
    try:
        meta["face"] = FaceSettings.from_json(meta.get("face"), meta_path)
    except ValueError as e:
        raise ValueError(f"Invalid model metadata {e} Re-export the model from its run "
                         "folder.") from None
    return meta
