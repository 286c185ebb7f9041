"""Tests for recola_sta.resample (dropped-face filling, 4 fps -> label grid)."""

from __future__ import annotations

import numpy as np
import pytest

from recola_sta.resample import first_unordered_step, interpolate_missing, resample


def test_interpolate_missing_fills_gaps_and_holds_edges():
    values = np.array([9.0, 1.0, np.nan, 0.0, 4.0, 99.0, 99.0, 7.0, -5.0])
    found = np.array([0, 1, 0, 0, 1, 0, 0, 1, 0], dtype=bool)
    filled = interpolate_missing(values, found)
    # Interior gaps lie on the line between found neighbours; edges held.
    np.testing.assert_allclose(filled, [1, 1, 2, 3, 4, 5, 6, 7, 7])
    np.testing.assert_array_equal(values[found], filled[found])
    assert np.isnan(values[2])  # input untouched


def test_interpolate_missing_uses_times_when_given():
    filled = interpolate_missing([0.0, 0.0, 3.0], [1, 0, 1], times=[0.0, 2.0, 3.0])
    np.testing.assert_allclose(filled, [0.0, 2.0, 3.0])


def test_interpolate_missing_bad_input():
    with pytest.raises(ValueError, match="all 3 samples missing"):
        interpolate_missing([1.0, 2.0, 3.0], [False, False, False])
    with pytest.raises(ValueError, match="one flag per value"):
        interpolate_missing([1.0, 2.0, 3.0], [True, False])
    with pytest.raises(ValueError, match="values is empty"):
        interpolate_missing([], [])
    with pytest.raises(ValueError, match="finite wherever found"):
        interpolate_missing([np.nan, 2.0], [True, True])
    with pytest.raises(ValueError, match="strictly increasing"):
        interpolate_missing([1.0, 2.0], [True, False], times=[1.0, 1.0])


def test_resample_4fps_to_40ms_grid_is_exact_for_a_linear_signal():
    sample_times = np.arange(0, 1201) * 0.25  # 4 fps over 300 s
    grid = np.arange(0, 7501) * 0.04          # RECOLA's 7501 labels
    values = 0.002 * sample_times - 0.3
    out = resample(sample_times, values, grid)
    assert out.shape == (7501,)
    np.testing.assert_allclose(out, 0.002 * grid - 0.3, rtol=0, atol=1e-12)


def test_resample_holds_edges_instead_of_extrapolating():
    out = resample([1.0, 2.0], [10.0, 20.0], [0.0, 0.5, 1.5, 2.0, 3.0])
    np.testing.assert_allclose(out, [10.0, 10.0, 15.0, 20.0, 20.0])


def test_resample_bad_input():
    with pytest.raises(ValueError, match="2 times and 3 values"):
        resample([0.0, 0.25], [1.0, 2.0, 3.0], [0.0])
    with pytest.raises(ValueError, match=r"sample_times\[1\]=0.5 is followed by"):
        resample([0.0, 0.5, 0.25], [1.0, 2.0, 3.0], [0.0])
    with pytest.raises(ValueError, match="grid_times must be non-decreasing"):
        resample([0.0, 0.25], [1.0, 2.0], [0.2, 0.1])
    with pytest.raises(ValueError, match="interpolate_missing first"):
        resample([0.0, 0.25], [1.0, np.nan], [0.1])
    with pytest.raises(ValueError, match="grid_times is empty"):
        resample([0.0, 0.25], [1.0, 2.0], [])
    with pytest.raises(ValueError, match="1-D"):
        resample([0.0, 0.25], [[1.0], [2.0]], [0.1])


def test_first_unordered_step_is_the_one_increasing_times_check():
    assert first_unordered_step([0.0, 0.25, 0.5]) is None
    assert first_unordered_step([0.0, 0.25, 0.25, 0.1]) == 1
    assert first_unordered_step([0.0, 0.25, 0.25, 0.1], strict=False) == 2
    assert first_unordered_step([]) is None
