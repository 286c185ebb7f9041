"""Pages a person can play: the video beside its predicted curves.

`write_report` writes one self-contained HTML page (report.html of
`predict`, reports/<partition>/<name>.html of `evaluate`): the video by
its path relative to the page, one chart per target with the prediction
(and the gold standard where there is one), the samples without a face
shaded, a cursor that follows playback, and clicking a chart seeks the
video. The attention figures are inlined as PNG data and the region table
is drawn from the attention-region report. `write_index` writes a table of
many videos' results whose columns sort on a click.

The pages fetch nothing: their style, script and data are inlined, and the
only file they name is the video (and, in the index, each report). The
charts are SVG drawn here, so they read without the script; the script
(`report_assets/report.js`) only moves the cursor and the read-out.

NumPy and the standard library only: no TensorFlow, no matplotlib.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import os
import pathlib
import urllib.parse
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np

from recola_sta import io_utils

# Chart geometry in SVG user units (the SVG scales to the page's width).
WIDTH = 1000
HEIGHT = 210
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 58, 14, 30, 36
# At most this many points per curve: min and max of each of MAX_POINTS / 2
# time buckets, so peaks survive on an hour-long video at 25 fps.
MAX_POINTS = 2400
# Line colour per target (matplotlib's tab10, as the PNG plots use for valence).
COLOURS = {"valence": "#d62728", "arousal": "#1f77b4", "liking": "#2ca02c"}
CURSOR = "#8250df"  # violet: no target's colour
_PALETTE = ("#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclasses.dataclass
class Curve:
    """One target's chart: the prediction (and gold) on the times `times`.

    `score`: a short text shown beside the target's name (e.g. "CCC 0.412").
    """

    target: str
    times: np.ndarray
    predicted: np.ndarray
    gold: np.ndarray | None = None
    score: str = ""


# ---------------------------------------------------------------- data preparation


def face_gaps(times: np.ndarray, found: np.ndarray, start: float | None = None,
              end: float | None = None) -> list[tuple[float, float]]:
    """The time spans of the samples without a face, merged, as (start, end).

    Each sample stands for the time halfway to its neighbours (as the PNG
    plots shade them, `step="mid"`); the first sample reaches back to
    `start` and the last one on to `end` (the span the chart shows: the
    frames before the first sample and after the last take their face flag
    from them), by default half a median sample period beyond themselves.
    """
    times = np.asarray(times, np.float64)
    missing = ~np.asarray(found, bool)
    if times.shape != missing.shape:
        raise ValueError(f"{len(times)} times but {len(missing)} face flags.")
    if not missing.any():
        return []
    half = float(np.median(np.diff(times))) / 2 if len(times) > 1 else 0.0
    first = times[0] - half if start is None else min(start, times[0])
    last = times[-1] + half if end is None else max(end, times[-1])
    edges = np.concatenate([[first], (times[:-1] + times[1:]) / 2, [last]])
    change = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(change == 1), np.flatnonzero(change == -1)
    return [(float(edges[a]), float(edges[b])) for a, b in zip(starts, stops)]


def decimate(times: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS
             ) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` points of a curve for drawing: the whole curve
    when it is short enough, else the minimum and maximum of each of
    `max_points // 2` equal time buckets, in time order (a line drawn
    through them covers the same band as the whole curve). NaN values are
    ignored when choosing, and a bucket of NaN alone keeps one NaN (a break
    in the line)."""
    times = np.asarray(times, np.float64)
    values = np.asarray(values, np.float64)
    if len(times) <= max_points:
        return times, values
    buckets = max(1, max_points // 2)
    edges = np.linspace(times[0], times[-1], buckets + 1)
    which = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, buckets - 1)
    # Sorted by bucket, then by value (NaN last within a bucket): a bucket's
    # minimum is its first entry, its maximum its last before the NaNs.
    order = np.lexsort((values, which))
    sizes = np.bincount(which, minlength=buckets)
    nans = np.bincount(which, weights=np.isnan(values), minlength=buckets).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    full = sizes > 0
    lo = order[starts[full]]
    hi = order[np.maximum(starts, starts + sizes - 1 - nans)[full]]
    index = np.unique(np.concatenate([lo, hi]))
    return times[index], values[index]


