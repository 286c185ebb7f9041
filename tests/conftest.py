"""Session-scoped fixtures shared by several test modules.

Built once per test session, on first use, and read only by the tests (a test
that damages a model or a video works on its own copy):

* `face_video`: `face_video(seconds, width=320, height=240)` gives the path of
  a face video made in code (`recola_sta.data.face_video.make_face_video`),
  one file per distinct set of arguments.
* `tiny_2d_cnn_model_dir`: an untrained 2D-CNN (32 px crops, 8-frame clips,
  fc_units=8) exported as predict reads it: the quickest model to load.
* `tiny_sta_model_dir`: an untrained 3d_cnn_sta (32 px, 8 frames) exported the
  same way, for the tests that need attention maps.
* `read_figure`: reads a written PNG as RGB and fails on a blank figure.
* `call_cli` (per test): `call_cli("train", "--flag=value", ...)` runs a CLI in
  this process (`recola_sta.cli.call`, flags of its own) and returns its exit
  code and captured output as a `subprocess.CompletedProcess`.

Tiers: tests marked `slow` (setup.cfg) train, start a subprocess or a pool of
worker processes; `python -m pytest -q -m "not slow"` runs the fast tier.

CLIs: a test of a CLI's errors (exit code, the one line on stderr, nothing
written) calls the CLI in this process with `call_cli`; each CLI keeps one
test that starts the real `python -m recola_sta.<command>`
(tests/test_cli_smoke.py), which also checks that both ways print the same.
"""

from __future__ import annotations

import importlib
import pathlib
import subprocess
from typing import Callable

import numpy as np
import pytest

from recola_sta.data.face_video import make_face_video

TINY_SIZE, TINY_FRAMES = 32, 8

# The module behind each `python -m recola_sta.<command>` (its entry module
# hands over to it; tests/test_cli_smoke.py checks the pairing).
CLI_MODULES = {
    "train": "recola_sta.training.train",
    "preprocess": "recola_sta.cache.preprocess",
    "evaluate": "recola_sta.evaluation.evaluate",
    "predict": "recola_sta.inference.predict",
    "export": "recola_sta.inference.export",
    "synthetic": "recola_sta.data.synthetic",
    "tables": "recola_sta.evaluation.tables",
}


@pytest.fixture
def call_cli(capfd) -> Callable[..., subprocess.CompletedProcess]:
    """Runs `python -m recola_sta.<command> args...` in this process
    (`cli.call`): returns the exit code and what it printed (stdout, stderr;
    captured at the file descriptors, TensorFlow's own lines included)."""
    from recola_sta import cli

    def call(command: str, *args: str) -> subprocess.CompletedProcess:
        capfd.readouterr()  # what came before is not the command's
        argv = [f"recola_sta.{command}", *args]
        code = cli.call(importlib.import_module(CLI_MODULES[command]), argv)
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(argv, code, out, err)

    return call


@pytest.fixture(scope="session")
def face_video(tmp_path_factory) -> Callable[..., pathlib.Path]:
    """A maker of face videos that writes each (seconds, width, height) once."""
    made: dict[tuple[float, int, int], pathlib.Path] = {}
    folder = tmp_path_factory.mktemp("face_videos")

    def make(seconds: float, width: int = 320, height: int = 240) -> pathlib.Path:
        key = (float(seconds), int(width), int(height))
        if key not in made:
            path = folder / f"face_{seconds:g}s_{width}x{height}.mp4"
            made[key] = make_face_video(path, seconds, width=width, height=height)
        return made[key]

    return make


def _export_untrained(path: pathlib.Path, variant: str, **build) -> pathlib.Path:
    """An untrained `variant` (seed 0) exported with predict's metadata."""
    import keras

    from recola_sta.faces.settings import FaceSettings
    from recola_sta.inference import export
    from recola_sta.model import networks

    keras.utils.set_random_seed(0)
    model = networks.build_model(variant, frames=TINY_FRAMES, size=TINY_SIZE, **build)
    meta = export.export_metadata(variant=variant, targets=["valence"], fps=4.0,
                                  face=FaceSettings(size=TINY_SIZE))
    return export.export_saved_model(model, path, meta)


@pytest.fixture(scope="session")
def tiny_2d_cnn_model_dir(tmp_path_factory) -> pathlib.Path:
    """The 2D-CNN with fc_units=8, exported once per session."""
    return _export_untrained(tmp_path_factory.mktemp("model_2d") / "saved_model", "2d_cnn",
                             fc_units=8)


@pytest.fixture(scope="session")
def tiny_sta_model_dir(tmp_path_factory) -> pathlib.Path:
    """The 3d_cnn_sta at its default widths, as tools/bench.py's
    export_untrained_model(path, 32, frames=8) exports it."""
    return _export_untrained(tmp_path_factory.mktemp("model_sta") / "saved_model",
                             "3d_cnn_sta")


@pytest.fixture(scope="session")
def read_video() -> Callable[[pathlib.Path], np.ndarray]:
    """Decodes a written video as (N, H, W, 3) RGB frames and checks that it
    has frames and that they are not blank (one flat colour)."""
    def read(path: pathlib.Path):
        import cv2

        cap = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(bgr[..., ::-1])
        cap.release()
        assert frames, f"{path}: no frame could be decoded"
        video = np.stack(frames)
        assert video.std() > 10, f"{path}: nearly flat ({video.std():.1f})"
        return video

    return read


@pytest.fixture(scope="session")
def read_figure() -> Callable[[pathlib.Path], np.ndarray]:
    """Reads a written figure as an (H, W, 3) RGB array and checks that it
    is not blank: a figure of one flat colour, or of a handful of colours
    (an empty canvas with its frame), fails."""
    def read(path: pathlib.Path):
        import cv2

        bgr = cv2.imread(str(path))
        assert bgr is not None, f"{path} is not a readable image"
        image = bgr[..., ::-1]
        colours = np.unique(image.reshape(-1, 3), axis=0)
        assert len(colours) > 20, f"{path}: {len(colours)} colours, a blank figure"
        assert image.std() > 10, f"{path}: nearly flat ({image.std():.1f})"
        return image

    return read
