"""Tests for recola_sta.synthetic: a tiny corpus, checked with dlib itself."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import cv2
import dlib
import face_recognition_models
import numpy as np
import pytest
import scipy.signal

from recola_sta import io_utils
from recola_sta.data import corpora, face_animation, synthetic, synthetic_scenes

ROOT = pathlib.Path(__file__).resolve().parents[1]
DURATION_S = 8.0
SETTINGS = dict(num_train=1, num_dev=1, num_test=1, duration_s=DURATION_S, width=320, height=240,
                fps=25.0, seed=0, workers=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return synthetic.ensure_corpus(tmp_path_factory.mktemp("synthetic"), **SETTINGS)


def _read_frames(path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames, fps


def test_corpus_loads_in_recola_layout(corpus):
    recs = corpora.load_corpus(corpus, "synthetic")
    assert [(r.name, r.partition) for r in recs] == [
        ("train_1", "train"), ("dev_1", "dev"), ("test_1", "test")]
    for r in recs[:2]:
        np.testing.assert_allclose(r.times, np.arange(201) * 0.04, atol=1e-9)  # 0 .. 8 s
        assert r.label_period == pytest.approx(0.04)
        for target in ("valence", "arousal"):
            values = r.targets[target]
            assert values.min() >= -1.0 and values.max() <= 1.0
            assert np.ptp(values) > 1.0  # spans the range
            assert np.abs(np.diff(values)).max() < 0.1  # smooth at 40 ms
    assert not recs[2].labeled  # test labels are not written, as in RECOLA
    frames, fps = _read_frames(recs[0].video)
    assert fps == pytest.approx(25.0) and len(frames) == 200
    assert frames[0].shape == (240, 320, 3)
    text = (corpus / "ratings_gold_standard" / "valence" / "train_1.arff").read_text()
    assert "@attribute GoldStandard numeric" in text and "\ntrain_1,0.04," in text
    assert json.loads((corpus / synthetic.MARKER_NAME).read_text())["complete"] is True


def test_dlib_finds_the_face_and_the_mouth_shows_valence(corpus):
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    total = found = 0
    for rec in corpora.load_corpus(corpus, "synthetic"):
        frames, fps = _read_frames(rec.video)
        times = np.arange(0, len(frames) / fps, 0.25)  # the 4 fps samples
        heights, labels = [], []
        for t in times:
            rgb = frames[min(len(frames) - 1, int(round(t * fps)))]
            boxes = detector(rgb, 0)
            total += 1
            if not boxes:
                continue
            found += 1
            shape = predictor(rgb, max(boxes, key=lambda b: b.area()))
            p = np.array([[q.x, q.y] for q in shape.parts()], np.float64)
            left, right = p[36:42].mean(0), p[42:48].mean(0)
            iod = np.linalg.norm(right - left)
            normal = np.array([-(right - left)[1], (right - left)[0]]) / iod
            normal *= np.sign(normal[1])  # pointing down the face, mirror or not
            corners = 0.5 * (p[48] + p[54])
            heights.append(np.dot(corners - 0.5 * (left + right), normal) / iod)
            if rec.labeled:
                labels.append(np.interp(t, rec.times, rec.targets["valence"]))
        if rec.labeled:
            # Smiling raises the corners towards the eye line.
            r = np.corrcoef(heights, labels)[0, 1]
            assert r < -0.8, f"{rec.name}: corner height vs valence r = {r:.2f}"
    assert found / total >= 0.95, f"face found in {found}/{total} samples"


def test_ensure_corpus_completes_an_interrupted_corpus(corpus, tmp_path):
    out = tmp_path / "c"
    settings = dict(SETTINGS, num_dev=0, num_test=0, duration_s=2.0)
    synthetic.ensure_corpus(out, **settings)
    video = out / "recordings_video" / "train_1.mp4"
    label = out / "ratings_gold_standard" / "valence" / "train_1.arff"
    data, text = video.read_bytes(), label.read_text()
    # A finished corpus is left alone.
    mtime = video.stat().st_mtime_ns
    synthetic.ensure_corpus(out, **settings)
    assert video.stat().st_mtime_ns == mtime
    # Interrupted: marker says incomplete and a file is missing.
    marker = out / synthetic.MARKER_NAME
    marker.write_text(marker.read_text().replace('"complete": true', '"complete": false'))
    video.unlink()
    synthetic.ensure_corpus(out, **settings)
    assert video.read_bytes() == data and label.read_text() == text  # deterministic
    assert json.loads(marker.read_text())["complete"] is True
    with pytest.raises(ValueError, match="other settings"):
        synthetic.ensure_corpus(out, **dict(settings, seed=1))
    with pytest.raises(ValueError, match="not empty"):
        synthetic.ensure_corpus(tmp_path, **settings)
    with pytest.raises(ValueError, match="duration_s"):
        synthetic.ensure_corpus(tmp_path / "d", **dict(settings, duration_s=0.5))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recola_sta.synthetic", *args],
                          capture_output=True, text=True, timeout=180, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


TINY = ("--num_train=1", "--num_dev=1", "--num_test=0", "--duration_s=1", "--width=64",
        "--height=64")


@pytest.mark.slow
def test_cli_at_its_default_worker_count(tmp_path):
    # Two recordings and --workers at its default (2): a pool of two workers,
    # whose task the module run with -m pickles as __main__._render_task.
    done = _cli(f"--out={tmp_path / 'c'}", *TINY)
    assert done.returncode == 0, done.stderr
    assert "2 recordings" in done.stderr, done.stderr
    recordings = corpora.load_corpus(tmp_path / "c", "synthetic")
    assert [(r.name, r.labeled) for r in recordings] == [("train_1", True), ("dev_1", True)]


def test_cli_names_the_flag_of_a_bad_setting(tmp_path, call_cli):
    out = tmp_path / "c"
    done = call_cli("synthetic", f"--out={out}", *TINY, "--workers=0")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "synthetic: error: --workers=0: workers must be >= 1, got 0.")
    assert not out.exists()


SMALL = dict(num_train=1, num_dev=0, num_test=0, duration_s=1.0, width=64, height=64, workers=1)


def test_a_run_removes_the_temporaries_a_killed_run_left(tmp_path):
    out = synthetic.ensure_corpus(tmp_path / "c", **SMALL)
    video = out / "recordings_video" / "train_1.mp4"
    data = video.read_bytes()
    # What kill -9 leaves while a video or a label file is written; and the
    # user's own hidden files, which stay.
    prefix = io_utils.TEMP_PREFIX
    leftovers = [out / "recordings_video" / f"{prefix}train_2.mp4.a1b2c3d4.mp4",
                 out / "ratings_gold_standard" / "valence" / f"{prefix}train_2.arff.e5f6g7h8.tmp",
                 out / f"{prefix}synthetic.json.i9j0k1l2.tmp"]
    mine = [out / "recordings_video" / ".notes.v2.txt", out / ".env.local"]
    for path in leftovers + mine:
        path.write_bytes(b"partial")
    # The corpus is complete: nothing is rendered, the leftovers go.
    synthetic.ensure_corpus(out, **SMALL)
    assert not [p for p in out.rglob("*") if io_utils.is_temporary(p.name)]
    assert all(path.read_bytes() == b"partial" for path in mine)
    assert video.read_bytes() == data


# Holds a lock file, as another synthetic or train run would, until killed.
_HOLD_LOCK = """
import sys, time
from recola_sta import io_utils
with io_utils.exclusive_lock(sys.argv[1], "a corpus folder"):
    print("held", flush=True)
    time.sleep(300)
