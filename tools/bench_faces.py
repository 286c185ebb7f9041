r"""Detect + align throughput of `recola_sta.faces.FaceAligner` on one CPU core.

Pastes the astronaut's head (scikit-image) on a plain background, as large as
the frame height allows (the face box is then 0.2-0.3 of the frame width, as
in webcam close-ups), and times `FaceAligner.detect` alone and
`FaceAligner.align` (detection, 68 landmarks, warp) per frame, the median over
repeats, for each frame size, with detection at `--detect_widths` (320: the
default; 0: no reduction). `--runs` repeats the whole timing and prints each
run's median and the median of those. Video decoding is not included (2-3 ms
per 1280x720 MPEG-4 frame on this machine). Only `FaceAligner(size,
detect_width=...)`, `detect` and `align` are used, so the same script times
an older checkout of the package (put it first on PYTHONPATH).

    python tools/bench_faces.py --repeats=30 --runs=5 --frames=640x480,176x144
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
from recola_sta.faces import alignment, detection

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 30, "Timed calls per setting (after 3 warm-up calls).",
                     lower_bound=1)
flags.DEFINE_integer("size", 96, "Aligned crop size.", lower_bound=16)
flags.DEFINE_list("frames", ["640x480", "1280x720"], "Frame sizes WIDTHxHEIGHT.")
flags.DEFINE_list("detect_widths", ["320", "0"], "detect_width values (0: full resolution).")
flags.DEFINE_bool("empty", False, "Also time detection on a frame without a face (the "
                  "cost of a missed sample, retry included).")
flags.DEFINE_integer("compare_fixed_width", 0, "If > 0: also time, interleaved call by "
                     "call in this process, `detect` against the fixed-width path it replaced "
                     "(resize to this width with INTER_AREA, then dlib at upsample 0), "
                     "repeats x runs calls each, per frame size (load on a shared machine "
                     "hits both alike).",
                     lower_bound=0)
flags.DEFINE_integer("runs", 1, "Timing runs per setting; the median of their medians is "
                     "reported.", lower_bound=1)


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


def time_call(fn, repeats: int) -> float:
    """Median seconds of one call of `fn`, after 3 warm-up calls."""
    from bench import _median_seconds  # tools/bench.py, beside this script

    return _median_seconds(fn, repeats, warmup=3)[0]


def compare_fixed_width(frame: np.ndarray, width: int, calls: int) -> tuple[float, float]:
    """Median seconds of `FaceAligner.detect` and of the fixed-width path, interleaved."""
    aligner = faces.FaceAligner(FLAGS.size)
    detector = detection._load_detector()
    h, w = frame.shape[:2]
    size = (width, max(1, round(h * width / w))) if w > width else None

    def fixed():
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if size else frame
        return detector.run(small, 0, 0.0)

    new, old = [], []
    for i in range(calls):
        pair = ((lambda: aligner.detect(frame), new), (fixed, old))
        for fn, out in (pair if i % 2 else pair[::-1]):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(new), statistics.median(old)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main(argv):
    del argv
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"{alignment.__file__}: FaceAligner(size={FLAGS.size}, upsample=0); median of "
          f"{FLAGS.repeats} calls x {FLAGS.runs} runs; {cpu_model()}, one core "
          f"(cv2.setNumThreads(1), CPU affinity "
          f"{sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'frame':>10} {'face px':>8} {'detect_width':>12} {'faces':>5} "
          f"{'detect ms (runs)':>28} {'align ms':>9} {'frames/s':>9}")
    for spec in FLAGS.frames:
        width, height = (int(v) for v in spec.lower().split("x"))
        frame = make_frame(width, height)
        boxes, _ = faces.FaceAligner(FLAGS.size, upsample=1, detect_width=0).detect(frame)
        face_px = int(boxes[0][2] - boxes[0][0]) if boxes else 0
        for dw in (int(v) for v in FLAGS.detect_widths):
            aligner = faces.FaceAligner(FLAGS.size, detect_width=dw)
            found = len(aligner.detect(frame)[0])
            detect = [time_call(lambda: aligner.detect(frame), FLAGS.repeats)
                      for _ in range(FLAGS.runs)]
            align = statistics.median(time_call(lambda: aligner.align(frame), FLAGS.repeats)
                                      for _ in range(FLAGS.runs))
            runs = "/".join(f"{1000 * t:.1f}" for t in detect)
            if hasattr(aligner, "detection_scale"):  # the detector sees this size
                scale = aligner.detection_scale(width, height)
                label = f"{dw}:{round(width * scale)}x{round(height * scale)}"
            else:
                label = str(dw) if dw and dw < width else "full"
            print(f"{spec:>10} {face_px:>8d} {label:>12} {found:>5d} "
                  f"{1000 * statistics.median(detect):6.1f} ({runs:>19}) "
                  f"{1000 * align:9.1f} {1 / align:9.1f}")
            if FLAGS.compare_fixed_width:
                new, old = compare_fixed_width(frame, FLAGS.compare_fixed_width,
                                               FLAGS.repeats * FLAGS.runs)
                print(f"{spec:>10} interleaved {FLAGS.repeats * FLAGS.runs} calls each: detect "
                      f"{1000 * new:.2f} ms, fixed {FLAGS.compare_fixed_width} px width "
                      f"{1000 * old:.2f} ms")
            if FLAGS.empty:
                empty = np.empty_like(frame)
                empty[:] = (70, 90, 110)
                missed = [time_call(lambda: aligner.detect(empty), FLAGS.repeats)
                          for _ in range(FLAGS.runs)]
                runs = "/".join(f"{1000 * t:.1f}" for t in missed)
                print(f"{spec:>10} {'no face':>8} {label:>12} {0:>5d} "
                      f"{1000 * statistics.median(missed):6.1f} ({runs:>19})")


if __name__ == "__main__":
    app.run(main)
