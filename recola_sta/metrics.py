"""RMSE, Pearson's CC and Lin's CCC (paper eq. 4), in NumPy and in keras.ops.

Challenge conventions (AVEC 2015/2016, AV+EC 2017):

* Scores are computed on the concatenation of all recordings of a partition,
  not averaged per recording: `score_partition` returns both, and only its
  `"all"` entry is comparable with the paper's tables.
* Missing values are NaN and the challenge code skips them (Matlab's `nanmean`,
  `nanvar`): every NumPy function here drops the frames where gold or
  prediction is NaN before computing anything.
* The challenge's CCC divides the covariance by N but the variances by N - 1
  (Matlab's `nanvar`). That is the `"avec"` convention and the default
  (`DEFAULT_CONVENTION`) of every reported table. `"population"` divides by N
  throughout, as most toolkits (and the AVEC 2018 Python scripts) do. Under
  `"avec"` a series compared with itself scores (N - 1) / N, not 1; the two
  conventions differ by O(1/N), about 1e-5 on a 5-minute RECOLA recording.

Degenerate inputs have a defined value instead of a NaN or a warning
(a NaN or infinite prediction is not degenerate but a diverged model: the
Keras CCC then is NaN, never a score that could select it):
`pcc` is 0 when either series is constant (no linear relation can be
measured); `ccc` is 0 when exactly one series is constant (its covariance is 0
and its denominator is positive, so this is the formula's own value, e.g. a
network that collapsed to the label mean), 0 when both are constant but
different, and 1 when both are constant and equal (perfect agreement; the
formula would give 0 / 0).

The Keras pieces use only `keras.ops` and so run on any backend: `CCCMetric`
accumulates moments over batches (the CCC of every frame seen, honouring
sample weights) and `CCCLoss` / `ccc_loss` give 1 - CCC as a training loss
beside the paper's MSE.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops

CONVENTIONS = ("avec", "population")
# Every table this project reports uses this convention (the challenge's own).
DEFAULT_CONVENTION = "avec"


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(
            f"Unknown CCC convention {convention!r}; expected one of "
            f"{CONVENTIONS}. Received: convention={convention!r}")
    return convention


def _valid_pairs(gold, pred) -> tuple[np.ndarray, np.ndarray]:
    """Returns float64 1-D copies of the pairs where neither value is NaN.

    Raises:
        ValueError: shapes differ, either array is empty, an array holds an
            infinity, or no pair is left once NaNs are dropped.
    """
    gold = np.asarray(gold, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if gold.shape != pred.shape:
        raise ValueError(
            "gold and pred must have the same shape (one prediction per "
            f"labelled frame). Received: gold.shape={gold.shape}, "
            f"pred.shape={pred.shape}")
    if gold.size == 0:
        raise ValueError("gold and pred are empty: nothing to score.")
    gold, pred = gold.ravel(), pred.ravel()
    for name, values in (("gold", gold), ("pred", pred)):
        if np.isinf(values).any():
            raise ValueError(
                f"{name} holds {int(np.isinf(values).sum())} infinite values; "
                "only NaN is accepted as 'missing'.")
    keep = ~(np.isnan(gold) | np.isnan(pred))
    if not keep.any():
        raise ValueError(
            f"No frame has both gold and pred (all {gold.size} pairs contain "
            "a NaN): nothing to score.")
    return gold[keep], pred[keep]


def _moments(gold: np.ndarray, pred: np.ndarray, convention: str):
    """Means, variances and covariance under `convention` (pairs already valid)."""
    n = gold.size
    mean_g, mean_p = gold.mean(), pred.mean()
    dg, dp = gold - mean_g, pred - mean_p
    cov = np.dot(dg, dp) / n
    # Matlab's nanvar of one value is 0, so N - 1 is floored at 1.
    var_div = max(n - 1, 1) if convention == "avec" else n
    var_g = np.dot(dg, dg) / var_div
    var_p = np.dot(dp, dp) / var_div
    return mean_g, mean_p, var_g, var_p, cov


def rmse(gold, pred) -> float:
    """Root mean square error over the frames where both values are present."""
    gold, pred = _valid_pairs(gold, pred)
    return float(np.sqrt(np.mean(np.square(gold - pred))))


def pcc(gold, pred) -> float:
    """Pearson's correlation coefficient; 0 when either series is constant.

    The normalisation (N or N - 1) cancels, so there is no convention to pick.
    """
    gold, pred = _valid_pairs(gold, pred)
    dg, dp = gold - gold.mean(), pred - pred.mean()
    denom = np.sqrt(np.dot(dg, dg) * np.dot(dp, dp))
    if denom == 0.0:
        return 0.0
    return float(np.clip(np.dot(dg, dp) / denom, -1.0, 1.0))


def ccc(gold, pred, convention: str = DEFAULT_CONVENTION) -> float:
    """Lin's concordance correlation coefficient (paper eq. 4).

    CCC = 2 cov(g, p) / (var(g) + var(p) + (mean(g) - mean(p))^2).

    Args:
        gold: labels, any shape; NaN marks a missing frame.
        pred: predictions, same shape; NaN marks a missing frame.
        convention: `"avec"` (covariance / N, variances / (N - 1), the
            challenge scripts) or `"population"` (N throughout).

    Returns:
        The CCC of the frames where both values are present. Constant
        inputs: see the module docstring (0, or 1 for two equal constants).

    Raises:
        ValueError: unknown convention, different shapes, empty or all-NaN
            input.
    """
    check_convention(convention)
    gold, pred = _valid_pairs(gold, pred)
    mean_g, mean_p, var_g, var_p, cov = _moments(gold, pred, convention)
    denom = var_g + var_p + (mean_g - mean_p) ** 2
    if denom == 0.0:
        return 1.0
    return float(2.0 * cov / denom)


def score(gold, pred, convention: str = DEFAULT_CONVENTION) -> dict[str, float]:
    """The paper's three metrics: `{"rmse": ..., "cc": ..., "ccc": ...}`."""
    check_convention(convention)
    return {"rmse": rmse(gold, pred), "cc": pcc(gold, pred),
            "ccc": ccc(gold, pred, convention)}


