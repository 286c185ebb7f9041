"""What the figures must show (recola_sta.analysis.plots): each PNG has the
pixel size its figure asks for (figsize x 110 dpi, trimmed by the tight bounding
box), is not blank, draws its data in its colours, and an attention figure's
colour scale spans the map's range."""

from __future__ import annotations

import numpy as np
import pytest

from recola_sta.analysis import plots

DPI = 110
S = 32


def _assert_size(image: np.ndarray, figsize: tuple[float, float]) -> None:
    """The tight bounding box trims margins only: 70-105 % of figsize x dpi."""
    height, width = image.shape[:2]
    assert 0.7 * figsize[0] * DPI <= width <= 1.05 * figsize[0] * DPI, image.shape
    assert 0.7 * figsize[1] * DPI <= height <= 1.05 * figsize[1] * DPI, image.shape


def _pixels_near(image: np.ndarray, rgb: tuple[int, int, int], tol: int = 30) -> int:
    return int((np.abs(image.astype(int) - rgb).max(-1) <= tol).sum())


def _on_grey(level: float) -> tuple[int, int, int]:
    """jet(level) blended at alpha 0.5 over grey 128, as overlay_attention draws it."""
    import matplotlib

    heat = np.asarray(matplotlib.colormaps["jet"](level)[:3]) * 255.0
    return tuple(int(round(v)) for v in 0.5 * 128 + 0.5 * heat)


def _faces_and_hot_spot(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Grey faces; maps with a 4x4 spot holding ~25x the mass of a uniform pixel."""
    faces = np.full((n, S, S, 3), 128, np.uint8)
    attention = np.ones((n, S, S))
    attention[:, 10:14, 10:14] = 40.0
    return faces, attention / attention.sum((1, 2), keepdims=True)


def test_valence_figure_draws_both_curves(tmp_path, read_figure):
    times = np.arange(40) / 4.0
    path = tmp_path / "valence.png"
    plots.plot_valence(path, times, np.sin(times), np.cos(times), found=times < 6)
    image = read_figure(path)
    _assert_size(image, (10, 3.2))
    assert _pixels_near(image, (214, 39, 40)) > 300  # the predicted curve, tab:red
    assert _pixels_near(image, (0, 0, 0), tol=10) > 300  # gold standard, axes, text
    assert _pixels_near(image, (217, 217, 217), tol=3) > 1000  # "no face" span, grey 0.85


def test_attention_grid_colour_scale_is_the_maps_limit(tmp_path, read_figure):
    faces, attention = _faces_and_hot_spot()
    path = tmp_path / "attention.png"
    vmin, vmax = plots.plot_attention_grid(path, faces, attention, np.arange(8) / 4.0)
    relative = attention * S * S
    assert vmin == 0.0 <= relative.min()
    assert vmax == plots.attention_colour_limit(attention) == pytest.approx(relative.max())
    image = read_figure(path)
    _assert_size(image, (1.6 * 8, 1.75 + 0.4))
    # jet over grey at alpha 0.5: the spot at vmax is jet's top (dark red), the
    # rest, at 1/25 of it, jet's bottom (dark blue).
    red, blue = _pixels_near(image, _on_grey(1.0), 25), _pixels_near(image, _on_grey(0.04), 25)
    assert red > 8 * 10 and blue > 8 * 100 and blue > 5 * red


def test_attention_grid_of_uniform_maps_keeps_the_floor_of_two(tmp_path, read_figure):
    """A uniform map (1 everywhere) is drawn at mid-scale, not stretched."""
    faces = np.full((3, S, S, 3), 128, np.uint8)
    vmin, vmax = plots.plot_attention_grid(tmp_path / "a.png", faces,
                                           np.full((3, S, S), 1.0 / S**2), [0.0, 0.25, 0.5])
    assert (vmin, vmax) == (0.0, 2.0)
    read_figure(tmp_path / "a.png")


@pytest.mark.parametrize("peak, expected_vmax", [(3.5, 3.5), (1.2, 2.0)])
def test_attention_regions_colour_scale_spans_the_map(tmp_path, read_figure, peak,
                                                      expected_vmax):
    """vmax is the map's maximum (the floor 2 for a near-uniform map), vmin 0:
    the whole map is in range."""
    mean_map = np.ones((8, 8))
    mean_map[2:4, 2:4] = peak
    summary = {"mouth": {"ratio": 1.5, "attention_share": 0.3, "area_share": 0.2},
               "eyes": {"ratio": 0.5, "attention_share": 0.1, "area_share": 0.2}}
    path = tmp_path / "regions.png"
    vmin, vmax = plots.plot_attention_regions(path, np.full((S, S, 3), 128, np.uint8), mean_map,
                                              summary)
    assert (vmin, vmax) == (0.0, expected_vmax)
    assert vmin <= mean_map.min() and mean_map.max() <= vmax
    image = read_figure(path)
    _assert_size(image, (10, 4.2))
    assert _pixels_near(image, (214, 39, 40)) > 200  # the bar above uniform, tab:red
    assert _pixels_near(image, (31, 119, 180)) > 200  # the bar below uniform, tab:blue
