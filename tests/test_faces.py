"""Tests of recola_sta.faces on a real face photo (scikit-image's astronaut)."""

from __future__ import annotations

import math
import re

import cv2
import numpy as np
import pytest
from skimage import data

from recola_sta import faces
from recola_sta.faces import detection

# Centre of the astronaut's face in the 512 x 512 photo (between eyes and nose).
_FACE_CENTRE = (225.0, 115.0)
# (rotation degrees, scale, shift x, shift y) applied to the photo.
_TRANSFORMS = [
    (0, 1.0, 0, 0),
    (20, 1.0, 10, -5),
    (-20, 1.0, -10, 5),
    (10, 0.7, 30, 20),
    (-10, 1.3, -20, -30),
    (15, 0.8, -40, 25),
    (-15, 1.2, 35, -15),
    (5, 0.9, 0, 40),
]
_CODE_BITS = 8
_CODE_BLOCK = 32


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def aligner() -> faces.FaceAligner:
    """Default settings: detection on frames at most 320 px wide, no upsampling."""
    return faces.FaceAligner(96)


@pytest.fixture(scope="module")
def fine_aligner() -> faces.FaceAligner:
    """Finds the photo's face down to scale 0.7 (about 60 px)."""
    return faces.FaceAligner(96, upsample=1, detect_width=0)


@pytest.fixture(scope="module")
def checker() -> faces.FaceAligner:
    """Re-detects landmarks on 4x upscaled aligned crops."""
    return faces.FaceAligner(96, upsample=0, detect_width=0)


def _face_frame(photo: np.ndarray, shift: int = 0) -> np.ndarray:
    """A 320 x 240 frame with the face about 115 px wide."""
    x0, y0 = 105 + shift, 37
    return cv2.resize(photo[y0:y0 + 180, x0:x0 + 240], (320, 240),
                      interpolation=cv2.INTER_AREA)


def _coded_frame(index: int) -> np.ndarray:
    """A 320 x 240 frame whose top row of blocks spells `index` in binary."""
    frame = np.full((240, 320, 3), 60, np.uint8)
    for bit in range(_CODE_BITS):
        if index >> bit & 1:
            x = bit * _CODE_BLOCK + 32
            frame[8:8 + _CODE_BLOCK, x:x + _CODE_BLOCK] = 230
    return frame


def _decode(frame: np.ndarray) -> int:
    index = 0
    for bit in range(_CODE_BITS):
        x = bit * _CODE_BLOCK + 32
        if frame[16:8 + _CODE_BLOCK - 8, x + 8:x + _CODE_BLOCK - 8].mean() > 145:
            index |= 1 << bit
    return index


def _write_video(path, frames, fps: float, fourcc: str = "mp4v") -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), path
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _redetect(checker: faces.FaceAligner, crop: np.ndarray, factor: int = 4) -> np.ndarray:
    """Eye centres and nose tip found again on an aligned crop, crop pixels."""
    up = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    checker.reset()
    landmarks = checker.landmarks(up)
    assert landmarks is not None, "no face re-detected on the aligned crop"
    return (faces.key_points(landmarks) + 0.5) / factor - 0.5


# --------------------------------------------------------------------------
# Alignment.


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.4, 1.7, np.array([3.0, -8.0])
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)],
                            [math.sin(angle), math.cos(angle)]])
    m = faces.similarity_transform(src, src @ rot.T + shift)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-9)


def test_similarity_transform_never_reflects():
    src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    m = faces.similarity_transform(src, src * [-1.0, 1.0])  # a mirror image
    assert np.linalg.det(m[:, :2]) > 0


def test_similarity_transform_rejects_bad_shapes():
    with pytest.raises(ValueError, match="src"):
        faces.similarity_transform(np.zeros((3, 2)), np.zeros((2, 2)))


def _umeyama_reference(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The hand-written Umeyama (1991) fit that `similarity_transform` was
    before it used scikit-image's `SimilarityTransform`, kept here to test
    that the two agree."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc**2).sum() / len(src)
    u, s, vt = np.linalg.svd(dc.T @ sc / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / var_s
    shift = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, shift[:, None]])


