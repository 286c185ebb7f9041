"""The aligned face of one video, sample by sample.

* `track_video` aligns the face at each requested time of a video into a
  `FaceTrack`: sample times, crops and a found-mask. A frame without a face
  is flagged and its crop left at zero; it is never replaced by a neighbour
  (evaluation interpolates predictions there, as the paper does).
* `iter_samples` aligns one sampled frame at a time into a `Sample` (predict
  streams videos of any length, and live sources, through it);
  `iter_samples_chunked` does the same over worker processes, a chunk of
  `CHUNK_SAMPLES` consecutive samples each (predict --workers), which
  decode their chunks of a video file themselves.
* `rotation_hint` finds the `rotate` setting under which a video without
  faces shows some (the advice of the no-face message).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import os
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from recola_sta import pools
from recola_sta.faces.alignment import FaceAligner, rotated
from recola_sta.faces.detection import NUM_LANDMARKS, _side
from recola_sta.faces.video import SampledFrames, iter_frames_at, sampled_frames


@dataclasses.dataclass
class FaceTrack:
    """Aligned faces of one video at the requested sample times.

    Attributes:
        times: (N,) float64 seconds, the requested sample times.
        crops: (N, size, size, 3) uint8 RGB, zeros where no face was found.
        found: (N,) bool, False where the detector found no face.
        landmarks: (N, 68, 2) float32 (x, y) landmarks in crop pixels, NaN
            where no face was found; None where they are unknown (a cache
            written before landmarks were stored).
        face_px: (N,) float32 side of the chosen face's detection box in
            original-frame pixels, NaN where no face was found; None where
            unknown.
        num_faces: (N,) int32 faces detected per sample (the chosen one and
            any others); None where unknown.
    """

    times: np.ndarray
    crops: np.ndarray
    found: np.ndarray
    landmarks: np.ndarray | None = None
    face_px: np.ndarray | None = None
    num_faces: np.ndarray | None = None

    @property
    def found_rate(self) -> float:
        """Share of samples with a face (1.0 for an empty track)."""
        return float(self.found.mean()) if len(self.found) else 1.0

    @property
    def smallest_face_px(self) -> float | None:
        """Smallest chosen face box side, original-frame pixels; None without
        a face (or where unknown)."""
        if self.face_px is None or not np.isfinite(self.face_px).any():
            return None
        return float(np.nanmin(self.face_px))

    @property
    def multi_face_samples(self) -> int | None:
        """Samples in which more than one face was detected; None where unknown."""
        return None if self.num_faces is None else int((self.num_faces > 1).sum())


def track_video(
    path: str | os.PathLike,
    times: Sequence[float] | np.ndarray,
    aligner: FaceAligner,
    progress: bool = False,
    prefetch: int = 0,
) -> FaceTrack:
    """Aligned face crops of one video at the requested times.

    With `prefetch` > 0, a background thread decodes up to that many sampled
    frames ahead of the face aligner (`prefetched`); the track is the same.

    Resets `aligner` first, so the face tracked in another video is not
    carried over; the aligner's `face` rule picks the subject, which is then
    followed through the video. Samples without a face have `found` False and
    a zero crop. The track also records each sample's face size and number
    of faces.

    Raises:
        FileNotFoundError, VideoError, TruncatedVideoError: see
        `iter_frames_at`.
    """
    times = np.asarray(times, np.float64).reshape(-1)
    n = len(times)
    crops = np.zeros((n, aligner.size, aligner.size, 3), np.uint8)
    found = np.zeros(n, bool)
    landmarks = np.full((n, NUM_LANDMARKS, 2), np.nan, np.float32)
    face_px = np.full(n, np.nan, np.float32)
    num_faces = np.zeros(n, np.int32)
    samples = iter_samples(sampled_frames(path, times, progress=progress, prefetch=prefetch),
                           aligner)
    for k, sample in enumerate(samples):
        num_faces[k] = sample.num_faces
        if sample.found:
            crops[k], landmarks[k] = sample.crop, sample.landmarks
            face_px[k] = sample.face_px
            found[k] = True
    return FaceTrack(times=times, crops=crops, found=found, landmarks=landmarks,
                     face_px=face_px, num_faces=num_faces)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One sampled frame after face alignment (`iter_samples`).

    Attributes:
        time: the sample time, seconds.
        crop: (size, size, 3) uint8 aligned face, zeros where no face was found.
        landmarks: (68, 2) float32 landmarks in crop pixels, NaN without a face.
        found: whether a face was found.
        face_px: side of the chosen face's box in frame pixels, NaN without one.
        num_faces: faces detected in the frame (see `FrameFace.num_faces`).
    """

    time: float
    crop: np.ndarray
    landmarks: np.ndarray
    found: bool
    face_px: float
    num_faces: int


