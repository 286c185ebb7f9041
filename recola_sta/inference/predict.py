"""Run an exported model on any face video: valence (and arousal) over time and attention.

    python -m recola_sta.predict --model=runs/synthetic_3d_cnn_sta/saved_model \\
        --video=face.mp4 --out=out/face

Only the SavedModel is loaded (`tf.saved_model.load`): no training code and
no Keras custom objects. The video may have any frame rate and size. Frames
are sampled at the model's rate (4 fps) by timestamp, faces are detected and
aligned exactly as in training (the face aligner is built from the settings
in the model's recola_sta.json; --upsample, --detect_width, --face,
--redetect_every, --rotate and --predictor_path override them; where no face
is found, the message suggests the --rotate under which a few sampled frames
show one), 16-frame clips are predicted (the last one,
or a video shorter than one clip, is padded by repeating its last frame),
samples without a face are interpolated from their neighbours, and the
result is resampled to the video's own frame times.

The video streams through `--batch_size` clips at a time: only per-sample
values, the running sums of the attention-region report, the clip
attention.png shows and attention.mp4 (written as it goes) are kept, so
memory stays flat with the video's length. The CSV is written at the end,
as the post-processing chains need the whole series.

Live input (--video=0, a camera index, or a stream URL; --realtime reads a
file at its real pace instead): samples at 4 fps by the wall clock, appends
each completed clip's raw rows to <targets>.live.csv (flushed, a valid CSV
at any moment), and on Ctrl-C, --max_seconds or the end of the stream
writes <targets>.csv post-processed over what was seen, at the 4 fps sample
times, with the plots and summary.json.

Writes into --out:
    valence.csv       time,valence,face_found at the video's frame rate
    valence.png       valence over time (grey where no face was found)
                      A model of other or several targets (its
                      recola_sta.json `targets`) writes <targets>.csv, named
                      after them joined by "_" (valence_arousal.csv: time,
                      valence,arousal,face_found), and one <target>.png each;
                      each target gets its own post-processing chain.
    attention.png     for the attention model: aligned faces with the
                      attention overlaid (paper Fig. 5)
    attention_regions.png  for the attention model: the mean attention over
                      the video's aligned faces beside each facial region's
                      share of it (also `attention_regions` in summary.json)
    attention.mp4     with --attention_video: every 4 fps sample, overlaid
    valence.live.csv  live input only: raw rows per 4 fps sample, appended
                      as each clip completes
    report.html       the video (by its path relative to --out; none for a
                      camera or stream) beside each target's curve: a cursor
                      follows playback, a click on a curve seeks, the samples
                      without a face are shaded; the attention figures and
                      region table (self-contained: opens offline in a browser)
    summary.json      video facts, face-found rate, smallest face, samples
                      with several faces, the aligner's settings, timing
The files are written to temporary names and renamed together at the end,
summary.json last: a run that fails or is interrupted (Ctrl-C, a full disk)
leaves --out as it was (a live source keeps its .live.csv), and a
summary.json always describes complete outputs of one run.
Exit codes (`recola_sta.cli`): 0 success, 2 bad input (missing/corrupt file,
not a model, a full disk), 3 no face found anywhere in the video, 130
interrupted.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import io
import json
import math
import os
import pathlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Sequence

import numpy as np

from recola_sta import cli, clips, faces, io_utils
from recola_sta.analysis import attention_analysis
from recola_sta.faces import settings as face_settings
from recola_sta.inference import export

# matplotlib (recola_sta.plots, over a second of imports) is imported where the
# figures are drawn, after the model has run: start-up reaches the first frame
# sooner.

EXIT_BAD_INPUT = cli.EXIT_BAD_INPUT
EXIT_NO_FACE = cli.EXIT_NO_FACE
NoFaceError = cli.NoFaceError


def _load_chains(model_dir: pathlib.Path, targets: Sequence[str]) -> dict[str, Any]:
    """The post-processing chain of each target stored beside the model
    (none for a target without one)."""
    path = model_dir / export.POSTPROCESS_NAME
    if not path.is_file():
        return {}
    from recola_sta.evaluation import postprocess

    return postprocess.load_chains(path, targets)


def make_aligner(meta: dict[str, Any], model_dir: pathlib.Path,
                 overrides: dict[str, Any] | None = None) -> faces.FaceAligner:
    """The `FaceAligner` the model's crops were made with (`face` in its
    recola_sta.json), with the non-None `overrides` applied.

    Raises:
        ValueError: a recorded setting is invalid (naming recola_sta.json),
            or an override is (naming its flag).
        FileNotFoundError: the landmark model file does not exist.
    """
    recorded = meta["face"]
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return dataclasses.replace(recorded, **given).aligner()
    except ValueError as e:
        raise ValueError(
            f"Cannot build the face aligner from {model_dir / export.METADATA_NAME} "
            f"(face: {recorded.to_json()}) and the flags {given or 'given (none)'}: {e}"
        ) from e


class ModelLoadError(ValueError):
    """A SavedModel cannot be loaded (corrupt or truncated files) or does not
    take the clips its recola_sta.json describes; the message names the file."""


# Which file of a SavedModel an error of `tf.saved_model.load` points at,
# by a phrase of its message (TensorFlow raises OSError, IndexError,
# ValueError or OpErrors of several kinds, none naming the file).
_LOAD_ERROR_FILES = (
    ("Cannot parse file", "saved_model.pb"),
    ("MetaGraph", "saved_model.pb"),
    ("sstable", "variables/variables.index"),
    ("Checksum", "variables/variables.data-*"),
    ("Read less bytes", "variables/variables.data-*"),
    ("TensorSliceReader", "variables/"),
)


def describe_load_error(model_dir: pathlib.Path, error: BaseException) -> str:
    """One line saying which file of the SavedModel `model_dir` is broken."""
    text = " ".join(str(error).split())
    if text.startswith("{{function_node"):  # TensorFlow's op prefix: no information
        text = text.split("}}", 1)[-1].strip()
    culprit = next((name for phrase, name in _LOAD_ERROR_FILES if phrase in text),
                   "saved_model.pb or variables/")
    matches = sorted(model_dir.glob(culprit)) if "*" in culprit else []
    if matches:
        culprit = str(matches[0].relative_to(model_dir))
    if len(text) > 200:
        text = text[:197] + "..."
    return (f"Cannot load the SavedModel {model_dir}: {model_dir / culprit} is corrupt or "
            f"truncated ({type(error).__name__}: {text}). Re-export the model from its run "
            "folder.")


def check_serving_shape(model: Any, model_dir: pathlib.Path, meta: dict[str, Any]) -> None:
    """Checks that the loaded SavedModel serves clips of the frames and crop
    size its recola_sta.json records; a mismatch would otherwise surface as
    a TensorFlow error printing a whole input batch.

    Raises:
        ModelLoadError: no `serve` signature, or other clip dimensions.
    """
    serve = getattr(model, "serve", None)
    signature = getattr(serve, "input_signature", None)
    if serve is None or not signature:
        raise ModelLoadError(f"The SavedModel {model_dir} has no `serve` signature: it was "
                             "not exported by recola_sta. Re-export the model from its run "
                             "folder.")
    served = tuple(signature[0].shape)[1:]
    size = meta["face"].size
    wanted = (meta["frames"], size, size, 3)
    if served != wanted:
        raise ModelLoadError(
            f"{model_dir / export.METADATA_NAME} records clips of {meta['frames']} frames of "
            f"{size}x{size} px (frames={meta['frames']}, face.size={size}), "
            f"but the SavedModel in {model_dir} takes clips of shape {served} "
            "(frames, size, size, channels): the metadata does not belong to this model. "
            "Re-export the model from its run folder."
        )


class _ModelLoader:
    """Imports TensorFlow and loads a SavedModel in a background thread;
    `result` waits for it and raises what the load raised, as a
    `ModelLoadError` naming the broken file where TensorFlow could not read
    the model."""

    def __init__(self, model_dir: pathlib.Path, meta: dict[str, Any]):
        self._model_dir = model_dir
        self._meta = meta
        self._model: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name="load-model", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            import tensorflow as tf
        except BaseException as e:  # raised in the caller's thread by result()
            self._error = e
            return
        try:
            model = tf.saved_model.load(str(self._model_dir))
        except (MemoryError, KeyboardInterrupt) as e:
            self._error = e
            return
        except Exception as e:  # any reader error of a broken file
            self._error = ModelLoadError(describe_load_error(self._model_dir, e))
            return
        try:
            check_serving_shape(model, self._model_dir, self._meta)
        except ModelLoadError as e:
            self._error = e
            return
        self._model = model

    def join(self) -> None:
        """Waits for the load to end, whatever it gives: a process that
        exits (Ctrl-C, an error) while this thread imports TensorFlow or
        loads the model is aborted by the C++ runtime ("terminate called
        without an active exception")."""
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._model


def run_model(serve, crops: np.ndarray, frames: int, batch_size: int,
              targets: Sequence[str] = ("valence",)) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-sample values of the model's `targets` (its metadata's
    `targets`): (N,) for one target, (N, K) for K; and attention maps
    (N, S, S) or None."""
    import tensorflow as tf

    out = clips.predict_clips(
        lambda batch: {k: v.numpy() for k, v in serve(tf.constant(batch)).items()},
        crops, frames, batch_size,
    )
    keys = export.serving_keys(targets)
    missing = [k for k in keys if k not in out]
    if missing:
        raise ValueError(f"The SavedModel serves {sorted(out)}, not the outputs {missing} of "
                         f"its targets {list(targets)}; re-export the model from its run folder.")
    values = np.stack([out[k].astype(np.float64) for k in keys], axis=-1)
    return (values[:, 0] if len(keys) == 1 else values), out.get("attention")


class _ClipPicker:
    """Chooses, as the samples stream past, the clip attention.png shows
    (like the paper's Fig. 5): among the clips with the most faces, the one
    nearest the middle of the video (its earliest on a tie). For live input
    (`num_samples` None: the middle is unknown) the first clip with the most
    faces. Holds only that clip's faces, maps and times."""

    def __init__(self, frames: int, num_samples: int | None):
        self.frames = frames
        num_clips = None if num_samples is None else -(-num_samples // frames)
        self._middle = None if num_clips is None else (num_clips - 1) / 2
        self._best: tuple[int, int] | None = None  # (faces, clip index)
        self.crops = self.attention = self.times = None

    def add(self, first_index: int, crops: np.ndarray, found: np.ndarray,
            attention: np.ndarray, times: np.ndarray) -> None:
        """A chunk of whole clips (the last may be short) starting at sample
        `first_index` (a multiple of `frames`)."""
        for start in range(0, len(found), self.frames):
            part = slice(start, start + self.frames)
            clip = (first_index + start) // self.frames
            count = int(found[part].sum())
            if self._best is not None:
                best_count, best_clip = self._best
                if count < best_count:
                    continue
                if count == best_count and (self._middle is None or abs(clip - self._middle)
                                            >= abs(best_clip - self._middle)):
                    continue
            self._best = (count, clip)
            keep = found[part]
            self.crops = crops[part][keep].copy()
            self.attention = attention[part][keep].copy()
            self.times = times[part][keep].copy()


class _AttentionVideo:
    """attention.mp4, written frame by frame as the samples stream past (to
    a temporary name: `io_utils.atomic_path` renames it at the end). The
    colour scale (`plots.attention_colour_limit`) is fixed by the first
    chunk with a face, as the later maps are not known yet."""

    def __init__(self, path: pathlib.Path, tmp: pathlib.Path, fps: float):
        self._path, self._tmp, self._fps = path, tmp, fps
        self._writer: Any = None
        self._scale = 1
        self._vmax: float | None = None

    def write(self, crops: np.ndarray, attention: np.ndarray, found: np.ndarray) -> None:
        import cv2

        from recola_sta.analysis import plots

        if self._writer is None:
            size = crops.shape[1]
            self._scale = max(1, 256 // size)
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                           self._fps,
                                           (size * self._scale, size * self._scale))
            if not self._writer.isOpened():
                raise ValueError(f"OpenCV cannot write {self._path} (no mp4v encoder).")
        if self._vmax is None and found.any():
            self._vmax = plots.attention_colour_limit(attention[found])
        vmax = self._vmax if self._vmax is not None else plots.attention_colour_limit(attention)
        for crop, att, ok in zip(crops, attention, found):
            frame = plots.overlay_attention(crop, att, vmax=vmax) if ok else crop
            frame = cv2.resize(frame, None, fx=self._scale, fy=self._scale,
                               interpolation=cv2.INTER_NEAREST)
            self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def release(self) -> None:
        if self._writer is not None:
            self._writer.release()


class _LiveLog:
    """<targets>.live.csv for live input: time, the raw model values and
    face_found of every 4 fps sample, appended and flushed as each clip
    completes, one write per clip, so the file is a valid CSV at any moment
    (values are empty where no face was found: filling them needs later
    samples)."""

    def __init__(self, path: pathlib.Path, targets: Sequence[str]):
        self.path = path
        self._file = open(path, "w", newline="", encoding="utf-8")
        self._write([["time", *targets, "face_found"]])

    def _write(self, rows: list[list[Any]]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        self._file.write(buf.getvalue())
        self._file.flush()

    def add(self, times: np.ndarray, values: np.ndarray, found: np.ndarray) -> None:
        self._write([[f"{t:.4f}", *((f"{v:.6f}" if ok else "") for v in row), int(ok)]
                     for t, row, ok in zip(times, values, found)])

    def close(self) -> None:
        self._file.close()


class _Stream:
    """Runs the model on the aligned samples chunk by chunk and keeps only
    what the outputs need: per-sample values, times, found flags, face sizes
    and face counts (a few numbers each), the running sums of the attention
    region report, the clip attention.png shows, and attention.mp4 written
    as it goes. Memory therefore stays flat with the video's length."""

    def __init__(self, serve_fn, meta: dict[str, Any], chunk_clips: int,
                 num_samples: int | None, video_out: _AttentionVideo | None,
                 log: _LiveLog | None):
        self._serve_fn = serve_fn
        self.frames = int(meta["frames"])
        self.targets = list(meta["targets"])
        self._chunk_clips = chunk_clips
        self._chunk = chunk_clips * self.frames
        self._pending: list[faces.Sample] = []
        self._picker = _ClipPicker(self.frames, num_samples)
        self._regions = attention_analysis.RegionAccumulator(self.frames)
        self._video_out, self._log = video_out, log
        self._times: list[float] = []
        self._values: list[np.ndarray] = []
        self._found: list[bool] = []
        self._face_px: list[float] = []
        self._num_faces: list[int] = []
        self.has_attention: bool | None = None

    def add(self, sample: faces.Sample) -> None:
        self._pending.append(sample)
        if len(self._pending) == self._chunk:
            self.flush()

    def flush(self) -> None:
        """Runs the model on the pending samples (the last clip padded)."""
        if not self._pending:
            return
        chunk = self._pending
        first = len(self._times)
        crops = np.stack([s.crop for s in chunk])
        found = np.array([s.found for s in chunk], bool)
        times = np.array([s.time for s in chunk], np.float64)
        values, attention = run_model(self._serve_fn(), crops, self.frames, self._chunk_clips,
                                      self.targets)
        values = values.reshape(len(chunk), len(self.targets))
        self._pending = []
        self._times.extend(times.tolist())
        self._values.append(values)
        self._found.extend(found.tolist())
        self._face_px.extend(s.face_px for s in chunk)
        self._num_faces.extend(s.num_faces for s in chunk)
        self.has_attention = attention is not None
        if self._log is not None:
            self._log.add(times, values, found)
        if attention is None:
            return
        self._picker.add(first, crops, found, attention, times)
        self._regions.add(crops, found, np.stack([s.landmarks for s in chunk]), attention)
        if self._video_out is not None:
            self._video_out.write(crops, attention, found)

    def track(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """times (N,), values (N, K), found (N,), face_px (N,), num_faces (N,)."""
        values = (np.concatenate(self._values) if self._values
                  else np.zeros((0, len(self.targets))))
        return (np.asarray(self._times, np.float64), values, np.asarray(self._found, bool),
                np.asarray(self._face_px, np.float32), np.asarray(self._num_faces, np.int32))

    @property
    def picker(self) -> _ClipPicker:
        return self._picker

    @property
    def regions(self) -> attention_analysis.RegionAccumulator:
        return self._regions


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


@dataclasses.dataclass
class _Input:
    """Where the 4 fps samples come from: a file (probed, sampled by
    timestamp) or a live source (sampled by the wall clock)."""

    video: str | os.PathLike
    name: str
    frames: Iterator[Any]
    live: bool
    info: faces.VideoInfo | None  # None for a live source
    source: Any  # faces.LiveSource, or None for a file
    num_samples: int | None  # None for a live source
    stopped: str  # why sampling ends, unless something stops it earlier

    def close(self) -> None:
        close = getattr(self.frames, "close", None)
        if close is not None:
            close()


def open_input(video: str | os.PathLike, fps: float, *, realtime: bool, max_seconds: float | None,
               prefetch: int, progress: bool) -> _Input:
    """Step 1: probes a file (or opens a camera or stream) and returns the
    iterator of its frames at the model's sample rate `fps`."""
    if realtime or faces.is_live_source(str(video)):
        source = faces.LiveSource(str(video), realtime=realtime)
        frames = faces.live_frames(source, fps, max_seconds)
        if prefetch > 0:
            frames = faces.prefetched(frames, prefetch)
        if progress:
            from tqdm import tqdm

            frames = tqdm(frames, desc=source.name, unit="sample", leave=False)
        return _Input(video, source.name, frames, True, None, source, None, "end of stream")
    info = faces.probe_video(video)
    stopped = "end of video"
    # Sample up to the last frame's own time, not past the end of the video.
    last_frame_time = max(0.0, info.duration - 1.0 / info.fps)
    if max_seconds is not None and max_seconds < last_frame_time:
        last_frame_time = max_seconds
        stopped = f"--max_seconds={max_seconds:g}"
    sample_times = faces.sample_times(info.duration, fps=fps, end=last_frame_time)
    frames = faces.sampled_frames(video, sample_times, progress=progress, prefetch=prefetch)
    return _Input(video, pathlib.Path(video).name, frames, False, info, None,
                  len(sample_times), stopped)


class _Outputs:
    """The files one predict run writes into --out, committed together.

    Each is written to a temporary name beside its final one
    (`io_utils.atomic_path`), and `commit` renames them all at the end,
    summary.json last; an earlier run's summary.json is removed before the
    first rename. A run that fails or is interrupted anywhere before
    (Ctrl-C while the figures are drawn, a full disk) removes its
    temporaries (`discard`), so --out keeps what it had: a summary.json
    always describes complete outputs of one run, and its absence marks a
    run that did not finish. (Removing this run's partial outputs instead
    would leave an earlier run's files half replaced.) A live source's
    <targets>.live.csv is the exception: it is appended as the samples
    arrive, and kept.
    """

    def __init__(self, out_dir: pathlib.Path):
        self.out_dir = out_dir
        self._files = contextlib.ExitStack()
        self._tmp: dict[str, pathlib.Path] = {}

    def path(self, name: str, suffix: str = "") -> pathlib.Path:
        """The temporary path to write output `name` to (`suffix`: its
        extension, for writers that choose the format from it)."""
        tmp = self._files.enter_context(io_utils.atomic_path(self.out_dir / name, suffix))
        self._tmp[name] = tmp
        return tmp

    def temporary(self, name: str) -> pathlib.Path:
        """Where output `name` was written (its temporary, until `commit`)."""
        return self._tmp[name]

    def drop(self, name: str) -> None:
        """Output `name` is not written after all (no attention to show)."""
        self._tmp.pop(name).unlink(missing_ok=True)

    def commit(self, summary: dict[str, Any]) -> None:
        """Writes summary.json to its temporary (a full disk fails here,
        before any rename), renames every output onto its final name, then
        summary.json."""
        with io_utils.atomic_path(self.out_dir / "summary.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            (self.out_dir / "summary.json").unlink(missing_ok=True)
            self._files.close()

    def discard(self, error: BaseException) -> BaseException:
        """Removes every temporary (no output is renamed); returns the error
        to raise for `error`: itself, or for a full disk reported on a
        temporary, an ENOSPC naming its output."""
        try:
            self._files.__exit__(_Discarded, _Discarded(), None)
        except _Discarded:
            pass
        filename = getattr(error, "filename", None) if isinstance(error, OSError) else None
        if filename is None or not cli.is_disk_full(error):
            return error
        for name, tmp in self._tmp.items():
            if os.fspath(filename) == os.fspath(tmp):
                return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                               str(self.out_dir / name))
        return error


class _Discarded(Exception):
    """Thrown into the temporaries' `atomic_path`s by `_Outputs.discard`,
    so that they remove their files."""


@dataclasses.dataclass
class _Track:
    """What the stream kept of every 4 fps sample, and the stream itself
    (its clip picker and attention-region sums)."""

    stream: _Stream
    times: np.ndarray
    values: np.ndarray
    found: np.ndarray
    face_px: np.ndarray
    num_faces: np.ndarray
    stopped: str
    wrote_video: bool


def run_stream(source: _Input, aligner: faces.FaceAligner, serve_fn: Callable[[], Any],
               meta: dict[str, Any], outputs: _Outputs, *, batch_size: int,
               attention_video: bool, max_seconds: float | None) -> _Track:
    """Step 2: aligns every sample and runs the model clip by clip;
    attention.mp4 (to its temporary in `outputs`) and, for a live source,
    <targets>.live.csv are written as it goes.

    Raises:
        NoFaceError: no sample had a face (the live log is removed).
    """
    stopped = source.stopped
    out_dir = outputs.out_dir
    with contextlib.ExitStack() as stack:
        video_out = log = None
        if attention_video:
            video_out = _AttentionVideo(out_dir / "attention.mp4",
                                        outputs.path("attention.mp4", suffix=".mp4"),
                                        float(meta["fps"]))
            stack.callback(video_out.release)
        if source.live:
            out_dir.mkdir(parents=True, exist_ok=True)
            log = _LiveLog(out_dir / f"{'_'.join(meta['targets'])}.live.csv", meta["targets"])
            stack.callback(log.close)
        stream = _Stream(serve_fn, meta, 1 if source.live else batch_size, source.num_samples,
                         video_out=video_out, log=log)
        try:
            for sample in faces.iter_samples(source.frames, aligner):
                stream.add(sample)
                if (source.live and max_seconds is not None
                        and sample.time >= max_seconds - 1e-9):
                    stopped = f"--max_seconds={max_seconds:g}"
                    break
        except KeyboardInterrupt:
            if not source.live:
                raise
            stopped = "interrupted (Ctrl-C)"
        finally:
            source.close()
        stream.flush()
        times, values, found, face_px, num_faces = stream.track()
        if not found.any():
            if log is not None:
                log.close()
                log.path.unlink(missing_ok=True)
            if source.live:
                raise NoFaceError(f"No face was found in any of the {len(times)} samples of the "
                                  f"live source {source.name}; nothing to predict.")
            raise NoFaceError(no_face_message(source.video, source.info, times, aligner))
        wrote_video = video_out is not None and bool(stream.has_attention)
        if video_out is not None and not wrote_video:
            video_out.release()
            outputs.drop("attention.mp4")  # no attention: nothing to show
    return _Track(stream, times, values, found, face_px, num_faces, stopped, wrote_video)


@dataclasses.dataclass
class _FrameGrid:
    """The times the CSV has rows at: the video's own frames (a live
    source's 4 fps samples), and the facts summary.json reports."""

    times: np.ndarray
    count: int
    fps: float
    duration: float
    width: int
    height: int


def frame_grid(source: _Input, sample_times: np.ndarray, sample_fps: float,
               max_seconds: float | None) -> _FrameGrid:
    """Step 3: the output's time grid."""
    if source.live:
        live = source.source
        return _FrameGrid(sample_times, len(sample_times), live.fps,
                          len(sample_times) / sample_fps, live.width, live.height)
    info = source.info
    count = info.frame_count or int(round(info.duration * info.fps))
    if max_seconds is not None:
        count = min(count, int(math.floor(max_seconds * info.fps + 1e-9)) + 1)
    return _FrameGrid(np.arange(count) / info.fps, count, info.fps, info.duration,
                      info.width, info.height)


def write_outputs(outputs: _Outputs, source: _Input, track: _Track, grid: _FrameGrid,
                  meta: dict[str, Any], chains: dict[str, Any], attention_columns: int
                  ) -> tuple[list[str], dict[str, str], dict[str, Any] | None]:
    """Step 4: the CSV, one plot per target, the attention figures and
    report.html, to their temporaries in `outputs` (renamed by its
    `commit`).

    Returns the files written (the live log and attention.mp4 included),
    what each post-processing chain kept, and the attention-region report
    (None for a model without attention)."""
    from recola_sta.analysis import plots

    targets = list(meta["targets"])
    stem = "_".join(targets)
    columns, frame_found, kept = csv_columns(track.times, track.values, track.found, grid.times,
                                             targets, chains)
    write_csv(outputs.path(f"{stem}.csv", ".csv"), grid.times, targets, columns, frame_found)
    written = [f"{stem}.csv"] + ([f"{stem}.live.csv"] if source.live else [])
    for target, column in zip(targets, columns):
        plots.plot_valence(
            outputs.path(f"{target}.png", ".png"), grid.times, column, found=frame_found,
            title=f"{source.name}: predicted {target} ({meta['variant']})", ylabel=target,
        )
        written.append(f"{target}.png")
    stream = track.stream
    if not stream.has_attention:
        written.append(write_report(outputs, source, track, grid, meta, columns, written, None))
        return written, kept, None
    picker = stream.picker
    plots.plot_attention_grid(
        outputs.path("attention.png", ".png"), picker.crops, picker.attention, picker.times,
        columns=attention_columns,
        title=f"{source.name}: spatiotemporal attention over one clip (its first frame has no "
              "previous state: uniform)",
    )
    written.append("attention.png")
    if stream.regions.write_figure(
            outputs.path("attention_regions.png", ".png"),
            title=f"{source.name}: where the attention looks (mean over the video's faces)"):
        written.append("attention_regions.png")
    else:
        outputs.drop("attention_regions.png")
    if track.wrote_video:
        written.append("attention.mp4")
    regions_report = stream.regions.report()
    written.append(write_report(outputs, source, track, grid, meta, columns, written,
                                regions_report))
    return written, kept, regions_report


def write_report(outputs: _Outputs, source: _Input, track: _Track, grid: _FrameGrid,
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


def predict_video(
    model_dir: str | os.PathLike,
    video: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    apply_postprocess: bool = True,
    attention_video: bool = False,
    attention_columns: int = 8,
    batch_size: int = 16,
    upsample: int | None = None,
    detect_width: int | None = None,
    face: str | None = None,
    predictor_path: str | None = None,
    redetect_every: int | None = None,
    rotate: int | None = None,
    progress: bool = True,
    model: Any = None,
    prefetch: int = 4,
    max_seconds: float | None = None,
    realtime: bool = False,
) -> dict[str, Any]:
    """Predicts valence (and attention) for one video; see the module doc.

    The video streams through in chunks of `batch_size` clips: memory stays
    flat with its length (only per-sample values are kept whole, as the
    post-processing chains need the whole series).

    `upsample`, `detect_width`, `face`, `predictor_path`, `redetect_every`
    and `rotate` override the face aligner's settings recorded with the
    model; None keeps them. Where no face is found, a few sampled frames are
    turned by 90, 180 and 270 degrees and the message suggests the `rotate`
    (--rotate) under which a face appears. `model`: the
    SavedModel of `model_dir` already loaded (`tf.saved_model.load`), to
    predict several videos without loading it again; None loads it.
    `prefetch`: sampled frames decoded ahead of the face aligner by a
    background thread (`faces.sampled_frames`); 0 decodes in line.

    Live input: `video` a camera index ("0") or a stream URL
    (`faces.is_live_source`), or with `realtime` a file read at its real
    pace standing in for a camera. Samples are taken at 4 fps by the wall
    clock, the model runs on each clip as it completes and its raw rows are
    appended to <targets>.live.csv; the run stops at the end of the stream,
    after `max_seconds`, or on KeyboardInterrupt (Ctrl-C), and then writes
    <targets>.csv post-processed over what was seen, at the 4 fps sample
    times, with the plots and summary.json. `max_seconds` also limits a
    file.

    Steps: check the input and open it (`open_input`), align and run the
    model clip by clip (`run_stream`), the output's time grid
    (`frame_grid`), the CSV and figures (`write_outputs`), summary.json
    (`summarize`).

    Raises:
        FileNotFoundError: the model folder or video does not exist.
        ValueError: the video cannot be decoded; the model's recola_sta.json
            is invalid; `out_dir` is a file or not writable (checked before
            any work).
        ModelLoadError (a ValueError): the SavedModel's files are corrupt or
            truncated, or it takes other clips than its recola_sta.json says.
        NoFaceError: no face in any sampled frame.
    """
    start = time.time()
    model_dir = pathlib.Path(model_dir)
    out_dir = pathlib.Path(out_dir)
    meta = export.read_metadata(model_dir)
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"--max_seconds={max_seconds} must be positive.")
    # Before any work: a run that cannot save its results wastes all of it.
    io_utils.check_writable_dir(out_dir, "--out")
    aligner = make_aligner(meta, model_dir, {"upsample": upsample, "detect_width": detect_width,
                                             "face": face, "predictor_path": predictor_path,
                                             "redetect_every": redetect_every,
                                             "rotate": rotate})
    source = open_input(video, float(meta["fps"]), realtime=realtime, max_seconds=max_seconds,
                        prefetch=prefetch, progress=progress)
    # TensorFlow is imported and the SavedModel loaded in a background thread
    # while the first frames are decoded and aligned.
    loading = None
    if model is None:
        loading = _ModelLoader(model_dir, meta)
        serve_fn = lambda: loading.result().serve  # noqa: E731
    else:
        check_serving_shape(model, model_dir, meta)
        serve_fn = lambda: model.serve  # noqa: E731
    outputs = _Outputs(out_dir)
    try:
        track = run_stream(source, aligner, serve_fn, meta, outputs, batch_size=batch_size,
                           attention_video=attention_video, max_seconds=max_seconds)
        chains = _load_chains(model_dir, meta["targets"]) if apply_postprocess else {}
        grid = frame_grid(source, track.times, float(meta["fps"]), max_seconds)
        written, kept, regions_report = write_outputs(outputs, source, track, grid, meta,
                                                      chains, attention_columns)
        summary = summarize(source, track, grid, meta, model_dir, aligner, written, kept,
                            regions_report, seconds=time.time() - start,
                            limited=max_seconds is not None)
        outputs.commit(summary)
    except BaseException as e:
        error = outputs.discard(e)
        if error is e:
            raise
        raise error from e
    finally:
        if loading is not None:
            loading.join()
    return summary


def summarize(source: _Input, track: _Track, grid: _FrameGrid, meta: dict[str, Any],
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


def no_face_message(video: str | os.PathLike, info: faces.VideoInfo, times: np.ndarray,
                    aligner: faces.FaceAligner) -> str:
    """The message of a video without any face, with the advice that fits:
    --rotate where a few sampled frames turned show a face
    (`faces.rotation_hint`), else --upsample for small faces."""
    message = (f"No face was found in any of the {len(times)} frames sampled from {video} "
               f"({info.width}x{info.height}"
               f"{f', turned {aligner.rotate} degrees' if aligner.rotate else ''}); nothing "
               "to predict.")
    hint = faces.rotation_hint(video, times, aligner)
    if hint is not None:
        turn, hits, tried = hint
        return (f"{message} The video looks sideways: turned {turn} degrees clockwise, "
                f"{hits} of {tried} sampled frames show a face; try --rotate={turn}.")
    return (f"{message} Is the face frontal and upright? Faces down to about an eighth of "
            "the frame height are searched for at the default settings; try --upsample=1 "
            "for smaller faces.")


def define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("model", None, "Exported SavedModel folder (RUN_DIR/saved_model).")
    flags.DEFINE_string("video", None, "Face video to analyse (any frame rate and size), or a "
                        "live source: a camera index (0) or a stream URL (rtsp://...).")
    flags.DEFINE_string("out", None, "Output folder.")
    flags.DEFINE_bool("postprocess", True, "Apply the post-processing chain fitted on dev.")
    flags.DEFINE_bool("attention_video", False, "Also write attention.mp4 (attention model only).")
    flags.DEFINE_integer("batch_size", 16, "Clips per model call.")
    # Unset: as recorded with the model (recola_sta.json).
    face_settings.define_flags({"upsample": None, "detect_width": None, "face": None,
                                "redetect_every": None, "rotate": None}, skip=("size",))
    flags.DEFINE_float("max_seconds", None, "Stop after this many seconds of video (live "
                       "input: of wall-clock time); unset: to the end, or Ctrl-C.")
    flags.DEFINE_bool("realtime", False, "Read the --video file at its real pace as a live "
                      "source standing in for a camera (tests live mode).")
    flags.DEFINE_bool("progress", True, "Show a progress bar.")
    for name in ("model", "video", "out"):
        flags.mark_flag_as_required(name)


def main(argv: Sequence[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: quieter start-up
    from absl import flags, logging

    FLAGS = flags.FLAGS
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines hide the progress bars
    return cli.run("predict", lambda: _predict(argv, FLAGS), output=FLAGS.out,
                   interrupted="no output was written (they are renamed into --out "
                               "together at the end); run the same command to predict "
                               "again")


def _predict(argv: Sequence[str], FLAGS) -> None:
    """main()'s work: predict the video, then print what was written."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    if FLAGS.batch_size <= 0:
        raise ValueError(f"--batch_size={FLAGS.batch_size} must be positive.")
    summary = predict_video(
        FLAGS.model, FLAGS.video, FLAGS.out, apply_postprocess=FLAGS.postprocess,
        attention_video=FLAGS.attention_video, batch_size=FLAGS.batch_size,
        upsample=FLAGS.upsample, detect_width=FLAGS.detect_width, face=FLAGS.face,
        predictor_path=FLAGS.predictor_path, redetect_every=FLAGS.redetect_every,
        rotate=FLAGS.rotate, progress=FLAGS.progress, max_seconds=FLAGS.max_seconds,
        realtime=FLAGS.realtime,
    )
    smallest = summary["smallest_face_px"]
    stopped = f"; stopped: {summary['stopped']}" if "stopped" in summary else ""
    print(
        f"{summary['samples']} samples, faces found in {summary['face_found_rate']:.0%} "
        f"(smallest {smallest:.0f} px; {summary['samples_with_several_faces']} samples with "
        f"several faces, subject by --face={summary['face_aligner']['face']}); "
        f"{summary['wall_time_s']:.1f} s ({summary['real_time_factor']}x real time{stopped}). "
        f"Wrote {', '.join(summary['files'])} to {FLAGS.out}"
    )
    return 0