def _similarity_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, src, dst) point sets: exact, noisy, mirrored and unrelated
    targets for 2 to 68 points, and degenerate ones."""
    rng = np.random.default_rng(20180415)
    cases = []
    for k in (2, 3, 5, 68):
        for trial in range(3):
            src = rng.uniform(0, 640, (k, 2))
            angle, scale = rng.uniform(-math.pi, math.pi), rng.uniform(0.05, 4.0)
            rot = scale * np.array([[math.cos(angle), -math.sin(angle)],
                                    [math.sin(angle), math.cos(angle)]])
            exact = src @ rot.T + rng.uniform(-300, 300, 2)
            cases += [
                (f"exact-{k}-{trial}", src, exact),
                (f"noisy-{k}-{trial}", src, exact + rng.normal(0, 20, (k, 2))),
                # A mirror image: the best fit without reflection.
                (f"mirrored-{k}-{trial}", src, exact * [-1.0, 1.0] + rng.normal(0, 0.5, (k, 2))),
                (f"unrelated-{k}-{trial}", src, rng.uniform(0, 96, (k, 2))),
            ]
    line = np.outer(rng.uniform(-50, 50, 6), [3.0, 4.0]) + [100.0, 20.0]
    cases += [
        # Collinear source points (a rank-1 fit), onto points off that line.
        ("collinear-src", line, rng.uniform(0, 96, (6, 2))),
        ("collinear-mirrored", line, line * [-1.0, 1.0]),
        # Eye centres and nose tip of a face in a 640x480 frame onto the template.
        ("key-points", np.array([[281.3, 201.7], [338.9, 198.2], [311.4, 236.0]]),
         np.asarray(faces.DEFAULT_TEMPLATE) * 96 - 0.5),
        # All target points coincide: scale 0, everything onto that point.
        ("coinciding-dst", rng.uniform(0, 640, (4, 2)), np.full((4, 2), 5.0)),
    ]
    return cases


@pytest.mark.parametrize("name,src,dst", _similarity_cases(),
                         ids=[c[0] for c in _similarity_cases()])
def test_similarity_transform_equals_the_hand_written_umeyama_fit(name, src, dst):
    new = faces.similarity_transform(src, dst)
    old = _umeyama_reference(src, dst)
    assert new.shape == (2, 3) and new.dtype == np.float64
    np.testing.assert_allclose(new, old, rtol=0, atol=1e-12 * (1 + np.abs(old).max()))


def test_similarity_transform_rejects_coinciding_source_points():
    with pytest.raises(ValueError, match="coincide"):
        faces.similarity_transform(np.full((3, 2), 7.0), np.eye(3, 2))


@pytest.mark.parametrize("angle,scale,tx,ty", _TRANSFORMS)
def test_align_puts_eyes_and_nose_on_the_template(photo, fine_aligner, checker,
                                                  angle, scale, tx, ty):
    m = cv2.getRotationMatrix2D(_FACE_CENTRE, angle, scale)
    m[:, 2] += (tx, ty)
    warped = cv2.warpAffine(photo, m, (512, 512), borderValue=(128, 128, 128))
    fine_aligner.reset()
    crop = fine_aligner.align(warped)
    assert crop is not None and crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    error = np.linalg.norm(_redetect(checker, crop) - fine_aligner.template_points, axis=1)
    assert error.max() < 2.0, f"key-point errors {error} px"


def test_landmarks_come_back_in_crop_pixels(photo, fine_aligner, checker):
    fine_aligner.reset()
    crop, landmarks = fine_aligner.align_with_landmarks(photo)
    assert landmarks.shape == (68, 2) and landmarks.dtype == np.float32
    # The mapped eye centres and nose tip sit on the template (least squares
    # over three points, so within a pixel), and every landmark agrees with
    # dlib run again on the crop itself.
    np.testing.assert_allclose(faces.key_points(landmarks), fine_aligner.template_points, atol=1.5)
    up = cv2.resize(crop, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    checker.reset()
    again = (checker.landmarks(up) + 0.5) / 4 - 0.5
    assert np.median(np.linalg.norm(again - landmarks, axis=1)) < 1.5


def test_template_is_symmetric_and_configurable():
    aligner = faces.FaceAligner(64, template=((0.3, 0.4), (0.7, 0.4), (0.5, 0.6)))
    pts = aligner.template_points
    np.testing.assert_allclose(pts[0, 0] + pts[1, 0], 2 * pts[2, 0])
    np.testing.assert_allclose(pts[2], [31.5, 37.9])


def test_align_returns_none_without_a_face(aligner):
    aligner.reset()
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    assert aligner.align(noise) is None
    assert aligner.landmarks(np.zeros((240, 320, 3), np.uint8)) is None


def test_align_rejects_non_rgb_input(aligner):
    with pytest.raises(ValueError, match="RGB uint8"):
        aligner.align(np.zeros((240, 320), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        aligner.align(np.zeros((240, 320, 3), np.float32))


def test_detection_on_a_downscaled_frame_maps_the_box_back(photo):
    """A 1280 x 720 frame detected at 320 px gives the full-resolution box."""
    frame = np.full((720, 1280, 3), 90, np.uint8)
    face = cv2.resize(photo[60:220, 145:305], (640, 640), interpolation=cv2.INTER_CUBIC)
    frame[40:680, 500:1140] = face  # the face is about 350 px wide
    small = faces.FaceAligner(96, detect_width=320)
    full = faces.FaceAligner(96, detect_width=0)
    ((box_small,), _), ((box_full,), _) = small.detect(frame), full.detect(frame)
    side = box_full[2] - box_full[0]
    assert side > 250 and 500 < box_full[0] and box_full[2] < 1140
    np.testing.assert_allclose(box_small, box_full, atol=0.1 * side)
    crop_small, crop_full = small.align(frame), full.align(frame)
    # Landmarks are fitted at full resolution either way: nearly the same crop.
    assert np.abs(crop_small.astype(int) - crop_full).mean() < 12


def test_keeps_the_face_it_tracks_and_reset_picks_the_largest(photo):
    face = photo[30:230, 125:325]
    big = cv2.resize(face, (200, 200), interpolation=cv2.INTER_AREA)
    little = cv2.resize(face, (140, 140), interpolation=cv2.INTER_AREA)
    both = np.full((300, 640, 3), 120, np.uint8)
    both[50:250, 40:240] = big
    both[80:220, 430:570] = little
    only_little = np.full_like(both, 120)
    only_little[80:220, 430:570] = little
    aligner = faces.FaceAligner(96, detect_width=0)

    def nose_x(rgb):
        return aligner.landmarks(rgb)[faces.NOSE_TIP, 0]

    assert nose_x(both) < 320  # first frame: the largest face
    aligner.reset()
    assert nose_x(only_little) > 320
    assert nose_x(both) > 320  # continues the tracked (smaller) face
    aligner.reset()
    assert nose_x(both) < 320


def test_missing_predictor_file_is_named(tmp_path):
    path = tmp_path / "nope.dat"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        faces.FaceAligner(96, predictor_path=path)


def _small_frame(photo: np.ndarray, scale: float = 0.55) -> np.ndarray:
    """A 176 x 144 talking-head frame: the photo scaled by `scale` around the
    face, whose detection box is then about 53 px (at 0.55)."""
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    x0 = round(_FACE_CENTRE[0] * scale) - 88
    y0 = max(0, round(_FACE_CENTRE[1] * scale) - 72)
    return np.ascontiguousarray(small[y0:y0 + 144, x0:x0 + 176])


def test_detection_scale_enlarges_small_frames_and_keeps_640x480():
    aligner = faces.FaceAligner(96)
    assert aligner.detection_scale(640, 480) == 0.5  # 320 px wide, as before
    assert aligner.detection_scale(320, 240) == 1.0
    assert aligner.detection_scale(176, 144) == pytest.approx(240 / 144)
    # 16:9: reduced less than to 320 px, so a face a third of the height is 80 px.
    assert aligner.detection_scale(1280, 720) == pytest.approx(1 / 3)
    assert aligner.detection_scale(720, 1280) == pytest.approx(320 / 720)
    full = faces.FaceAligner(96, detect_width=0)
    assert full.detection_scale(640, 480) == 1.0
    assert full.detection_scale(176, 144) == pytest.approx(240 / 144)


def test_faces_in_a_small_video_are_found_at_the_defaults(tmp_path, photo, aligner):
    frame = _small_frame(photo)
    # dlib at the frame's own scale misses this ~53 px face ...
    rects, _, _ = detection._load_detector().run(frame, 0, 0.0)
    assert len(rects) == 0
    # ... the aligner's detection scale (5/3) finds it without a retry.
    boxes, _ = aligner.detect(frame, retry=False)
    assert len(boxes) == 1 and 45 < boxes[0][2] - boxes[0][0] < 65
    path = tmp_path / "qcif.mp4"
    _write_video(path, [np.roll(frame, i % 5, axis=1) for i in range(50)], 25.0)
    times = faces.sample_times(faces.probe_video(path).duration)
    track = faces.track_video(path, times, aligner)
    assert track.found.all(), track.found
    assert 45 < track.smallest_face_px < 65
    assert track.multi_face_samples == 0


def test_a_frame_without_a_face_at_the_chosen_scale_is_retried_finer(photo):
    """A 74 px face in a 640x480 frame is 37 px at the detection scale 0.5:
    missed there, found by the retry with one more upsampling step."""
    frame = np.full((480, 640, 3), 100, np.uint8)
    frame[100:270, 200:370] = cv2.resize(photo[20:260, 105:345], (170, 170),
                                         interpolation=cv2.INTER_AREA)
    aligner = faces.FaceAligner(96)
    assert aligner.detect(frame, retry=False) == ([], [])
    boxes, _ = aligner.detect(frame)
    assert len(boxes) == 1
    left, top, right, bottom = boxes[0]
    assert 200 < left and right < 370 and 60 < right - left < 100
    assert aligner.align(frame) is not None


def _two_faces(photo: np.ndarray, left: bool = True, right: bool = True) -> np.ndarray:
    """A 480 x 240 frame with the astronaut's head at x 20-220 (natural
    colours) and, red and blue swapped, at x 260-460."""
    head = cv2.resize(photo[20:260, 105:345], (200, 200), interpolation=cv2.INTER_AREA)
    frame = np.full((240, 480, 3), 110, np.uint8)
    if left:
        frame[20:220, 20:220] = head
    if right:
        frame[20:220, 260:460] = head[..., ::-1]
    return frame


def _is_left_face(crop: np.ndarray) -> bool:
    """The natural-colour head is redder than the swapped one."""
    r, _, b = crop.reshape(-1, 3).mean(0)
    return bool(r > b)


@pytest.mark.parametrize("rule,expect_left", [("left", True), ("right", False),
                                              ("largest", True), ("center", False)])
def test_face_rule_picks_the_face(photo, rule, expect_left):
    """A 200 px head at x 0-200 and a 160 px one, colours swapped, at x 250-410,
    nearer the frame's centre (240)."""
    head = photo[20:260, 105:345]
    frame = np.full((240, 480, 3), 110, np.uint8)
    frame[20:220, 0:200] = cv2.resize(head, (200, 200), interpolation=cv2.INTER_AREA)
    frame[40:200, 250:410] = cv2.resize(head, (160, 160), interpolation=cv2.INTER_AREA)[..., ::-1]
    aligner = faces.FaceAligner(96, face=rule)
    found = aligner.process(frame)
    assert found.num_faces == 2
    centre_x = (found.box[0] + found.box[2]) / 2
    assert (centre_x < 225) == expect_left
    assert _is_left_face(found.crop) == expect_left