def score_partition(golds: Sequence[np.ndarray], preds: Sequence[np.ndarray],
                    names: Sequence[str] | None = None,
                    convention: str = DEFAULT_CONVENTION) -> dict:
    """Scores a partition as the challenge does, and each recording for reference.

    Args:
        golds: one 1-D label array per recording (at the label rate).
        preds: one prediction array per recording, same lengths as `golds`.
        names: recording names for the per-recording entries; default
            "0", "1", ...
        convention: CCC convention, see `ccc`.

    Returns:
        `{"all": score of the concatenation, "per_recording": {name: score}}`.
        Only `"all"` is comparable with challenge results.

    Raises:
        ValueError: the sequences differ in length or are empty, names repeat,
            or a recording fails `score`'s checks (the message names it).
    """
    check_convention(convention)
    golds, preds = list(golds), list(preds)
    if not golds:
        raise ValueError("score_partition got no recordings.")
    if len(golds) != len(preds):
        raise ValueError(
            f"score_partition needs one prediction per recording. Received: "
            f"{len(golds)} gold arrays and {len(preds)} prediction arrays.")
    names = [str(i) for i in range(len(golds))] if names is None else [
        str(name) for name in names]
    if len(names) != len(golds):
        raise ValueError(f"Received {len(names)} names for {len(golds)} recordings.")
    if len(set(names)) != len(names):
        raise ValueError(f"Recording names repeat: {names}")
    per_recording = {}
    for name, gold, pred in zip(names, golds, preds):
        gold = np.asarray(gold, dtype=np.float64).ravel()
        pred = np.asarray(pred, dtype=np.float64).ravel()
        try:
            per_recording[name] = score(gold, pred, convention)
        except ValueError as err:
            raise ValueError(f"Recording {name!r}: {err}") from err
    all_gold = np.concatenate([np.asarray(g, np.float64).ravel() for g in golds])
    all_pred = np.concatenate([np.asarray(p, np.float64).ravel() for p in preds])
    return {"all": score(all_gold, all_pred, convention),
            "per_recording": per_recording}


# --------------------------------------------------------------------------
# Keras (backend-agnostic: keras.ops only)
# --------------------------------------------------------------------------

