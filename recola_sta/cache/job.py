"""One recording's face track: the work a preprocess worker does.

The local runner (`recola_sta.cache.preprocess`) hands `track_recording` to
worker processes and the Beam runner (`recola_sta.cache.beam`) calls it per
element. It needs no TensorFlow: a worker imports this module, `faces` and
`data`, never the shard writer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import cv2

from recola_sta import faces

# The rate at which faces are sampled, as in the paper (4 fps).
SAMPLE_FPS = 4.0


@dataclasses.dataclass(frozen=True)
class Job:
    """What a worker needs to track one recording."""

    name: str
    video: str
    label_end: float | None


_WORKER_ALIGNERS: dict[tuple, faces.FaceAligner] = {}


def init_worker() -> None:
    """Runs in each worker process: parallelism comes from the processes."""
    cv2.setNumThreads(1)


def track_recording(job: Job, aligner_kwargs: dict[str, Any],
                    progress: bool) -> faces.FaceTrack:
    """Probes, samples and tracks one recording (runs in a worker process).

    Each process builds its FaceAligner once and reuses it across recordings
    (`track_video` resets the tracked face per video).
    """
    key = tuple(sorted(aligner_kwargs.items()))
    aligner = _WORKER_ALIGNERS.get(key)
    if aligner is None:
        aligner = _WORKER_ALIGNERS[key] = faces.FaceAligner(**aligner_kwargs)
    info = faces.probe_video(job.video)
    times = faces.sample_times(info.duration, SAMPLE_FPS, end=job.label_end)
    return faces.track_video(job.video, times, aligner, progress=progress)
