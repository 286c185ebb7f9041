"""predict on many videos (`recola_sta.inference.batch`): what --video names,
the output folders' names, the index, the statuses and exit codes, the skip
rule; and one batch of a good, a corrupt and a faceless video end to end.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from recola_sta import cli
from recola_sta.inference import batch, export, predict

ROOT = pathlib.Path(__file__).resolve().parents[1]

SIZE, FRAMES = 32, 8


def _touch(path: pathlib.Path, data: bytes = b"x") -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _rows(path: pathlib.Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------
# What --video names.


def test_is_batch_tells_many_videos_from_one(tmp_path):
    folder = (tmp_path / "clips")
    folder.mkdir()
    odd = _touch(tmp_path / "take[1].mp4")
    assert batch.is_batch(folder) and batch.is_batch(str(folder))
    assert batch.is_batch(tmp_path / "list.txt")  # missing: resolve_videos says so
    assert batch.is_batch(f"{folder}/*.mp4") and batch.is_batch(f"{folder}/a?.mp4")
    assert not batch.is_batch(odd)  # an existing file, glob characters or not
    assert not batch.is_batch(tmp_path / "missing.mp4")  # one video: predict says it is missing
    assert not batch.is_batch("0") and not batch.is_batch("rtsp://host/cam?id=1")


def test_a_folder_gives_its_video_files_sorted(tmp_path):
    for name in ("b.mp4", "a.MOV", "c.webm", "d.m4v", "e.avi", "f.mkv", "notes.txt",
                 ".hidden.mp4", "sub/g.mp4"):
        _touch(tmp_path / name)
    names = [p.name for p in batch.resolve_videos(tmp_path)]
    assert names == ["a.MOV", "b.mp4", "c.webm", "d.m4v", "e.avi", "f.mkv"]


def test_a_folder_without_videos_is_one_line(tmp_path):
    _touch(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match=r"--video=.*holds no video file \(\.mp4 .*\.m4v\)") \
            as caught:
        batch.resolve_videos(tmp_path)
    assert "\n" not in str(caught.value)


def test_a_glob_gives_the_files_it_matches_sorted(tmp_path):
    for name in ("x/b.mp4", "x/a.mp4", "y/a.mp4", "y/c.avi"):
        _touch(tmp_path / name)
    (tmp_path / "z.mp4").mkdir()  # a folder is no video
    found = batch.resolve_videos(f"{tmp_path}/*/*.mp4")
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["x/a.mp4", "x/b.mp4",
                                                                   "y/a.mp4"]
    for nothing in (f"{tmp_path}/*.mkv", f"{tmp_path}/z.mp*"):  # the second: a folder
        with pytest.raises(ValueError, match=r"the pattern matches no file"):
            batch.resolve_videos(nothing)


def test_a_list_gives_its_paths_in_order_relative_to_itself(tmp_path):
    b = _touch(tmp_path / "videos" / "b.mp4")
    a = _touch(tmp_path / "videos" / "a.mp4")
    elsewhere = _touch(tmp_path / "other" / "c.avi")
    listing = tmp_path / "videos" / "list.txt"
    listing.write_text(f"# two of mine and one elsewhere\nb.mp4\n\n  a.mp4  \n{elsewhere}\n"
                       "   # indented comment\n")
    assert batch.resolve_videos(listing) == [b, a, elsewhere]


def test_a_list_naming_missing_files_is_one_line(tmp_path):
    _touch(tmp_path / "a.mp4")
    listing = tmp_path / "list.txt"
    listing.write_text("a.mp4\n" + "".join(f"gone{i}.mp4\n" for i in range(5)))
    with pytest.raises(ValueError) as caught:
        batch.resolve_videos(listing)
    message = str(caught.value)
    assert "5 of the 6 listed files do not exist" in message and "and 2 more" in message
    assert str(tmp_path / "gone0.mp4") in message and "\n" not in message
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="the list names no video"):
        batch.resolve_videos(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="the list file does not exist"):
        batch.resolve_videos(tmp_path / "missing.txt")


def test_output_names_resolve_clashes_in_input_order():
    videos = [pathlib.Path(p) for p in ("x/a.mp4", "y/a.mp4", "a.avi", "a_2.mp4", "b.mp4",
                                        "index.csv.mp4", "z/a.mp4")]
    assert batch.output_names(videos) == ["a", "a_2", "a_3", "a_2_2", "b", "index.csv_2",
                                          "a_4"]
    assert batch.output_names(videos) == batch.output_names(list(videos))  # deterministic


# --------------------------------------------------------------------------
# The batch loop, with a stand-in for predict_video (no model).


def _fake_predict(calls: list[str], failures: dict[str, BaseException]):
    """Writes what predict_video commits (valence.csv, report.html, summary.json
    last) unless the video's name is in `failures`."""

    def predict_one(video: pathlib.Path, folder: pathlib.Path):
        calls.append(video.name)
        if video.name in failures:
            raise failures[video.name]
        folder.mkdir(parents=True, exist_ok=True)
        values = np.arange(4) / 10 + len(video.stem)
        (folder / "valence.csv").write_text(
            "time,valence,face_found\n"
            + "".join(f"{i / 25:.4f},{v:.6f},1\n" for i, v in enumerate(values)))
        (folder / "report.html").write_text("<html></html>")
        summary = {"video": str(video), "duration_s": 0.16, "samples": 1,
                   "face_found_rate": 0.75, "files": ["valence.csv", "report.html"]}
        (folder / "summary.json").write_text(json.dumps(summary))
        return summary

    return predict_one