def _flat_weighted(y_true, y_pred, sample_weight, dtype, columns=None):
    """Flattens labels, predictions and weights; zero-weight frames are zeroed.

    Weights of shape (B, T) are broadcast over a trailing channel axis of
    (B, T, 1) labels; weights of the labels' own shape (B, T, K) weight each
    target on its own. Labels of weight-0 frames are replaced by 0 so that a
    NaN label on a masked frame cannot poison the sums. `columns=None` gives
    1-D arrays; `columns=K` gives (N, K), one column per target.
    """
    y_true = ops.cast(y_true, dtype)
    y_pred = ops.cast(y_pred, dtype)
    if sample_weight is None:
        weight = ops.ones_like(y_true)
    else:
        weight = ops.cast(sample_weight, dtype)
        while len(weight.shape) < len(y_true.shape):
            weight = ops.expand_dims(weight, -1)
        weight = ops.broadcast_to(weight, ops.shape(y_true))
    y_pred = ops.broadcast_to(y_pred, ops.shape(y_true))
    shape = (-1,) if columns is None else (-1, columns)
    weight = ops.reshape(weight, shape)
    present = weight > 0
    y_true = ops.where(present, ops.reshape(y_true, shape), 0.0)
    y_pred = ops.where(present, ops.reshape(y_pred, shape), 0.0)
    return y_true, y_pred, weight


def _select_target(y_true, y_pred, sample_weight, index):
    """Target `index` of (B, T, K) labels and predictions, as (B, T, 1), with
    its own weights when they are per target (B, T, K)."""
    if sample_weight is not None and len(sample_weight.shape) == len(y_true.shape):
        sample_weight = sample_weight[..., index]
    return y_true[..., index:index + 1], y_pred[..., index:index + 1], sample_weight


def _batch_moments(y_true, y_pred, weight, axis=None):
    """Weighted count, means, centred sums of squares and of cross-products
    (over everything, or per column with `axis=0`)."""
    count = ops.sum(weight, axis=axis)
    safe = ops.maximum(count, 1e-12)
    mean_t = ops.sum(weight * y_true, axis=axis) / safe
    mean_p = ops.sum(weight * y_pred, axis=axis) / safe
    dt, dp = y_true - mean_t, y_pred - mean_p
    return (count, mean_t, mean_p, ops.sum(weight * dt * dt, axis=axis),
            ops.sum(weight * dp * dp, axis=axis), ops.sum(weight * dt * dp, axis=axis))


def _merge_moments(old, new):
    """Chan et al.'s pairwise merge of two sets of `_batch_moments`."""
    n_a, mt_a, mp_a, m2t_a, m2p_a, c_a = old
    n_b, mt_b, mp_b, m2t_b, m2p_b, c_b = new
    n = n_a + n_b
    frac = n_b / ops.maximum(n, 1e-12)
    cross = n_a * frac  # n_a * n_b / n
    d_t, d_p = mt_b - mt_a, mp_b - mp_a
    return (n, mt_a + d_t * frac, mp_a + d_p * frac,
            m2t_a + m2t_b + d_t * d_t * cross,
            m2p_a + m2p_b + d_p * d_p * cross,
            c_a + c_b + d_t * d_p * cross)


def _ccc_from_moments(count, mean_t, mean_p, m2_t, m2_p, c_tp, convention):
    """CCC from accumulated moments, with the NumPy version's conventions.

    Returns 1 for two equal constants, and 0 when no frame has weight. A
    NaN or infinite prediction (a diverged model) makes the moments
    non-finite and the CCC NaN: it must never pass for the perfect score
    that `denom > 0` being false would otherwise give.
    """
    safe = ops.maximum(count, 1e-12)
    cov = c_tp / safe
    var_div = ops.maximum(count - 1.0, 1.0) if convention == "avec" else safe
    denom = m2_t / var_div + m2_p / var_div + ops.square(mean_t - mean_p)
    value = ops.where(denom > 0, 2.0 * cov / ops.maximum(denom, 1e-30), 1.0)
    value = ops.where(ops.logical_and(ops.isfinite(denom), ops.isfinite(cov)), value,
                      float("nan"))
    return ops.where(count > 0, value, 0.0)


