r"""Detect + align throughput of `recola_sta.faces.FaceAligner` on one CPU core.

Pastes the astronaut's head (scikit-image) on a plain background, as large as
the frame height allows (the face box is then 0.2-0.3 of the frame width, as
in webcam close-ups), and times `FaceAligner.align` (detection, 68 landmarks,
warp) per frame, the median over repeats, for 640x480 and 1280x720 frames,
with detection on a 320 px wide copy (the default) and at full resolution.
Video decoding is not included (2-3 ms per 1280x720 MPEG-4 frame on this machine).

    python tools/bench_faces.py --repeats=30
"""

from __future__ import annotations

import os
import statistics
import time

import cv2
import numpy as np
from absl import app, flags
from skimage import data

from recola_sta import faces

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 30, "Timed calls per setting (after 3 warm-up calls).",
                     lower_bound=1)
flags.DEFINE_integer("size", 96, "Aligned crop size.", lower_bound=16)
flags.DEFINE_list("frames", ["640x480", "1280x720"], "Frame sizes WIDTHxHEIGHT.")
flags.DEFINE_list("detect_widths", ["320", "0"], "detect_width values (0: full resolution).")


def make_frame(width: int, height: int) -> np.ndarray:
    """An RGB frame with the astronaut's head, at most 0.35 * width wide."""
    head = data.astronaut()[20:260, 105:345]  # 240 px square, face box ~88 px
    side = min(height - 20, int(round(240 * 0.35 * width / 88)))
    head = cv2.resize(head, (side, side), interpolation=cv2.INTER_CUBIC)
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = (70, 90, 110)
    y0, x0 = (height - side) // 2, (width - side) // 2
    frame[y0:y0 + side, x0:x0 + side] = head
    return frame


def time_align(aligner: faces.FaceAligner, frame: np.ndarray, repeats: int) -> float:
    """Median seconds of one `align` call."""
    for _ in range(3):
        if aligner.align(frame) is None:
            raise RuntimeError(f"No face found in the {frame.shape[1]}x{frame.shape[0]} frame "
                               f"with detect_width={aligner.detect_width}.")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        aligner.align(frame)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv):
    del argv
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"FaceAligner(size={FLAGS.size}, upsample=0); median of {FLAGS.repeats} calls; "
          f"one core (cv2.setNumThreads(1), CPU affinity "
          f"{sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'})")
    print(f"{'frame':>10} {'face px':>8} {'detect_width':>12} {'ms/frame':>9} {'frames/s':>9}")
    for spec in FLAGS.frames:
        width, height = (int(v) for v in spec.lower().split("x"))
        frame = make_frame(width, height)
        boxes, _ = faces.FaceAligner(FLAGS.size, detect_width=0).detect(frame)
        face_px = int(boxes[0][2] - boxes[0][0]) if boxes else 0
        for dw in (int(v) for v in FLAGS.detect_widths):
            aligner = faces.FaceAligner(FLAGS.size, detect_width=dw)
            seconds = time_align(aligner, frame, FLAGS.repeats)
            label = str(dw) if dw and dw < width else "full"
            print(f"{spec:>10} {face_px:>8d} {label:>12} {1000 * seconds:9.1f} "
                  f"{1 / seconds:9.1f}")


if __name__ == "__main__":
    app.run(main)