def test_the_chosen_face_is_followed_and_picked_up_again(tmp_path, photo):
    """Both faces, then the left person leaves for 1 s, then comes back."""
    frames = ([_two_faces(photo)] * 6 + [_two_faces(photo, left=False)] * 4
              + [_two_faces(photo)] * 6)
    path = tmp_path / "two.mp4"
    _write_video(path, frames, 4.0)
    times = faces.sample_times(faces.probe_video(path).duration, end=3.75)
    assert len(times) == 16
    left = faces.track_video(path, times, faces.FaceAligner(64, face="left"))
    # Missing while away: not swapped for the person on the right.
    np.testing.assert_array_equal(left.found, [True] * 6 + [False] * 4 + [True] * 6)
    assert all(_is_left_face(c) for c in left.crops[left.found])
    assert left.multi_face_samples == 12
    np.testing.assert_array_equal(left.num_faces, [2] * 6 + [1] * 4 + [2] * 6)
    right = faces.track_video(path, times, faces.FaceAligner(64, face="right"))
    assert right.found.all()
    assert not any(_is_left_face(c) for c in right.crops)
    # The landmarks (crop pixels) sit on the template either way.
    for track in (left, right):
        eyes = track.landmarks[track.found][:, list(faces.RIGHT_EYE)].mean(1)
        np.testing.assert_allclose(eyes.mean(0), (0.35 * 64 - 0.5, 0.36 * 64 - 0.5), atol=3)


