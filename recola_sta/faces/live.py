"""Live sources: a camera or a stream URL sampled at 4 fps by the wall clock.

`is_live_source` tells a live `--video` from a file, `LiveSource` opens it
(or, standing in for a camera, reads a file at its real pace), and
`live_frames` samples it on the wall clock's 4 fps grid. Both read the time
from `CLOCK` (the wall clock; a test puts a simulated clock there, so a file
read "at its real pace" takes no real time).
"""

from __future__ import annotations

import math
import pathlib
import time
from typing import Iterator

import cv2
import numpy as np

from recola_sta.faces.video import VideoError, _fps, _open


class WallClock:
    """The time a live source is paced and sampled by: `monotonic()` in
    seconds, and `sleep(seconds)`."""

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


# Read when a source is opened and sampled, so a test can set another clock
# with the same two methods (one whose sleep only moves its time on).
CLOCK = WallClock()


def is_live_source(video: str) -> bool:
    """Whether `--video` names a live source rather than a file: a camera
    index (an integer string such as "0") or a URL ("rtsp://...",
    "http://...": anything with "://")."""
    text = str(video).strip()
    return text.isdigit() or "://" in text


class LiveSource:
    """A camera, a stream URL or (standing in for a camera, `realtime`) a
    video file read at its real pace, opened with `cv2.VideoCapture`.

    The duration and frame count of a live source are unknown; `fps` (None
    where the source reports none), `width` and `height` are what it
    reports when opened; `read` returns frames until the source ends (None). With `realtime`, a file's
    frames are handed out no faster than their frame rate, as a camera
    would deliver them, so that live mode can be tested without a camera.
    """

    def __init__(self, video: str, realtime: bool = False):
        text = str(video).strip()
        self.name = f"camera {text}" if text.isdigit() else text
        if realtime:
            path = pathlib.Path(text)
            _, self._cap = _open(path)
            self._period = 1.0 / _fps(path, self._cap)
        else:
            target: int | str = int(text) if text.isdigit() else text
            self._cap = cv2.VideoCapture(target)
            if not self._cap.isOpened():
                raise VideoError(f"Cannot open the live source {self.name} (--video={text}): "
                                 "no such camera, or a stream OpenCV cannot read.")
            self._period = 0.0
        self._clock = CLOCK
        self._start: float | None = None
        self._count = 0
        # Read now: a released capture reports zeros.
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps <= 1000 else None
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))


    def read(self) -> np.ndarray | None:
        """The next RGB frame, or None at the end of the source."""
        if self._period:
            if self._start is None:
                self._start = self._clock.monotonic()
            wait = self._start + self._count * self._period - self._clock.monotonic()
            if wait > 0:
                self._clock.sleep(wait)
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        self._count += 1
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def release(self) -> None:
        self._cap.release()


def live_frames(source: LiveSource, fps: float, max_seconds: float | None = None,
                clock=None) -> Iterator[tuple[float, np.ndarray]]:
    """Samples a live source at `fps` by the wall clock: `(k / fps, frame)`
    for k = 0, 1, ..., each with the first frame read at or after that time
    since the first frame (camera timestamps differ between backends and
    may be missing; the wall clock is what a live run lives by).

    Every frame is read, so a camera's buffer never fills with stale frames.
    Where the caller falls behind (several sample times pass while one frame
    is read), the frame serves each of them, keeping the sample grid
    regular. Stops at the end of the source or after `max_seconds`
    (samples up to and including that time). Releases the source when done.
    `clock` returns the time in seconds (default: `CLOCK.monotonic`).
    """
    clock = clock or CLOCK.monotonic
    try:
        start: float | None = None
        k = 0
        while True:
            frame = source.read()
            if frame is None:
                return
            now = clock()
            if start is None:
                start = now
            elapsed = now - start
            while k / fps <= elapsed:
                t = k / fps
                if max_seconds is not None and t > max_seconds + 1e-9:
                    return
                yield t, frame
                k += 1
    finally:
        source.release()