@keras.saving.register_keras_serializable(package="recola_sta")
class CCCMetric(keras.metrics.Metric):
    """CCC of every frame seen since the last reset, for training logs.

    Each batch's weighted moments are merged into running ones with Chan et
    al.'s pairwise update (stable in float32, unlike raw sums of squares), so
    the result is the CCC of the concatenation of all frames seen, not an
    average of per-batch CCCs: `metrics.ccc` on the concatenated frames gives
    the same number (to float32 precision).

    Args:
        convention: `"avec"` (default, as the reported tables) or
            `"population"`. Under `"avec"` the N - 1 uses the sum of the
            weights, exact for the 0/1 weights the pipeline emits.
        name: metric name in logs.
        dtype: dtype of the accumulators.
        target_index: None (default): every value of the labels counts, as
            for the single-target (B, T, 1) labels. k: only target k of
            (B, T, K) labels (a two-target model's per-target CCC), with its
            own weights when they are per target (B, T, K).

    Call arguments (`update_state`):
        y_true: labels, e.g. (B, T, 1).
        y_pred: predictions, same shape.
        sample_weight: optional, e.g. (B, T) with 0 on frames without a face
            or on padding, or (B, T, K) per target; weight-0 frames are
            excluded.
    """

    def __init__(self, convention: str = DEFAULT_CONVENTION, name: str = "ccc",
                 dtype=None, target_index: int | None = None):
        super().__init__(name=name, dtype=dtype)
        self.convention = check_convention(convention)
        if target_index is not None and (isinstance(target_index, bool)
                                         or not isinstance(target_index, int)
                                         or target_index < 0):
            raise ValueError("target_index must be None or a non-negative integer. "
                             f"Received: target_index={target_index!r}")
        self.target_index = target_index
        self._names = ("count", "mean_true", "mean_pred", "m2_true", "m2_pred",
                       "c_true_pred")
        self._vars = [self.add_variable(shape=(), initializer="zeros",
                                        dtype=self.dtype, name=n)
                      for n in self._names]

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.target_index is not None:
            y_true, y_pred, sample_weight = _select_target(
                y_true, y_pred, sample_weight, self.target_index)
        y_true, y_pred, weight = _flat_weighted(y_true, y_pred, sample_weight,
                                                self.dtype)
        new = _merge_moments([v.value for v in self._vars],
                             _batch_moments(y_true, y_pred, weight))
        for var, value in zip(self._vars, new):
            var.assign(ops.cast(value, self.dtype))

    def result(self):
        return _ccc_from_moments(*[v.value for v in self._vars],
                                 convention=self.convention)

    def reset_state(self):
        for var in self._vars:
            var.assign(ops.zeros((), dtype=self.dtype))

    def get_config(self):
        config = {**super().get_config(), "convention": self.convention}
        if self.target_index is not None:
            config["target_index"] = self.target_index
        return config


def _weighted_ccc(y_true, y_pred, sample_weight, convention, dtype):
    y_true, y_pred, weight = _flat_weighted(y_true, y_pred, sample_weight, dtype)
    return _ccc_from_moments(*_batch_moments(y_true, y_pred, weight),
                             convention=convention)


@keras.saving.register_keras_serializable(package="recola_sta")
def ccc_loss(y_true, y_pred, sample_weight=None):
    """1 - CCC over all frames of the batch (population convention).

    Use it as `loss=ccc_loss` when no sample weights are passed; with
    per-frame weights (frames without a face) use `CCCLoss`, which excludes
    weight-0 frames inside the CCC. (Keras would instead multiply this
    batch-level scalar by the weights, which does not mask anything.)
    The population convention gives a loss of exactly 0 for a perfect
    prediction; the conventions differ by O(1/N) anyway.
    """
    return 1.0 - _weighted_ccc(y_true, y_pred, sample_weight, "population",
                               keras.config.floatx())