"""


@pytest.mark.slow
def test_a_second_writer_of_a_corpus_is_refused(tmp_path):
    out = tmp_path / "c"
    synthetic.ensure_corpus(out, **SMALL)
    # Interrupted: a recording to render.
    marker = out / synthetic.MARKER_NAME
    marker.write_text(marker.read_text().replace('"complete": true', '"complete": false'))
    (out / "recordings_video" / "train_1.mp4").unlink()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(out / synthetic.LOCK_NAME)],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(io_utils.LockedError, match=f"synthetic corpus folder {out}"):
            synthetic.ensure_corpus(out, **SMALL)
        assert not (out / "recordings_video" / "train_1.mp4").exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    synthetic.ensure_corpus(out, **SMALL)
    assert (out / "recordings_video" / "train_1.mp4").is_file()


def test_plans_are_deterministic_and_delay_shifts_labels():
    kwargs = dict(seed=4, duration_s=10.0, fps=25.0, annotation_delay_s=0.0)
    a = synthetic_scenes.plan_recording("train_3", "train", 3, **kwargs)
    b = synthetic_scenes.plan_recording("train_3", "train", 3, **kwargs)
    c = synthetic_scenes.plan_recording("train_4", "train", 4, **kwargs)
    np.testing.assert_array_equal(a.valence, b.valence)
    np.testing.assert_array_equal(a.tx, b.tx)
    assert not np.allclose(a.valence, c.valence)
    assert len(a.frame_times) == 250 and len(a.label_times) == 251
    np.testing.assert_allclose(a.valence_labels[::1][:250], a.valence, atol=1e-12)  # 40 ms = 1 frame
    delayed = synthetic_scenes.plan_recording("train_3", "train", 3, **dict(kwargs, annotation_delay_s=2.0))
    # The label at t shows the face at t - 2 s (frame 25 is t = 1 s; label row 75 is t = 3 s).
    assert delayed.valence_labels[75] == pytest.approx(delayed.valence[25], abs=1e-12)
    assert delayed.valence_labels.min() >= -1 and delayed.valence_labels.max() <= 1


def test_mouth_field_moves_the_corners_by_the_stated_amount():
    animator = face_animation.FaceAnimator(face_animation.astronaut_landmarks())
    for level in (0, -1):  # valence -1 and +1
        field = animator.mouth_table[level]
        assert np.hypot(field[..., 0], field[..., 1]).max() == pytest.approx(
            face_animation.MOUTH_SHIFT_PX, rel=0.05)
    # Nothing moves above the mouth region's top edge (eyes, brows).
    np.testing.assert_allclose(animator.mouth_table[:, 0], 0.0, atol=1e-3)


# ---------------------------------------------------------------------------
# The recola_like preset


def _load_corpus_stats():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "tools" / "corpus_stats.py"
    spec = importlib.util.spec_from_file_location("corpus_stats", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RL_SETTINGS = dict(num_train=1, num_dev=0, num_test=0, duration_s=2.0, width=320, height=240,
                   fps=25.0, seed=3, workers=1, preset="recola_like")


@pytest.fixture(scope="module")
def recola_like_corpus(tmp_path_factory):
    return synthetic.ensure_corpus(tmp_path_factory.mktemp("recola_like"), **RL_SETTINGS)


def test_recola_like_renders_deterministically_and_records_its_preset(recola_like_corpus, tmp_path):
    marker = json.loads((recola_like_corpus / synthetic.MARKER_NAME).read_text())
    assert marker["complete"] is True and marker["params"]["preset"] == "recola_like"
    rec = corpora.load_corpus(recola_like_corpus, "synthetic")[0]
    frames, _ = _read_frames(rec.video)
    assert len(frames) == 50 and frames[0].shape == (240, 320, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1.0  # it moves
    # Same seed, same bytes; another seed, another recording.
    again = synthetic.ensure_corpus(tmp_path / "again", **RL_SETTINGS)
    for sub in ("recordings_video/train_1.mp4", "ratings_gold_standard/valence/train_1.arff"):
        assert (again / sub).read_bytes() == (recola_like_corpus / sub).read_bytes(), sub
    other = synthetic.ensure_corpus(tmp_path / "other", **dict(RL_SETTINGS, seed=4))
    assert ((other / "recordings_video/train_1.mp4").read_bytes()
            != (recola_like_corpus / "recordings_video/train_1.mp4").read_bytes())


def test_preset_mismatch_is_refused_and_old_markers_mean_default(recola_like_corpus, tmp_path):
    with pytest.raises(ValueError, match="preset 'recola_like', not 'default'"):
        synthetic.ensure_corpus(recola_like_corpus, **dict(RL_SETTINGS, preset="default"))
    with pytest.raises(ValueError, match="preset must be one of"):
        synthetic.ensure_corpus(tmp_path / "x", **dict(RL_SETTINGS, preset="recola"))
    # A default corpus whose marker predates presets is still recognised as "default".
    out = tmp_path / "d"
    settings = dict(SETTINGS, num_dev=0, num_test=0, duration_s=1.0)
    synthetic.ensure_corpus(out, **settings)
    marker = out / synthetic.MARKER_NAME
    payload = json.loads(marker.read_text())
    assert payload["params"].pop("preset") == "default"
    marker.write_text(json.dumps(payload))
    video = out / "recordings_video" / "train_1.mp4"
    mtime = video.stat().st_mtime_ns
    synthetic.ensure_corpus(out, **settings)
    assert video.stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="preset 'default', not 'recola_like'"):
        synthetic.ensure_corpus(out, **dict(settings, preset="recola_like"))


def test_recola_like_speech_is_independent_of_slow_valence():
    corpus_stats = _load_corpus_stats()
    plan = synthetic_scenes.plan_recording("train_2", "train", 2, seed=0, duration_s=900.0, fps=25.0,
                                    annotation_delay_s=0.0, preset="recola_like")
    jaw = plan.jaw
    assert jaw.min() >= 0.0 and jaw.max() <= 1.0
    r = np.corrcoef(jaw, plan.valence)[0, 1]
    assert abs(r) < 0.05, f"jaw opening vs valence r = {r:.3f}"
    # Talk spurts and pauses: the jaw rests (closed) for a sizeable share of the time ...
    closed = np.mean(jaw < 1e-3)
    assert 0.25 < closed < 0.75, closed
    # ... and opens once per syllable, 2-6 times per second of talk.
    peaks = np.nonzero((jaw[1:-1] > jaw[:-2]) & (jaw[1:-1] >= jaw[2:]) & (jaw[1:-1] > 0.1))[0]
    talking_s = np.sum(jaw >= 1e-3) / 25.0
    assert 2.0 < len(peaks) / talking_s < 6.0
    # Valence changes over tens of seconds (the default preset's over seconds).
    tau = corpus_stats.autocorrelation_time(plan.valence_labels, synthetic_scenes.LABEL_PERIOD_S)
    default = synthetic_scenes.plan_recording("train_2", "train", 2, seed=0, duration_s=900.0, fps=25.0,
                                       annotation_delay_s=0.0)
    tau_default = corpus_stats.autocorrelation_time(default.valence_labels,
                                                    synthetic_scenes.LABEL_PERIOD_S)
    assert tau > 8.0 and tau > 2.0 * tau_default, (tau, tau_default)
    assert 0.0 < np.ptp(plan.valence_labels) <= 2.0


def test_recola_like_face_opens_with_jaw_and_smiles_with_valence():
    corpus_stats = _load_corpus_stats()
    animator = synthetic._animator(face_animation.astronaut_landmarks().tobytes(), "recola_like")
    plan = synthetic_scenes.plan_recording("train_1", "train", 1, seed=0, duration_s=0.04, fps=25.0,
                                    annotation_delay_s=0.0, preset="recola_like")
    plan.identity.accessory = "none"
    plan.occlusions = []
    plan.noise_sigma, plan.jpeg_quality[:] = 0.0, 95
    for trace in (plan.tx, plan.ty, plan.angle_deg, plan.yaw_deg, plan.pitch_deg, plan.blink):
        trace[:] = 0.0
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

    def measure(valence: float, jaw: float) -> tuple[float, float]:
        plan.valence[:], plan.jaw[:] = valence, jaw
        frame = next(synthetic_scenes.render_frames_recola_like(animator, plan, 320, 240))
        boxes = detector(frame, 0)
        assert boxes, (valence, jaw)
        shape = predictor(frame, boxes[0])
        return corpus_stats.face_measures(np.array([[q.x, q.y] for q in shape.parts()]))

    closed_open, closed_height = measure(0.0, 0.0)
    open_open, _ = measure(0.0, 1.0)
    assert open_open > closed_open + 0.08, (closed_open, open_open)
    _, frown_height = measure(-1.0, 0.0)
    _, smile_height = measure(1.0, 0.0)
    assert smile_height > closed_height > frown_height


def test_autocorrelation_time_of_hand_made_signals():
    corpus_stats = _load_corpus_stats()
    period, t_cos = 0.04, 20.0
    t = np.arange(100_000) * period  # 4000 s: 200 cycles, the biased estimator's taper is small
    x = 3.0 + np.cos(2 * np.pi * t / t_cos)  # the mean must be removed
    expected = t_cos * np.arccos(np.exp(-1.0)) / (2 * np.pi)  # 3.816 s
    assert corpus_stats.autocorrelation_time(x, period) == pytest.approx(expected, abs=0.01)
    assert corpus_stats.autocorrelation_time(x, 2 * period) == pytest.approx(2 * expected, abs=0.02)
    # An AR(1) process with coefficient a decorrelates in -period / ln(a) seconds.
    a = 0.98
    ar = scipy.signal.lfilter([1.0], [1.0, -a], np.random.default_rng(0).normal(size=400_000))
    assert corpus_stats.autocorrelation_time(ar, period) == pytest.approx(
        -period / np.log(a), rel=0.1)
    with pytest.raises(ValueError, match="constant"):
        corpus_stats.autocorrelation_time(np.ones(10), period)


def test_recola_like_annotation_delay_shifts_labels():
    kwargs = dict(seed=1, duration_s=10.0, fps=25.0, preset="recola_like")
    plain = synthetic_scenes.plan_recording("dev_2", "dev", 2, annotation_delay_s=0.0, **kwargs)
    np.testing.assert_allclose(plain.valence_labels[:250], plain.valence, atol=1e-12)
    delayed = synthetic_scenes.plan_recording("dev_2", "dev", 2, annotation_delay_s=2.0, **kwargs)
    # The label at t = 3 s (row 75) shows the face at t = 1 s (frame 25).
    assert delayed.valence_labels[75] == pytest.approx(delayed.valence[25], abs=1e-9)
    assert not np.allclose(delayed.valence_labels[:250], delayed.valence)
