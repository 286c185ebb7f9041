"""Loading an exported model for predict: the face aligner its crops were
made with (from its recola_sta.json), the model loaded in a background
thread while the first frames are aligned (with a one-line description of
a broken file and a check of the clips it serves), its post-processing
chains, and running it on clips.

The model is a SavedModel (TensorFlow) or a model.onnx (ONNX Runtime,
`onnx_model`; TensorFlow is then never imported): either has a `serve`
function from a batch of clips to a dict of outputs by name, which
`run_model` calls.
"""

from __future__ import annotations

import dataclasses
import pathlib
import threading
from typing import Any, Sequence

import numpy as np

from recola_sta import clips, faces
from recola_sta.inference import export, onnx_model


def load_chains(model_dir: pathlib.Path, targets: Sequence[str]) -> dict[str, Any]:
    """The post-processing chain of each target stored beside the model
    (none for a target without one)."""
    path = model_dir / export.POSTPROCESS_NAME
    if not path.is_file():
        return {}
    from recola_sta.evaluation import postprocess

    return postprocess.load_chains(path, targets)


def make_aligner(meta: dict[str, Any], model_dir: pathlib.Path,
                 overrides: dict[str, Any] | None = None) -> faces.FaceAligner:
    """The `FaceAligner` the model's crops were made with (`face` in its
    recola_sta.json), with the non-None `overrides` applied.

    Raises:
        ValueError: a recorded setting is invalid (naming recola_sta.json),
            or an override is (naming its flag).
        FileNotFoundError: the landmark model file does not exist.
    """
    recorded = meta["face"]
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return faces.FaceAligner.from_settings(dataclasses.replace(recorded, **given))
    except ValueError as e:
        raise ValueError(
            f"Cannot build the face aligner from {model_dir / export.METADATA_NAME} "
            f"(face: {recorded.to_json()}) and the flags {given or 'given (none)'}: {e}"
        ) from e


class ModelLoadError(ValueError):
    """A model cannot be loaded (corrupt or truncated files) or does not
    take the clips its recola_sta.json describes; the message names the file."""


# Which file of a SavedModel an error of `tf.saved_model.load` points at,
# by a phrase of its message (TensorFlow raises OSError, IndexError,
# ValueError or OpErrors of several kinds, none naming the file).
_LOAD_ERROR_FILES = (
    ("Cannot parse file", "saved_model.pb"),
    ("MetaGraph", "saved_model.pb"),
    ("sstable", "variables/variables.index"),
    ("Checksum", "variables/variables.data-*"),
    ("Read less bytes", "variables/variables.data-*"),
    ("TensorSliceReader", "variables/"),
)


def describe_load_error(model_dir: pathlib.Path, error: BaseException) -> str:
    """One line saying which file of the SavedModel `model_dir` is broken."""
    text = " ".join(str(error).split())
    if text.startswith("{{function_node"):  # TensorFlow's op prefix: no information
        text = text.split("}}", 1)[-1].strip()
    culprit = next((name for phrase, name in _LOAD_ERROR_FILES if phrase in text),
                   "saved_model.pb or variables/")
    matches = sorted(model_dir.glob(culprit)) if "*" in culprit else []
    if matches:
        culprit = str(matches[0].relative_to(model_dir))
    if len(text) > 200:
        text = text[:197] + "..."
    return (f"Cannot load the SavedModel {model_dir}: {model_dir / culprit} is corrupt or "
            f"truncated ({type(error).__name__}: {text}). Re-export the model from its run "
            "folder.")


