"""Tests for recola_sta.metrics (NumPy metrics and the keras.ops pieces)."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from scipy import stats

from recola_sta import metrics
from recola_sta.model import losses

# Hand-computed: means 2.5 / 3.25, centred cross-products sum 5.5, sums of
# squares 5 (gold) and 6.75 (pred), squared errors [1, 0, 1, 1].
GOLD = np.array([1.0, 2.0, 3.0, 4.0])
PRED = np.array([2.0, 2.0, 4.0, 5.0])


def test_hand_computed_values():
    assert metrics.rmse(GOLD, PRED) == pytest.approx(np.sqrt(0.75), abs=1e-12)
    assert metrics.pcc(GOLD, PRED) == pytest.approx(5.5 / np.sqrt(5 * 6.75), abs=1e-12)
    # population: 2 * 1.375 / (1.25 + 1.6875 + 0.5625) = 11 / 14
    assert metrics.ccc(GOLD, PRED, "population") == pytest.approx(11 / 14, abs=1e-12)
    # avec: 2 * 1.375 / (5/3 + 2.25 + 0.5625) = 132 / 215
    assert metrics.ccc(GOLD, PRED, "avec") == pytest.approx(132 / 215, abs=1e-12)
    # Without a convention, CCC is the AVEC (N - 1) one, by value: the two
    # conventions differ on these numbers, so a changed default shows.
    assert metrics.ccc(GOLD, PRED) == pytest.approx(132 / 215, abs=1e-12)
    assert metrics.score(GOLD, PRED)["ccc"] == pytest.approx(132 / 215, abs=1e-12)


def test_nan_pairs_are_dropped():
    gold = np.append(GOLD, [np.nan, 7.0])
    pred = np.append(PRED, [3.0, np.nan])
    assert metrics.score(gold, pred) == metrics.score(GOLD, PRED)


def test_pcc_matches_scipy_pearsonr():
    rng = np.random.default_rng(1)
    gold = rng.normal(size=500)
    pred = 0.3 * gold + rng.normal(size=500)
    expected = stats.pearsonr(gold, pred)[0]
    assert metrics.pcc(gold, pred) == pytest.approx(expected, abs=1e-12)


def test_identity_and_negation_per_convention():
    raw = np.random.default_rng(2).normal(0.3, 1.0, size=50)
    n = raw.size
    # ccc(y, -y) = -2 var / (2 var + (2 mean)^2): -1 needs a zero-mean y.
    var = np.var(raw)
    assert metrics.ccc(raw, -raw, "population") == pytest.approx(
        -2 * var / (2 * var + 4 * raw.mean() ** 2), abs=1e-12)
    y = raw - raw.mean()
    # N throughout: exactly +-1 up to rounding.
    assert metrics.ccc(y, y, "population") == pytest.approx(1.0, abs=1e-12)
    assert metrics.ccc(y, -y, "population") == pytest.approx(-1.0, abs=1e-12)
    # Challenge convention: 2 var/N over 2 var/(N-1) = (N - 1) / N.
    assert metrics.ccc(y, y, "avec") == pytest.approx((n - 1) / n, abs=1e-12)
    assert metrics.ccc(y, -y, "avec") == pytest.approx(-(n - 1) / n, abs=1e-12)
    assert metrics.pcc(y, y) == pytest.approx(1.0, abs=1e-12)
    assert metrics.pcc(y, -y) == pytest.approx(-1.0, abs=1e-12)


def test_constant_inputs_are_defined_without_warnings():
    gold = np.array([0.1, -0.2, 0.4, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.ccc(gold, np.full(4, 0.3)) == 0.0
        assert metrics.ccc(gold, np.full(4, 0.3), "population") == 0.0
        assert metrics.pcc(gold, np.full(4, 0.3)) == 0.0
        assert metrics.ccc(np.full(4, 0.2), np.full(4, 0.3)) == 0.0
        assert metrics.ccc(np.full(4, 0.2), np.full(4, 0.2)) == 1.0
        assert metrics.ccc([0.5], [0.5]) == 1.0
        score = metrics.score(gold, np.full(4, 0.3))
    assert all(np.isfinite(v) for v in score.values())


def test_conventions_differ_by_closed_form_on_short_series():
    rng = np.random.default_rng(3)
    gold, pred = rng.normal(size=8), rng.normal(0.5, 2.0, size=8)
    n = gold.size
    cov = np.mean((gold - gold.mean()) * (pred - pred.mean()))
    var_sum, shift = np.var(gold) + np.var(pred), (gold.mean() - pred.mean()) ** 2
    population = metrics.ccc(gold, pred, "population")
    avec = metrics.ccc(gold, pred, "avec")
    assert population == pytest.approx(2 * cov / (var_sum + shift), abs=1e-12)
    # avec multiplies the variances (not the covariance) by N / (N - 1).
    expected_ratio = (var_sum + shift) / (n / (n - 1) * var_sum + shift)
    assert avec / population == pytest.approx(expected_ratio, abs=1e-12)
    assert abs(avec - population) > 0.01


def test_conventions_agree_on_long_series():
    rng = np.random.default_rng(0)
    gold = rng.normal(size=100_000)
    pred = 0.6 * gold + 0.8 * rng.normal(size=100_000) + 0.1
    assert abs(metrics.ccc(gold, pred, "avec")
               - metrics.ccc(gold, pred, "population")) < 1e-4


def test_score_partition_uses_the_concatenation():
    rng = np.random.default_rng(4)
    golds = [rng.normal(size=30), rng.normal(size=20) + 1.0]
    preds = [g + rng.normal(0, 0.5, g.size) - 0.5 for g in golds]
    result = metrics.score_partition(golds, preds, names=["dev_1", "dev_2"])
    assert set(result["per_recording"]) == {"dev_1", "dev_2"}
    assert result["all"] == metrics.score(np.concatenate(golds), np.concatenate(preds))
    assert result["per_recording"]["dev_2"] == metrics.score(golds[1], preds[1])
    mean_of_ccc = np.mean([s["ccc"] for s in result["per_recording"].values()])
    assert result["all"]["ccc"] != pytest.approx(mean_of_ccc, abs=1e-3)
    assert set(metrics.score_partition(golds, preds)["per_recording"]) == {"0", "1"}


@pytest.mark.parametrize("gold, pred, match", [
    ([1.0, 2.0], [1.0, 2.0, 3.0], "same shape"),
    ([], [], "empty"),
    ([np.nan, 1.0], [1.0, np.nan], "No frame has both"),
    ([np.nan, np.nan], [np.nan, np.nan], "No frame has both"),
    ([1.0, np.inf], [1.0, 2.0], "infinite"),
])
def test_bad_input_raises(gold, pred, match):
    for fn in (metrics.rmse, metrics.pcc, metrics.ccc, metrics.score):
        with pytest.raises(ValueError, match=match):
            fn(gold, pred)


def test_bad_convention_and_partition_input_raise():
    with pytest.raises(ValueError, match="'sample'"):
        metrics.ccc(GOLD, PRED, convention="sample")
    with pytest.raises(ValueError, match="'sample'"):
        losses.CCCMetric(convention="sample")
    with pytest.raises(ValueError, match="2 gold arrays and 1"):
        metrics.score_partition([GOLD, GOLD], [PRED])
    with pytest.raises(ValueError, match="Recording 'b'"):
        metrics.score_partition([GOLD, GOLD], [PRED, PRED[:2]], names=["a", "b"])
    with pytest.raises(ValueError, match="repeat"):
        metrics.score_partition([GOLD, GOLD], [PRED, PRED], names=["a", "a"])


def _batches(seed: int = 5):
    """Three (B, T, 1) batches with (B, T) 0/1 weights; some masked labels are NaN."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(3):
        y = rng.normal(0.1, 0.2, size=(2, 8, 1))
        p = 0.7 * y + rng.normal(0.05, 0.1, size=y.shape)
        w = (rng.random((2, 8)) > 0.3).astype("float32")
        y[..., 0][w == 0] = np.nan  # never seen through a weight of 0
        batches.append((y.astype("float32"), p.astype("float32"), w))
    return batches