def nice_step(span: float, count: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about
    `count` ticks over `span`."""
    if not span > 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if factor * power >= raw:
            return factor * power
    return 10.0 * power


def time_step(span: float, count: int = 8) -> float:
    """The step of the time axis' ticks: `nice_step` under a minute, else a
    whole number of seconds or minutes that reads on a clock (15 s, 30 s,
    1, 2, 5, 10, 15, 30 min, 1 h, ...)."""
    raw = span / max(1, count)
    if raw < 10:
        return nice_step(span, count)
    for step in (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if step >= raw:
            return float(step)
    return 3600.0 * nice_step(raw / 3600, 1)


def value_range(*series: np.ndarray | None) -> tuple[float, float, list[float]]:
    """The y range of a chart over its series (None ignored) and its ticks:
    the finite values' range, padded by 8 % and widened to at least 0.1,
    then rounded out to whole tick steps. (-1, 1) without any finite value."""
    finite = [np.asarray(s, np.float64)[np.isfinite(s)] for s in series if s is not None]
    finite = [f for f in finite if len(f)]
    if not finite:
        lo, hi = -1.0, 1.0
    else:
        lo = float(min(f.min() for f in finite))
        hi = float(max(f.max() for f in finite))
        pad = max((hi - lo) * 0.08, (0.1 - (hi - lo)) / 2, 0.0)
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, 4)
    lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    ticks = [round(lo + k * step, 10) for k in range(int(round((hi - lo) / step)) + 1)]
    return lo, hi, ticks


@dataclasses.dataclass(frozen=True)
class Scale:
    """Maps (time, value) to SVG coordinates inside a chart's plot box."""

    t0: float
    t1: float
    lo: float
    hi: float
    x0: float = MARGIN_LEFT
    x1: float = WIDTH - MARGIN_RIGHT
    y0: float = MARGIN_TOP  # top of the plot box (value `hi`)
    y1: float = HEIGHT - MARGIN_BOTTOM  # bottom (value `lo`)

    def x(self, t: np.ndarray | float) -> np.ndarray:
        span = self.t1 - self.t0 if self.t1 > self.t0 else 1.0
        return self.x0 + (np.asarray(t, np.float64) - self.t0) / span * (self.x1 - self.x0)

    def y(self, v: np.ndarray | float) -> np.ndarray:
        span = self.hi - self.lo if self.hi > self.lo else 1.0
        return self.y1 - (np.asarray(v, np.float64) - self.lo) / span * (self.y1 - self.y0)


def svg_path(times: np.ndarray, values: np.ndarray, scale: Scale) -> str:
    """An SVG path's `d` through the points (one "M" or "L" per point, one
    decimal); a NaN value breaks the line and the next point starts anew."""
    xs, ys = scale.x(times), scale.y(values)
    parts, pen_down = [], False
    for x, y in zip(xs, ys):
        if not (math.isfinite(x) and math.isfinite(y)):
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        pen_down = True
    return "".join(parts)


def video_src(video: str | os.PathLike, page_dir: str | os.PathLike) -> str:
    """The `src` of the video on a page in `page_dir`: its path relative to
    the page (so the folder can be moved with its video), percent-encoded
    for a URL; a file URI where no relative path exists (another drive)."""
    try:
        relative = os.path.relpath(os.path.abspath(video), os.path.abspath(page_dir))
    except ValueError:
        return pathlib.Path(os.path.abspath(video)).as_uri()
    return urllib.parse.quote(relative.replace(os.sep, "/"), safe="/")


def script_json(value: Any) -> str:
    """JSON to inline in a <script> element: NaN and infinities become null
    (JSON has none), and <, >, & and the line separators are escaped so no
    name can close the element."""
    def clean(v):
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    text = json.dumps(clean(value), separators=(",", ":"), allow_nan=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _colour(target: str, k: int) -> str:
    return COLOURS.get(target, _PALETTE[k % len(_PALETTE)])


def _time_label(t: float, minutes: bool) -> str:
    if minutes:
        whole = int(round(t))
        return f"{whole // 60}:{whole % 60:02d}"
    return f"{t:g}"


def _rounded(values: np.ndarray, digits: int) -> list[float | None]:
    return [None if not math.isfinite(v) else round(float(v), digits) for v in values]


# ---------------------------------------------------------------- the page


def chart_svg(curve: Curve, k: int, t0: float, t1: float,
              gaps: Sequence[tuple[float, float]]) -> str:
    """One target's chart: axes and ticks, the face gaps shaded, the gold
    (black) and predicted curves, a legend, the cursor and a click area."""
    times, predicted = decimate(curve.times, curve.predicted)
    gold_t = gold = None
    if curve.gold is not None:
        gold_t, gold = decimate(curve.times, curve.gold)
    lo, hi, y_ticks = value_range(predicted, gold)
    scale = Scale(t0, t1, lo, hi)
    colour = _colour(curve.target, k)
    out = [f'<svg class="chart" data-target="{_esc(curve.target)}" viewBox="0 0 {WIDTH} '
           f'{HEIGHT}" role="img" aria-label="{_esc(curve.target)} over time">']
    title = curve.target + (f" \u00b7 {curve.score}" if curve.score else "")
    out.append(f'<text class="title" x="{scale.x0}" y="18">{_esc(title)}</text>')
    out += _gap_rects(gaps, t0, t1, scale)
    out += _axes(curve.target, y_ticks, t0, t1, scale)
    if gold is not None:
        out.append(f'<path class="series gold" d="{svg_path(gold_t, gold, scale)}"/>')
    out.append(f'<path class="series predicted" stroke="{colour}" '
               f'd="{svg_path(times, predicted, scale)}"/>')
    out.append(_legend(colour, gold is not None, bool(gaps), scale))
    out.append(f'<line class="cursor" x1="{scale.x0}" x2="{scale.x0}" y1="{scale.y0}" '
               f'y2="{scale.y1}"/>')
    out.append(f'<rect class="hit" x="{scale.x0}" y="{scale.y0}" width="{scale.x1 - scale.x0}" '
               f'height="{scale.y1 - scale.y0}"/>')
    out.append("</svg>")
    return "\n".join(out)


def _gap_rects(gaps: Sequence[tuple[float, float]], t0: float, t1: float,
               scale: Scale) -> list[str]:
    """The shaded spans without a face, clipped to the chart's time range."""
    out = []
    for t_start, t_end in gaps:
        a, b = max(t_start, t0), min(t_end, t1)
        if b > a:
            xa, xb = float(scale.x(a)), float(scale.x(b))
            out.append(f'<rect class="gap" x="{xa:.1f}" y="{scale.y0}" width="{xb - xa:.1f}" '
                       f'height="{scale.y1 - scale.y0}"/>')
    return out


def _axes(target: str, y_ticks: Sequence[float], t0: float, t1: float,
          scale: Scale) -> list[str]:
    """Grid lines and tick labels of both axes, the plot frame and the axis titles."""
    out = ['<g class="tick">']
    for v in y_ticks:
        y = float(scale.y(v))
        out.append(f'<line class="grid" x1="{scale.x0}" x2="{scale.x1}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/><text x="{scale.x0 - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{v:g}</text>')
    minutes = t1 - t0 >= 120
    step = time_step(t1 - t0)
    first = math.ceil(t0 / step - 1e-9)
    for n in range(first, int(math.floor(t1 / step + 1e-9)) + 1):
        t = n * step
        x = float(scale.x(t))
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{scale.y0}" '
                   f'y2="{scale.y1}"/><text x="{x:.1f}" y="{scale.y1 + 15}" '
                   f'text-anchor="middle">{_time_label(t, minutes)}</text>')
    out.append("</g>")
    out.append(f'<rect class="frame" x="{scale.x0}" y="{scale.y0}" width="{scale.x1 - scale.x0}" '
               f'height="{scale.y1 - scale.y0}"/>')
    out.append(f'<text x="{(scale.x0 + scale.x1) / 2}" y="{HEIGHT - 4}" text-anchor="middle">'
               f'time ({"m:ss" if minutes else "s"})</text>')
    out.append(f'<text transform="translate(14 {(scale.y0 + scale.y1) / 2}) rotate(-90)" '
               f'text-anchor="middle">{_esc(target)}</text>')
    return out


def _legend(colour: str, has_gold: bool, has_gaps: bool, scale: Scale) -> str:
    """The legend, right-aligned above the plot box."""
    entries = [("line", colour, "predicted")]
    if has_gold:
        entries.append(("line", "#1f2328", "gold standard"))
    if has_gaps:
        entries.append(("box", "#d8dee4", "no face found"))
    entries.append(("line", CURSOR, "cursor"))
    x = scale.x1
    legend = []
    for kind, paint, label in reversed(entries):
        x -= 7 * len(label) + 34
        if kind == "line":
            legend.append(f'<line x1="{x}" x2="{x + 20}" y1="14" y2="14" stroke="{paint}" '
                          'stroke-width="2"/>')
        else:
            legend.append(f'<rect x="{x}" y="8" width="20" height="12" fill="{paint}"/>')
        legend.append(f'<text x="{x + 25}" y="18">{_esc(label)}</text>')
    return '<g class="legend">' + "".join(legend) + "</g>"


def regions_table(regions: Mapping[str, Mapping[str, float]]) -> str:
    """The attention-region report's `regions` as a table: each region's
    share of the attention (with its spread over the faces), its share of
    the face's area, and their ratio (1 = uniform attention; red where the
    region draws at least 10 % more than uniform, blue at least 10 % less)."""
    rows = []
    for name, row in regions.items():
        ratio = row.get("ratio", float("nan"))
        kind = ("above" if ratio >= 1.1 else "below" if ratio <= 1 / 1.1 else "") \
            if math.isfinite(ratio) else ""
        std = row.get("attention_share_std")
        spread = f" &plusmn; {std:.1%}" if std is not None and math.isfinite(std) else ""
        rows.append(f'<tr><td>{_esc(name.replace("_", " "))}</td>'
                    f'<td>{row["attention_share"]:.1%}{spread}</td>'
                    f'<td>{row["area_share"]:.1%}</td><td class="{kind}">{ratio:.2f}</td></tr>')
    return ('<table class="data regions"><thead><tr><th>region</th><th>share of attention</th>'
            '<th>share of area</th><th>ratio (1 = uniform)</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def _asset(name: str) -> str:
    return resources.files("recola_sta.inference").joinpath("report_assets", name).read_text("utf-8")


def _png_data(path: str | os.PathLike) -> str:
    return "data:image/png;base64," + base64.b64encode(pathlib.Path(path).read_bytes()).decode()


def render_report(
    page_dir: str | os.PathLike,
    *,
    title: str,
    curves: Sequence[Curve],
    video: str | os.PathLike | None = None,
    found_times: np.ndarray | None = None,
    found: np.ndarray | None = None,
    subtitle: str = "",
    facts: Sequence[tuple[str, str]] = (),
    figures: Sequence[tuple[str | os.PathLike, str]] = (),
    regions: Mapping[str, Mapping[str, float]] | None = None,
    regions_note: str = "",
    footer: str = "",
) -> str:
    """The HTML of a report page that will sit in `page_dir` (`write_report`)."""
    if not curves:
        raise ValueError("A report needs at least one curve.")
    starts = [float(c.times[0]) for c in curves if len(c.times)]
    ends = [float(c.times[-1]) for c in curves if len(c.times)]
    t0, t1 = (min(starts), max(ends)) if starts else (0.0, 1.0)
    if not t1 > t0:
        t1 = t0 + 1.0
    gaps = face_gaps(found_times, found, t0, t1) if found is not None else []
    data = _page_data(curves, t0, t1, gaps)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_esc(title)}</title>", f"<style>{_asset('report.css')}</style>",
             "</head><body>", f"<h1>{_esc(title)}</h1>"]
    if subtitle:
        parts.append(f'<p class="sub">{_esc(subtitle)}</p>')
    parts += _top_section(page_dir, video, facts)
    parts.append('<section class="charts"><h2>Over time</h2><p class="hint">'
                 + ("Click a chart to seek the video; the violet cursor follows playback."
                    if video is not None else "Click a chart to move the cursor.")
                 + (" Grey: samples where no face was found (values interpolated)."
                    if gaps else "") + "</p>")
    for k, curve in enumerate(curves):
        parts.append(chart_svg(curve, k, t0, t1, gaps))
    parts.append("</section>")
    if regions is not None or figures:
        parts += _attention_section(regions, regions_note, figures)
    if footer:
        parts.append(f"<footer>{_esc(footer)}</footer>")
    parts.append(f'<script type="application/json" id="report-data">{script_json(data)}'
                 "</script>")
    parts.append(f"<script>{_asset('report.js')}</script>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _page_data(curves: Sequence[Curve], t0: float, t1: float,
               gaps: Sequence[tuple[float, float]]) -> dict:
    """The page script's data: the time range, the face gaps and each
    curve's (decimated) points."""
    data = {
        "t0": t0, "t1": t1, "x0": MARGIN_LEFT, "x1": WIDTH - MARGIN_RIGHT,
        "gaps": [[round(a, 4), round(b, 4)] for a, b in gaps],
        "series": [],
    }
    for curve in curves:
        times, predicted = decimate(curve.times, curve.predicted)
        series = {"target": curve.target, "t": _rounded(times, 4),
                  "p": _rounded(predicted, 4)}
        if curve.gold is not None:
            series["g"] = _rounded(np.asarray(curve.gold, np.float64)[
                np.searchsorted(curve.times, times)], 4)
        data["series"].append(series)
    return data