def test_the_subject_coming_back_elsewhere_is_found_by_the_rule(photo):
    head = cv2.resize(photo[20:260, 105:345], (200, 200), interpolation=cv2.INTER_AREA)
    alone = np.full((400, 640, 3), 110, np.uint8)
    alone[20:220, 420:620] = head[..., ::-1]
    both = alone.copy()
    both[20:220, 20:220] = head
    back = alone.copy()
    back[190:390, 140:340] = head  # ~170 px from where it left: not a continuation
    aligner = faces.FaceAligner(64, face="left", detect_width=0)
    assert _is_left_face(aligner.process(both).crop)
    assert aligner.process(alone).crop is None
    found = aligner.process(back)
    assert found.crop is not None and _is_left_face(found.crop)
    assert found.box[1] > 150


@pytest.mark.parametrize("kwargs,match", [
    ({"size": 8}, "size"),
    ({"upsample": -1}, "upsample"),
    ({"upsample": 3}, "--upsample"),
    ({"face": "biggest"}, "--face"),
    ({"detect_width": 40}, "detect_width"),
    ({"template": ((0.3, 0.4), (0.7, 0.4))}, "template"),
    ({"rotate": 45}, "--rotate"),
    ({"rotate": True}, "--rotate"),
])
def test_bad_aligner_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        faces.FaceAligner(**kwargs)


