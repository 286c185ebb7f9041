"""Video files at the sample times (paper section 3.1).

* `probe_video` reads a video's frame rate, frame count, duration and size;
  `sample_times` gives the 4 fps sample grid up to a duration.
* `iter_frames_at` decodes a video sequentially and returns the frame
  whose presentation timestamp is nearest to each requested time, so the 4 fps
  samples line up with the label grid whatever the video's frame rate.
  With `seek` it starts near the first time instead (a worker decoding its
  part of a video), with the same frames.
* `prefetched` decodes ahead on a background thread; `sampled_frames` puts
  the two together (with a progress bar if asked) in a `SampledFrames`,
  whose path and times let worker processes decode parts of it instead.

Errors name the file: `VideoError` (cannot open or decode) and
`TruncatedVideoError` (the frames end before a requested time).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import queue
import threading
from typing import Iterable, Iterator, Sequence, TypeVar

import cv2
import numpy as np


class VideoError(ValueError):
    """A video file cannot be opened or decoded; the message names the file."""


class TruncatedVideoError(VideoError):
    """A video's decodable frames end before a requested sample time."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns about a video.

    Attributes:
        path: the video file.
        fps: nominal frame rate reported by the container.
        frame_count: frame count reported by the container; None where it
            reports none (raw streams), in which case `duration` comes from
            counting the frames.
        duration: frame count / fps, seconds: the end of the last frame.
        width, height: frame size, pixels.
    """

    path: pathlib.Path
    fps: float
    frame_count: int | None
    duration: float
    width: int
    height: int


def _open(path: str | os.PathLike) -> tuple[pathlib.Path, cv2.VideoCapture]:
    """The path and an open FFmpeg capture of a video file; errors name the file."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Video not found: {path}")
    if not path.is_file():
        raise VideoError(f"Not a video file: {path}")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise VideoError(
            f"Cannot open video {path}: corrupt, truncated, or in a format "
            "OpenCV's FFmpeg backend cannot read."
        )
    return path, cap


def _fps(path: pathlib.Path, cap: cv2.VideoCapture) -> float:
    """The frame rate `cap` reports; releases it and raises where it is unusable."""
    fps = cap.get(cv2.CAP_PROP_FPS)
    if not math.isfinite(fps) or not 0 < fps <= 1000:
        cap.release()
        raise VideoError(f"Video {path} reports no usable frame rate (fps={fps}).")
    return float(fps)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Reads frame rate, frame count, duration and size of a video.

    Decodes the first frame to make sure the file is readable. Where the
    container reports no frame count, counts the frames in one pass.

    Raises:
        FileNotFoundError: `path` does not exist.
        VideoError: the file cannot be opened or holds no decodable frame.
    """
    path, cap = _open(path)
    try:
        fps = _fps(path, cap)
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f"Video {path} has no decodable frame (corrupt or empty).")
        height, width = frame.shape[:2]
        frame_count: int | None
        if math.isfinite(count) and 0 < count < 1e9:
            frame_count = int(round(count))
            duration = frame_count / fps
        else:
            frame_count = None
            n = 1
            while cap.grab():
                n += 1
            duration = n / fps
    finally:
        cap.release()
    return VideoInfo(path=path, fps=fps, frame_count=frame_count, duration=duration,
                     width=int(width), height=int(height))


def sample_times(duration: float, fps: float = 4.0, end: float | None = None) -> np.ndarray:
    """Sample times t_k = k / fps, k = 0, 1, ..., while t_k <= min(duration, end).

    Args:
        duration: video duration, seconds.
        fps: sampling rate (4 in the paper).
        end: optional further limit, e.g. the last label time.

    Returns:
        (N,) float64 seconds; empty if the limit is negative.
    """
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be finite and >= 0. Received: duration={duration!r}")
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be finite and > 0. Received: fps={fps!r}")
    limit = duration if end is None else min(duration, float(end))
    if limit < 0:
        return np.zeros(0, np.float64)
    # The small epsilon keeps t_k == limit despite float round-off (e.g. 0.1*3).
    n = int(math.floor(limit * fps + 1e-9)) + 1
    return np.arange(n, dtype=np.float64) / fps


def iter_frames_at(
    path: str | os.PathLike,
    times: Sequence[float] | np.ndarray,
    *,
    tail_tolerance: float = 0.25,
    seek: bool = False,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yields `(t, frame)` with the frame nearest to each requested time.

    The video is decoded sequentially (`grab`), and only frames that are
    returned are converted (`retrieve`). A frame's time is
    its presentation timestamp (`CAP_PROP_POS_MSEC`), falling back to
    index / fps where the backend reports none. A time t is given the first
    frame i with t <= ts_i + 0.5 / fps, i.e. the nearest frame under the
    nominal frame period (ties go to the earlier frame).

    With `seek`, decoding starts a few frames before the first requested
    time (`_seek_before`) instead of at the first frame: a worker decodes
    its own part of a video (`tracking.iter_samples_chunked`). The frames
    are those of reading from the start (the decoder restarts at a key
    frame and decodes forward); where the seek cannot be confirmed to land
    before the first time, the video is read from its start.

    Times after the last decodable frame get that frame while they lie within
    its display interval [ts, ts + 1 / fps) plus `tail_tolerance` seconds,
    which absorbs containers whose frame count is a few frames too high. Later
    times raise `TruncatedVideoError` rather than silently repeating a stale
    frame; the frames before them have been yielded by then.

    Args:
        path: video file.
        times: non-decreasing, non-negative times in seconds.
        tail_tolerance: seconds past the end of the last frame still served.
        seek: start decoding near the first time rather than at frame 0.

    Yields:
        (t, RGB uint8 frame) per requested time, in order. Consecutive times
        that map to one frame share the same array.

    Raises:
        FileNotFoundError, VideoError, TruncatedVideoError (naming the file).
        ValueError: times are negative, not finite or not sorted.
    """
    times = _checked_times(path, times, tail_tolerance)
    if not len(times):
        return
    path, cap = _open(path)
    try:
        fps = _fps(path, cap)
        start = _seek_before(cap, float(times[0]), fps) if seek else 0
        if start < 0:  # not confirmed: read from the start
            cap.release()
            path, cap = _open(path)
        yield from _served(path, cap, fps, times, tail_tolerance, max(start, 0))
    finally:
        cap.release()


