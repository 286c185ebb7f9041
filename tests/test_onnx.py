"""ONNX export (`export --format=onnx`) and predict on ONNX Runtime.

Tiny untrained models (fc_units=8, 16-32 px crops, 4-8 frame clips) are
saved as a run's best.keras beside a config.json and a cache manifest, and
re-exported from there as `python -m recola_sta.export` does. Skipped only
where onnxruntime is not installed.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed (the [onnx] extra)")

from recola_sta import cache  # noqa: E402
from recola_sta.faces.settings import FaceSettings  # noqa: E402
from recola_sta.inference import export, loading, onnx_model, predict  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def make_run(root: pathlib.Path, variant: str, targets: list[str], *, frames: int,
             size: int):
    """A finished run as `export_run` reads it: config.json, the cache's
    manifest and best.keras (an untrained tiny model). Returns (run, model)."""
    import keras

    from recola_sta.model import networks

    keras.utils.set_random_seed(0)
    model = networks.build_model(variant, frames=frames, size=size, num_targets=len(targets),
                                 fc_units=8)
    run, cache_dir = root / "run", root / "cache"
    run.mkdir(parents=True)
    cache_dir.mkdir()
    model.save(run / "best.keras")
    cache.write_manifest(cache_dir, cache.Manifest(
        corpus_root="/corpus", corpus_kind="csv", fps=4.0, face=FaceSettings(size=size),
        entries=[]))
    (run / "config.json").write_text(json.dumps(
        {"variant": variant, "target": ",".join(targets), "cache_dir": str(cache_dir)}))
    return run, model


@pytest.mark.parametrize("variant, targets", [
    ("2d_cnn", ["valence"]),
    ("3d_cnn", ["valence", "arousal"]),
    ("3d_cnn_sta", ["valence"]),
])
def test_onnx_runtime_equals_keras(tmp_path, variant, targets, request):
    """Every output (each target, the STA's attention) of the ONNX model on
    ONNX Runtime equals the Keras serving model's, at two batch sizes
    (the batch dimension is dynamic). The STA is the `sta_run` the predict
    tests share (the same model; converting it is the module's slowest step)."""
    frames, size = 4, 16
    if variant == "3d_cnn_sta":
        run, model, written = request.getfixturevalue("sta_run")
        path = written[-1]
    else:
        run, model = make_run(tmp_path, variant, targets, frames=frames, size=size)
        (path,) = export.export_run(run, "onnx")
    assert path == run / "saved_model" / export.ONNX_NAME
    meta = export.read_metadata(path.parent)
    assert (meta["frames"], meta["face"].size, meta["targets"]) == (frames, size, targets)
    loaded = onnx_model.load(path)
    assert loaded.clip_shape == (frames, size, size, 3)
    serving = export._serving_model(model, targets)
    wanted = set(targets) | ({"attention"} if variant == "3d_cnn_sta" else set())
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        clips = rng.random((batch, frames, size, size, 3), dtype=np.float32)
        got = loaded.serve(clips)
        ref = {k: np.asarray(v) for k, v in serving(clips, training=False).items()}
        assert set(got) == set(ref) == wanted
        for key in wanted:
            assert got[key].shape == ref[key].shape
            assert np.abs(got[key] - ref[key]).max() < 1e-4, key


def test_export_both_writes_one_folder(tmp_path):
    """--format=both: the SavedModel and model.onnx share the folder and its
    recola_sta.json; a folder with both is predicted with the SavedModel,
    its model.onnx when named (`onnx_model.locate`)."""
    run, _ = make_run(tmp_path, "2d_cnn", ["valence"], frames=4, size=16)
    written = export.export_run(run, "both")
    folder = run / "saved_model"
    assert written == [folder, folder / export.ONNX_NAME]
    assert (folder / "saved_model.pb").is_file()
    assert onnx_model.locate(folder) == (folder, None)
    assert onnx_model.locate(folder / export.ONNX_NAME) == (folder, folder / export.ONNX_NAME)
    (folder / "saved_model.pb").unlink()
    assert onnx_model.locate(folder) == (folder, folder / export.ONNX_NAME)
    with pytest.raises(ValueError, match="format"):
        export.export_run(run, "tflite")


@pytest.fixture(scope="module")
def sta_run(tmp_path_factory):
    """A 16 px, 4-frame STA run exported as both formats into one folder
    (the smallest shapes: converting to ONNX takes about half as long as at
    32 px and 8 frames): (run, its Keras model, the paths written)."""
    run, model = make_run(tmp_path_factory.mktemp("sta"), "3d_cnn_sta", ["valence"], frames=4,
                          size=16)
    return run, model, export.export_run(run, "both")


@pytest.fixture(scope="module")
def sta_export(sta_run) -> pathlib.Path:
    """The folder of `sta_run`'s SavedModel and model.onnx."""
    return sta_run[0] / "saved_model"


@pytest.fixture(scope="module")
def video(face_video) -> pathlib.Path:
    """3 s of a face at 320x240: 12 samples, three clips."""
    return face_video(3.0)


def _rows(path: pathlib.Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_onnx_equals_savedmodel(sta_export, video, tmp_path):
    """The same video predicted through the SavedModel and through
    model.onnx: the same files, the CSV's values within 1e-5."""
    by_tf = predict.predict_video(sta_export, video, tmp_path / "tf", progress=False)
    by_onnx = predict.predict_video(sta_export / export.ONNX_NAME, video, tmp_path / "onnx",
                                    progress=False)
    assert by_tf["files"] == by_onnx["files"]
    assert "attention.png" in by_onnx["files"]
    tf_rows, onnx_rows = _rows(tmp_path / "tf" / "valence.csv"), _rows(tmp_path / "onnx" /
                                                                       "valence.csv")
    assert len(tf_rows) == len(onnx_rows) > 0
    for a, b in zip(tf_rows, onnx_rows):
        assert a["time"] == b["time"] and a["face_found"] == b["face_found"]
        assert abs(float(a["valence"]) - float(b["valence"])) < 1e-5
    assert by_onnx["model"] == str(sta_export / export.ONNX_NAME)


def test_metadata_of_another_shape_is_refused(sta_export, video, tmp_path):
    """recola_sta.json whose frames do not match the ONNX input: one line."""
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copyfile(sta_export / export.ONNX_NAME, folder / export.ONNX_NAME)
    meta = json.loads((sta_export / export.METADATA_NAME).read_text())
    (folder / export.METADATA_NAME).write_text(json.dumps({**meta, "frames": 8}))
    with pytest.raises(loading.ModelLoadError) as info:
        predict.predict_video(folder, video, tmp_path / "out", progress=False)
    message = str(info.value)
    assert "\n" not in message and "frames=8" in message and "ONNX model" in message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _run(code_or_module: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *code_or_module], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)


@pytest.mark.slow
def test_predict_onnx_never_imports_tensorflow(sta_export, video, tmp_path):
    """A fresh interpreter predicts through model.onnx with neither
    TensorFlow nor Keras imported."""
    code = ("import sys; from recola_sta.inference import predict; "
            f"predict.predict_video({str(sta_export)!r}, {str(video)!r}, "
            f"{str(tmp_path / 'out')!r}, progress=False); "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    folder = tmp_path / "onnx_only"
    shutil.copytree(sta_export, folder)
    (folder / "saved_model.pb").unlink()  # the folder names model.onnx alone
    result = _run(["-c", code.replace(repr(str(sta_export)), repr(str(folder)))])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "summary.json").is_file()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_onnx_is_one_line_exit_2(sta_export, video, tmp_path, damage, call_cli):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copyfile(sta_export / export.METADATA_NAME, folder / export.METADATA_NAME)
    data = (sta_export / export.ONNX_NAME).read_bytes()
    (folder / export.ONNX_NAME).write_bytes(data[: len(data) // 2] if damage == "truncated"
                                            else b"not an onnx model" * 100)
    result = call_cli("predict", f"--model={folder / export.ONNX_NAME}", f"--video={video}",
                      f"--out={tmp_path / 'out'}", "--noprogress")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(folder / export.ONNX_NAME) in lines[0] and "corrupt or truncated" in lines[0]


def test_export_cli(tmp_path, call_cli):
    """`python -m recola_sta.export` (in this process: `call_cli`): exit 0
    writing model.onnx; a folder that is no run is one line and exit 2."""
    run, _ = make_run(tmp_path, "2d_cnn", ["valence"], frames=4, size=16)
    result = call_cli("export", f"--run_dir={run}", "--format=onnx")
    assert result.returncode == 0, result.stderr
    assert (run / "saved_model" / export.ONNX_NAME).is_file()
    assert not (run / "saved_model" / "saved_model.pb").exists()
    result = call_cli("export", f"--run_dir={tmp_path / 'nothing'}")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()
             and not line.startswith(("WARNING: All log", "I0000", "W0000", "E0000"))]
    assert len(lines) == 1 and "config.json" in lines[0], result.stderr
