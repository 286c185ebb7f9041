"""Tests of recola_sta.regions and the attention analysis on hand-made maps."""

from __future__ import annotations

import types

import numpy as np
import pytest

from recola_sta.analysis import attention_analysis
from recola_sta.faces import regions

SIZE = 32
MOUTH, EYES, BROWS, NOSE, FACE, BACKGROUND = range(6)


def _face(size: int = SIZE) -> np.ndarray:
    """68 hand-placed landmarks of a frontal face filling most of the crop."""
    s = size / 32
    pts = np.zeros((68, 2))
    jaw_angle = np.linspace(np.pi, 0, 17)  # from the face's right ear under the chin
    pts[0:17] = np.stack([16 + 12 * np.cos(jaw_angle), 14 + 14 * np.sin(jaw_angle)], 1)
    pts[17:22] = np.stack([np.linspace(7, 13, 5), np.full(5, 8.0)], 1)  # brows
    pts[22:27] = np.stack([np.linspace(19, 25, 5), np.full(5, 8.0)], 1)
    pts[27:31] = np.stack([np.full(4, 16.0), np.linspace(11, 17, 4)], 1)  # nose bridge
    pts[31:36] = np.stack([np.linspace(14, 18, 5), np.full(5, 18.0)], 1)  # nostrils
    ring = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    pts[36:42] = np.stack([10 + 2 * np.cos(ring), 11 + np.sin(ring)], 1)  # eyes
    pts[42:48] = np.stack([22 + 2 * np.cos(ring), 11 + np.sin(ring)], 1)
    lips = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    pts[48:60] = np.stack([16 + 5 * np.cos(lips), 23 + 2 * np.sin(lips)], 1)  # outer lips
    pts[60:68] = np.stack([16 + 3 * np.cos(lips[::-1][:8]), 23 + np.sin(lips[:8])], 1)
    return pts * s


def test_masks_partition_the_crop_and_follow_the_landmarks():
    masks = regions.region_masks(_face(), SIZE, margin=0.0)
    assert masks.shape == (len(regions.REGIONS), SIZE, SIZE)
    np.testing.assert_array_equal(masks.sum(axis=0), 1)  # every pixel in exactly one region
    # Without margin the mouth is the landmark box: x 11..21, y 21..25.
    ys, xs = np.nonzero(masks[MOUTH])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (11, 21, 21, 25)
    assert masks[EYES][11, 10] and masks[EYES][11, 22] and not masks[EYES][11, 16]
    assert masks[BROWS][8, 7] and masks[NOSE][14, 16]
    assert masks[FACE][20, 6] and not masks[FACE][1, 1]
    assert masks[BACKGROUND][1, 1] and masks[BACKGROUND][31, 0]


def test_margin_widens_boxes_and_earlier_regions_win_overlaps():
    narrow = regions.region_masks(_face(), SIZE, margin=0.0)
    wide = regions.region_masks(_face(), SIZE, margin=0.1)
    assert wide[MOUTH].sum() > narrow[MOUTH].sum()
    assert np.all(wide[MOUTH] >= narrow[MOUTH])
    # The widened nose box reaches the mouth box; the mouth keeps the overlap.
    nose_box = regions.region_masks(_face(), SIZE, margin=0.1)[NOSE]
    assert not np.any(nose_box & wide[MOUTH])
    np.testing.assert_array_equal(wide.sum(axis=0), 1)


def test_masks_reject_bad_landmarks():
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        regions.region_masks(np.zeros((5, 2)), SIZE)
    bad = _face()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        regions.region_masks(bad, SIZE)
    with pytest.raises(ValueError, match="margin"):
        regions.region_masks(_face(), SIZE, margin=0.7)


