"""What one predict run writes from its stream: the per-frame CSV (each
target's post-processing chain applied, resampled to the video's frames),
one plot per target, the attention figures, report.html, and summary.json's
content.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import pathlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from recola_sta import clips, faces, io_utils
from recola_sta.inference.outputs import Outputs
from recola_sta.inference.stream import FrameGrid, Input, Track

# matplotlib (recola_sta.plots, over a second of imports) is imported where the
# figures are drawn, after the model has run: start-up reaches the first frame
# sooner.


def csv_columns(times: np.ndarray, values: np.ndarray, found: np.ndarray,
                frame_times: np.ndarray, targets: Sequence[str], chains: dict[str, Any]
                ) -> tuple[list[np.ndarray], np.ndarray, dict[str, str]]:
    """The CSV's columns from the per-sample values: each target's chain
    applied on its label grid (it needs the whole series), missed faces
    filled, resampled to `frame_times`; the per-frame face flag; and what
    each chain kept."""
    _, frame_found = clips.samples_to_grid(times, values[:, 0], found, frame_times)
    columns, kept = [], {}
    for k, target in enumerate(targets):
        chain = chains.get(target)
        if chain is not None:
            # The chain was fitted at the corpus label rate; apply it on that grid.
            grid = np.arange(0.0, times[-1] + 1e-9, chain.frame_period)
            on_grid, _ = clips.samples_to_grid(times, values[:, k], found, grid)
            series_t, series_v = grid, chain.apply(on_grid)
            kept[target] = ", ".join(chain.kept_steps) or "nothing"
        else:
            series_t = times
            series_v = clips.samples_to_grid(times, values[:, k], found, times)[0]
            kept[target] = "none"
        columns.append(clips.samples_to_grid(series_t, series_v, np.ones(len(series_t), bool),
                                             frame_times)[0])
    return columns, frame_found, kept


def write_csv(path: pathlib.Path, frame_times: np.ndarray, targets: Sequence[str],
              columns: Sequence[np.ndarray], frame_found: np.ndarray,
              rows_per_write: int = 4096) -> None:
    """Writes the per-frame CSV row by row (a few thousand rows at a time,
    not the whole text in memory) to a temporary file renamed onto `path`
    at the end."""
    with io_utils.atomic_path(path, suffix=".csv") as tmp, \
            open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["time", *targets, "face_found"])
        for start in range(0, len(frame_times), rows_per_write):
            stop = min(start + rows_per_write, len(frame_times))
            writer.writerows(
                [f"{frame_times[i]:.4f}", *(f"{c[i]:.6f}" for c in columns),
                 int(frame_found[i])] for i in range(start, stop))


def write_outputs(outputs: Outputs, source: Input, track: Track, grid: FrameGrid,
                  meta: dict[str, Any], chains: dict[str, Any], attention_columns: int,
                  pool: concurrent.futures.Executor | None = None
                  ) -> tuple[list[str], dict[str, str], dict[str, Any] | None]:
    """Step 4: the CSV, one plot per target, the attention figures and
    report.html, to their temporaries in `outputs` (renamed by its
    `commit`).

    With a `pool` (predict's warm alignment workers), the two attention
    figures are drawn there while this process writes the CSV and the
    target plots: the same files, sooner.

    Returns the files written (the live log and attention.mp4 included),
    what each post-processing chain kept, and the attention-region report
    (None for a model without attention)."""
    from recola_sta.analysis import plots

    targets = list(meta["targets"])
    stem = "_".join(targets)
    stream = track.stream
    with _drawn_in(pool) as draw:
        if stream.has_attention:
            picker = stream.picker
            grid_drawn = draw(
                plots.plot_attention_grid, outputs.path("attention.png", ".png"), picker.crops,
                picker.attention, picker.times, columns=attention_columns,
                title=f"{source.name}: spatiotemporal attention over one clip (its first frame "
                      "has no previous state: uniform)")
            regions_drawn = draw(
                _regions_figure, stream.regions, outputs.path("attention_regions.png", ".png"),
                f"{source.name}: where the attention looks (mean over the video's faces)")
        columns, frame_found, kept = csv_columns(track.times, track.values, track.found,
                                                 grid.times, targets, chains)
        write_csv(outputs.path(f"{stem}.csv", ".csv"), grid.times, targets, columns,
                  frame_found)
        written = [f"{stem}.csv"] + ([f"{stem}.live.csv"] if source.live else [])
        for target, column in zip(targets, columns):
            plots.plot_valence(
                outputs.path(f"{target}.png", ".png"), grid.times, column, found=frame_found,
                title=f"{source.name}: predicted {target} ({meta['variant']})", ylabel=target,
            )
            written.append(f"{target}.png")
        if not stream.has_attention:
            written.append(write_report(outputs, source, track, grid, meta, columns, written,
                                        None))
            return written, kept, None
        grid_drawn.result()
        written.append("attention.png")
        if regions_drawn.result():
            written.append("attention_regions.png")
        else:
            outputs.drop("attention_regions.png")
    if track.wrote_video:
        written.append("attention.mp4")
    regions_report = stream.regions.report()
    written.append(write_report(outputs, source, track, grid, meta, columns, written,
                                regions_report))
    return written, kept, regions_report


def _regions_figure(regions: Any, path: pathlib.Path, title: str) -> bool:
    """attention_regions.png from the stream's region sums
    (`RegionAccumulator.write_figure`): a task for `_drawn_in`."""
    return regions.write_figure(path, title=title)


@contextlib.contextmanager
def _drawn_in(pool: concurrent.futures.Executor | None
              ) -> Iterator[Callable[..., concurrent.futures.Future]]:
    """`draw(fn, *args, **kwargs)`: a future of `fn`'s result, run in
    `pool` (module-level `fn` and picklable arguments), or here at once
    without one. Leaving the block waits for the figures still being drawn
    (those not started are cancelled): none is written after a failed run
    has removed its temporaries."""
    futures: list[concurrent.futures.Future] = []

    def draw(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        if pool is not None:
            futures.append(pool.submit(fn, *args, **kwargs))
            return futures[-1]
        done: concurrent.futures.Future = concurrent.futures.Future()
        done.set_result(fn(*args, **kwargs))
        return done

    try:
        yield draw
    finally:
        for future in futures:
            future.cancel()
        concurrent.futures.wait(futures)


def write_report(outputs: Outputs, source: Input, track: Track, grid: FrameGrid,
                 meta: dict[str, Any], columns: Sequence[np.ndarray], written: list[str],
                 regions_report: dict[str, Any] | None) -> str:
    """report.html (`recola_sta.report`): the video beside the CSV's curves,
    the samples without a face shaded, the attention figures written so far
    and the region table. A camera or stream has no file: the curves alone.
    Returns the file's name."""
    from recola_sta.inference import report

    video = source.video if pathlib.Path(str(source.video)).is_file() else None
    targets = list(meta["targets"])
    facts = [("video", f"{grid.width}x{grid.height}, {grid.fps:g} fps, {grid.duration:.1f} s"),
             ("samples", f"{len(track.times)} at {float(meta['fps']):g} fps"),
             ("faces found", f"{track.found.mean():.0%} of the samples"),
             ("model", f"{meta['variant']}, {meta['face'].size} px, clips of {meta['frames']}")]
    figures = [(outputs.temporary(name), caption) for name, caption in (
        ("attention.png", "One clip's aligned faces with the attention overlaid (its first "
                          "frame has no previous state: uniform)."),
        ("attention_regions.png", "The mean attention over the video's aligned faces."))
        if name in written]
    regions = None
    if regions_report is not None and regions_report.get("available") and \
            regions_report.get("samples"):
        regions = regions_report["regions"]
    report.write_report(
        outputs.path("report.html", ".html"), title=f"{source.name}: predicted {', '.join(targets)}",
        subtitle=f"The {meta['variant']} model's predictions; every frame's values are in "
                 f"{written[0]} beside this page.",
        curves=[report.Curve(t, grid.times, c) for t, c in zip(targets, columns)],
        video=video, found_times=track.times, found=track.found, facts=facts,
        figures=figures, regions=regions,
        regions_note=(f"Frames {regions_report['frames_used']}, {regions_report['samples']} "
                      "faces." if regions is not None else ""),
        footer="Written by recola_sta.inference.predict.",
    )
    return "report.html"


def summarize(source: Input, track: Track, grid: FrameGrid, meta: dict[str, Any],
              model_dir: pathlib.Path, aligner: faces.FaceAligner, written: list[str],
              kept: dict[str, str], regions_report: dict[str, Any] | None, *,
              seconds: float, limited: bool) -> dict[str, Any]:
    """Step 5: summary.json's content: the video's facts, the face-found
    rate, the aligner's settings, what was written and the timing."""
    targets = list(meta["targets"])
    seen = len(track.times) / float(meta["fps"])
    face_px = track.face_px
    summary = {
        "video": str(source.video),
        "model": str(model_dir),
        "variant": meta["variant"],
        "video_fps": grid.fps,
        "video_frames": grid.count,
        "duration_s": grid.duration,
        "samples": int(len(track.times)),
        "face_found_rate": float(track.found.mean()),
        "video_size": [grid.width, grid.height],
        "smallest_face_px": (float(np.nanmin(face_px)) if np.isfinite(face_px).any()
                             else None),
        "samples_with_several_faces": int((track.num_faces > 1).sum()),
        "face_aligner": {**aligner.settings(), "predictor_path": aligner.predictor_path},
        "targets": targets,
        "postprocess_kept": kept[targets[0]] if len(targets) == 1 else kept,
        "wall_time_s": round(seconds, 2),
        "real_time_factor": round((seen if source.live else grid.duration) / seconds, 2)
        if seconds > 0 else None,
        "files": written,
    }
    if source.live or limited:
        summary["live"] = source.live
        summary["stopped"] = track.stopped
    if regions_report is not None:
        summary["attention_regions"] = regions_report
    return summary
