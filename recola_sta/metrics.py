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

The same CCC as Keras metrics and losses (`keras.ops` only) is in
`recola_sta.model.losses`; this module needs only NumPy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

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
