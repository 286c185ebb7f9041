"""Tests for recola_sta.data.corpora (and the readers it dispatches to):
tiny fixture corpora in every layout."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from recola_sta.data import affwild2, corpora


def _touch(path: pathlib.Path) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a real video")
    return path


def _arff_text(name: str, times, values, relation="GOLDSTANDARD", newline="\n",
               time_first=True) -> str:
    """A RECOLA-style ARFF with comments and blank lines."""
    attrs = ["@attribute Instance_name string"]
    if time_first:
        attrs += ["@attribute frameTime numeric", "@attribute GoldStandard numeric"]
    else:
        attrs += ["@attribute 'GoldStandard' numeric", "@attribute frameTime numeric"]
    lines = [f"@relation {relation}", "", "% a comment", *attrs, "", "@data", ""]
    for t, v in zip(times, values):
        row = f"{name},{t:g},{v:.6f}" if time_first else f"'{name}',{v:.6f},{t:g}"
        lines.append(row)
        if t == times[1]:
            lines += ["", "% comment between rows"]
    return newline.join(lines) + newline


def _recola_fixture(root: pathlib.Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """train_1, train_2, dev_1 labeled; test_1 video only. Mixed ARFF dialects."""
    truth = {}
    for i, name in enumerate(["train_1", "train_2", "dev_1"]):
        times = np.round(np.arange(0, 1.0 + 1e-9, 0.04), 2)
        valence = np.sin(times + i) * 0.5
        arousal = np.cos(times + i) * 0.3
        truth[name] = (times, valence, arousal)
        _touch(root / "recordings_video" / f"{name}.mp4")
        (root / "ratings_gold_standard" / "valence").mkdir(parents=True, exist_ok=True)
        (root / "ratings_gold_standard" / "arousal").mkdir(parents=True, exist_ok=True)
        dialect = dict(
            relation="GOLDSTANDARD_VALENCE" if i == 1 else "GOLDSTANDARD",
            newline="\r\n" if i == 0 else "\n",
            time_first=i != 2,
        )
        (root / "ratings_gold_standard" / "valence" / f"{name}.arff").write_bytes(
            _arff_text(name, times, valence, **dialect).encode())
        corpora.write_arff(root / "ratings_gold_standard" / "arousal" / f"{name}.arff",
                           name, times, arousal)
    _touch(root / "recordings_video" / "test_1.mp4")
    _touch(root / "recordings_video" / ".recola_sta-tmp.test_2.mp4.x1y2z3w4.mp4")  # an interrupted write: ignored
    return truth


def test_recola_layout_loads_partitions_grids_and_values(tmp_path):
    truth = _recola_fixture(tmp_path)
    recs = corpora.load_corpus(tmp_path, "recola")
    assert [(r.name, r.partition) for r in recs] == [
        ("train_1", "train"), ("train_2", "train"), ("dev_1", "dev"), ("test_1", "test")]
    for r in recs[:3]:
        times, valence, arousal = truth[r.name]
        np.testing.assert_allclose(r.times, times, atol=1e-9)
        np.testing.assert_allclose(r.targets["valence"], valence, atol=1e-6)
        np.testing.assert_allclose(r.targets["arousal"], arousal, atol=1e-6)
        assert r.label_period == pytest.approx(0.04)
        assert r.video == tmp_path / "recordings_video" / f"{r.name}.mp4"
    test = recs[3]
    assert test.times.size == 0 and test.targets["valence"].size == 0
    assert not test.labeled and test.label_period == pytest.approx(0.04)
    # "synthetic" reads the same layout.
    assert [r.name for r in corpora.load_corpus(tmp_path, "synthetic")] == [r.name for r in recs]


def test_write_arff_round_trip_and_recola_row_format(tmp_path):
    path = tmp_path / "a" / "train_3.arff"
    times = np.round(np.arange(0, 0.2 + 1e-9, 0.04), 2)
    values = np.array([0.0, -0.022925, 0.5, np.nan, 1.0, -1.0])
    corpora.write_arff(path, "train_3", times, values)
    text = path.read_text()
    assert "train_3,0.04,-0.022925\n" in text and "train_3,0,0.000000\n" in text
    assert "train_3,0.12,?\n" in text
    t, v = corpora.read_arff(path)
    np.testing.assert_allclose(t, times)
    np.testing.assert_allclose(v, values, atol=1e-6)
    assert list(tmp_path.joinpath("a").iterdir()) == [path]  # no temporaries left
    with pytest.raises(ValueError, match="train_4.arff"):
        corpora.write_arff(tmp_path / "train_4.arff", "train_4", times, values[:2])


def test_natural_order(tmp_path):
    for name in ["train_10", "train_2", "dev_1", "train_1"]:
        _touch(tmp_path / "recordings_video" / f"{name}.mp4")
        corpora.write_arff(tmp_path / "ratings_gold_standard" / "valence" / f"{name}.arff",
                           name, [0.0, 0.04], [0.1, 0.2])
    names = [r.name for r in corpora.load_corpus(tmp_path, "recola")]
    assert names == ["train_1", "train_2", "train_10", "dev_1"]


def _write_arff_rows(path: pathlib.Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["@relation X", "@attribute Instance_name string",
              "@attribute frameTime numeric", "@attribute GoldStandard numeric", "@data"]
    path.write_text("\n".join(header + rows) + "\n")


@pytest.mark.parametrize("rows, match", [
    (["train_1,0,0.1", "train_1,abc,0.2"], r"train_1\.arff:7: non-numeric frameTime 'abc'"),
    (["train_1,0,0.1", "train_1,0.04,0.2", "train_1,0.04,0.3"],
     r"train_1\.arff:8: times are not strictly increasing"),
    (["train_1,0,0.1", "train_1,0.04,x"], r"train_1\.arff:7: non-numeric gold-standard value"),
    (["train_1,0,0.1", "train_1,0.04"], r"train_1\.arff:7: 2 fields"),
])
def test_recola_malformed_arff_names_file_and_line(tmp_path, rows, match):
    _touch(tmp_path / "recordings_video" / "train_1.mp4")
    _write_arff_rows(tmp_path / "ratings_gold_standard" / "valence" / "train_1.arff", rows)
    with pytest.raises(ValueError, match=match):
        corpora.load_corpus(tmp_path, "recola")


def test_recola_missing_video_grid_mismatch_and_root(tmp_path):
    corpora.write_arff(tmp_path / "ratings_gold_standard" / "valence" / "dev_2.arff",
                       "dev_2", [0, 0.04], [0, 0])
    _touch(tmp_path / "recordings_video" / "train_1.mp4")
    corpora.write_arff(tmp_path / "ratings_gold_standard" / "valence" / "train_1.arff",
                       "train_1", [0, 0.04], [0, 0])
    with pytest.raises(FileNotFoundError, match=r"No video for label file .*dev_2\.arff"):
        corpora.load_corpus(tmp_path, "recola")
    _touch(tmp_path / "recordings_video" / "dev_2.mp4")
    corpora.write_arff(tmp_path / "ratings_gold_standard" / "arousal" / "dev_2.arff",
                       "dev_2", [0, 0.08], [0, 0])
    with pytest.raises(ValueError, match=r"grids disagree: .*valence/dev_2\.arff and "
                                         r".*arousal/dev_2\.arff differ at data row 2"):
        corpora.load_corpus(tmp_path, "recola")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        corpora.load_corpus(tmp_path / "nowhere", "recola")
    with pytest.raises(ValueError, match="Unknown corpus kind 'sewa'"):
        corpora.load_corpus(tmp_path, "sewa")


def test_recola_train_video_without_labels_is_an_error(tmp_path):
    _touch(tmp_path / "recordings_video" / "train_1.mp4")
    (tmp_path / "ratings_gold_standard" / "valence").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"train_1\.mp4 has no gold-standard label file"):
        corpora.load_corpus(tmp_path, "recola")


def _avec_rows(name: str, n: int, offset: float) -> list[str]:
    return [f"{name};{k * 0.1:.1f};{offset + k * 0.01:.3f};{-offset - k * 0.02:.3f};{k * 0.001:.3f}"
            for k in range(n)]


def test_avec2017_layout_matches_zero_padding_and_maps_partitions(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "Train_01.csv").write_bytes(("\r\n".join(_avec_rows("Train_01", 5, 0.1)) + "\r\n").encode())
    (labels / "Train_2.csv").write_text("\n".join(_avec_rows("Train_2", 4, 0.2)) + "\n")
    (labels / "Devel_04.csv").write_text("\n".join(_avec_rows("Devel_04", 3, 0.3)) + "\n\n")
    _touch(tmp_path / "video" / "Train_1.avi")
    _touch(tmp_path / "video" / "Train_02.avi")
    _touch(tmp_path / "video" / "Devel_4.avi")
    _touch(tmp_path / "video" / "Test_01.avi")
    recs = corpora.load_corpus(tmp_path, "avec2017")
    assert [(r.name, r.partition, r.video.name) for r in recs] == [
        ("Train_01", "train", "Train_1.avi"), ("Train_2", "train", "Train_02.avi"),
        ("Devel_04", "dev", "Devel_4.avi"), ("Test_01", "test", "Test_01.avi")]
    train1 = recs[0]
    np.testing.assert_allclose(train1.times, [0, 0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(train1.targets["arousal"], 0.1 + 0.01 * np.arange(5))
    np.testing.assert_allclose(train1.targets["valence"], -0.1 - 0.02 * np.arange(5))
    np.testing.assert_allclose(train1.targets["liking"], 0.001 * np.arange(5))
    assert train1.label_period == pytest.approx(0.1)
    assert recs[3].times.size == 0 and recs[3].label_period == pytest.approx(0.1)


@pytest.mark.parametrize("rows, match", [
    (["Train_01;0.0;0.1;0.2;0.0", "Train_01;zero;0.1;0.2;0.0"], r"Train_01\.csv:2: non-numeric timestamp"),
    (["Train_01;0.0;0.1;0.2;0.0", "Train_01;0.1;0.1;0.2;0.0", "Train_01;0.05;0.1;0.2;0.0"],
     r"Train_01\.csv:3: times are not strictly increasing"),
    (["Train_01;0.0;0.1;0.2;0.0", "Train_01;0.1;0.1"], r"Train_01\.csv:2: expected 5"),
])
def test_avec2017_malformed_labels(tmp_path, rows, match):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "Train_01.csv").write_text("\n".join(rows) + "\n")
    _touch(tmp_path / "videos" / "Train_01.avi")
    with pytest.raises(ValueError, match=match):
        corpora.load_corpus(tmp_path, "avec2017")


def test_avec2017_missing_video(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "Devel_03.csv").write_text("\n".join(_avec_rows("Devel_03", 2, 0)) + "\n")
    _touch(tmp_path / "video" / "Devel_02.avi")
    _touch(tmp_path / "labels" / "Devel_02.csv").write_text("\n".join(_avec_rows("Devel_02", 2, 0)))
    with pytest.raises(FileNotFoundError, match=r"No video for label file .*Devel_03\.csv"):
        corpora.load_corpus(tmp_path, "avec2017")


def test_csv_layout(tmp_path):
    _touch(tmp_path / "train" / "alice.mp4")
    (tmp_path / "train" / "alice.csv").write_text("time,valence,arousal\n0,0.1,0.5\n0.5,0.2,0.4\n1.0,,0.3\n")
    _touch(tmp_path / "train" / "bob.mov")
    (tmp_path / "train" / "bob.csv").write_text("valence,time\r\n-0.5,0\r\n-0.4,0.5\r\n")
    _touch(tmp_path / "test" / "carol.mkv")
    recs = corpora.load_corpus(tmp_path, "csv")
    assert [(r.name, r.partition) for r in recs] == [("alice", "train"), ("bob", "train"), ("carol", "test")]
    np.testing.assert_allclose(recs[0].times, [0, 0.5, 1.0])
    np.testing.assert_allclose(recs[0].targets["valence"], [0.1, 0.2, np.nan])
    np.testing.assert_allclose(recs[0].targets["arousal"], [0.5, 0.4, 0.3])
    np.testing.assert_allclose(recs[1].targets["valence"], [-0.5, -0.4])
    assert set(recs[1].targets) == {"valence"}
    assert recs[0].label_period == pytest.approx(0.5)
    assert recs[2].times.size == 0 and recs[2].label_period == pytest.approx(0.5)


@pytest.mark.parametrize("text, match", [
    ("time,arousal\n0,0.1\n", r"alice\.csv:1: header .* lacks a 'valence'"),
    ("time,valence\n0,0.1\n0.5,0.2\nlater,0.3\n", r"alice\.csv:4: non-numeric time 'later'"),
    ("time,valence\n0,0.1\n0.5,0.2\n0.5,0.3\n", r"alice\.csv:4: times are not strictly increasing"),
    ("time,valence\n0,0.1\n0.5,high\n", r"alice\.csv:3: non-numeric valence 'high'"),
])
def test_csv_malformed(tmp_path, text, match):
    _touch(tmp_path / "dev" / "alice.avi")
    (tmp_path / "dev" / "alice.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        corpora.load_corpus(tmp_path, "csv")


def test_csv_missing_video_and_layout(tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "alice.csv").write_text("time,valence\n0,0.1\n")
    with pytest.raises(FileNotFoundError, match=r"No video for label file .*alice\.csv"):
        corpora.load_corpus(tmp_path, "csv")
    with pytest.raises(FileNotFoundError, match=r"has none of the folders"):
        corpora.load_corpus(tmp_path / "dev", "csv")


def test_csv_one_name_in_two_partitions_is_refused(tmp_path):
    # train/a.mp4 and dev/a.mp4 would be one recording "a" for the cache,
    # which kept one and dropped the other.
    for partition in ("train", "dev"):
        _touch(tmp_path / partition / "a.mp4")
        (tmp_path / partition / "a.csv").write_text("time,valence\n0,0.1\n0.5,0.2\n")
    _touch(tmp_path / "train" / "b.mp4")
    (tmp_path / "train" / "b.csv").write_text("time,valence\n0,0.1\n0.5,0.2\n")
    with pytest.raises(ValueError) as raised:
        corpora.load_corpus(tmp_path, "csv")
    message = str(raised.value)
    assert "\n" not in message and "'a'" in message
    assert str(tmp_path / "train" / "a.mp4") in message
    assert str(tmp_path / "dev" / "a.mp4") in message


# ---------------------------------------------------------------------------
# Aff-Wild2


def _video(path: pathlib.Path, fps: float, frames: int = 3) -> pathlib.Path:
    """A tiny real video (OpenCV writes the frame rate into its header)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (32, 24))
    assert writer.isOpened(), path
    for k in range(frames):
        writer.write(np.full((24, 32, 3), 40 * k, np.uint8))
    writer.release()
    return path