def describe_onnx_error(path: pathlib.Path, error: BaseException) -> str:
    """One line saying that the ONNX model `path` cannot be read."""
    text = " ".join(str(error).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return (f"Cannot load the ONNX model {path}: it is corrupt or truncated "
            f"({type(error).__name__}: {text}). Re-export the model from its run folder "
            "(python -m recola_sta.export --format=onnx).")


def check_serving_shape(model: Any, model_dir: pathlib.Path, meta: dict[str, Any]) -> None:
    """Checks that the loaded model (a SavedModel or an `onnx_model.OnnxModel`)
    serves clips of the frames and crop size its recola_sta.json records; a
    mismatch would otherwise surface as a runtime error printing a whole
    input batch.

    Raises:
        ModelLoadError: no `serve` signature, or other clip dimensions.
    """
    if isinstance(model, onnx_model.OnnxModel):
        served, kind = model.clip_shape, f"ONNX model {model.path}"
    else:
        serve = getattr(model, "serve", None)
        signature = getattr(serve, "input_signature", None)
        if serve is None or not signature:
            raise ModelLoadError(f"The SavedModel {model_dir} has no `serve` signature: it was "
                                 "not exported by recola_sta. Re-export the model from its run "
                                 "folder.")
        served, kind = tuple(signature[0].shape)[1:], f"SavedModel in {model_dir}"
    size = meta["face"].size
    wanted = (meta["frames"], size, size, 3)
    if served != wanted:
        raise ModelLoadError(
            f"{model_dir / export.METADATA_NAME} records clips of {meta['frames']} frames of "
            f"{size}x{size} px (frames={meta['frames']}, face.size={size}), "
            f"but the {kind} takes clips of shape {served} "
            "(frames, size, size, channels): the metadata does not belong to this model. "
            "Re-export the model from its run folder."
        )


class ModelLoader:
    """Imports TensorFlow and loads a SavedModel (or, given `onnx_file`,
    starts an ONNX Runtime session of it, without TensorFlow) in a
    background thread; `result` waits for it and raises what the load
    raised, as a `ModelLoadError` naming the broken file where the runtime
    could not read the model."""

    def __init__(self, model_dir: pathlib.Path, meta: dict[str, Any],
                 onnx_file: pathlib.Path | None = None):
        self._model_dir = model_dir
        self._meta = meta
        self._onnx_file = onnx_file
        self._model: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name="load-model", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        if self._onnx_file is not None:
            self._load_onnx()
            return
        try:
            import tensorflow as tf
        except BaseException as e:  # raised in the caller's thread by result()
            self._error = e
            return
        try:
            model = tf.saved_model.load(str(self._model_dir))
        except (MemoryError, KeyboardInterrupt) as e:
            self._error = e
            return
        except Exception as e:  # any reader error of a broken file
            self._error = ModelLoadError(describe_load_error(self._model_dir, e))
            return
        self._accept(model)

    def _load_onnx(self) -> None:
        try:
            model = onnx_model.load(self._onnx_file)
        except (MemoryError, KeyboardInterrupt, ModuleNotFoundError) as e:
            self._error = e if not isinstance(e, ModuleNotFoundError) else ValueError(str(e))
            return
        except Exception as e:  # ONNX Runtime's errors of a broken file
            self._error = ModelLoadError(describe_onnx_error(self._onnx_file, e))
            return
        self._accept(model)

    def _accept(self, model) -> None:
        """Keeps `model` if it takes the clips the metadata describes, else
        records why not (`check_serving_shape`)."""
        try:
            check_serving_shape(model, self._model_dir, self._meta)
        except ModelLoadError as e:
            self._error = e
            return
        self._model = model

    def join(self) -> None:
        """Waits for the load to end, whatever it gives: a process that
        exits (Ctrl-C, an error) while this thread imports TensorFlow or
        loads the model is aborted by the C++ runtime ("terminate called
        without an active exception")."""
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._model


def run_model(serve, crops: np.ndarray, frames: int, batch_size: int,
              targets: Sequence[str] = ("valence",)) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-sample values of the model's `targets` (its metadata's
    `targets`): (N,) for one target, (N, K) for K; and attention maps
    (N, S, S) or None.

    `serve`: the model's serve function (a SavedModel's `serve`, which
    takes the NumPy batch as its float32 tensor, or `OnnxModel.serve`); its
    outputs are read as NumPy arrays, so no TensorFlow is imported here."""
    out = clips.predict_clips(
        lambda batch: {k: np.asarray(v) for k, v in serve(batch).items()},
        crops, frames, batch_size,
    )
    keys = export.serving_keys(targets)
    missing = [k for k in keys if k not in out]
    if missing:
        raise ValueError(f"The model serves {sorted(out)}, not the outputs {missing} of "
                         f"its targets {list(targets)}; re-export the model from its run folder.")
    values = np.stack([out[k].astype(np.float64) for k in keys], axis=-1)
    return (values[:, 0] if len(keys) == 1 else values), out.get("attention")
