"""recola_sta.json: what export records and how predict reads it back."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from recola_sta import export, faces, predict


def _model_dir(tmp_path: pathlib.Path, meta) -> pathlib.Path:
    """A folder that looks like an export: saved_model.pb and recola_sta.json."""
    folder = tmp_path / "saved_model"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"")
    text = meta if isinstance(meta, str) else json.dumps(meta)
    (folder / export.METADATA_NAME).write_text(text)
    return folder


def _meta(**aligner) -> dict:
    return export.export_metadata(
        variant="3d_cnn_sta", targets=["arousal"], frames=8, size=32, fps=4.0,
        face_aligner={"upsample": 1, "detect_width": 0, "face": "right",
                      "predictor_path": None, **aligner})


def test_predict_builds_the_aligner_from_the_metadata(tmp_path):
    folder = _model_dir(tmp_path, _meta())
    meta = export.read_metadata(folder)
    assert (meta["target"], meta["frames"], meta["fps"]) == ("arousal", 8, 4.0)
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


def test_models_exported_before_the_aligner_was_recorded_get_the_old_defaults(tmp_path):
    folder = _model_dir(tmp_path, {"variant": "2d_cnn", "target": "valence", "frames": 16,
                                   "size": 64, "fps": 4.0, "face_aligner": {"size": 64}})
    aligner = predict.make_aligner(export.read_metadata(folder), folder)
    assert (aligner.size, aligner.upsample, aligner.detect_width, aligner.face,
            aligner.redetect_every, aligner.rotate) == (64, 0, 320, "largest", 1, 0)


@pytest.mark.parametrize("meta,match", [
    ("{not json", "not JSON"),
    ("[1, 2]", "JSON object"),
    ({"variant": "2d_cnn", "frames": 16, "size": 64}, "fps=None"),
    ({"variant": "2d_cnn", "frames": "16", "size": 64, "fps": 4}, "frames='16'"),
    ({"variant": "2d_cnn", "frames": 16, "size": 64, "fps": 4, "face_aligner": 3},
     "face_aligner=3"),
])
def test_invalid_metadata_is_an_error_naming_the_file(tmp_path, meta, match):
    folder = _model_dir(tmp_path, meta)
    path = re.escape(str(folder / export.METADATA_NAME))
    with pytest.raises(ValueError, match=f"{path}.*{match}"):
        export.read_metadata(folder)


def test_invalid_recorded_aligner_settings_name_the_file(tmp_path):
    folder = _model_dir(tmp_path, _meta(face="biggest"))
    meta = export.read_metadata(folder)
    with pytest.raises(ValueError, match=re.escape(str(folder / export.METADATA_NAME))):
        predict.make_aligner(meta, folder)
    # A valid override replaces the bad recorded value.
    assert predict.make_aligner(meta, folder, {"face": "center"}).face == "center"


def test_missing_metadata_is_not_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a recola_sta SavedModel"):
        export.read_metadata(tmp_path)