@keras.saving.register_keras_serializable(package="recola_sta")
class CCCLoss(keras.losses.Loss):
    """1 - CCC over the batch, with sample weights masking frames inside the CCC.

    Example: `model.compile(optimizer, loss=CCCLoss())` and
    `model.fit(dataset)` where the dataset yields `(clips, labels, weights)`.

    Args:
        convention: `"population"` (default, exact 0 for a perfect fit) or
            `"avec"`.
        name: loss name in logs.
    """

    def __init__(self, convention: str = "population", name: str = "ccc_loss",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.convention = check_convention(convention)

    def __call__(self, y_true, y_pred, sample_weight=None):
        # The CCC is a statistic of the whole batch, so weights act inside it
        # rather than through Keras' per-sample weighted reduction.
        return 1.0 - _weighted_ccc(y_true, y_pred, sample_weight,
                                   self.convention, self.dtype)

    def call(self, y_true, y_pred):
        return 1.0 - _weighted_ccc(y_true, y_pred, None, self.convention,
                                   self.dtype)

    def get_config(self):
        return {**super().get_config(), "convention": self.convention}


# --------------------------------------------------------------------------
# Several targets in one model (labels and predictions (B, T, K))
# --------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="recola_sta")
class MeanCCCMetric(keras.metrics.Metric):
    """The mean over targets of each target's CCC (the challenge's ranking of
    a valence + arousal model), each accumulated as `CCCMetric` does.

    Args:
        num_targets: K, the last axis of the labels (B, T, K).
        convention: as for `CCCMetric`.
        name: metric name in logs.
        dtype: dtype of the accumulators.

    Call arguments (`update_state`): labels and predictions (B, T, K);
    sample_weight (B, T) for every target, or (B, T, K) per target (0 where
    that target's label is missing).
    """

    def __init__(self, num_targets: int, convention: str = DEFAULT_CONVENTION,
                 name: str = "ccc", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(num_targets, bool) or not isinstance(num_targets, int) or num_targets < 1:
            raise ValueError("num_targets must be a positive integer. "
                             f"Received: num_targets={num_targets!r}")
        self.num_targets = num_targets
        self.convention = check_convention(convention)
        self._vars = [self.add_variable(shape=(num_targets,), initializer="zeros",
                                        dtype=self.dtype, name=n)
                      for n in ("count", "mean_true", "mean_pred", "m2_true", "m2_pred",
                                "c_true_pred")]

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, weight = _flat_weighted(y_true, y_pred, sample_weight, self.dtype,
                                                columns=self.num_targets)
        new = _merge_moments([v.value for v in self._vars],
                             _batch_moments(y_true, y_pred, weight, axis=0))
        for var, value in zip(self._vars, new):
            var.assign(ops.cast(value, self.dtype))

    def result(self):
        return ops.mean(_ccc_from_moments(*[v.value for v in self._vars],
                                          convention=self.convention))

    def reset_state(self):
        for var in self._vars:
            var.assign(ops.zeros((self.num_targets,), dtype=self.dtype))

    def get_config(self):
        return {**super().get_config(), "num_targets": self.num_targets,
                "convention": self.convention}


@keras.saving.register_keras_serializable(package="recola_sta")
class SummedTargetsLoss(keras.losses.Loss):
    """The sum over targets of each target's loss, for (B, T, K) outputs.

    Each target's loss is the single-target one with that target's weights:
    `"mse"` is Keras' weighted mean squared error (the sum of weight x
    squared error over the batch's B x T frames, divided by B x T), `"ccc"`
    is `CCCLoss` (1 - CCC with weight-0 frames excluded). With K = 1 and
    (B, T) weights it equals the single-target loss.

    Args:
        kind: `"mse"` or `"ccc"`.
        convention: CCC convention of `"ccc"` (population: 0 for a perfect fit).
        name: loss name in logs.

    Call arguments: labels and predictions (B, T, K); sample_weight (B, T)
    for every target or (B, T, K) per target (0 where that label is missing).
    """

    KINDS = ("mse", "ccc")

    def __init__(self, kind: str = "mse", convention: str = "population",
                 name: str = "summed_targets_loss", reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}. Received: kind={kind!r}")
        self.kind = kind
        self.convention = check_convention(convention)

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Per-target weights act inside each target's loss rather than
        # through Keras' weighted reduction, which expects one weight per frame.
        columns = y_true.shape[-1]
        y_true, y_pred, weight = _flat_weighted(y_true, y_pred, sample_weight, self.dtype,
                                                columns=columns)
        if self.kind == "mse":
            frames = ops.cast(ops.shape(y_true)[0], self.dtype)
            return ops.sum(weight * ops.square(y_true - y_pred)) / ops.maximum(frames, 1.0)
        moments = _batch_moments(y_true, y_pred, weight, axis=0)
        return ops.sum(1.0 - _ccc_from_moments(*moments, convention=self.convention))

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "convention": self.convention}
