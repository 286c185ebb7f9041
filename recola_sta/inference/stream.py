"""The stream of one predict run: where the 4 fps samples come from (a
file, a camera or a stream), aligning them and running the model chunk by
chunk while keeping only what the outputs need (per-sample values, the clip
attention.png shows, the attention-region sums, attention.mp4 and a live
source's <targets>.live.csv written as it goes), the message of a video
without a face, and the time grid of the output CSV.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Any, Sequence

import numpy as np

from recola_sta import cli, faces
from recola_sta.analysis import attention_analysis
from recola_sta.faces import tracking
from recola_sta.inference.loading import run_model
from recola_sta.inference.outputs import Outputs

NoFaceError = cli.NoFaceError


@dataclasses.dataclass
class Input:
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
               prefetch: int, progress: bool) -> Input:
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
        return Input(video, source.name, frames, True, None, source, None, "end of stream")
    info = faces.probe_video(video)
    stopped = "end of video"
    # Sample up to the last frame's own time, not past the end of the video.
    last_frame_time = max(0.0, info.duration - 1.0 / info.fps)
    if max_seconds is not None and max_seconds < last_frame_time:
        last_frame_time = max_seconds
        stopped = f"--max_seconds={max_seconds:g}"
    sample_times = faces.sample_times(info.duration, fps=fps, end=last_frame_time)
    frames = faces.sampled_frames(video, sample_times, progress=progress, prefetch=prefetch)
    return Input(video, pathlib.Path(video).name, frames, False, info, None,
                  len(sample_times), stopped)


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


@dataclasses.dataclass
class Track:
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


def run_stream(source: Input, aligner: faces.FaceAligner, serve_fn: Callable[[], Any],
               meta: dict[str, Any], outputs: Outputs, *, batch_size: int,
               attention_video: bool, max_seconds: float | None, workers: int = 1) -> Track:
    """Step 2: aligns every sample and runs the model clip by clip;
    attention.mp4 (to its temporary in `outputs`) and, for a live source,
    <targets>.live.csv are written as it goes.

    A file of more than one chunk (`tracking.CHUNK_SAMPLES`) with `workers`
    > 1 is aligned chunk by chunk in that many worker processes
    (`aligned_samples`); a live source, and `workers` 1, in this process.

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
            for sample in aligned_samples(source, aligner, workers):
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
    return Track(stream, times, values, found, face_px, num_faces, stopped, wrote_video)


def aligned_samples(source: Input, aligner: faces.FaceAligner,
                    workers: int) -> Iterator[faces.Sample]:
    """The aligned samples of `source`: over `workers` processes a chunk
    each (`tracking.iter_samples_chunked`, the same samples whatever
    `workers` > 1 is) for a file longer than one chunk, else in this
    process (`faces.iter_samples`: a live source, one worker, a short file)."""
    if (source.live or workers <= 1 or source.num_samples is None
            or source.num_samples <= tracking.CHUNK_SAMPLES):
        return faces.iter_samples(source.frames, aligner)
    return tracking.iter_samples_chunked(source.frames, aligner, workers)


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


@dataclasses.dataclass
class FrameGrid:
    """The times the CSV has rows at: the video's own frames (a live
    source's 4 fps samples), and the facts summary.json reports."""

    times: np.ndarray
    count: int
    fps: float
    duration: float
    width: int
    height: int


def frame_grid(source: Input, sample_times: np.ndarray, sample_fps: float,
               max_seconds: float | None) -> FrameGrid:
    """Step 3: the output's time grid."""
    if source.live:
        live = source.source
        return FrameGrid(sample_times, len(sample_times), live.fps,
                          len(sample_times) / sample_fps, live.width, live.height)
    info = source.info
    count = info.frame_count or int(round(info.duration * info.fps))
    if max_seconds is not None:
        count = min(count, int(math.floor(max_seconds * info.fps + 1e-9)) + 1)
    return FrameGrid(np.arange(count) / info.fps, count, info.fps, info.duration,
                      info.width, info.height)
