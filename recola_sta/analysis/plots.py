"""Figures a person looks at: valence over time (paper Figs. 3-4) and
attention heatmaps over the aligned faces (paper Fig. 5).

Every figure is a `matplotlib.figure.Figure` drawn on its own Agg canvas and
written atomically as PNG: plotting works on servers without a display, and
neither importing this module nor plotting selects matplotlib's global
backend or touches pyplot's figure registry.
"""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recola_sta import io_utils


def _figure(**kwargs) -> Figure:
    """A figure on its own Agg canvas, outside pyplot (no global backend)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> None:
    with io_utils.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")


def plot_valence(
    path: str | os.PathLike,
    times: np.ndarray,
    predicted: np.ndarray,
    gold: np.ndarray | None = None,
    *,
    found: np.ndarray | None = None,
    title: str = "",
    ylabel: str = "valence",
) -> None:
    """Plots predicted (and gold) valence against time, like Figs. 3-4.

    Args:
        path: PNG to write.
        times: (N,) seconds.
        predicted: (N,) predicted values.
        gold: optional (N,) gold standard on the same grid.
        found: optional (N,) bool; spans without a face are shaded grey.
        title: figure title, e.g. the recording name and its CCC.
        ylabel: axis label.
    """
    fig = _figure(figsize=(10, 3.2))
    ax = fig.subplots()
    if gold is not None:
        ax.plot(times, gold, color="black", lw=1.2, label="gold standard")
    ax.plot(times, predicted, color="tab:red", lw=1.2, label="predicted")
    if found is not None and not np.all(found):
        missing = ~np.asarray(found, bool)
        ax.fill_between(
            times, 0, 1, where=missing, transform=ax.get_xaxis_transform(),
            color="0.85", label="no face found", step="mid",
        )
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.set_xlim(times[0], times[-1]) if len(times) > 1 else None
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    _save(fig, path)


def attention_colour_limit(attention: np.ndarray) -> float:
    """Upper end of a shared colour scale for attention maps x H*W.

    Maps are shown relative to uniform attention (value 1), on one scale for
    all frames, at least [0, 2]: a nearly uniform map then looks uniform
    instead of having its tiny variations stretched over the whole colour
    range.
    """
    relative = np.asarray(attention, np.float64) * np.prod(attention.shape[-2:])
    return float(max(2.0, np.percentile(relative, 99.5)))


def overlay_attention(
    face: np.ndarray, attention: np.ndarray, alpha: float = 0.5, vmax: float | None = None
) -> np.ndarray:
    """Blends a jet-coloured attention map over an RGB face (uint8 result).

    The map (a spatial softmax, summing to 1) is scaled by H*W so that 1 is
    uniform attention, then coloured from 0 (blue) to `vmax` (red); `vmax`
    defaults to `attention_colour_limit(attention)` (Fig. 5's colouring on
    an absolute scale).
    """
    a = np.asarray(attention, np.float64)
    limit = attention_colour_limit(a) if vmax is None else vmax
    relative = np.clip(a * a.size / limit, 0.0, 1.0)
    heat = matplotlib.colormaps["jet"](relative)[..., :3] * 255.0
    blended = (1.0 - alpha) * face.astype(np.float64) + alpha * heat
    return np.clip(blended, 0, 255).astype(np.uint8)


def plot_attention_grid(
    path: str | os.PathLike,
    faces: np.ndarray,
    attention: np.ndarray,
    times: Sequence[float],
    *,
    columns: int = 8,
    title: str = "",
) -> tuple[float, float]:
    """Writes a grid of aligned faces with their attention overlaid (Fig. 5).

    Args:
        path: PNG to write.
        faces: (N, S, S, 3) uint8 aligned faces.
        attention: (N, S, S) attention maps (spatial softmax, sum 1 per frame).
        times: (N,) sample times, printed under each frame.
        columns: frames per row.
        title: figure title.

    Returns:
        The colour scale (vmin, vmax) shared by every frame, in attention x
        H*W: (0, `attention_colour_limit(attention)`).
    """
    n = len(faces)
    vmax = attention_colour_limit(attention)
    rows = max(1, -(-n // columns))
    fig = _figure(figsize=(1.6 * columns, 1.75 * rows + 0.4))
    axes = fig.subplots(rows, columns, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        ax.xaxis.set_visible(False)  # no ticks laid out for the hidden axis (the same image)
        ax.yaxis.set_visible(False)
        if k < n:
            ax.imshow(overlay_attention(faces[k], attention[k], vmax=vmax))
            ax.set_title(f"{times[k]:.2f} s", fontsize=7)
    caption = f"colour: attention x H*W, 0 (blue) to {vmax:.1f} (red); 1 = uniform"
    fig.suptitle(f"{title}\n{caption}" if title else caption, fontsize=9)
    _save(fig, path)
    return 0.0, vmax


def plot_attention_regions(
    path: str | os.PathLike,
    mean_face: np.ndarray,
    mean_attention: np.ndarray,
    summary: dict,
    *,
    title: str = "",
) -> tuple[float, float]:
    """Mean attention over aligned faces beside each region's mass/area ratio.

    Args:
        path: PNG to write.
        mean_face: (S, S, 3) uint8, the mean aligned face.
        mean_attention: (S', S') mean map relative to uniform (1 = uniform).
        summary: region -> {"ratio", "attention_share", "area_share"}, as from
            `regions.summarize_shares`.
        title: figure title.

    Returns:
        The map's colour scale (vmin, vmax): (0, max(2, the map's maximum)),
        so that the whole map is in range and a near-uniform map looks uniform.
    """
    import cv2

    size = mean_face.shape[0]
    relative = np.asarray(mean_attention, np.float64)
    if relative.shape[0] != size:
        relative = cv2.resize(relative, (size, size), interpolation=cv2.INTER_LINEAR)
    vmax = float(max(2.0, relative.max()))
    fig = _figure(figsize=(10, 4.2))
    ax_map, ax_bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.4], "wspace": 0.45})
    ax_map.imshow(mean_face)
    image = ax_map.imshow(relative, cmap="jet", alpha=0.5, vmin=0.0, vmax=vmax)
    ax_map.axis("off")
    ax_map.xaxis.set_visible(False)  # no ticks laid out for the hidden axis (the same image)
    ax_map.yaxis.set_visible(False)
    ax_map.set_title("mean attention x H*W (1 = uniform)", fontsize=9)
    fig.colorbar(image, ax=ax_map, fraction=0.046, pad=0.04)
    names = list(summary)
    ratios = [summary[n]["ratio"] for n in names]
    labels = [n.replace("_", " ") for n in names]
    bars = ax_bar.bar(labels, ratios, color=["tab:red" if r > 1 else "tab:blue" for r in ratios])
    ax_bar.axhline(1.0, color="black", lw=1, ls="--", label="uniform")
    for bar, name in zip(bars, names):
        row = summary[name]
        ax_bar.annotate(f"{row['attention_share']:.0%}\nof {row['area_share']:.0%}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
    ax_bar.set_ylabel("attention share / area share")
    ax_bar.set_title("attention mass per region (frames 2..T)", fontsize=9)
    ax_bar.tick_params(axis="x", labelsize=8, labelrotation=25)
    ax_bar.legend(fontsize=8, loc="upper right")
    ax_bar.set_ylim(0, max(2.0, max(ratios) * 1.25))
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)
    return 0.0, vmax
