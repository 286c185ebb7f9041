"""Bad input to the CLIs: one clear line naming the file or flag, a non-zero
exit code (2 for predict), no traceback and no partial output.

A tiny untrained 2D-CNN (32 px crops, 8-frame clips) is exported once; each
case breaks a copy of it, or points an output at a file or a read-only folder.
"""

from __future__ import annotations

import errno
import json
import pathlib
import shutil
import subprocess

import pytest

from recola_sta import faces
from recola_sta.cache import preprocess
from recola_sta.data import synthetic
from recola_sta.inference import export, loading, predict
from recola_sta.training import train
from recola_sta.faces.settings import FaceSettings


SIZE, FRAMES = 32, 8


def _message_lines(stderr: str) -> list[str]:
    """stderr without TensorFlow's start-up chatter (absl C++ logging)."""
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith(("WARNING: All log messages", "I0000",
                                                     "W0000", "E0000"))]


@pytest.fixture(scope="module")
def model_dir(tiny_2d_cnn_model_dir) -> pathlib.Path:
    """The session's tiny 2D-CNN (conftest.py): SIZE px, FRAMES-frame clips."""
    return tiny_2d_cnn_model_dir


@pytest.fixture(scope="module")
def video(face_video) -> pathlib.Path:
    """2 s of a face at 320x240: 8 samples, one clip."""
    return face_video(2.0)


def _writable(folder: pathlib.Path) -> bool:
    try:
        (folder / "probe").write_bytes(b"")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


@pytest.fixture
def read_only_dir(tmp_path):
    """An existing folder no file can be created in: mode 0555, or where the
    tests run as root (which ignores modes) a read-only bind mount of it."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    if not _writable(folder):
        yield folder
        folder.chmod(0o755)
        return
    folder.chmod(0o755)
    proc = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot make a read-only folder here: {proc.stderr.strip()}")
    try:
        if _writable(folder):
            pytest.skip("the read-only bind mount is writable")
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def _broken_copy(model_dir: pathlib.Path, tmp_path: pathlib.Path, case: str) -> pathlib.Path:
    folder = tmp_path / case
    shutil.copytree(model_dir, folder)
    data = next((folder / "variables").glob("variables.data-*"))
    if case == "truncated_data":
        data.write_bytes(data.read_bytes()[:1000])
    elif case == "corrupted_data":
        raw = bytearray(data.read_bytes())
        raw[1000:2000] = bytes(range(256)) * 3 + bytes(232)
        data.write_bytes(bytes(raw))
    elif case == "garbage_index":
        index = folder / "variables" / "variables.index"
        index.write_bytes(b"garbage" * (index.stat().st_size // 7))
    elif case == "truncated_pb":
        pb = folder / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[:5000])
    elif case == "wrong_size":
        meta = json.loads((folder / export.METADATA_NAME).read_text())
        meta["face"]["size"] = 48
        (folder / export.METADATA_NAME).write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("case, names", [
    ("truncated_data", "variables/variables.data-00000-of-00001"),
    ("corrupted_data", "variables/variables.data-00000-of-00001"),
    ("garbage_index", "variables/variables.index"),
    ("truncated_pb", "saved_model.pb"),
    ("wrong_size", export.METADATA_NAME),
])
def test_a_broken_saved_model_is_named(model_dir, video, tmp_path, case, names):
    broken = _broken_copy(model_dir, tmp_path, case)
    out = tmp_path / "out"
    with pytest.raises(loading.ModelLoadError) as caught:
        predict.predict_video(broken, video, out, progress=False)
    message = str(caught.value)
    assert str(broken / names) in message and "\n" not in message
    assert len(message) < 600  # never the input tensor
    assert not out.exists()


def test_cli_on_a_broken_saved_model_prints_one_line_and_exits_2(model_dir, video, tmp_path, call_cli):
    broken = _broken_copy(model_dir, tmp_path, "garbage_index")
    out = tmp_path / "out"
    proc = call_cli("predict", f"--model={broken}", f"--video={video}", f"--out={out}",
                    "--noprogress")
    assert proc.returncode == predict.EXIT_BAD_INPUT
    lines = _message_lines(proc.stderr)
    assert len(lines) == 1 and "variables.index" in lines[0], proc.stderr[-2000:]
    assert not out.exists()


def test_cli_on_metadata_without_fps(model_dir, video, tmp_path, call_cli):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    meta = json.loads((folder / export.METADATA_NAME).read_text())
    del meta["fps"]
    (folder / export.METADATA_NAME).write_text(json.dumps(meta))
    proc = call_cli("predict", f"--model={folder}", f"--video={video}",
                    f"--out={tmp_path / 'out'}", "--noprogress")
    assert proc.returncode == predict.EXIT_BAD_INPUT
    (line,) = _message_lines(proc.stderr)
    assert str(folder / export.METADATA_NAME) in line and "fps=None" in line
    assert not (tmp_path / "out").exists()


def test_cli_out_pointing_at_a_file(model_dir, video, tmp_path, call_cli):
    out = tmp_path / "results.csv"
    out.write_text("keep me\n")
    proc = call_cli("predict", f"--model={model_dir}", f"--video={video}", f"--out={out}",
                    "--noprogress")
    assert proc.returncode == predict.EXIT_BAD_INPUT
    (line,) = _message_lines(proc.stderr)
    assert f"--out={out}" in line and "is a file" in line
    assert out.read_text() == "keep me\n"


def test_predict_refuses_a_read_only_out_before_any_work(model_dir, video, read_only_dir,
                                                         monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("faces were tracked before the output folder was checked")

    monkeypatch.setattr(faces, "track_video", no_work)
    monkeypatch.setattr(faces, "iter_samples", no_work)  # predict streams through it
    for out in (read_only_dir, read_only_dir / "sub"):
        with pytest.raises(ValueError, match=f"--out={out}: cannot write into {read_only_dir}"):
            predict.predict_video(model_dir, video, out, progress=False)


def test_preprocess_refuses_a_read_only_cache_before_any_work(read_only_dir, tmp_path,
                                                              monkeypatch):
    corpus = synthetic.ensure_corpus(tmp_path / "corpus", num_train=1, num_dev=0, num_test=0,
                                     duration_s=1.0, workers=1)
    monkeypatch.setattr(preprocess, "track_recording", None)  # any call would fail
    with pytest.raises(ValueError, match=f"--cache_dir={read_only_dir}: cannot write"):
        preprocess.preprocess_corpus(corpus, "synthetic", read_only_dir,
                                     face=FaceSettings(size=SIZE),
                                     workers=1, progress=False)


def test_train_refuses_a_read_only_run_folder_before_any_work(read_only_dir, tmp_path):
    config = train.TrainConfig(
        corpus_dir=str(tmp_path / "corpus"), corpus_kind="synthetic",
        run_dir=str(read_only_dir / "run"), cache_dir=str(tmp_path / "cache"), face=FaceSettings(size=SIZE),
        frames=FRAMES, batch_size=2, epochs=1, progress=False)
    with pytest.raises(ValueError, match=f"--run_dir={read_only_dir / 'run'}: cannot write"):
        train.run_training(config)
    assert not (tmp_path / "corpus").exists()  # no corpus generated
    config = train.TrainConfig(**{**config.__dict__, "run_dir": str(tmp_path / "run"),
                                  "cache_dir": str(read_only_dir)})
    with pytest.raises(ValueError, match=f"--cache_dir={read_only_dir}: cannot write"):
        train.run_training(config)
    assert not (tmp_path / "corpus").exists() and not (tmp_path / "run").exists()


def test_synthetic_cli_refuses_a_read_only_folder(read_only_dir, call_cli):
    out = read_only_dir / "corpus"
    proc = call_cli("synthetic", f"--out={out}", "--num_train=1", "--num_dev=0",
                    "--num_test=0", "--duration_s=1", "--workers=1")
    assert proc.returncode != 0
    (line,) = _message_lines(proc.stderr)
    assert f"--out={out}" in line and "cannot write" in line


def _earlier_run(out: pathlib.Path) -> dict[str, bytes]:
    """An earlier run's outputs in `out` (marked contents); returns them."""
    out.mkdir()
    files = {"valence.csv": b"time,valence,face_found\n0.0000,0.5,1\n",
             "valence.png": b"an earlier figure", "summary.json": b'{"earlier": true}\n'}
    for name, data in files.items():
        (out / name).write_bytes(data)
    return files