def _top_section(page_dir: str | os.PathLike, video: str | os.PathLike | None,
                 facts: Sequence[tuple[str, str]]) -> list[str]:
    """The player (or the no-video note), the read-out and the facts table."""
    parts = ['<section class="top">']
    if video is not None:
        src = video_src(video, page_dir)
        parts.append(
            '<div class="player">'
            f'<video id="video" controls preload="metadata" src="{_esc(src)}"></video>'
            '<p id="video-note" class="note" hidden>This browser cannot play the video (it is '
            "missing, or in a codec the browser does not decode, such as MPEG-4 Part 2 "
            "&lsquo;mp4v&rsquo;; H.264 and VP8/VP9 play). Click the charts to move the "
            "cursor.</p>"
            f'<p class="muted">video: <code>{_esc(urllib.parse.unquote(src))}</code></p></div>')
    parts.append('<div class="side"><div id="readout" class="readout" aria-live="polite">'
                 "</div>")
    if video is None:
        parts.append('<p class="muted">No video file (a camera or stream): click the charts '
                     "to move the cursor.</p>")
    if facts:
        parts.append('<table class="facts">' + "".join(
            f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in facts) + "</table>")
    parts.append("</div></section>")
    return parts


def _attention_section(regions: Mapping[str, Mapping[str, float]] | None, regions_note: str,
                       figures: Sequence[tuple[str | os.PathLike, str]]) -> list[str]:
    """The region table and the attention figures, inlined."""
    parts = ['<section class="attention"><h2>Attention</h2>']
    if regions is not None:
        parts.append('<p class="hint">Where the attention looks: each facial region\'s '
                     "share of the attention maps against its share of the area "
                     "(red: at least 10 % above uniform, blue: 10 % below). "
                     f"{_esc(regions_note)}</p>")
        parts.append(regions_table(regions))
    for path, caption in figures:
        parts.append(f'<figure><img alt="{_esc(caption)}" src="{_png_data(path)}">'
                     f"<figcaption>{_esc(caption)}</figcaption></figure>")
    parts.append("</section>")
    return parts


