"""Lin's CCC (paper eq. 4) as Keras metrics and losses, in `keras.ops` only.

They run on any backend: `CCCMetric` accumulates moments over batches (the
CCC of every frame seen, honouring sample weights) and `CCCLoss` / `ccc_loss`
give 1 - CCC as a training loss beside the paper's MSE. The conventions (and
the value of degenerate inputs) are those of `recola_sta.metrics`, the NumPy
scores every table reports.
"""

from __future__ import annotations

import keras
from keras import ops

from recola_sta.metrics import DEFAULT_CONVENTION, check_convention


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