def _contents(folder: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("failure", ["interrupt", "disk_full"])
def test_predict_failing_while_the_figures_are_drawn_leaves_out_as_it_was(
        model_dir, video, tmp_path, monkeypatch, capsys, failure):
    """Ctrl-C or a full disk while valence.png is saved (the CSV is written
    by then): no output of this run is left, an earlier run's outputs and
    its summary.json stay as they were, and no temporary is left. A full
    disk is one line naming the file, exit 2."""
    from matplotlib.figure import Figure

    from recola_sta import cli

    def savefig(self, fname, *args, **kwargs):
        pathlib.Path(fname).write_bytes(b"half a PNG")
        if failure == "interrupt":
            raise KeyboardInterrupt
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it

    monkeypatch.setattr(Figure, "savefig", savefig)
    out = tmp_path / "out"
    earlier = _earlier_run(out)
    code = cli.run("predict", lambda: predict.predict_video(model_dir, video, out,
                                                           progress=False), output=out)
    (line,) = capsys.readouterr().err.strip().splitlines()
    if failure == "interrupt":
        assert code == cli.EXIT_INTERRUPTED and "interrupted" in line
    else:
        assert code == cli.EXIT_BAD_INPUT
        assert line.startswith(f"predict: no space left on device while writing "
                               f"{out / 'valence.png'} (")
    assert _contents(out) == earlier
    monkeypatch.undo()
    # The next run writes every output, summary.json last.
    summary = predict.predict_video(model_dir, video, out, progress=False)
    assert set(_contents(out)) == {*summary["files"], "summary.json"}
    assert json.loads((out / "summary.json").read_text())["files"] == summary["files"]


def test_a_full_disk_while_training_names_the_file(tmp_path, monkeypatch, capsys):
    """ENOSPC while an epoch's checkpoint is saved (write() names no file)
    reaches the CLI through model.fit unchanged: one line naming the
    checkpoint, exit 2, no temporaries left in the run folder."""
    import keras
    import numpy as np

    from recola_sta import cli

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")

    def full_disk(self, filepath, *args, **kwargs):
        pathlib.Path(filepath).write_bytes(b"half a model")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", full_disk)
    x = np.zeros((4, 2), np.float32)

    def body():
        model.fit(x, x[:, :1], epochs=1, verbose=0,
                  callbacks=[train.EpochCheckpoint(run, "loss", np.inf, 0)])

    assert cli.run("train", body, output=run) == cli.EXIT_BAD_INPUT
    (line,) = capsys.readouterr().err.strip().splitlines()
    written = line.removeprefix("train: no space left on device while writing ").split(" (")[0]
    assert written.startswith(str(run)) and written.endswith(".keras"), line
    assert not pathlib.Path(written).name.startswith(".")  # the file, not its temporary
    assert not [p for p in run.rglob("*") if p.name.startswith(".")]
