"""recola_sta.json: what export records and how predict reads it back."""

from __future__ import annotations

import errno
import json
import pathlib
import re

import pytest

from recola_sta import faces
from recola_sta.inference import export, predict
from recola_sta.faces.settings import MAX_SIZE, FaceSettings


def _model_dir(tmp_path: pathlib.Path, meta) -> pathlib.Path:
    """A folder that looks like an export: saved_model.pb and recola_sta.json."""
    folder = tmp_path / "saved_model"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"")
    text = meta if isinstance(meta, str) else json.dumps(meta)
    (folder / export.METADATA_NAME).write_text(text)
    return folder


def _meta(**face) -> dict:
    """recola_sta.json as export writes it (with the model's clip length)."""
    settings = FaceSettings(**{"size": 32, "upsample": 1, "detect_width": 0, "face": "right",
                               **face})
    return {**export.export_metadata(variant="3d_cnn_sta", targets=["arousal"], fps=4.0,
                                     face=settings), "frames": 8}


def test_predict_builds_the_aligner_from_the_metadata(tmp_path):
    folder = _model_dir(tmp_path, _meta())
    meta = export.read_metadata(folder)
    assert (meta["targets"], meta["frames"], meta["fps"]) == (["arousal"], 8, 4.0)
    aligner = predict.make_aligner(meta, folder)
    assert aligner.settings() == {
        "size": 32, "upsample": 1, "detect_width": 0, "face": "right",
        "template": [list(p) for p in faces.DEFAULT_TEMPLATE],
        "redetect_every": faces.DEFAULT_REDETECT_EVERY, "rotate": 0}
    # Flags override the recorded settings; None keeps them.
    aligner = predict.make_aligner(meta, folder, {"face": "left", "upsample": None,
                                                  "redetect_every": 1, "rotate": 270})
    assert aligner.face == "left" and aligner.upsample == 1 and aligner.redetect_every == 1
    assert aligner.rotate == 270
    # A recorded rotation is applied to every video of the model.
    (tmp_path / "turned").mkdir()
    folder2 = _model_dir(tmp_path / "turned", _meta(rotate=180))
    assert predict.make_aligner(export.read_metadata(folder2), folder2).rotate == 180
    # A bad override names its flag.
    with pytest.raises(ValueError, match="--rotate=45"):
        predict.make_aligner(meta, folder, {"rotate": 45})


def test_a_model_of_an_older_layout_is_refused_with_the_command_that_rebuilds_it(tmp_path):
    # Models before the face settings were one object (no format_version).
    folder = _model_dir(tmp_path, {"variant": "2d_cnn", "target": "valence", "frames": 16,
                                   "size": 64, "fps": 4.0, "face_aligner": {"size": 64}})
    with pytest.raises(ValueError) as raised:
        export.read_metadata(folder)
    message = str(raised.value)
    assert str(folder / export.METADATA_NAME) in message and "\n" not in message
    assert "older recola_sta" in message and "python -m recola_sta.train" in message


@pytest.mark.parametrize("meta,match", [
    ("{not json", "not JSON"),
    ("[1, 2]", "JSON object"),
    ({k: v for k, v in _meta().items() if k != "fps"}, "fps=None"),
    ({**_meta(), "frames": "16"}, "frames='16'"),
    ({**_meta(), "face": 3}, "face settings must be an object"),
    ({**_meta(), "face": {"size": 32}}, "face settings must be an object with exactly"),
    ({**_meta(), "face": {**_meta()["face"], "face": "biggest"}}, "--face='biggest'"),
])
def test_invalid_metadata_is_an_error_naming_the_file(tmp_path, meta, match):
    folder = _model_dir(tmp_path, meta)
    path = re.escape(str(folder / export.METADATA_NAME))
    with pytest.raises(ValueError, match=f"{path}.*{match}"):
        export.read_metadata(folder)


def test_missing_metadata_is_not_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a recola_sta SavedModel"):
        export.read_metadata(tmp_path)


def test_a_crop_size_too_large_to_allocate_is_refused_before_any_work(tmp_path, monkeypatch):
    """size=100000 asks for 28 GiB per crop: refused while the metadata is
    read, before the aligner or any crop buffer exists."""
    import tracemalloc

    meta = _meta()
    meta["face"]["size"] = 100000
    folder = _model_dir(tmp_path, meta)

    def no_work(*args, **kwargs):
        raise AssertionError("the face aligner was built for a 100000 px crop")

    monkeypatch.setattr(predict, "make_aligner", no_work)
    monkeypatch.setattr(faces, "iter_samples", no_work)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=re.escape(str(folder / export.METADATA_NAME))
                           + r".*--size=100000.*from 16 to 1024"):
            predict.predict_video(folder, tmp_path / "face.mp4", tmp_path / "out",
                                  progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20
    assert not (tmp_path / "out").exists()
    # The largest accepted size still reads.
    meta["face"]["size"] = MAX_SIZE
    (folder / export.METADATA_NAME).write_text(json.dumps(meta))
    assert export.read_metadata(folder)["face"].size == MAX_SIZE


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    from recola_sta.model import networks

    keras.utils.set_random_seed(0)
    return networks.build_model("2d_cnn", frames=8, size=32, fc_units=8)


def _tensorflow_disk_full():
    import tensorflow as tf

    return tf.errors.ResourceExhaustedError(
        None, None, "saved_model/variables/variables.data-00000-of-00001; No space left on device")


@pytest.mark.parametrize("failure", ["disk_full", "interrupt", "bug"])
def test_a_failed_export_removes_its_partial_folder(tiny_model, tmp_path, monkeypatch, capsys,
                                                   failure):
    """The export is written in full (6 MB here), then fails; the partial
    folder is removed and an earlier export is left as it was. A full disk
    (TensorFlow's ResourceExhaustedError names no file) becomes an ENOSPC
    naming the export folder: the CLIs print one line and exit 2."""
    import keras

    from recola_sta import cli

    meta = export.export_metadata(variant="2d_cnn", targets=["valence"], fps=4.0,
                                  face=FaceSettings(size=32))
    path = export.export_saved_model(tiny_model, tmp_path / "saved_model", meta)
    before = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    error = {"disk_full": _tensorflow_disk_full, "interrupt": KeyboardInterrupt,
             "bug": lambda: RuntimeError("a bug")}[failure]()
    archive_class = type(keras.export.ExportArchive())  # the backend's own subclass
    real = archive_class.write_out

    def fails_at_the_end(self, filepath, *args, **kwargs):
        real(self, filepath, *args, **kwargs)
        assert pathlib.Path(filepath).is_dir()  # the partial export exists
        raise error

    monkeypatch.setattr(archive_class, "write_out", fails_at_the_end)

    def body():
        export.export_saved_model(tiny_model, path, {**meta, "fps": 8.0})

    if failure == "disk_full":
        assert cli.run("train", body, output=tmp_path) == cli.EXIT_BAD_INPUT
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"train: no space left on device while writing {path} (")
        with pytest.raises(OSError) as caught:
            body()
        assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(path)
    else:
        with pytest.raises(type(error)):
            body()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]  # no .saved_model.tmp
    after = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    assert after == before