def _videos(tmp_path: pathlib.Path, *names: str) -> list[pathlib.Path]:
    return [_touch(tmp_path / "in" / name) for name in names]


def test_the_batch_records_each_failure_and_goes_on(tmp_path):
    videos = _videos(tmp_path, "aa.mp4", "bad.mp4", "blank.mp4", "ccc.mp4")
    out = tmp_path / "out"
    out.mkdir()
    calls, lines = [], []
    failures = {"bad.mp4": ValueError("Video bad.mp4 has no decodable frame\n(corrupt)."),
                "blank.mp4": cli.NoFaceError("No face was found in blank.mp4.")}
    rows = batch.run_batch(batch.plan(videos, out, overwrite=False), out,
                           _fake_predict(calls, failures), targets=["valence"],
                           progress=False, log=lines.append)
    assert calls == ["aa.mp4", "bad.mp4", "blank.mp4", "ccc.mp4"]
    assert [r["status"] for r in rows] == ["ok", "failed", "no_face", "ok"]
    assert batch.exit_code(rows) == cli.EXIT_BAD_INPUT
    assert lines == [f"predict: {videos[1]}: Video bad.mp4 has no decodable frame (corrupt).",
                     f"predict: {videos[2]}: No face was found in blank.mp4."]
    index = _rows(out / "index.csv")
    assert list(index[0]) == ["video", "out", "duration_s", "samples", "face_found_rate",
                              "mean_valence", "std_valence", "status", "error"]
    assert index[0] == {"video": str(videos[0]), "out": "aa", "duration_s": "0.160",
                        "samples": "1", "face_found_rate": "0.7500", "mean_valence": "2.150000",
                        "std_valence": f"{np.std(np.arange(4) / 10):.6f}", "status": "ok",
                        "error": ""}
    assert index[1]["status"] == "failed" and index[1]["samples"] == ""
    assert index[1]["error"] == "Video bad.mp4 has no decodable frame (corrupt)."
    assert index[3]["mean_valence"] == "3.150000"
    page = (out / "index.html").read_text()
    assert 'href="aa/report.html"' in page and 'href="bad/report.html"' not in page
    assert page.count('<tr class="failed">') == 2


@pytest.mark.parametrize("statuses, code", [
    (["ok", "skipped"], cli.EXIT_DONE), (["ok", "no_face"], cli.EXIT_NO_FACE),
    (["no_face", "failed", "ok"], cli.EXIT_BAD_INPUT), ([], cli.EXIT_DONE)])
def test_exit_code(statuses, code):
    assert batch.exit_code([{"status": s} for s in statuses]) == code


def test_a_full_disk_stops_the_batch_with_a_valid_index(tmp_path):
    videos = _videos(tmp_path, "a.mp4", "b.mp4", "c.mp4")
    out = tmp_path / "out"
    out.mkdir()
    calls = []
    full = OSError(errno.ENOSPC, "No space left on device", str(out / "b" / "valence.png"))
    with pytest.raises(OSError):
        batch.run_batch(batch.plan(videos, out, False), out, _fake_predict(calls, {"b.mp4": full}),
                        targets=["valence"], progress=False, log=lambda line: None)
    assert calls == ["a.mp4", "b.mp4"]
    assert [r["status"] for r in _rows(out / "index.csv")] == ["ok"]


def test_a_rerun_skips_complete_outputs_and_overwrite_redoes_them(tmp_path):
    videos = _videos(tmp_path, "a.mp4", "b.mp4", "c.mp4")
    out = tmp_path / "out"
    out.mkdir()
    calls = []
    predict_one = _fake_predict(calls, {"c.mp4": ValueError("bad")})
    batch.run_batch(batch.plan(videos, out, False), out, predict_one, targets=["valence"],
                    progress=False, log=lambda line: None)
    (out / "b" / "report.html").unlink()  # incomplete now: predicted again
    first = _rows(out / "index.csv")
    calls.clear()
    rows = batch.run_batch(batch.plan(videos, out, False), out, predict_one,
                           targets=["valence"], progress=False, log=lambda line: None)
    assert calls == ["b.mp4", "c.mp4"]
    assert [r["status"] for r in rows] == ["skipped", "ok", "failed"]
    assert _rows(out / "index.csv")[0] == {**first[0], "status": "skipped"}
    calls.clear()
    batch.run_batch(batch.plan(videos, out, True), out, predict_one, targets=["valence"],
                    progress=False, log=lambda line: None)
    assert calls == ["a.mp4", "b.mp4", "c.mp4"]


