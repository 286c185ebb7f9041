"""Facial regions of aligned crops, and how much attention each receives.

The paper says its attention learns "the areas around eyes and mouth" (Fig. 5)
without pixel supervision. To check that claim on our models we need to know,
for every aligned face, which pixels belong to which part of the face. The
preprocess cache stores each sample's 68 dlib landmarks in crop pixels; this
module turns them into masks of six regions that partition the crop:

    mouth       the box around landmarks 48-67 (outer and inner lips)
    eyes        the boxes around 36-41 and 42-47
    brows       the boxes around 17-21 and 22-26
    nose        the box around 27-35
    face_rest   the rest of the face outline (jaw 0-16 and brows 17-26, hull)
    background  everything else

Each box is widened by `margin` x the crop side on every side. Where regions
overlap, the one listed first wins, so every pixel belongs to exactly one
region. Then `attention_shares` compares each region's share of the attention
mass with its share of the area: a ratio of 1 is what position-blind (uniform)
attention gives, 2 means the region gets twice its area's worth.

Pure NumPy (and OpenCV for the face polygon); no model code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

REGIONS = ("mouth", "eyes", "brows", "nose", "face_rest", "background")

# Landmark groups of dlib's 68-point markup, per box (a region may have two).
_BOXES: dict[str, tuple[tuple[int, ...], ...]] = {
    "mouth": (tuple(range(48, 68)),),
    "eyes": (tuple(range(36, 42)), tuple(range(42, 48))),
    "brows": (tuple(range(17, 22)), tuple(range(22, 27))),
    "nose": (tuple(range(27, 36)),),
}
_FACE_OUTLINE = tuple(range(0, 27))  # jaw and brows; its convex hull is the face

DEFAULT_MARGIN = 0.06  # of the crop side; the mouth box then covers ~10 % of a crop

_SUBPIXEL_BITS = 4  # cv2.fillConvexPoly's fixed-point shift


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, np.float64)
    if points.shape != (68, 2):
        raise ValueError(
            f"Expected (68, 2) landmarks (x, y). Received: shape={points.shape}"
        )
    if not np.all(np.isfinite(points)):
        raise ValueError("Landmarks hold NaN or infinite values (no face in this sample?).")
    return points


def region_masks(
    landmarks: np.ndarray, size: int, margin: float = DEFAULT_MARGIN
) -> np.ndarray:
    """Boolean masks of the `REGIONS` of one aligned face.

    Args:
        landmarks: (68, 2) (x, y) landmarks in the pixels of a `size` x `size`
            map (pixel centres at integers).
        size: side of the map the masks are drawn on.
        margin: widening of every box on each side, as a fraction of `size`.

    Returns:
        (len(REGIONS), size, size) bool; every pixel is True in exactly one
        region.

    Raises:
        ValueError: landmarks of another shape or not finite, a bad size or
            margin.
    """
    points = _check_landmarks(landmarks)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"`size` must be a positive integer. Received: size={size!r}")
    if not 0 <= margin < 0.5:
        raise ValueError(f"`margin` must be in [0, 0.5). Received: margin={margin!r}")
    pad = margin * size
    ys, xs = np.mgrid[0:size, 0:size]
    masks = np.zeros((len(REGIONS), size, size), bool)
    for name, groups in _BOXES.items():
        for group in groups:
            x0, y0 = points[list(group)].min(0) - pad
            x1, y1 = points[list(group)].max(0) + pad
            masks[REGIONS.index(name)] |= (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
    hull = cv2.convexHull(
        np.round(points[list(_FACE_OUTLINE)] * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    )
    face = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(face, hull, 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    masks[REGIONS.index("face_rest")] = face.astype(bool)
    masks[REGIONS.index("background")] = True
    # The first region listed wins an overlap.
    taken = np.zeros((size, size), bool)
    for k in range(len(REGIONS)):
        masks[k] &= ~taken
        taken |= masks[k]
    return masks


def scale_landmarks(landmarks: np.ndarray, from_size: int, to_size: int) -> np.ndarray:
    """Maps landmarks from a `from_size` crop onto a `to_size` map of it.

    Pixel centres sit at integers, so x' = (x + 0.5) * to / from - 0.5.
    """
    factor = to_size / from_size
    return (np.asarray(landmarks, np.float64) + 0.5) * factor - 0.5


def attention_shares(attention: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each region's share of attention mass and of area, per map.

    Args:
        attention: (N, H, W) non-negative maps (each is normalised here to
            sum 1, so a spatial softmax and a rescaled copy give the same).
        masks: (N, R, H, W) bool region masks, e.g. from `region_masks`.

    Returns:
        `(mass, area)`, both (N, R): the fraction of each map's total inside
        each region, and the fraction of the map's pixels in it.

    Raises:
        ValueError: mismatched shapes, or negative or all-zero maps.
    """
    attention = np.asarray(attention, np.float64)
    masks = np.asarray(masks, bool)
    if attention.ndim != 3 or masks.ndim != 4 or masks.shape[0] != attention.shape[0] \
            or masks.shape[2:] != attention.shape[1:]:
        raise ValueError(
            "Expected attention (N, H, W) and masks (N, R, H, W) of the same N, H "
            f"and W. Received: attention shape={attention.shape}, masks shape={masks.shape}"
        )
    if np.any(attention < 0):
        raise ValueError("Attention maps must be non-negative.")
    totals = attention.sum(axis=(1, 2))
    if np.any(totals <= 0):
        raise ValueError("An attention map sums to zero; shares are undefined.")
    mass = np.einsum("nhw,nrhw->nr", attention, masks) / totals[:, None]
    area = masks.mean(axis=(2, 3))
    return mass, area