def test_scale_landmarks_maps_pixel_centres():
    np.testing.assert_allclose(regions.scale_landmarks(np.array([[-0.5, 31.5]]), 32, 8),
                               [[-0.5, 7.5]])
    half = regions.mask_stack(_face()[None], SIZE, SIZE // 2, margin=0.0)[0]
    full = regions.region_masks(_face(), SIZE, margin=0.0)
    # A half-size mouth mask covers about a quarter of the pixels.
    assert half[MOUTH].sum() == pytest.approx(full[MOUTH].sum() / 4, rel=0.35)


def test_uniform_attention_gives_area_shares_and_ratio_one():
    masks = regions.mask_stack(np.stack([_face(), _face()]), SIZE)
    uniform = np.full((2, SIZE, SIZE), 1.0 / SIZE**2)
    mass, area = regions.attention_shares(uniform, masks)
    np.testing.assert_allclose(mass, area)
    np.testing.assert_allclose(mass.sum(axis=1), 1)
    summary = regions.summarize_shares(mass, area)
    for row in summary.values():
        assert row["ratio"] == pytest.approx(1.0)


def test_attention_inside_the_mouth_is_all_mouth():
    masks = regions.mask_stack(_face()[None], SIZE)
    focused = masks[:, MOUTH].astype(float) * 7.0  # any scale: shares are normalised
    mass, area = regions.attention_shares(focused, masks)
    assert mass[0, MOUTH] == pytest.approx(1.0)
    summary = regions.summarize_shares(mass, area)
    assert summary["mouth"]["ratio"] == pytest.approx(1.0 / area[0, MOUTH])
    assert summary["eyes"]["attention_share"] == 0.0
    # Half the mass on the mouth, half spread uniformly.
    mixed = 0.5 * focused / focused.sum() + 0.5 / SIZE**2
    mass, _ = regions.attention_shares(mixed, masks)
    assert mass[0, MOUTH] == pytest.approx(0.5 + 0.5 * area[0, MOUTH])
    assert "mouth" in regions.format_table(summary)


def test_attention_shares_reject_bad_input():
    masks = regions.mask_stack(_face()[None], SIZE)
    with pytest.raises(ValueError, match="same N, H and W"):
        regions.attention_shares(np.ones((1, 16, 16)), masks)
    with pytest.raises(ValueError, match="non-negative"):
        regions.attention_shares(-np.ones((1, SIZE, SIZE)), masks)
    with pytest.raises(ValueError, match="sums to zero"):
        regions.attention_shares(np.zeros((1, SIZE, SIZE)), masks)


def _recording(n: int, found: np.ndarray, with_landmarks: bool = True):
    landmarks = np.repeat(_face()[None], n, 0).astype(np.float32)
    landmarks[~found] = np.nan
    return types.SimpleNamespace(
        found=found, crops=np.zeros((n, SIZE, SIZE, 3), np.uint8),
        landmarks=landmarks if with_landmarks else None,
    )


def test_region_report_skips_first_frames_and_faceless_samples():
    frames = 4
    found = np.ones(8, bool)
    found[5] = False
    recordings = {"a": _recording(8, found), "b": _recording(4, np.ones(4, bool))}
    mouth = regions.region_masks(_face(), SIZE)[MOUTH]
    maps = np.repeat(mouth[None].astype(float) / mouth.sum(), 12, 0)
    maps[[0, 4, 8]] = 1.0 / SIZE**2  # first frames of every clip: uniform
    maps[5] = 1.0 / SIZE**2  # no face there: must not count
    report = attention_analysis.region_report(recordings, maps, frames)
    assert report["available"]
    assert report["first_frames_excluded"] == 3
    assert report["samples_without_face"] == 1
    assert report["samples"] == 12 - 3 - 1
    assert report["regions"]["mouth"]["attention_share"] == pytest.approx(1.0)
    assert report["per_recording"]["a"]["samples"] == 5
    assert report["per_recording"]["b"]["samples"] == 3
    line = attention_analysis.format_summary(report)
    assert "mouth" in line and "8 faces" in line


def test_region_report_without_landmarks_is_unavailable():
    recordings = {"old": _recording(4, np.ones(4, bool), with_landmarks=False)}
    report = attention_analysis.region_report(recordings, np.ones((4, SIZE, SIZE)), 4)
    assert report["available"] is False and "landmarks" in report["reason"]
    assert "unavailable" in attention_analysis.format_summary(report)
    with pytest.raises(ValueError, match="3 attention maps for 4 samples"):
        attention_analysis.region_report(recordings, np.ones((3, SIZE, SIZE)), 4)


def test_report_figure_is_written(tmp_path, read_figure):
    recordings = {"a": _recording(8, np.ones(8, bool))}
    maps = np.full((8, SIZE, SIZE), 1.0 / SIZE**2)
    path = tmp_path / "regions.png"
    report = attention_analysis.report_with_figure(recordings, maps, 4, figure=path)
    assert report["available"] and path.stat().st_size > 1000
    image = read_figure(path)  # not blank
    assert image.shape[0] > 300 and image.shape[1] > 600  # the map beside the bars, 10x4.2 in