def iter_samples(frames: Iterable[tuple[float, np.ndarray]],
                 aligner: FaceAligner) -> Iterator[Sample]:
    """Aligns the face of each `(time, RGB frame)` one at a time, so that a
    caller can stream a video of any length (or a live source) without
    holding its crops.

    Resets `aligner` first: the face tracked in another video is not carried
    over; the aligner's `face` rule picks the subject, which is then
    followed.
    """
    aligner.reset()
    blank = np.zeros((aligner.size, aligner.size, 3), np.uint8)
    no_points = np.full((NUM_LANDMARKS, 2), np.nan, np.float32)
    for t, frame in frames:
        result = aligner.process(frame)
        if result.crop is None:
            yield Sample(float(t), blank, no_points, False, math.nan, int(result.num_faces))
        else:
            yield Sample(float(t), result.crop, np.asarray(result.landmarks, np.float32), True,
                         _side(result.box), int(result.num_faces))


# Consecutive samples aligned by one worker of `iter_samples_chunked` (8 s at
# 4 fps): the subject is chosen afresh, and tracking restarts, at each
# chunk's first sample.
CHUNK_SAMPLES = 32


def iter_samples_chunked(frames: Iterable[tuple[float, np.ndarray]], aligner: FaceAligner,
                         workers: int, chunk: int = CHUNK_SAMPLES) -> Iterator[Sample]:
    """`iter_samples` over `workers` processes: the frames are cut into
    chunks of `chunk` consecutive samples, each aligned by a fresh
    `iter_samples` (the aligner reset: the `face` rule picks the subject
    again and tracking restarts at the chunk's first sample) in a worker,
    and the samples are yielded in order.

    Where `frames` is a video file's `SampledFrames` not yet started, each
    worker decodes its own chunk too, seeking to it (`iter_frames_at` with
    `seek`: the same frames), and this process decodes nothing; other
    frames are read here, decoding overlapping the alignment.

    The samples are the same whatever `workers` is, 1 included (the chunks
    aligned in this process, in order). They differ from `iter_samples`'
    only where a chunk's first sample (and the detections after it) find
    the face differently: another subject by the `face` rule, a detection
    instead of tracking (`redetect_every` > 1), or a whole-frame scan where
    `iter_samples` scanned the window (the same faces within the
    documented tolerance; with one face and detection on every sample, as
    on the bench video, the samples are equal). Up to `workers` + 1 chunks
    are in flight, in the kept pool of `workers` processes
    (`pools.kept_pool`: started once, kept for later calls).

    Raises:
        ValueError: `workers` or `chunk` below 1.
    """
    if workers < 1 or chunk < 1:
        raise ValueError(f"workers and chunk must be at least 1; got {workers}, {chunk}.")
    kwargs = aligner.kwargs()
    if workers > 1 and isinstance(frames, SampledFrames) and not frames.started:
        key, tasks = _chunk_tasks(frames, kwargs, workers, chunk)
        started = _take_ahead(key)
        yield from frames.counted(_in_order(tasks[len(started):], workers, started))
        return
    frames = iter(frames)
    parts = iter(lambda: list(itertools.islice(frames, chunk)), [])
    if workers == 1:
        for part in parts:
            yield from iter_samples(part, aligner)
        return
    yield from _in_order(((align_chunk, part, kwargs) for part in parts), workers)


def _in_order(tasks: Iterable[tuple], workers: int,
              started: collections.deque | None = None) -> Iterator[Sample]:
    """The samples of each task `(fn, *args)` run in the kept pool of
    `workers`, in the tasks' order, after those of the futures `started`
    (the first tasks, handed to the pool already), at most `workers` + 1
    in flight (the next tasks are taken from `tasks` as earlier ones are
    yielded). Once the last task is handed to the pool, the first chunks
    of the video named by `align_next` are too."""
    pool = pools.kept_pool(workers)
    pending: collections.deque = started if started is not None else collections.deque()
    try:
        for fn, *args in tasks:
            pending.append(pool.submit(fn, *args))
            if len(pending) > workers:
                yield from pending.popleft().result()
        _start_next(pool, workers)
        while pending:
            yield from pending.popleft().result()
    except BrokenProcessPool:
        _take_ahead(None)
        pools.close_kept_pool()
        raise
    finally:
        for future in pending:
            future.cancel()


def _chunk_tasks(frames: SampledFrames, kwargs: dict[str, Any], workers: int,
                 chunk: int) -> tuple[tuple, list[tuple]]:
    """The worker tasks aligning `frames` chunk by chunk, each decoding its
    own frames (`decode_and_align`), and what identifies them."""
    times = frames.times
    key = (str(frames.path), times.tobytes(), repr(sorted(kwargs.items())), workers, chunk)
    return key, [(decode_and_align, str(frames.path), times[k:k + chunk], kwargs)
                 for k in range(0, len(times), chunk)]