# Frames before the one nearest to the first requested time at which a
# seeking `iter_frames_at` starts decoding.
_SEEK_LEAD = 2


def _seek_before(cap: cv2.VideoCapture, t: float, fps: float) -> int:
    """Moves `cap` to frame `start`, `_SEEK_LEAD` frames before the one
    nearest to `t` at the nominal rate, and grabs it; returns `start`
    (0: no seek needed, nothing grabbed), or -1 where the frame grabbed
    there is not confirmed to come before `t`'s frame (no timestamp, not
    the frame asked for, or one nearest to `t` itself: the seek may have
    skipped a frame `t` needs)."""
    start = max(0, math.ceil(t * fps - 0.5) - _SEEK_LEAD)
    if start == 0:
        return 0
    if not cap.set(cv2.CAP_PROP_POS_FRAMES, start) or not cap.grab():
        return -1
    ms = cap.get(cv2.CAP_PROP_POS_MSEC)
    if (cap.get(cv2.CAP_PROP_POS_FRAMES) != start + 1 or not math.isfinite(ms) or ms <= 0
            or not t > ms / 1000.0 + 0.5 / fps):
        return -1
    return start


def _served(path: pathlib.Path, cap: cv2.VideoCapture, fps: float, times: np.ndarray,
            tail_tolerance: float, start: int) -> Iterator[tuple[float, np.ndarray]]:
    """`iter_frames_at`'s reading of `cap`, whose frame `start` comes next
    (`start` > 0: it is grabbed already, by `_seek_before`)."""
    period = 1.0 / fps
    spare_from = _spare_from(cap.get(cv2.CAP_PROP_FRAME_COUNT), fps, tail_tolerance)
    k = 0              # next time to serve
    i = start - 1      # index of the last grabbed frame
    grabbed = start > 0
    last_ts = -math.inf
    spare: tuple[float, np.ndarray] | None = None  # last retrieved frame
    while k < len(times) and (grabbed or cap.grab()):
        grabbed = False
        i += 1
        ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        ts = ms / 1000.0 if math.isfinite(ms) and (ms > 0 or i == 0) else i * period
        if ts <= last_ts:  # a backend without usable timestamps
            ts = last_ts + period
        last_ts = ts
        needed = times[k] <= ts + 0.5 * period
        if not needed and (i < spare_from or times[k] > ts + period + tail_tolerance):
            continue
        ok, bgr = cap.retrieve()
        if not ok or bgr is None:
            raise VideoError(f"Cannot decode frame {i} (t={ts:.3f} s) of video {path}.")
        frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        spare = (ts, frame)
        while k < len(times) and times[k] <= ts + 0.5 * period:
            yield float(times[k]), frame
            k += 1
    if k == len(times):
        return
    if i < 0:
        raise VideoError(f"Video {path} has no decodable frame (corrupt or empty).")
    if spare is not None and spare[0] == last_ts:
        while k < len(times) and times[k] <= last_ts + period + tail_tolerance:
            yield float(times[k]), spare[1]
            k += 1
    if k < len(times):
        raise TruncatedVideoError(
            f"Video {path} is truncated or shorter than its header says: its "
            f"decodable frames end at {last_ts + period:.3f} s (frame {i}), but "
            f"a sample at {times[k]:.3f} s was requested "
            f"({len(times) - k} of {len(times)} samples have no frame)."
        )