def _va(path: pathlib.Path, rows, newline: str = "\n", trailing: str = "",
        header: str = "valence,arousal") -> pathlib.Path:
    """An ABAW valence-arousal file: header, one `v,a` row per video frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header] + [f"{v},{a}" for v, a in rows]
    path.write_bytes((newline.join(lines) + newline + trailing).encode())
    return path


def test_affwild2_old_layout_fps_sides_missing_values_and_unannotated_videos(tmp_path, caplog):
    va = tmp_path / "annotations" / "VA_Set"
    _video(tmp_path / "raw_video" / "batch1" / "1-30-640x360.mp4", 30)
    _video(tmp_path / "raw_video" / "batch2" / "7-25-640x360.avi", 25)
    _video(tmp_path / "raw_video" / "batch1" / "12-15-640x360.mp4", 15)
    _video(tmp_path / "raw_video" / "batch2" / "99-30-640x360.mp4", 30)  # no VA annotation
    # A face-crop folder is never searched (a stray video there would be a second match).
    _video(tmp_path / "cropped_aligned" / "1-30-640x360.mp4", 30)
    _va(va / "Train_Set" / "1-30-640x360.txt",
        [(0.1, 0.2), (-5, -5), (0.3, -5), (-1, 1)], newline="\r\n", trailing="\r\n\r\n")
    _va(va / "Train_Set" / "7-25-640x360_left.txt", [(0.5, 0.4), (0.6, 0.3), (0.7, 0.2)])
    _va(va / "Train_Set" / "7-25-640x360_right.txt", [(-0.5, -0.4), (-5, -0.3)])
    _va(va / "Validation_Set" / "12-15-640x360.txt", [(0.0, 0.0), (0.25, -0.25)])
    (va / "Train_Set" / "readme.md").write_text("not an annotation")
    with caplog.at_level("WARNING", logger="recola_sta.data.affwild2"):
        recs = corpora.load_corpus(tmp_path, "affwild2")
    assert [(r.name, r.partition, r.face, r.video.relative_to(tmp_path).as_posix()) for r in recs] == [
        ("1-30-640x360", "train", "largest", "raw_video/batch1/1-30-640x360.mp4"),
        ("7-25-640x360_left", "train", "left", "raw_video/batch2/7-25-640x360.avi"),
        ("7-25-640x360_right", "train", "right", "raw_video/batch2/7-25-640x360.avi"),
        ("12-15-640x360", "dev", "largest", "raw_video/batch1/12-15-640x360.mp4"),
    ]
    first, left, right, dev = recs
    # Row i = frame i: times i / fps with each video's own frame rate.
    np.testing.assert_allclose(first.times, np.arange(4) / 30)
    np.testing.assert_allclose(left.times, np.arange(3) / 25)
    np.testing.assert_allclose(dev.times, np.arange(2) / 15)
    assert first.label_period == pytest.approx(1 / 30, abs=1e-6)
    assert left.label_period == pytest.approx(0.04) and dev.label_period == pytest.approx(1 / 15, abs=1e-6)
    # -5 marks an unannotated frame: NaN, column by column; CRLF and trailing blank lines read.
    np.testing.assert_array_equal(first.targets["valence"], [0.1, np.nan, 0.3, -1])
    np.testing.assert_array_equal(first.targets["arousal"], [0.2, np.nan, np.nan, 1])
    np.testing.assert_array_equal(right.targets["valence"], [-0.5, np.nan])
    np.testing.assert_array_equal(right.targets["arousal"], [-0.4, -0.3])
    assert list(left.targets) == ["valence", "arousal"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "99-30-640x360" in warnings[0]
    assert "1-30-640x360" not in warnings[0] and "7-25" not in warnings[0]


def test_affwild2_new_layout_ignores_other_tasks(tmp_path):
    ann = tmp_path / "Aff-Wild2" / "6th_ABAW_Annotations"
    _video(tmp_path / "Aff-Wild2" / "videos" / "batch1" / "3-60-1920x1080.mp4", 60, frames=4)
    _video(tmp_path / "Aff-Wild2" / "videos" / "batch2" / "4.avi", 24)
    _va(ann / "VA_Estimation_Challenge" / "Train_Set" / "3-60-1920x1080.txt",
        [(0.1, 0.1), (0.2, 0.2), (0.3, 0.3), (0.4, 0.4)])
    _va(ann / "VA_Estimation_Challenge" / "Validation_Set" / "4.txt", [(0.9, -0.9), (0.8, -0.8)])
    # Other ABAW tasks' annotations share the names but not the format.
    (ann / "EXPR_Recognition_Challenge" / "Train_Set").mkdir(parents=True)
    (ann / "EXPR_Recognition_Challenge" / "Train_Set" / "3-60-1920x1080.txt").write_text(
        "Neutral,Anger,Disgust\n0\n")
    recs = corpora.load_corpus(tmp_path, "affwild2")
    assert [(r.name, r.partition, r.video.name) for r in recs] == [
        ("3-60-1920x1080", "train", "3-60-1920x1080.mp4"), ("4", "dev", "4.avi")]
    np.testing.assert_allclose(recs[0].times, np.arange(4) / 60)
    np.testing.assert_allclose(recs[1].times, [0, 1 / 24])
    np.testing.assert_allclose(recs[1].targets["arousal"], [-0.9, -0.8])


@pytest.mark.parametrize("line_by_line", [False, True])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_affwild2_line_endings_give_the_same_labels(tmp_path, monkeypatch, newline, line_by_line):
    if line_by_line:  # the parser that names bad lines must read good files the same way
        monkeypatch.setattr(affwild2, "_affwild2_rows_fast", lambda rows: None)
    _video(tmp_path / "videos" / "5.mp4", 30)
    _va(tmp_path / "annotations" / "VA_Set" / "Train_Set" / "5.txt",
        [(0.1, -0.1), (-5, 0.5), (0.25, -5)], newline=newline, trailing=newline * 2)
    (rec,) = corpora.load_corpus(tmp_path, "affwild2")
    np.testing.assert_array_equal(rec.targets["valence"], [0.1, np.nan, 0.25])
    np.testing.assert_array_equal(rec.targets["arousal"], [-0.1, 0.5, np.nan])
    np.testing.assert_allclose(rec.times, np.arange(3) / 30)


def test_affwild2_annotations_without_video_are_listed_in_one_error(tmp_path):
    va = tmp_path / "annotations" / "VA_Set"
    _video(tmp_path / "raw_video" / "2.mp4", 30)
    _va(va / "Train_Set" / "2.txt", [(0, 0)])
    _va(va / "Train_Set" / "8_left.txt", [(0, 0)])
    _va(va / "Validation_Set" / "9.txt", [(0, 0)])
    with pytest.raises(FileNotFoundError) as info:
        corpora.load_corpus(tmp_path, "affwild2")
    message = str(info.value)
    assert message.startswith("2 Aff-Wild2 annotation file(s)")
    assert "8_left.txt (no 8.mp4 / 8.avi)" in message and "9.txt (no 9.mp4 / 9.avi)" in message
    assert "2.txt" not in message.replace("2 Aff", "")
    _video(tmp_path / "raw_video" / "8.avi", 25)
    with pytest.raises(FileNotFoundError, match=r"^1 Aff-Wild2 .*Validation_Set/9\.txt"):
        corpora.load_corpus(tmp_path, "affwild2")


@pytest.mark.parametrize("text, match", [
    ("", r"6\.txt: empty annotation file"),
    ("\n\n", r"6\.txt: empty annotation file"),
    ("arousal,valence\n0.1,0.2\n", r"6\.txt:1: header 'arousal,valence', expected 'valence,arousal'"),
    ("0.1,0.2\n0.3,0.4\n", r"6\.txt:1: header '0\.1,0\.2'"),
    ("valence,arousal\n", r"6\.txt: no label rows after the header"),
    ("valence,arousal\n0.1,0.2\n0.1,0.2,0.3\n", r"6\.txt:3: 3 fields, expected 2"),
    ("valence,arousal\n0.1,0.2\nhigh,0.2\n", r"6\.txt:3: non-numeric valence 'high'"),
    ("valence,arousal\n0.1,\n", r"6\.txt:2: non-numeric arousal ''"),
    ("valence,arousal\r\n0.1,0.2\r\n0.1,1.5\r\n", r"6\.txt:3: arousal '1\.5' is outside \[-1, 1\]"),
    ("valence,arousal\n-4,0.2\n", r"6\.txt:2: valence '-4' is outside"),
    ("valence,arousal\n0.1,nan\n", r"6\.txt:2: arousal must be finite"),
    ("valence,arousal\n0.1,0.2\n\n0.3,0.4\n", r"6\.txt:3: blank line between label rows"),
])
def test_affwild2_malformed_annotations_name_file_and_line(tmp_path, text, match):
    _video(tmp_path / "raw_video" / "6.mp4", 30)
    path = tmp_path / "annotations" / "VA_Set" / "Validation_Set" / "6.txt"
    path.parent.mkdir(parents=True)
    path.write_text(text, newline="")
    with pytest.raises(ValueError, match=match):
        corpora.load_corpus(tmp_path, "affwild2")


def test_affwild2_unreadable_video_names_the_file(tmp_path):
    _touch(tmp_path / "raw_video" / "11-24-100x100.mp4")  # not a video
    _va(tmp_path / "annotations" / "VA_Set" / "Train_Set" / "11-24-100x100_right.txt", [(0, 0)])
    with pytest.raises(ValueError, match=r"frame rate of video .*raw_video/11-24-100x100\.mp4"):
        corpora.load_corpus(tmp_path, "affwild2")


def _old_video_fps(path: pathlib.Path) -> float:
    """The frame-rate helper corpora had before it used `faces.probe_video`, kept
    here only to show that the frame rates did not change."""
    import math

    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else math.nan
    finally:
        capture.release()
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"Cannot read the frame rate of video {path} (OpenCV reports {fps!r}).")
    return float(fps)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
@pytest.mark.parametrize("fps", [8, 25, 29.97])
def test_affwild2_frame_rate_from_probe_video_equals_the_old_helper(tmp_path, suffix, fps):
    video = _video(tmp_path / "videos" / f"7{suffix}", fps, frames=4)
    _va(tmp_path / "annotations" / "VA_Set" / "Train_Set" / "7.txt", [(0.1, 0.1)] * 4)
    old = _old_video_fps(video)
    assert old == pytest.approx(fps, rel=1e-3)
    assert affwild2._video_fps(video) == old
    (rec,) = corpora.load_corpus(tmp_path, "affwild2")
    np.testing.assert_array_equal(rec.times, np.arange(4, dtype=np.float64) / old)


def test_affwild2_dangling_video_link_is_a_frame_rate_error(tmp_path):
    # The scan lists a link whose target is gone; as before, a ValueError naming it.
    (tmp_path / "raw_video").mkdir()
    (tmp_path / "raw_video" / "3.mp4").symlink_to(tmp_path / "gone.mp4")
    _va(tmp_path / "annotations" / "VA_Set" / "Train_Set" / "3.txt", [(0, 0)])
    with pytest.raises(ValueError, match=r"frame rate of video .*raw_video/3\.mp4"):
        corpora.load_corpus(tmp_path, "affwild2")


def test_affwild2_layout_errors(tmp_path):
    _video(tmp_path / "raw_video" / "1.mp4", 30)
    with pytest.raises(FileNotFoundError, match=r"No Aff-Wild2 valence-arousal annotation folder"):
        corpora.load_corpus(tmp_path, "affwild2")
    # A VA folder without Train_Set / Validation_Set is not an annotation folder.
    (tmp_path / "annotations" / "VA_Set" / "Test_Set").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"No Aff-Wild2 valence-arousal annotation folder"):
        corpora.load_corpus(tmp_path, "affwild2")
    _va(tmp_path / "annotations" / "VA_Set" / "Train_Set" / "1.txt", [(0, 0), (0.1, 0.1)])
    assert [r.name for r in corpora.load_corpus(tmp_path, "affwild2")] == ["1"]
    # The same name in two partitions.
    _va(tmp_path / "annotations" / "VA_Set" / "Validation_Set" / "1.txt", [(0, 0)])
    with pytest.raises(ValueError, match=r"Two annotation files for recording 1: .*Train_Set/1\.txt "
                                         r"and .*Validation_Set/1\.txt"):
        corpora.load_corpus(tmp_path, "affwild2")
    (tmp_path / "annotations" / "VA_Set" / "Validation_Set" / "1.txt").unlink()
    # Two videos for one annotation.
    _video(tmp_path / "videos" / "batch1" / "1.avi", 25)
    with pytest.raises(ValueError, match=r"match several videos .*Train_Set/1\.txt: .*raw_video/1\.mp4, "
                                         r".*videos/batch1/1\.avi"):
        corpora.load_corpus(tmp_path, "affwild2")
    (tmp_path / "videos" / "batch1" / "1.avi").unlink()
    # Both releases extracted under one root.
    _va(tmp_path / "6th_ABAW_Annotations" / "VA_Estimation_Challenge" / "Train_Set" / "1.txt", [(0, 0)])
    with pytest.raises(ValueError, match=r"Several Aff-Wild2 valence-arousal annotation folders"):
        corpora.load_corpus(tmp_path, "affwild2")


def test_recording_face_side(tmp_path):
    empty = np.zeros(0)
    rec = corpora.Recording("a", "test", tmp_path / "a.mp4", empty, {"valence": empty}, 0.04)
    assert rec.face == "largest"
    left = corpora.Recording("a", "test", rec.video, empty, {"valence": empty}, 0.04, face="left")
    assert left.face == "left"
    with pytest.raises(ValueError, match=r"Recording a: face 'center' is not one of"):
        corpora.Recording("a", "test", rec.video, empty, {"valence": empty}, 0.04, face="center")
