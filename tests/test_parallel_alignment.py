"""Faster face alignment: detection in a window around the subject's last
box, and a video's samples aligned in chunks by worker processes.

Videos are made in code from scikit-image's astronaut photo.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from recola_sta import faces
from recola_sta.faces import tracking, video
from recola_sta.inference import predict


@pytest.fixture(scope="module")
def head() -> np.ndarray:
    """The astronaut's head, 336 px square (its face box about 120 px)."""
    return cv2.resize(data.astronaut()[20:260, 105:345], (336, 336),
                      interpolation=cv2.INTER_CUBIC)


def _frame(head: np.ndarray, cx: float, cy: float, angle: float = 0.0,
           scale: float = 1.0) -> np.ndarray:
    """A 640 x 480 frame with `head` centred at (cx, cy), turned and scaled."""
    side = head.shape[0]
    m = cv2.getRotationMatrix2D((side / 2, side / 2), angle, scale)
    m[:, 2] += (cx - side / 2, cy - side / 2)
    background = np.full((480, 640, 3), (70, 90, 110), np.uint8)
    return cv2.warpAffine(head, m, (640, 480), dst=background,
                          borderMode=cv2.BORDER_TRANSPARENT)


def _moving(head: np.ndarray, n: int) -> list[np.ndarray]:
    """n frames of the head drifting and turning a little (as the bench video)."""
    return [_frame(head, 300 + 40 * np.sin(k / 3), 240 + 25 * np.cos(k / 4),
                   angle=5 * np.sin(k / 2), scale=1 + 0.05 * np.sin(k / 5)) for k in range(n)]


def _spy_on_detect(aligner: faces.FaceAligner) -> list[bool]:
    """Records, for each detector call of `aligner`, whether it was windowed."""
    calls: list[bool] = []
    detect = aligner.detect

    def spy(rgb, **kwargs):
        calls.append(kwargs.get("near") is not None)
        return detect(rgb, **kwargs)

    aligner.detect = spy
    return calls


def _assert_within_tolerance(a: faces.FrameFace, b: faces.FrameFace) -> None:
    """The documented tolerance of a cheaper path: crops within 2 grey
    levels (mean absolute difference) and key points within 1 % of the
    inter-ocular distance."""
    assert a.crop is not None and b.crop is not None
    assert np.abs(a.crop.astype(float) - b.crop.astype(float)).mean() < 2
    ka, kb = faces.key_points(a.landmarks), faces.key_points(b.landmarks)
    iod = np.linalg.norm(ka[0] - ka[1])
    assert np.linalg.norm(ka - kb, axis=1).max() <= 0.01 * iod


def test_windowed_detection_finds_the_faces_of_whole_frame_detection(head):
    frames = _moving(head, 12)
    whole = faces.FaceAligner(64, window=False)
    windowed = faces.FaceAligner(64)
    calls = _spy_on_detect(windowed)
    a = [whole.process(f) for f in frames]
    b = [windowed.process(f) for f in frames]
    # The first sample scans the whole frame, the next ones the window,
    # except the 8th detection (the periodic whole-frame scan).
    assert calls == [False] + [True] * 7 + [False] + [True] * 3
    for x, y in zip(a, b):
        _assert_within_tolerance(x, y)
        assert x.num_faces == y.num_faces == 1
        np.testing.assert_allclose(x.box, y.box)


def test_a_face_beyond_the_first_two_pyramid_levels_is_detected_in_the_whole_frame(head):
    """A face whose box is over `_WINDOW_MAX_SIDE` at the detection scale
    is found on a pyramid level the window does not see as the whole frame
    does: it is never looked for in a window, so the boxes are the whole
    frame's exactly."""
    frames = [_frame(head, 320 + 6 * k, 240, scale=2.0) for k in range(4)]
    whole = faces.FaceAligner(64, window=False)
    windowed = faces.FaceAligner(64)
    calls = _spy_on_detect(windowed)
    a = [whole.process(f) for f in frames]
    b = [windowed.process(f) for f in frames]
    assert calls == [False] * 4
    scale = windowed.detection_scale(640, 480)
    for x, y in zip(a, b):
        assert faces.detection._side(x.box) * scale > 96
        np.testing.assert_array_equal(x.box, y.box)
        np.testing.assert_array_equal(x.crop, y.crop)


