"""Short face videos made in code, for benchmarks and tests.

`make_face_video` writes the astronaut photo's head (scikit-image's sample
image) drifting a few pixels on a plain background: a video in which the
detector finds one face in every frame, without shipping a video file.
tools/bench.py times predict on it and the tests predict on it.

Imports no TensorFlow (the `data` subpackage's rule).
"""

from __future__ import annotations

import pathlib

import numpy as np


def make_face_video(path: pathlib.Path, seconds: float, fps: float = 25.0,
                    width: int = 640, height: int = 480) -> pathlib.Path:
    """An MPEG-4 video of the astronaut's head drifting a few pixels (a
    slow circle, slight scale change) on a plain background."""
    import cv2
    from skimage import data

    head = data.astronaut()[20:260, 105:345]  # face box ~88 px of 240
    side = int(height * 0.7)
    head = cv2.resize(head, (side, side), interpolation=cv2.INTER_CUBIC)
    background = np.empty((height, width, 3), np.uint8)
    background[:] = (70, 90, 110)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} (no mp4v encoder).")
    try:
        for i in range(int(round(seconds * fps))):
            t = i / fps
            cx = width / 2 + 12 * np.sin(2 * np.pi * t / 7)
            cy = height / 2 + 8 * np.cos(2 * np.pi * t / 5)
            scale = 1 + 0.04 * np.sin(2 * np.pi * t / 11)
            angle = 4 * np.sin(2 * np.pi * t / 9)
            m = cv2.getRotationMatrix2D((side / 2, side / 2), angle, scale)
            m[:, 2] += (cx - side / 2, cy - side / 2)
            frame = cv2.warpAffine(head, m, (width, height), dst=background.copy(),
                                   borderMode=cv2.BORDER_TRANSPARENT)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