# --------------------------------------------------------------------------
# Sampling by timestamp.


def test_sample_times():
    np.testing.assert_allclose(faces.sample_times(2.0), np.arange(9) * 0.25)
    np.testing.assert_allclose(faces.sample_times(2.1, end=1.6), np.arange(7) * 0.25)
    assert len(faces.sample_times(300.0)) == 1201  # a 5-minute RECOLA recording
    assert len(faces.sample_times(0.7 * 3, fps=10)) == 22  # 2.1000000000000005 s
    assert len(faces.sample_times(1.0, end=-0.1)) == 0
    with pytest.raises(ValueError, match="duration"):
        faces.sample_times(float("nan"))


@pytest.mark.parametrize("fps", [25.0, 30.0, 29.97, 50.0])
def test_frames_nearest_to_requested_times(tmp_path, fps):
    n = int(2.2 * fps)
    path = tmp_path / f"coded_{fps}.mp4"
    _write_video(path, [_coded_frame(i) for i in range(n)], fps)
    info = faces.probe_video(path)
    assert info.frame_count == n and info.fps == pytest.approx(fps, rel=1e-3)
    assert (info.width, info.height) == (320, 240)
    assert info.duration == pytest.approx(n / fps, rel=1e-3)
    rng = np.random.default_rng(int(fps))
    times = np.sort(np.concatenate([faces.sample_times(info.duration),
                                    rng.uniform(0, (n - 1) / fps, 12)]))
    got = list(faces.iter_frames_at(path, times))
    assert [t for t, _ in got] == pytest.approx(times.tolist())
    for t, frame in got:
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        index = _decode(frame)
        assert abs(index / fps - t) <= 0.5 / fps + 1e-3, (t, index)
    # The end of the video (its duration) is within the last frame's display
    # interval; half a second later is past the end.
    ((_, last),) = faces.iter_frames_at(path, [info.duration])
    assert _decode(last) == n - 1
    with pytest.raises(faces.TruncatedVideoError, match=re.escape(str(path))):
        list(faces.iter_frames_at(path, [0.0, info.duration + 0.5]))