def test_outputs_of_another_video_are_not_taken_as_done(tmp_path):
    """x/a.mp4 predicted alone into a/; then y/a.mp4 sorts first and gets a/:
    it is predicted (a/ names x/a.mp4), and x/a.mp4 gets a_2/."""
    x = _touch(tmp_path / "x" / "a.mp4")
    y = _touch(tmp_path / "w" / "a.mp4")
    out = tmp_path / "out"
    out.mkdir()
    calls = []
    predict_one = _fake_predict(calls, {})
    batch.run_batch(batch.plan([x], out, False), out, predict_one, targets=["valence"],
                    progress=False)
    jobs = batch.plan([y, x], out, False)
    assert [(j.name, j.done) for j in jobs] == [("a", False), ("a_2", False)]
    assert batch.is_complete(out / "a", x) and not batch.is_complete(out / "a", y)


def test_nothing_to_predict_fails_before_the_model_is_read(tmp_path, monkeypatch, capsys):
    """An empty folder or a list naming a missing file: one line, exit 2,
    before the model's files are even read and before --out is made."""
    def no_work(*args, **kwargs):
        raise AssertionError("the model was read")

    monkeypatch.setattr(export, "read_metadata", no_work)
    monkeypatch.setattr(predict, "ModelLoader", no_work)
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.txt").write_text("missing.mp4\n")
    out = tmp_path / "out"
    for spec in (tmp_path / "empty", tmp_path / "list.txt"):
        code = cli.run("predict", lambda: predict.predict_videos(tmp_path / "model", spec, out,
                                                                 progress=False))
        assert code == cli.EXIT_BAD_INPUT
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"predict: --video={spec}: ")
    assert not out.exists()


# --------------------------------------------------------------------------
# End to end: a tiny untrained model on three videos.


@pytest.fixture(scope="module")
def model_dir(tiny_2d_cnn_model_dir) -> pathlib.Path:
    """The session's tiny 2D-CNN (conftest.py): SIZE px, FRAMES-frame clips."""
    return tiny_2d_cnn_model_dir


def _blank_video(path: pathlib.Path, seconds: float = 2.0) -> pathlib.Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 240))
    for _ in range(int(seconds * 25)):
        writer.write(np.full((240, 320, 3), 90, np.uint8))
    writer.release()
    return path


def _stamps(folder: pathlib.Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.mark.slow
def test_a_batch_of_a_good_a_corrupt_and_a_faceless_video(model_dir, face_video, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    good = pathlib.Path(shutil.copyfile(face_video(2.0), videos / "good.mp4"))
    _touch(videos / "corrupt.mp4", bytes(range(256)) * 40)
    _blank_video(videos / "blank.mp4")
    out = tmp_path / "out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "recola_sta.predict", f"--model={model_dir}",
                           f"--video={videos}", f"--out={out}", "--noprogress"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == cli.EXIT_BAD_INPUT, proc.stderr[-3000:]
    assert "3 videos: 1 ok, 1 failed, 1 no_face." in proc.stdout
    index = _rows(out / "index.csv")
    assert [(r["out"], r["status"]) for r in index] == [
        ("blank", "no_face"), ("corrupt", "failed"), ("good", "ok")]
    assert "No face was found" in index[0]["error"] and "corrupt.mp4" in index[1]["error"]
    assert index[2]["samples"] == "8" and float(index[2]["face_found_rate"]) > 0.5
    assert sorted(p.name for p in out.iterdir()) == [".lock", "good", "index.csv",
                                                     "index.html"]
    assert 'href="good/report.html"' in (out / "index.html").read_text()
    # The good video's outputs are a single-video run's.
    single = predict.predict_video(model_dir, good, tmp_path / "single", progress=False)
    assert sorted(p.name for p in (out / "good").iterdir()) == sorted(
        [*single["files"], "summary.json"])
    assert (out / "good" / "valence.csv").read_bytes() == \
        (tmp_path / "single" / "valence.csv").read_bytes()
    # A re-run skips the finished video without touching its files; the
    # failed ones are tried again; --overwrite redoes the finished one.
    before = _stamps(out / "good")
    rows = predict.predict_videos(model_dir, videos, out, progress=False)
    assert [r["status"] for r in rows] == ["no_face", "failed", "skipped"]
    assert batch.exit_code(rows) == cli.EXIT_BAD_INPUT
    assert _stamps(out / "good") == before
    assert _rows(out / "index.csv")[2]["mean_valence"] == index[2]["mean_valence"]
    rows = predict.predict_videos(model_dir, videos, out, progress=False, overwrite=True)
    assert [r["status"] for r in rows] == ["no_face", "failed", "ok"]
    after = _stamps(out / "good")
    assert set(after) == set(before) and all(after[k] != before[k] for k in before)