@pytest.mark.parametrize("convention", metrics.CONVENTIONS)
def test_ccc_metric_equals_ccc_of_concatenated_unmasked_frames(convention):
    batches = _batches()
    metric = losses.CCCMetric(convention=convention)
    for y, p, w in batches:
        metric.update_state(y, p, sample_weight=w)
    kept = [(y[..., 0][w > 0], p[..., 0][w > 0]) for y, p, w in batches]
    expected = metrics.ccc(np.concatenate([k[0] for k in kept]),
                           np.concatenate([k[1] for k in kept]), convention)
    assert float(metric.result()) == pytest.approx(expected, abs=1e-5)
    # Not the mean of per-batch CCCs.
    per_batch = np.mean([metrics.ccc(g, q, convention) for g, q in kept])
    assert abs(per_batch - expected) > 1e-3
    metric.reset_state()
    assert float(metric.result()) == 0.0
    clone = losses.CCCMetric.from_config(metric.get_config())
    assert clone.convention == convention and clone.name == metric.name


def test_ccc_loss_masks_weighted_frames_and_serializes():
    y, p, w = _batches()[0]
    expected = 1.0 - metrics.ccc(y[..., 0][w > 0], p[..., 0][w > 0], "population")
    loss = losses.CCCLoss()(y, p, sample_weight=w)
    assert float(loss) == pytest.approx(expected, abs=1e-5)
    y_full = np.nan_to_num(y)
    assert float(losses.ccc_loss(y_full, p)) == pytest.approx(
        1.0 - metrics.ccc(y_full, p, "population"), abs=1e-5)
    assert float(losses.ccc_loss(y_full, y_full)) == pytest.approx(0.0, abs=1e-6)
    config = keras.saving.serialize_keras_object(losses.CCCLoss(convention="avec"))
    assert keras.saving.deserialize_keras_object(config).convention == "avec"
    fn = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(
        losses.ccc_loss))
    assert fn is losses.ccc_loss


