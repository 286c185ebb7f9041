"""Tests for recola_sta.postprocess (the AVEC 2016 chain)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recola_sta import metrics
from recola_sta.evaluation.postprocess import PostProcessor, median_windows, shift_candidates, shift_forward

FRAME = 0.04  # RECOLA label period


def _gold(rng, n=1500):
    """A smooth valence-like trace: sum of slow sinusoids, mean ~0.1, std ~0.14."""
    t = np.arange(n) * FRAME
    trace = np.full(n, 0.1)
    for _ in range(6):
        trace += rng.normal(0, 0.1) * np.sin(
            2 * np.pi * t / rng.uniform(4, 40) + rng.uniform(0, 2 * np.pi))
    return trace


def _corrupt(rng, golds, noise):
    return [0.5 * g + 0.3 + rng.normal(0, noise, g.size) for g in golds]


def test_chain_undoes_affine_corruption_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    golds = [_gold(rng) for _ in range(4)]
    # std(gold) / std(pred) counts residual noise as signal, so the fitted
    # scale is 2 / sqrt(1 + noise_var / (0.25 var(gold))): noise std 0.01
    # against 0.5 * gold's ~0.07 keeps that bias near 1 %.
    preds = _corrupt(rng, golds, noise=0.01)
    pp = PostProcessor.fit(golds, preds, frame_period=FRAME)

    assert pp.kept_steps[-2:] == ["center", "scale"]
    assert "time_shift" not in pp.kept_steps
    p = pp.params
    # Effective map p -> s * p + (s * b + c - s * c) should invert 0.5 g + 0.3,
    # i.e. be g = 2 p - 0.6.
    slope = p["scale"]
    intercept = p["scale"] * p["bias"] + p["scale_center"] * (1 - p["scale"])
    assert slope == pytest.approx(2.0, rel=0.05)
    assert intercept == pytest.approx(-0.6, rel=0.05)
    gold_mean = np.mean(np.concatenate(golds))
    assert p["bias"] == pytest.approx(0.5 * gold_mean - 0.3, rel=0.05)

    fresh_golds = [_gold(rng) for _ in range(2)]
    fresh_preds = _corrupt(rng, fresh_golds, noise=0.01)
    before = metrics.ccc(np.concatenate(fresh_golds), np.concatenate(fresh_preds))
    fixed = pp.apply(fresh_preds)
    after = metrics.ccc(np.concatenate(fresh_golds), np.concatenate(fixed))
    assert after > before + 0.3

    path = tmp_path / "postprocess.json"
    pp.save(path)
    loaded = PostProcessor.load(path)
    assert loaded.kept_steps == pp.kept_steps and loaded.params == pp.params
    for a, b in zip(loaded.apply(fresh_preds), fixed):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.apply(fresh_preds[0]), fixed[0])
    assert PostProcessor.from_json(pp.to_json()).params == pp.params
    text = pp.describe()
    assert "center" in text and "kept" in text and "bias" in text


def test_median_window_chosen_on_noisy_trace_not_on_clean_one():
    rng = np.random.default_rng(1)
    golds = [_gold(rng) for _ in range(3)]
    noisy = [g + rng.normal(0, 0.1, g.size) for g in golds]
    pp = PostProcessor.fit(golds, noisy, frame_period=FRAME)
    assert "median" in pp.kept_steps
    assert pp.params["median_window"] % 2 == 1
    assert pp.params["median_window"] >= 5
    step = next(s for s in pp.tuning["steps"] if s["step"] == "median")
    assert step["ccc_after"] >= 1.02 * step["ccc_before"]

    clean = [0.5 * g + 0.3 for g in golds]
    pp_clean = PostProcessor.fit(golds, clean, frame_period=FRAME)
    assert "median" not in pp_clean.kept_steps
    assert "median_window" not in pp_clean.params


def test_scaling_about_zero_moves_the_mean_that_centering_matched():
    rng = np.random.default_rng(2)
    golds = [_gold(rng) for _ in range(2)]  # mean ~0.12, std ~0.15
    preds = _corrupt(rng, golds, noise=0.0)
    # The challenge scripts' literal pred * scale: after centering, scaling by
    # 2 about zero doubles the mean, and here that costs more CCC than
    # matching the spread gains, so the step is dropped.
    zero = PostProcessor.fit(golds, preds, frame_period=FRAME, scale_about="zero")
    step = next(s for s in zero.tuning["steps"] if s["step"] == "scale")
    assert step["scale_center"] == 0.0 and step["scale"] == pytest.approx(2.0)
    assert step["ccc_after"] < step["ccc_before"]
    assert zero.kept_steps == ["center"]
    # About the mean (the default), the same data recover the gold.
    mean = PostProcessor.fit(golds, preds, frame_period=FRAME)
    assert mean.kept_steps == ["center", "scale"]
    np.testing.assert_allclose(mean.apply(preds), golds, atol=1e-9)
    x = np.array([0.1, 0.2])
    p = mean.params
    center = p["scale_center"]
    np.testing.assert_allclose(mean.apply(x),
                               center + p["scale"] * (x + p["bias"] - center))


def test_time_shift_finds_the_annotation_delay():
    rng = np.random.default_rng(3)
    delay = 30  # frames = 1.2 s, on the 0.4 s search grid
    traces = [_gold(rng, 1500 + delay) for _ in range(3)]
    # The annotation lags the face by `delay`: pred[t] = trace[t + delay] is
    # what the face shows at t, gold[t] = trace[t] is rated `delay` later.
    golds = [trace[:-delay] for trace in traces]
    preds = [trace[delay:] for trace in traces]
    pp = PostProcessor.fit(golds, preds, frame_period=FRAME, time_shift=True)
    assert pp.kept_steps[0] == "time_shift"
    assert pp.params["shift_frames"] == delay
    off = PostProcessor.fit(golds, preds, frame_period=FRAME)
    assert "time_shift" not in off.kept_steps
    np.testing.assert_array_equal(shift_forward([1.0, 2.0, 3.0, 4.0], 2), [1, 1, 1, 2])


def test_search_grids():
    windows = median_windows(FRAME, 20.0)
    assert windows[0] == 5 and windows[-1] == 499 and len(windows) == 100
    assert all(w % 2 == 1 and w * FRAME <= 20.0 for w in windows)
    assert median_windows(0.1, 20.0) == list(range(3, 200, 2))
    assert shift_candidates(FRAME, 8.0, 0.4) == list(range(10, 201, 10))


def test_fit_rejects_bad_input():
    gold, pred = np.linspace(0, 1, 50), np.linspace(0, 2, 50)
    with pytest.raises(ValueError, match="gold has 50 frames, pred has 49"):
        PostProcessor.fit([gold], [pred[:-1]], frame_period=FRAME)
    with pytest.raises(ValueError, match="1 gold recordings and 2"):
        PostProcessor.fit([gold], [pred, pred], frame_period=FRAME)
    with pytest.raises(ValueError, match="no recording"):
        PostProcessor.fit([], [], frame_period=FRAME)
    with pytest.raises(ValueError, match="all NaN"):
        PostProcessor.fit([np.full(50, np.nan)], [pred], frame_period=FRAME)
    with pytest.raises(ValueError, match="finite"):
        PostProcessor.fit([gold], [np.where(gold > 0.5, np.nan, pred)],
                          frame_period=FRAME)
    with pytest.raises(ValueError, match="frame_period"):
        PostProcessor.fit([gold], [pred], frame_period=0.0)
    with pytest.raises(ValueError, match="'median'"):
        PostProcessor.fit([gold], [pred], frame_period=FRAME, convention="median")


def _stored(**changes):
    data = {"format": "recola_sta.postprocess/1", "frame_period": 0.04,
            "convention": "avec", "kept_steps": ["median", "center", "scale"],
            "params": {"median_window": 25, "bias": -0.25, "scale": 2.0,
                       "scale_center": 0.1}}
    data.update(changes)
    return data


def test_load_rejects_non_finite_and_missing_parameters(tmp_path):
    path = tmp_path / "pp.json"
    bad = _stored()
    bad["params"]["scale"] = float("nan")
    path.write_text(json.dumps(bad))  # json writes NaN as a bare token
    with pytest.raises(ValueError, match=r"pp\.json.*params\.scale.*not finite"):
        PostProcessor.load(path)
    path.write_text(json.dumps(_stored(frame_period=float("inf"))))
    with pytest.raises(ValueError, match=r"pp\.json.*frame_period"):
        PostProcessor.load(path)
    missing = _stored()
    del missing["params"]["bias"]
    path.write_text(json.dumps(missing))
    with pytest.raises(ValueError, match=r"pp\.json.*missing key 'params\.bias'"):
        PostProcessor.load(path)
    no_steps = _stored()
    del no_steps["kept_steps"]
    path.write_text(json.dumps(no_steps))
    with pytest.raises(ValueError, match="missing key 'kept_steps'"):
        PostProcessor.load(path)
    path.write_text(json.dumps(_stored(kept_steps=["scale", "center"])))
    with pytest.raises(ValueError, match="kept_steps"):
        PostProcessor.load(path)
    with pytest.raises(FileNotFoundError, match="absent.json"):
        PostProcessor.load(tmp_path / "absent.json")
    ok = PostProcessor.from_json(json.dumps(_stored()))
    # 0.3 - 0.25 = 0.05, then 0.1 + 2 * (0.05 - 0.1) = 0.
    np.testing.assert_allclose(ok.apply(np.full(40, 0.3)), np.zeros(40), atol=1e-12)


@pytest.mark.parametrize("time_shift,scale_about", [(False, "mean"), (True, "zero")])
def test_apply_on_the_tuning_data_reproduces_the_fit(time_shift, scale_about):
    """Each step's apply is the transform its fit scored: applying the fitted
    chain to the tuning predictions gives the CCC the fit reported at its end."""
    rng = np.random.default_rng(5)
    golds = [np.cumsum(rng.normal(0, 0.05, n)) for n in (300, 420)]
    preds = [np.roll(0.4 * g, -6) + rng.normal(0.3, 0.15, g.size) for g in golds]
    pp = PostProcessor.fit(golds, preds, frame_period=0.04, time_shift=time_shift,
                           scale_about=scale_about)
    assert set(pp.kept_steps) >= {"median", "center", "scale"}
    assert ("time_shift" in pp.kept_steps) == time_shift
    out = pp.apply(preds)
    assert metrics.ccc(np.concatenate(golds), np.concatenate(out)) == pytest.approx(
        pp.tuning["ccc_output"], abs=1e-12)
    assert pp.tuning["ccc_output"] > pp.tuning["ccc_input"]