def _checked_times(path: str | os.PathLike, times: Sequence[float] | np.ndarray,
                   tail_tolerance: float) -> np.ndarray:
    """`times` as a flat float64 array; raises ValueError (naming the video)
    unless they are finite, non-negative and non-decreasing, and
    `tail_tolerance` is >= 0."""
    times = np.asarray(times, np.float64).reshape(-1)
    if len(times) and (not np.all(np.isfinite(times)) or times[0] < 0
                       or np.any(np.diff(times) < 0)):
        raise ValueError(
            "times must be finite, non-negative and non-decreasing; received "
            f"{len(times)} times starting {times[:5].tolist()} for video {path}."
        )
    if tail_tolerance < 0:
        raise ValueError(f"tail_tolerance must be >= 0. Received: {tail_tolerance!r}")
    return times


def _spare_from(count: float, fps: float, tail_tolerance: float) -> float:
    """Index from which `iter_frames_at` keeps a frame it does not need now,
    in case it is the video's last one and serves the tail: near the
    reported end `count` (a few frames of slack for wrong counts), or
    throughout (0) when the count is unknown."""
    return (count - 3 - math.ceil(tail_tolerance * fps)
            if math.isfinite(count) and 0 < count < 1e9 else 0)


_T = TypeVar("_T")


def prefetched(items: Iterable[_T], depth: int) -> Iterator[_T]:
    """Yields `items` in order while a background thread produces up to
    `depth` of them ahead (video decoding overlaps the caller's work on the
    previous frame: OpenCV releases the GIL while it decodes).

    An exception raised by `items` is raised here after the items produced
    before it. Closing this generator early (or an exception in the caller)
    stops the thread and closes `items`, so a video capture is released.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1. Received: depth={depth!r}")
    slots: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def put(message) -> bool:
        while not stop.is_set():
            try:
                slots.put(message, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put((None, item)):
                    return
            put((done, None))
        except BaseException as e:  # handed to the consumer, raised there
            put((e, None))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            flag, item = slots.get()
            if flag is done:
                return
            if flag is not None:
                raise flag
            yield item
    finally:
        stop.set()
        thread.join()


class SampledFrames:
    """The `(t, RGB frame)` of a video file at its sample `times`
    (`sampled_frames`). Iterating decodes them in this process
    (`iter_frames_at`), `prefetch` samples ahead on a background thread
    (`prefetched`; 0 in line), with a progress bar if `progress`. Worker
    processes may decode parts of them instead, from `path` and `times`
    (`tracking.iter_samples_chunked`): `counted` then shows the progress
    of what they return. `close` stops the decoding (releasing the video)."""

    def __init__(self, path: str | os.PathLike, times: Sequence[float] | np.ndarray,
                 progress: bool = False, prefetch: int = 0):
        self.path = path
        self.times = np.asarray(times, np.float64).reshape(-1)
        self.progress = progress
        self.prefetch = prefetch
        self._iterator: Iterator[tuple[float, np.ndarray]] | None = None
        self._closers: list = []

    @property
    def started(self) -> bool:
        """Whether this process has started decoding (iterating) them."""
        return self._iterator is not None

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        if self._iterator is None:
            frames: Iterator[tuple[float, np.ndarray]] = iter_frames_at(self.path, self.times)
            if self.prefetch > 0:
                frames = prefetched(frames, self.prefetch)
            self._closers.append(frames)
            self._iterator = iter(self.counted(frames))
        return self._iterator

    def counted(self, items: Iterable[_T]) -> Iterable[_T]:
        """`items` (one per sample), with the progress bar if asked."""
        if not self.progress:
            return items
        from tqdm import tqdm  # imported lazily: only for interactive use

        bar = tqdm(items, total=len(self.times), desc=pathlib.Path(self.path).name,
                   unit="sample", leave=False)
        self._closers.append(bar)
        return bar

    def close(self) -> None:
        """Stops decoding (the video is released) and closes the progress bar."""
        for item in reversed(self._closers):
            close = getattr(item, "close", None)
            if close is not None:
                close()


def sampled_frames(
    path: str | os.PathLike,
    times: Sequence[float] | np.ndarray,
    progress: bool = False,
    prefetch: int = 0,
) -> SampledFrames:
    """`iter_frames_at(path, times)`, decoded `prefetch` samples ahead by a
    background thread (`prefetched`) and with a progress bar if asked; or
    decoded in parts by worker processes (`SampledFrames`)."""
    return SampledFrames(path, times, progress=progress, prefetch=prefetch)
