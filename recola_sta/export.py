"""Export a trained model as a self-contained TensorFlow SavedModel.

Keras and TensorFlow are imported only inside the export function, so
`predict` can read the metadata without loading any model-building code.

The SavedModel is what `predict` loads: `tf.saved_model.load(path)` and no
project code or Keras custom objects. Its `serve` signature maps float32 clips
(batch, frames, size, size, 3) in [0, 1] to a dict with `valence`
(batch, frames) and, for the attention variant, `attention`
(batch, frames, size, size). A `recola_sta.json` file beside `saved_model.pb`
says how to make those clips (crop size, frames per clip, sampling rate,
face template), so a video is prepared exactly as in training.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any

from recola_sta import io_utils

METADATA_NAME = "recola_sta.json"
# The post-processing chain fitted on dev, copied beside the model by train.
POSTPROCESS_NAME = "postprocess.json"


def _serving_model(model):
    """A functional model with the dict of outputs the SavedModel serves."""
    import keras

    from recola_sta import models

    valence = keras.layers.Reshape(model.output.shape[1:2], name="serving_valence")(model.output)
    outputs = {"valence": valence}
    try:
        outputs["attention"] = models.attention_model(model).output
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
        model: a model from `models.build_model`.
        path: destination folder; replaced if it exists.
        metadata: JSON-serialisable facts a predictor needs (variant, size,
            frames, fps, face template); written as `recola_sta.json`.
        postprocess_json: optional fitted post-processing chain, copied in
            as `postprocess.json` so `predict` can apply it.

    Returns:
        The destination folder.
    """
    import keras
    import tensorflow as tf

    path = pathlib.Path(path)
    _, frames, height, width, channels = model.input.shape
    serving = _serving_model(model)
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
    shutil.rmtree(tmp, ignore_errors=True)
    archive.write_out(str(tmp), verbose=False)
    io_utils.atomic_write_text(tmp / METADATA_NAME, json.dumps(metadata, indent=2) + "\n")
    if postprocess_json is not None and pathlib.Path(postprocess_json).is_file():
        shutil.copyfile(postprocess_json, tmp / POSTPROCESS_NAME)
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Reads the `recola_sta.json` of an exported SavedModel folder.

    Raises:
        FileNotFoundError: `path` is not an exported recola_sta model.
    """
    path = pathlib.Path(path)
    meta = path / METADATA_NAME
    if not (path / "saved_model.pb").is_file() or not meta.is_file():
        raise FileNotFoundError(
            f"{path} is not a recola_sta SavedModel (expected saved_model.pb and "
            f"{METADATA_NAME}); pass RUN_DIR/saved_model from a training run."
        )
    return json.loads(meta.read_text())