def test_frames_of_a_video_without_frame_count(tmp_path):
    """A raw MJPEG stream reports no frame count (and 25 fps, its default)."""
    path = tmp_path / "raw.mjpeg"
    _write_video(path, [_coded_frame(i) for i in range(40)], 25.0, fourcc="MJPG")
    info = faces.probe_video(path)
    assert info.frame_count is None
    assert info.duration == pytest.approx(40 / 25)
    times = faces.sample_times(info.duration)
    got = list(faces.iter_frames_at(path, times))
    assert len(got) == len(times) == 7
    for t, frame in got:
        assert abs(_decode(frame) / 25 - t) <= 0.5 / 25 + 1e-3
    ((_, last),) = faces.iter_frames_at(path, [info.duration])
    assert _decode(last) == 39


def test_iter_frames_at_rejects_unsorted_times(tmp_path):
    path = tmp_path / "v.mp4"
    _write_video(path, [_coded_frame(i) for i in range(5)], 25.0)
    with pytest.raises(ValueError, match="non-decreasing"):
        list(faces.iter_frames_at(path, [0.1, 0.0]))


# --------------------------------------------------------------------------
# Tracks and broken videos.


def test_track_video_finds_the_face_in_every_sample(tmp_path, photo, aligner):
    path = tmp_path / "face.mp4"
    _write_video(path, [_face_frame(photo, shift=i % 20) for i in range(75)], 25.0)
    times = faces.sample_times(faces.probe_video(path).duration)
    track = faces.track_video(path, times, aligner)
    np.testing.assert_array_equal(track.times, times)
    assert track.crops.shape == (len(times), 96, 96, 3)
    assert track.found.all() and track.found_rate == 1.0
    assert (track.crops.reshape(len(times), -1).max(1) > 0).all()


def test_track_video_without_a_face_flags_every_sample(tmp_path, aligner):
    path = tmp_path / "noface.mp4"
    _write_video(path, [_coded_frame(i) for i in range(50)], 25.0)
    times = faces.sample_times(faces.probe_video(path).duration)
    track = faces.track_video(path, times, aligner)
    assert len(track.times) == 9
    assert not track.found.any() and track.found_rate == 0.0
    assert not track.crops.any()


