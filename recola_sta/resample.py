"""From per-sample predictions to a corpus' label grid.

The network predicts one valence per 4 fps sample (`t_k = k * 0.25 s`), and
only where the face detector found a face. Evaluation needs one prediction per
label (every 40 ms on RECOLA, 100 ms on AV+EC 2017). Two steps, both linear
interpolation with the edge values held (never extrapolated), as the paper
interpolates dropped frames "from adjacent frames":

1. `interpolate_missing`: fill samples without a face from their nearest found
   neighbours in time.
2. `resample`: evaluate the filled 4 fps series at the label times.

Linear interpolation is exact for signals that are linear between samples and
never overshoots the predictions it joins; valence traces are smooth at 4 fps,
so a higher-order interpolant would buy nothing but overshoot.
"""

from __future__ import annotations

import numpy as np


def _as_1d(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D. Received: {name}.shape={array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty.")
    return array


def interpolate_missing(values, found, times=None) -> np.ndarray:
    """Replaces the values of samples without a face by linear interpolation.

    Args:
        values: (N,) predictions; entries where `found` is False are ignored
            (they may be NaN, 0, anything).
        found: (N,) bool, True where the face was found.
        times: optional (N,) strictly increasing sample times; by default the
            samples are taken as evenly spaced (the 4 fps grid).

    Returns:
        A float64 copy of `values` with every not-found entry replaced by the
        linear interpolation between the nearest found samples before and
        after it; leading and trailing gaps take the first / last found value.

    Raises:
        ValueError: shapes differ, the input is empty, no sample is found, a
            found value is not finite, or `times` is not strictly increasing.
    """
    values = _as_1d("values", values)
    found = np.asarray(found)
    if found.shape != values.shape:
        raise ValueError(
            "found must have one flag per value. Received: "
            f"values.shape={values.shape}, found.shape={found.shape}")
    if found.dtype != bool:
        if not np.isin(found, (0, 1)).all():
            raise ValueError("found must be boolean (or 0/1).")
        found = found.astype(bool)
    if not found.any():
        raise ValueError(
            f"No sample has a face (all {found.size} samples missing): nothing "
            "to interpolate from.")
    if not np.isfinite(values[found]).all():
        raise ValueError("values must be finite wherever found is True.")
    if times is None:
        x = np.arange(values.size, dtype=np.float64)
    else:
        x = _as_1d("times", times)
        if x.shape != values.shape:
            raise ValueError(
                f"times must have one entry per value. Received: "
                f"times.shape={x.shape}, values.shape={values.shape}")
        _check_increasing("times", x, strict=True)
    filled = values.copy()
    missing = ~found
    filled[missing] = np.interp(x[missing], x[found], values[found])
    return filled


def first_unordered_step(times: np.ndarray, strict: bool = True) -> int | None:
    """The increasing-times check shared by the label readers (`corpora`) and
    this module: index `i` of the first step where `times[i + 1]` does not
    follow `times[i]` (is not larger, or with `strict=False` is smaller), or
    None when `times` is in order. Callers word the error for their input.
    """
    steps = np.diff(np.asarray(times, np.float64))
    bad = np.flatnonzero(steps <= 0 if strict else steps < 0)
    return int(bad[0]) if bad.size else None


def _check_increasing(name: str, times: np.ndarray, strict: bool) -> None:
    if not np.isfinite(times).all():
        raise ValueError(f"{name} must be finite.")
    i = first_unordered_step(times, strict)
    if i is not None:
        kind = "strictly increasing" if strict else "non-decreasing"
        raise ValueError(
            f"{name} must be {kind}; {name}[{i}]={float(times[i])!r} is followed by "
            f"{name}[{i + 1}]={float(times[i + 1])!r}.")


def resample(sample_times, values, grid_times) -> np.ndarray:
    """Linearly interpolates a sampled series onto another time grid.

    Used to bring 4 fps predictions onto the label grid. Grid times before the
    first sample take the first value and times after the last sample take the
    last value (edges held, no extrapolation).

    Args:
        sample_times: (N,) strictly increasing times of `values`, seconds.
        values: (N,) finite values (fill missing samples first with
            `interpolate_missing`).
        grid_times: (M,) non-decreasing target times, seconds.

    Returns:
        (M,) float64 values at `grid_times`.

    Raises:
        ValueError: lengths differ, an input is empty or not finite, or the
            times are not monotonic.
    """
    sample_times = _as_1d("sample_times", sample_times)
    values = _as_1d("values", values)
    grid_times = _as_1d("grid_times", grid_times)
    if sample_times.shape != values.shape:
        raise ValueError(
            "sample_times and values must have the same length. Received: "
            f"{sample_times.size} times and {values.size} values.")
    _check_increasing("sample_times", sample_times, strict=True)
    _check_increasing("grid_times", grid_times, strict=False)
    if not np.isfinite(values).all():
        raise ValueError(
            "values must be finite; fill samples without a face with "
            "interpolate_missing first.")
    return np.interp(grid_times, sample_times, values)