@pytest.mark.slow
def test_ccc_loss_decreases_with_gradient_steps():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(32, 8, 3)).astype("float32")
    y = (x @ np.array([[0.5], [-0.2], [0.1]]) + 0.3).astype("float32")
    w = np.ones((32, 8), "float32")
    w[:, -2:] = 0.0
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 3)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.05), loss=losses.CCCLoss(),
                  metrics=[losses.CCCMetric()])
    history = model.fit(x, y, sample_weight=w, batch_size=32, epochs=15, verbose=0)
    loss_history = history.history["loss"]
    assert loss_history[-1] < 0.5 * loss_history[0]
    assert history.history["ccc"][-1] > history.history["ccc"][0]


def test_a_diverged_model_scores_nan_never_a_perfect_ccc():
    """NaN or infinite predictions (a diverged model) give a NaN CCC, not the
    1.0 of two equal constants, which would make the NaN model the best epoch."""
    y, p, w = _batches()[0]
    for bad in (np.nan, np.inf):
        broken = p.copy()
        broken[0, 0, 0] = bad
        metric = losses.CCCMetric()
        metric.update_state(y, broken, sample_weight=np.ones_like(w))
        assert np.isnan(float(metric.result()))
        assert np.isnan(float(losses.CCCLoss()(np.nan_to_num(y), broken)))
    # One diverged target makes the mean over targets NaN too.
    two = np.concatenate([y, y], axis=-1)
    preds = np.concatenate([p, np.full_like(p, np.nan)], axis=-1)
    mean = losses.MeanCCCMetric(2)
    mean.update_state(np.nan_to_num(two), preds)
    assert np.isnan(float(mean.result()))
    # A NaN prediction on a masked frame (weight 0) is not seen.
    masked = p.copy()
    masked[w == 0] = np.nan
    metric = losses.CCCMetric()
    metric.update_state(y, masked, sample_weight=w)
    assert np.isfinite(float(metric.result()))
    # The defined values stay: two equal constants 1, no weighted frame 0.
    ones = np.ones((1, 4, 1), "float32")
    metric = losses.CCCMetric()
    metric.update_state(ones, ones)
    assert float(metric.result()) == 1.0
    metric.reset_state()
    metric.update_state(ones, np.full_like(ones, np.nan), sample_weight=np.zeros((1, 4)))
    assert float(metric.result()) == 0.0