def test_truncated_video_raises_naming_the_file(tmp_path, aligner):
    """An AVI cut in half still opens and reports the full frame count."""
    path = tmp_path / "cut.avi"
    _write_video(path, [_coded_frame(i) for i in range(50)], 25.0, fourcc="MJPG")
    data_ = path.read_bytes()
    path.write_bytes(data_[:len(data_) // 2])
    info = faces.probe_video(path)
    times = faces.sample_times(info.duration)
    with pytest.raises(faces.TruncatedVideoError, match=re.escape(str(path))):
        faces.track_video(path, times, aligner)


def test_unreadable_videos_raise_naming_the_file(tmp_path, aligner):
    mp4 = tmp_path / "cut.mp4"  # the index (moov) of these files is at the end
    _write_video(mp4, [_coded_frame(i) for i in range(10)], 25.0)
    mp4.write_bytes(mp4.read_bytes()[:2000])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    for path in (mp4, junk):
        with pytest.raises(faces.VideoError, match=re.escape(str(path))):
            faces.probe_video(path)
        with pytest.raises(faces.VideoError, match=re.escape(str(path))):
            faces.track_video(path, [0.0], aligner)
    missing = tmp_path / "missing.mp4"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        faces.probe_video(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        faces.track_video(missing, [0.0], aligner)


# --------------------------------------------------------------------------
# Decoding ahead of the aligner (`prefetched`, `track_video(prefetch=...)`).


def test_prefetched_keeps_order_and_raises_after_the_items_before_the_error():
    def items():
        yield from range(5)
        raise faces.VideoError("broken at 5")

    got = []
    with pytest.raises(faces.VideoError, match="broken at 5"):
        for item in faces.prefetched(items(), 2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    assert list(faces.prefetched(iter(range(100)), 3)) == list(range(100))
    with pytest.raises(ValueError, match="depth"):
        next(faces.prefetched(iter(range(3)), 0))


def test_prefetched_closed_early_stops_its_thread_and_closes_the_source():
    import threading

    closed = []

    def items():
        try:
            yield from range(1000)
        finally:
            closed.append(True)

    before = threading.active_count()
    stream = faces.prefetched(items(), 2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert closed == [True]
    assert threading.active_count() == before


def test_track_video_with_prefetch_gives_the_same_track(tmp_path, photo, aligner):
    path = tmp_path / "face.mp4"
    _write_video(path, [_face_frame(photo, shift=i % 20) for i in range(50)], 25.0)
    times = faces.sample_times(faces.probe_video(path).duration)
    plain = faces.track_video(path, times, aligner)
    ahead = faces.track_video(path, times, aligner, prefetch=3)
    assert plain.found.all()
    np.testing.assert_array_equal(ahead.crops, plain.crops)
    np.testing.assert_array_equal(ahead.found, plain.found)
    np.testing.assert_array_equal(ahead.landmarks, plain.landmarks)


def _moving_face_frames(photo: np.ndarray, n: int = 12) -> list[np.ndarray]:
    """n 320 x 240 frames of the photo's face drifting 3 px right per frame."""
    return [_face_frame(photo, shift=3 * k) for k in range(n)]


def test_tracking_detects_every_kth_sample_and_matches_full_detection(photo):
    frames = _moving_face_frames(photo)
    full = faces.FaceAligner(64, redetect_every=1)
    tracked = faces.FaceAligner(64, redetect_every=4)
    a = [full.process(f) for f in frames]
    b = [tracked.process(f) for f in frames]
    assert all(r.detected for r in a)
    assert [r.detected for r in b] == [True, False, False, False] * 3
    assert all(r.crop is not None for r in a + b)
    # Tracked samples keep the last detection's face count.
    assert all(r.num_faces == 1 for r in b)
    for x, y in zip(a, b):
        # Eyes and nose within half a crop pixel (the photo's fine texture
        # turns a tenth of a pixel into a few grey levels of difference).
        np.testing.assert_allclose(faces.key_points(x.landmarks),
                                   faces.key_points(y.landmarks), atol=0.5)
        np.testing.assert_allclose(x.landmarks, y.landmarks, atol=2)
        assert np.abs(x.crop.astype(float) - y.crop.astype(float)).mean() < 12
    assert tracked.settings()["redetect_every"] == 4


def test_tracking_redetects_when_the_face_is_gone(photo):
    """A face, then an empty frame: the tracked fit is rejected, the detector
    runs and finds nothing; the next face is detected again."""
    face = _face_frame(photo)
    empty = np.full_like(face, 110)
    aligner = faces.FaceAligner(64, redetect_every=8)
    results = [aligner.process(f) for f in (face, face, empty, face)]
    assert [r.crop is not None for r in results] == [True, True, False, True]
    assert [r.detected for r in results] == [True, False, True, True]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_redetect_every_is_refused(bad):
    with pytest.raises(ValueError, match="redetect_every"):
        faces.FaceAligner(64, redetect_every=bad)


# --------------------------------------------------------------------------
# Rotation.


def _tag_rotation(path, degrees: int) -> None:
    """Sets the display matrix of an MP4's video track (its `tkhd` box) to a
    clockwise turn of `degrees`, as phones tag clips filmed sideways.

    OpenCV's VideoWriter cannot write the tag (it has no such property), so
    the matrix of the file it wrote is patched in place: nine 32-bit
    fixed-point numbers at a fixed offset of the `tkhd` box (ISO 14496-12).
    """
    import struct

    raw = bytearray(path.read_bytes())
    start = raw.find(b"tkhd") - 4
    assert start > 0, f"no tkhd box in {path}"
    matrix_at = start + (48 if raw[start + 8] == 0 else 60)  # box version 0 or 1
    cos, sin = {0: (1, 0), 90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    fixed = [v * 0x10000 & 0xFFFFFFFF for v in (cos, sin, 0, -sin, cos, 0, 0, 0)]
    raw[matrix_at:matrix_at + 36] = struct.pack(">9I", *fixed, 0x40000000)
    path.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def sideways_video(tmp_path_factory, photo):
    """1 s at 25 fps of the face lying on its side (turned 90 degrees
    counter-clockwise; 240x320), with no rotation tag."""
    path = tmp_path_factory.mktemp("sideways") / "sideways.mp4"
    lying = cv2.rotate(_face_frame(photo), cv2.ROTATE_90_COUNTERCLOCKWISE)
    _write_video(path, [lying] * 25, 25.0)
    return path


def test_a_rotation_tagged_clip_comes_out_upright(tmp_path, sideways_video, aligner):
    tagged = tmp_path / "tagged.mp4"
    tagged.write_bytes(sideways_video.read_bytes())
    _tag_rotation(tagged, 90)  # "turn 90 degrees clockwise to display"
    cap = cv2.VideoCapture(str(tagged), cv2.CAP_FFMPEG)
    assert cap.get(cv2.CAP_PROP_ORIENTATION_META) == 90
    cap.release()
    info = faces.probe_video(tagged)
    assert (info.width, info.height) == (320, 240)  # as displayed
    track = faces.track_video(tagged, faces.sample_times(0.75), aligner)
    assert track.crops.shape[0] == 4 and track.found.all()


def test_rotate_turns_sideways_frames_upright(sideways_video, aligner, photo):
    times = faces.sample_times(0.75)
    assert not faces.track_video(sideways_video, times, aligner).found.any()
    turned = faces.FaceAligner(96, rotate=90)
    assert turned.settings()["rotate"] == 90
    track = faces.track_video(sideways_video, times, turned)
    assert track.found.all()
    turned.reset()
    assert turned.process(_face_frame(photo)).crop is None  # upright, turned: sideways


def test_the_no_face_message_suggests_rotate(sideways_video, aligner):
    from recola_sta.inference import predict

    times = faces.sample_times(0.75)
    assert faces.rotation_hint(sideways_video, times, aligner) == (90, 3, 3)
    info = faces.probe_video(sideways_video)
    message = predict.no_face_message(sideways_video, info, times, aligner)
    assert "try --rotate=90" in message and str(sideways_video) in message
    # A video without any face, however turned, keeps the --upsample advice.
    blank = sideways_video.with_name("blank.mp4")
    _write_video(blank, [np.full((240, 320, 3), 90, np.uint8)] * 5, 25.0)
    assert faces.rotation_hint(blank, [0.0, 0.1], aligner) is None
    message = predict.no_face_message(blank, faces.probe_video(blank), np.array([0.0, 0.1]),
                                      aligner)
    assert "--rotate" not in message and "--upsample=1" in message
