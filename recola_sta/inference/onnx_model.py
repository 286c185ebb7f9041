"""An exported ONNX model (`export.export_onnx`) run on ONNX Runtime, without
TensorFlow: `predict` loads it where --model names a model.onnx (or a folder
holding one and no SavedModel).

`OnnxModel.serve` has the SavedModel's `serve` contract as `loading.run_model`
uses it: a float32 batch of clips in, a dict of outputs by name (each target,
`attention` for the STA variant) out, as NumPy arrays.

This module imports neither TensorFlow nor Keras (onnxruntime only, inside
`load`), and nothing else of the package that does.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np

from recola_sta.inference import export


class OnnxModel:
    """An ONNX Runtime session of an exported model: `serve` runs a batch,
    `clip_shape` is the (frames, size, size, channels) it takes."""

    def __init__(self, session: Any, path: pathlib.Path):
        self.path = path
        self._session = session
        (self._input,) = session.get_inputs()
        self._outputs = [o.name for o in session.get_outputs()]

    @property
    def clip_shape(self) -> tuple[Any, ...]:
        """The input's dimensions after the (dynamic) batch."""
        return tuple(self._input.shape[1:])

    def serve(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        """The model's outputs on `clips` (batch, frames, size, size, 3), by name."""
        values = self._session.run(self._outputs,
                                   {self._input.name: np.asarray(clips, np.float32)})
        return dict(zip(self._outputs, values))


def model_file(path: str | os.PathLike) -> pathlib.Path | None:
    """The ONNX model `predict --model=path` names, or None for a SavedModel.

    `path` a .onnx file: that file. A folder: its model.onnx where it holds
    no saved_model.pb (a folder with both is predicted with the SavedModel,
    as before ONNX export existed; name its model.onnx to use ONNX Runtime).
    """
    path = pathlib.Path(path)
    if path.suffix == ".onnx" and path.is_file():
        return path
    if (path / export.ONNX_NAME).is_file() and not (path / "saved_model.pb").is_file():
        return path / export.ONNX_NAME
    return None


def locate(path: str | os.PathLike) -> tuple[pathlib.Path, pathlib.Path | None]:
    """(the export folder holding recola_sta.json, the ONNX model file or
    None for a SavedModel) of `predict --model=path` (`model_file`)."""
    path = pathlib.Path(path)
    onnx_file = model_file(path)
    return (path.parent if onnx_file == path else path), onnx_file


def load(path: pathlib.Path, threads: int = 0) -> OnnxModel:
    """An ONNX Runtime session of the model file `path` on the CPU.

    `threads`: ONNX Runtime's intra-op threads (0: its default, one per core).

    Raises:
        ModuleNotFoundError: onnxruntime is not installed (the message says
            how to install it).
        Exception: whatever ONNX Runtime raises for a corrupt or truncated
            file (`loading.ModelLoader` describes it in one line).
    """
    try:
        import onnxruntime
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f"Predicting with {path} needs ONNX Runtime, which is not installed: "
            "pip install 'recola_sta[onnx]' (or onnxruntime), or pass the SavedModel "
            "folder.") from e
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: its warnings are not the user's
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
    return OnnxModel(session, path)