# The video `align_next` names: (its key, its tasks); and the first chunks of
# one handed to the workers already: (its key, their futures).
_NEXT: tuple[tuple, list[tuple]] | None = None
_AHEAD: tuple[tuple, collections.deque] | None = None


def ahead_chunks(workers: int) -> int:
    """Chunks of the next video handed to `workers` processes ahead: enough
    to keep them busy while this process writes the outputs, commits them
    and sets up the next run (bounded: memory stays flat)."""
    return 2 * workers + 1


def align_next(frames: SampledFrames | None, aligner: FaceAligner, workers: int,
               chunk: int = CHUNK_SAMPLES) -> None:
    """Names the video `iter_samples_chunked` aligns next, with `aligner`'s
    settings and `workers` (a batch's next video; None: none): once the
    run in progress has handed its last chunk to the workers, they go on
    to this video's first `ahead_chunks(workers)` chunks instead of
    waiting for the next run (while this process runs the model and writes
    the outputs),
    and its run takes those over: the same samples, sooner. Chunks started
    for a video that is not aligned next are cancelled (or their results
    dropped)."""
    global _NEXT
    _NEXT = None if frames is None else _chunk_tasks(frames, aligner.kwargs(), workers, chunk)


def _start_next(pool: Any, workers: int) -> None:
    """Hands the first `ahead_chunks(workers)` chunks of the video
    `align_next` named to `pool`, if it is aligned by `workers` processes."""
    global _NEXT, _AHEAD
    if _NEXT is None:
        return
    (key, tasks), _NEXT = _NEXT, None
    _take_ahead(None)
    if key[3] == workers:
        _AHEAD = (key, collections.deque(pool.submit(fn, *args)
                                         for fn, *args in tasks[:ahead_chunks(workers)]))


def _take_ahead(key: tuple | None) -> collections.deque:
    """The futures of the chunks handed to the workers ahead for the video
    of `key` (none where they are another's: those are cancelled)."""
    global _AHEAD
    ahead, _AHEAD = _AHEAD, None
    if ahead is not None and ahead[0] == key:
        return ahead[1]
    for future in ahead[1] if ahead is not None else ():
        future.cancel()
    return collections.deque()


# In a worker of `iter_samples_chunked`: its aligner per setting, built once.
_WORKER_ALIGNERS: dict[tuple, FaceAligner] = {}


def _worker_aligner(kwargs: dict[str, Any]) -> FaceAligner:
    """In a worker: the aligner built from `kwargs` (`FaceAligner.kwargs`),
    kept for the next chunks."""
    key = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
    aligner = _WORKER_ALIGNERS.get(key)
    if aligner is None:
        aligner = _WORKER_ALIGNERS[key] = FaceAligner(**kwargs)
    return aligner


def align_chunk(frames: list[tuple[float, np.ndarray]], kwargs: dict[str, Any]) -> list[Sample]:
    """A worker's task: `iter_samples` over one chunk of frames with an
    aligner built from `kwargs` (`FaceAligner.kwargs`), reset first."""
    return list(iter_samples(frames, _worker_aligner(kwargs)))


def decode_and_align(path: str, times: np.ndarray, kwargs: dict[str, Any]) -> list[Sample]:
    """A worker's task: the video's frames at `times` (decoding from a
    seek to the first: `iter_frames_at`), aligned as `align_chunk` does."""
    return list(iter_samples(iter_frames_at(path, times, seek=True), _worker_aligner(kwargs)))


def rotation_hint(path: str | os.PathLike, times: Sequence[float] | np.ndarray,
                  aligner: FaceAligner, max_frames: int = 3) -> tuple[int, int, int] | None:
    """A `rotate` setting under which faces appear, for a video in which
    `aligner` found none: the advice of the no-face message.

    Runs the detector on at most `max_frames` of the sample `times` (spread
    over them), each turned by 90, 180 and 270 degrees more than
    `aligner.rotate`: a few dozen milliseconds. Returns (the `rotate` value
    to use, frames with a face under it, frames tried) for the turn with
    the most faces, or None where no turn shows one.
    """
    times = np.asarray(times, np.float64).reshape(-1)
    if not len(times) or max_frames < 1:
        return None
    picks = np.unique(np.linspace(0, len(times) - 1, min(max_frames, len(times)))
                      .round().astype(int))
    frames = [frame for _, frame in iter_frames_at(path, times[picks])]
    best = None
    for extra in (90, 180, 270):
        turn = (aligner.rotate + extra) % 360
        hits = sum(bool(aligner.detect(rotated(frame, turn))[0]) for frame in frames)
        if hits and (best is None or hits > best[1]):
            best = (turn, hits, len(frames))
    return best