def summarize_shares(mass: np.ndarray, area: np.ndarray) -> dict[str, dict[str, float]]:
    """Per region: mean attention share, mean area share, their ratio, and
    the spread (std over maps) of the attention share.

    The ratio is mean mass / mean area (1 = what uniform attention gives).
    With no maps every value is NaN.
    """
    mass = np.asarray(mass, np.float64).reshape(-1, len(REGIONS))
    area = np.asarray(area, np.float64).reshape(-1, len(REGIONS))
    out = {}
    for k, name in enumerate(REGIONS):
        if len(mass):
            m, a, s = float(mass[:, k].mean()), float(area[:, k].mean()), float(mass[:, k].std())
        else:
            m = a = s = float("nan")
        out[name] = {
            "attention_share": m,
            "area_share": a,
            "ratio": m / a if a > 0 else float("nan"),
            "attention_share_std": s,
        }
    return out


def mask_stack(
    landmarks: np.ndarray, crop_size: int, map_size: int | None = None,
    margin: float = DEFAULT_MARGIN,
) -> np.ndarray:
    """`region_masks` of many faces: (N, 68, 2) crop landmarks -> (N, R, S, S).

    Args:
        landmarks: (N, 68, 2) landmarks in the pixels of `crop_size` crops.
        crop_size: side of the crops the landmarks refer to.
        map_size: side of the maps to draw on (default: the crop side), e.g.
            an attention map smaller than the crop.
        margin: see `region_masks`.
    """
    map_size = crop_size if map_size is None else map_size
    landmarks = np.asarray(landmarks, np.float64)
    if map_size != crop_size:
        landmarks = scale_landmarks(landmarks, crop_size, map_size)
    return np.stack([region_masks(p, map_size, margin) for p in landmarks]) if len(landmarks) \
        else np.zeros((0, len(REGIONS), map_size, map_size), bool)


def format_table(summary: Mapping[str, Mapping[str, float]],
                 regions: Sequence[str] = REGIONS) -> str:
    """A plain-text table of a `summarize_shares` result."""
    lines = [f"{'region':<11} {'area':>6} {'attention':>10} {'ratio':>6}"]
    for name in regions:
        row = summary[name]
        lines.append(f"{name:<11} {row['area_share']:>6.1%} {row['attention_share']:>10.1%} "
                     f"{row['ratio']:>6.2f}")
    return "\n".join(lines)
