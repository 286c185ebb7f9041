"""predict streams a video chunk by chunk (memory flat with its length) and
takes live input (a file read at its real pace stands in for a camera).

A tiny untrained attention model (32 px crops, 8-frame clips) and a few
seconds of a 320x240 face video keep this fast.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib

import numpy as np
import pytest

from recola_sta import faces
from recola_sta.analysis import attention_analysis
from recola_sta.inference import export, loading, predict, results

ROOT = pathlib.Path(__file__).resolve().parents[1]

SIZE, FRAMES = 32, 8


@pytest.fixture(scope="module")
def model_dir(tiny_sta_model_dir) -> pathlib.Path:
    """The session's untrained 3d_cnn_sta (conftest.py): SIZE px, FRAMES-frame clips."""
    return tiny_sta_model_dir


@pytest.fixture(scope="module")
def model(model_dir):
    import tensorflow as tf

    return tf.saved_model.load(str(model_dir))


@pytest.fixture(scope="module")
def video(face_video) -> pathlib.Path:
    """6 s of a face at 320x240, 25 fps: 24 samples, 3 clips of 8."""
    return face_video(6.0)


class SimulatedClock:
    """A clock for `faces.live.CLOCK` whose sleep moves its time on at once:
    a file read "at its real pace" takes no real time, and is sampled as if
    each frame were handled the moment it arrives."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def simulated_clock(monkeypatch) -> SimulatedClock:
    from recola_sta.faces import live

    clock = SimulatedClock()
    monkeypatch.setattr(live, "CLOCK", clock)
    return clock


def _rows(path: pathlib.Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_streamed_csv_is_byte_identical_to_the_whole_video_path(model_dir, model, video,
                                                                 tmp_path, read_video):
    """One clip per chunk (three chunks) gives the CSV that running the model
    over all crops at once (as predict did before streaming) gives."""
    out = tmp_path / "out"
    summary = predict.predict_video(model_dir, video, out, batch_size=1, progress=False,
                                    model=model, attention_video=True)
    meta = export.read_metadata(model_dir)
    aligner = loading.make_aligner(meta, model_dir)
    info = faces.probe_video(video)
    times = faces.sample_times(info.duration, end=info.duration - 1 / info.fps)
    track = faces.track_video(video, times, aligner)
    values, attention = loading.run_model(model.serve, track.crops, FRAMES, 1)
    frame_times = np.arange(info.frame_count) / info.fps
    columns, frame_found, _ = results.csv_columns(track.times, values.reshape(-1, 1),
                                                  track.found, frame_times, ["valence"], {})
    results.write_csv(tmp_path / "whole.csv", frame_times, ["valence"], columns, frame_found,
                      rows_per_write=7)
    assert (out / "valence.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert summary["samples"] == len(times) == 24
    assert set(summary["files"]) == {"valence.csv", "valence.png", "attention.png",
                                     "attention_regions.png", "attention.mp4", "report.html"}
    # One frame per sample: the crop with its attention, enlarged to >= 256 px.
    size = meta["face"].size
    side = size * max(1, 256 // size)
    assert read_video(out / "attention.mp4").shape == (len(times), side, side, 3)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left

    # The streamed region report matches the whole-video one.
    whole = attention_analysis.region_report({"v": track}, attention, FRAMES)
    streamed = summary["attention_regions"]
    assert streamed["samples"] == whole["samples"] > 0
    assert streamed["first_frames_excluded"] == whole["first_frames_excluded"] == 3
    for region, row in whole["regions"].items():
        assert streamed["regions"][region]["ratio"] == pytest.approx(row["ratio"], rel=1e-9)
    np.testing.assert_allclose(streamed["map_percentiles_x_uniform"],
                               whole["map_percentiles_x_uniform"], rtol=5e-3, atol=2e-3)


def _report_data(page: str) -> dict:
    start = page.index('<script type="application/json" id="report-data">')
    return json.loads(page[page.index(">", start) + 1:page.index("</script>", start)])


def test_predict_writes_a_playable_report(model_dir, model, video, tmp_path):
    """report.html beside the CSV: the video by its path relative to --out,
    the CSV's curve at every frame, the face gaps of the samples, the
    attention figures inlined and the region table of summary.json."""
    out = tmp_path / "deep" / "out"
    summary = predict.predict_video(model_dir, video, out, progress=False, model=model)
    assert "report.html" in summary["files"]
    page = (out / "report.html").read_text()
    relative = pathlib.Path(os.path.relpath(video, out)).as_posix()
    assert relative.startswith("../") and f'<video id="video" controls preload="metadata" ' \
        f'src="{relative}">' in page
    data = _report_data(page)
    rows = _rows(out / "valence.csv")
    assert [s["target"] for s in data["series"]] == ["valence"]
    assert len(data["series"][0]["t"]) == len(rows) == 150  # every frame: 6 s at 25 fps
    assert data["series"][0]["p"][7] == pytest.approx(float(rows[7]["valence"]), abs=1e-4)
    missed = summary["samples"] - round(summary["face_found_rate"] * summary["samples"])
    assert bool(data["gaps"]) == (missed > 0)
    assert page.count('src="data:image/png;base64,') == 2  # attention.png, attention_regions.png
    for region, row in summary["attention_regions"]["regions"].items():
        assert f"<td>{region.replace('_', ' ')}</td><td>{row['attention_share']:.1%}" in page
    assert "https://" not in page and "http://" not in page  # nothing fetched


def test_region_accumulator_fed_in_pieces_matches_region_report():
    rng = np.random.default_rng(0)
    n, frames = 21, 8
    crops = rng.integers(0, 255, (n, SIZE, SIZE, 3), dtype=np.uint8)
    centre = np.array([SIZE / 2, SIZE / 2])
    landmarks = (centre + rng.normal(0, 5, (n, faces.NUM_LANDMARKS, 2))).astype(np.float32)
    found = rng.random(n) > 0.2
    landmarks[~found] = np.nan
    maps = rng.random((n, 4, 4))
    maps /= maps.sum(axis=(1, 2), keepdims=True)
    whole = attention_analysis.region_report(
        {"v": faces.FaceTrack(np.arange(n) / 4, crops, found, landmarks)}, maps, frames)
    acc = attention_analysis.RegionAccumulator(frames)
    for part in (slice(0, 5), slice(5, 16), slice(16, n)):
        acc.add(crops[part], found[part], landmarks[part], maps[part])
    report = acc.report()
    for key in ("samples", "samples_without_face", "first_frames_excluded"):
        assert report[key] == whole[key]
    for region, row in whole["regions"].items():
        for key, value in row.items():
            assert report["regions"][region][key] == pytest.approx(value, rel=1e-9, nan_ok=True)


def test_live_input_stops_at_max_seconds_with_valid_outputs(model_dir, model, video, tmp_path,
                                                            simulated_clock, read_figure):
    """A file read at its real pace stands in for a camera (paced by the
    simulated clock: test_a_file_is_read_at_its_real_pace checks the pace)."""
    out = tmp_path / "live"
    summary = predict.predict_video(model_dir, str(video), out, realtime=True, max_seconds=2.5,
                                    progress=False, model=model)
    assert summary["live"] and summary["stopped"] == "--max_seconds=2.5"
    live = _rows(out / "valence.live.csv")
    assert [float(r["time"]) for r in live] == [k / 4 for k in range(11)]  # 0 .. 2.5 s
    final = _rows(out / "valence.csv")
    assert list(final[0]) == ["time", "valence", "face_found"] and len(final) == 11
    assert all(np.isfinite(float(r["valence"])) for r in final)
    assert summary["samples"] == 11 and summary["files"][0] == "valence.csv"
    read_figure(out / "valence.png")  # readable, not blank
    assert summary["video_size"] == [320, 240] and summary["video_fps"] == pytest.approx(25)
    assert json.loads((out / "summary.json").read_text())["stopped"] == "--max_seconds=2.5"
    # A file read at its real pace still has a video to show; its curve has the 4 fps rows.
    page = (out / "report.html").read_text()
    assert '<video id="video"' in page and len(_report_data(page)["series"][0]["t"]) == 11


def test_live_input_stopped_by_ctrl_c_leaves_valid_outputs(model_dir, model, video, tmp_path,
                                                           monkeypatch, simulated_clock):
    """KeyboardInterrupt after 10 samples (one clip and two samples): the
    last, partial clip is still predicted, logged and written."""
    real = faces.live_frames

    def interrupted(*args, **kwargs):
        for k, item in enumerate(real(*args, **kwargs)):
            if k == 10:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(faces, "live_frames", interrupted)
    out = tmp_path / "live"
    summary = predict.predict_video(model_dir, str(video), out, realtime=True, prefetch=0,
                                    progress=False, model=model)
    assert summary["stopped"] == "interrupted (Ctrl-C)"
    assert len(_rows(out / "valence.live.csv")) == 10
    assert len(_rows(out / "valence.csv")) == 10 and summary["samples"] == 10


@pytest.mark.parametrize("clock", ["simulated", "wall"])
def test_a_file_is_read_at_its_real_pace(video, clock, monkeypatch):
    """`LiveSource(realtime=True)` hands out a 25 fps file's frame k no
    sooner than k / 25 s after the first, on the wall clock as on the
    simulated one (whose time is then exactly that); `live_frames` samples
    it at 4 fps by the same clock."""
    import time

    from recola_sta.faces import live

    if clock == "simulated":
        monkeypatch.setattr(live, "CLOCK", SimulatedClock())
    source = faces.LiveSource(str(video), realtime=True)
    start = live.CLOCK.monotonic()
    read = [live.CLOCK.monotonic() - start for _ in range(6) if source.read() is not None]
    assert len(read) == 6
    assert all(t >= k / 25 - 1e-9 for k, t in enumerate(read)), read
    if clock == "simulated":
        assert read == pytest.approx([k / 25 for k in range(6)])
    source.release()
    source = faces.LiveSource(str(video), realtime=True)
    wall = time.monotonic()
    times = [t for t, _ in faces.live_frames(source, 4.0, max_seconds=0.5)]
    assert times == [0.0, 0.25, 0.5]
    if clock == "wall":
        assert time.monotonic() - wall >= 0.5 - 1e-3  # the 0.5 s sample: frame 13, at 0.52 s
    else:
        assert time.monotonic() - wall < 0.4  # unpaced


def test_live_source_names():
    assert faces.is_live_source("0") and faces.is_live_source("rtsp://cam/stream")
    assert not faces.is_live_source("face.mp4")
    with pytest.raises(faces.VideoError, match="camera 97"):
        faces.LiveSource("97")


def test_max_seconds_limits_a_file(model_dir, model, video, tmp_path):
    summary = predict.predict_video(model_dir, video, tmp_path / "out", max_seconds=2.0,
                                    progress=False, model=model)
    rows = _rows(tmp_path / "out" / "valence.csv")
    assert len(rows) == 51 and float(rows[-1]["time"]) == 2.0  # 25 fps, 0 .. 2 s
    assert summary["samples"] == 9 and summary["stopped"] == "--max_seconds=2"
    assert not summary["live"]


@pytest.mark.slow
def test_two_workers_write_the_outputs_of_one(model_dir, model, face_video, tmp_path):
    """A 10 s video (40 samples: two chunks) aligned by 2 worker processes
    gives the CSV and summary facts of one process: one face, detected in
    every sample, so the restart at the chunk boundary picks it again."""
    video = face_video(10.0)
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        runs[workers] = predict.predict_video(model_dir, video, out, progress=False,
                                              model=model, workers=workers)
    assert runs[1]["samples"] == 40 > faces.tracking.CHUNK_SAMPLES
    assert (tmp_path / "out1" / "valence.csv").read_bytes() == \
        (tmp_path / "out2" / "valence.csv").read_bytes()
    for key in ("face_found_rate", "smallest_face_px", "samples_with_several_faces",
                "attention_regions"):
        assert runs[1][key] == runs[2][key]
    # The workers drew the attention figures (this process the others): the
    # same files, byte for byte.
    assert runs[1]["files"] == runs[2]["files"]
    for name in runs[1]["files"]:
        assert (tmp_path / "out1" / name).read_bytes() == \
            (tmp_path / "out2" / name).read_bytes(), name


@pytest.mark.slow
def test_a_batch_aligns_the_next_video_ahead_with_the_same_outputs(model_dir, face_video,
                                                                   tmp_path, monkeypatch):
    """predict_videos with 2 workers: once a video's last chunk is handed
    out, the workers go on to the next video's first chunks, which its run
    takes over; each video's outputs are those of a run on its own."""
    import shutil

    from recola_sta.faces import tracking

    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a", "b", "c"):
        shutil.copyfile(face_video(10.0), folder / f"{name}.mp4")
    taken: list[int] = []  # chunks each run took over
    take = tracking._take_ahead

    def spy(key):
        started = take(key)
        if key is not None:
            taken.append(len(started))
        return started

    monkeypatch.setattr(tracking, "_take_ahead", spy)
    rows = predict.predict_videos(model_dir, folder, tmp_path / "out", progress=False, workers=2)
    assert [r["status"] for r in rows] == ["ok"] * 3
    # b and c each took over the chunks started ahead (all of their 2).
    assert taken == [0, 2, 2]
    for video in ("b", "c"):
        single = tmp_path / "single" / video  # the same depth: the same links
        summary = predict.predict_video(model_dir, folder / f"{video}.mp4", single,
                                        progress=False, workers=2)
        for name in summary["files"]:
            assert (tmp_path / "out" / video / name).read_bytes() == \
                (single / name).read_bytes(), (video, name)


def test_figures_drawn_in_a_pool_are_awaited_when_the_run_fails(tmp_path):
    """`results._drawn_in`: a failure while the pool still draws waits for
    the figure to be written (so `Outputs.discard`, after it, removes the
    file: nothing is written into --out after a failed run) and cancels
    the figures not started; without a pool a figure is drawn at once."""
    import concurrent.futures
    import threading
    import time

    started = threading.Event()

    def slow_figure(path):
        started.set()
        time.sleep(0.3)
        path.write_text("png")
        return True

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with pytest.raises(RuntimeError, match="model"):
            with results._drawn_in(pool) as draw:
                first = draw(slow_figure, tmp_path / "a.png")
                second = draw(slow_figure, tmp_path / "b.png")
                started.wait(5)
                raise RuntimeError("model failed")
        assert (tmp_path / "a.png").exists() and first.done()
        assert second.cancelled() and not (tmp_path / "b.png").exists()
    with results._drawn_in(None) as draw:
        assert draw(slow_figure, tmp_path / "c.png").result() is True