def test_a_face_that_jumps_out_of_the_window_is_found_in_the_whole_frame(head):
    frames = [_frame(head, 180, 240), _frame(head, 180, 240), _frame(head, 470, 240)]
    whole = faces.FaceAligner(64, window=False)
    windowed = faces.FaceAligner(64)
    calls = _spy_on_detect(windowed)
    a = [whole.process(f) for f in frames]
    b = [windowed.process(f) for f in frames]
    # The jump: the window finds nothing, the whole frame the face.
    assert calls == [False, True, True, False]
    assert b[2].box[0] > 320 and a[2].box[0] > 320
    for x, y in zip(a, b):
        _assert_within_tolerance(x, y)


def test_another_face_in_view_keeps_whole_frame_detection(head):
    """While the whole frame shows a second face, every detection scans it
    (the bystanders and the face count stay those of whole-frame detection)."""
    frame = _frame(head, 160, 240)
    frame[:, 320:] = frame[:, :320]  # the same face twice, side by side
    windowed = faces.FaceAligner(64)
    calls = _spy_on_detect(windowed)
    results = [windowed.process(frame) for _ in range(3)]
    assert calls == [False, False, False]
    assert [r.num_faces for r in results] == [2, 2, 2]


def _write_video(path, frames, fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _samples_equal(a: list[faces.Sample], b: list[faces.Sample]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.time, x.found, x.num_faces) == (y.time, y.found, y.num_faces)
        np.testing.assert_array_equal(x.crop, y.crop)
        np.testing.assert_array_equal(x.landmarks, y.landmarks)
        np.testing.assert_equal(x.face_px, y.face_px)


@pytest.mark.slow
def test_chunks_aligned_by_two_workers_equal_one_worker(tmp_path, head):
    """Tracking (redetect_every=3) restarts at each chunk of 5 samples:
    the samples differ from one unchunked pass, but not with the number of
    workers aligning the chunks."""
    path = tmp_path / "face.mp4"
    _write_video(path, _moving(head, 24), fps=4.0)
    times = faces.sample_times(6.0, 4.0, end=5.75)
    aligner = faces.FaceAligner(64, redetect_every=3)

    def run(workers):
        frames = faces.iter_frames_at(path, times)
        return list(tracking.iter_samples_chunked(frames, aligner, workers, chunk=5))

    one, two = run(1), run(2)
    _samples_equal(one, two)
    assert len(one) == 24 and all(s.found for s in one)
    # The restart is real: with one unchunked pass the 6th sample (a
    # chunk's first) is tracked, not detected, and its crop differs.
    whole = list(faces.iter_samples(faces.iter_frames_at(path, times), aligner))
    assert any(not np.array_equal(x.crop, y.crop) for x, y in zip(whole, one))


def test_chunks_equal_one_pass_where_every_sample_is_detected(tmp_path, head):
    """With one face and detection on every sample (the default), the
    chunked samples are those of one pass in this process (here the
    window's boxes are the whole frame's, so a chunk's first sample, which
    scans the whole frame, finds what the window found)."""
    path = tmp_path / "face.mp4"
    _write_video(path, _moving(head, 12), fps=4.0)
    times = faces.sample_times(3.0, 4.0, end=2.75)
    aligner = faces.FaceAligner(64)
    whole = list(faces.iter_samples(faces.iter_frames_at(path, times), aligner))
    chunked = list(tracking.iter_samples_chunked(faces.iter_frames_at(path, times), aligner, 2,
                                                 chunk=4))
    _samples_equal(whole, chunked)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_workers_are_refused_naming_the_flag(bad):
    config = predict.PredictConfig(model="m", video="v.mp4", out="o", workers=bad)
    with pytest.raises(ValueError, match="--workers"):
        from recola_sta import settings

        settings.check(config)


def test_workers_default_to_the_usable_cores():
    import os

    assert predict.PredictConfig(model="m", video="v", out="o").workers == \
        len(os.sched_getaffinity(0))


def test_chunked_alignment_refuses_bad_arguments():
    aligner = faces.FaceAligner(64)
    with pytest.raises(ValueError, match="workers"):
        list(tracking.iter_samples_chunked(iter([]), aligner, 0))


def _frames_equal(a, b) -> None:
    assert [t for t, _ in a] == [t for t, _ in b]
    for (_, x), (_, y) in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("fps", [25.0, 2.5])
def test_seeking_reads_the_frames_of_reading_from_the_start(tmp_path, head, fps, monkeypatch):
    """A worker decodes its chunk from a seek (`iter_frames_at` with
    `seek`): every sample gets the very frame, byte for byte, that
    reading the video from its first frame gives, at a frame rate above
    the sample rate and below it (two samples a frame), the tail (the
    last frame serving the times just past it) included."""
    n = 40
    path = tmp_path / "face.mp4"
    _write_video(path, _moving(head, n), fps=fps)
    times = faces.sample_times(n / fps, 4.0, end=n / fps + 0.2)
    whole = list(faces.iter_frames_at(path, times))
    assert len(whole) == len(times)
    seeks: list[int] = []
    seek_before = video._seek_before
    monkeypatch.setattr(video, "_seek_before",
                        lambda *args: seeks.append(seek_before(*args)) or seeks[-1])
    for first in sorted({1, 2, 7, 13, len(times) // 2, len(times) - 3, len(times) - 1}):
        part = times[first:first + 6]
        _frames_equal(list(faces.iter_frames_at(path, part, seek=True)), whole[first:first + 6])
    assert sum(start > 0 for start in seeks) >= 4  # most of them did seek


def test_seeking_past_the_end_raises_as_reading_from_the_start(tmp_path, head):
    path = tmp_path / "face.mp4"
    _write_video(path, _moving(head, 8), fps=4.0)
    with pytest.raises(faces.TruncatedVideoError, match="frame 7") as sequential:
        list(faces.iter_frames_at(path, [1.0, 5.0]))
    with pytest.raises(faces.TruncatedVideoError, match="frame 7") as seeking:
        list(faces.iter_frames_at(path, [5.0], seek=True))
    assert str(seeking.value).split("(")[0] == str(sequential.value).split("(")[0]


def test_workers_decoding_their_chunks_equal_chunks_decoded_here(tmp_path, head):
    """Given a file's `sampled_frames`, the workers decode their own chunks
    (this process decodes nothing); the samples are those of the frames
    decoded here and handed to the workers."""
    path = tmp_path / "face.mp4"
    _write_video(path, _moving(head, 20), fps=5.0)
    times = faces.sample_times(4.0, 4.0, end=3.8)
    aligner = faces.FaceAligner(64, redetect_every=3)
    here = list(tracking.iter_samples_chunked(faces.iter_frames_at(path, times), aligner, 2,
                                              chunk=4))
    frames = faces.sampled_frames(path, times, prefetch=2)
    there = list(tracking.iter_samples_chunked(frames, aligner, 2, chunk=4))
    assert not frames.started
    _samples_equal(here, there)
    assert len(there) == len(times) and all(s.found for s in there)


def test_chunks_started_ahead_are_taken_over_only_by_their_video(tmp_path, head):
    """`align_next`: once a run has handed out its last chunk, the named
    video's first chunks start; its own run takes them over (the samples
    of a run without them), and a run of another video cancels them."""
    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    _write_video(first, _moving(head, 12), fps=4.0)
    _write_video(second, _moving(head, 28)[::-1], fps=4.0)
    aligner = faces.FaceAligner(64, redetect_every=3)

    def run(path, n):
        times = faces.sample_times(n / 4.0, 4.0, end=(n - 1) / 4.0)
        return list(tracking.iter_samples_chunked(faces.sampled_frames(path, times), aligner, 2,
                                                  chunk=4))

    alone = run(second, 28)
    tracking.align_next(faces.sampled_frames(second, faces.sample_times(7.0, 4.0, end=6.75)),
                        aligner, 2, chunk=4)
    run(first, 12)
    key, started = tracking._AHEAD
    assert key[0] == str(second) and len(started) == 5  # ahead_chunks(2) of its 7 chunks
    _samples_equal(run(second, 28), alone)
    assert tracking._AHEAD is None
    # Started for the second video, but the first runs next: cancelled, not taken.
    tracking.align_next(faces.sampled_frames(second, faces.sample_times(7.0, 4.0, end=6.75)),
                        aligner, 2, chunk=4)
    run(first, 12)
    futures = list(tracking._AHEAD[1])
    run(first, 12)
    assert all(f.cancelled() or f.done() for f in futures) and tracking._AHEAD is None