def write_report(path: str | os.PathLike, **kwargs) -> None:
    """Writes `render_report`'s page to `path` atomically (its arguments but
    `page_dir`, which is `path`'s folder: the video's relative path starts
    there)."""
    path = pathlib.Path(path)
    io_utils.atomic_write_text(path, render_report(path.parent, **kwargs))


# ---------------------------------------------------------------- the index of many videos


def _cell(column: str, value: Any) -> tuple[str, str]:
    """A table cell's shown text and its sort key."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "", ""
    if isinstance(value, bool):
        return str(value), str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value)), str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if column.endswith("rate"):
            return f"{value:.0%}", repr(value)
        if column.startswith("duration"):
            return f"{value:.1f}", repr(value)
        return f"{value:.3f}", repr(value)
    return str(value), str(value)


_FAILED_ROW = ' class="failed"'
_TEXT = ' class="text"'


def render_index(rows: Sequence[Mapping[str, Any]], *, title: str = "Predictions",
                 columns: Sequence[str] | None = None, link_column: str = "report") -> str:
    """The HTML of an index of many videos: one row each, with the columns
    of `columns` (default: the first row's keys but `link_column`) sortable
    by a click on their header, and the video's name linking to its report
    (`link_column`, a path relative to the index; none for a failed video)."""
    if columns is None:
        columns = [c for c in (rows[0] if rows else {}) if c != link_column]
    body, numeric = [], {c: False for c in columns}
    for row in rows:
        cells = []
        for column in columns:
            text, key = _cell(column, row.get(column))
            shown = _esc(text)
            if column == columns[0] and row.get(link_column):
                href = urllib.parse.quote(str(row[link_column]).replace(os.sep, "/"), safe="/")
                shown = f'<a href="{_esc(href)}">{shown}</a>'
            number = key != "" and _is_number(key)
            numeric[column] |= number
            kind = "" if number else _TEXT
            cells.append(f'<td data-sort="{_esc(key)}"{kind}>{shown}</td>')
        failed = str(row.get("status", "ok")) not in ("ok", "done", "skipped", "")
        body.append(f'<tr{_FAILED_ROW if failed else ""}>{"".join(cells)}</tr>')
    # Numbers right-aligned under their header, text left-aligned.
    head = "".join(f'<th scope="col"{"" if numeric[c] else _TEXT}>{_esc(c)}</th>'
                   for c in columns)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>", f"<style>{_asset('report.css')}</style>",
        "</head><body>", f"<h1>{_esc(title)}</h1>",
        f'<p class="sub">{len(rows)} videos. Click a column\'s header to sort by it.</p>',
        f'<div class="scroll"><table id="index" class="data sortable"><thead><tr>{head}</tr>'
        "</thead>", "<tbody>", *body, "</tbody></table></div>",
        f"<script>{_asset('index.js')}</script>", "</body></html>\n",
    ])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_index(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], **kwargs) -> None:
    """Writes `render_index`'s page to `path` atomically."""
    io_utils.atomic_write_text(path, render_index(rows, **kwargs))
