r"""Generation time of synthetic recordings, per preset, interleaved in one process.

Builds each preset's face animator once (timed separately: it is paid once
per worker process), then writes the same recordings (train_1, train_2, ...)
with every preset in turn, so that load from other jobs hits all presets
alike, and prints each recording's time (plan, render, mp4v encoding) and the
median per preset.

    python tools/bench_synthetic.py --recordings=5 --duration_s=10 [--fps=8]
"""

from __future__ import annotations

import pathlib
import statistics
import tempfile
import time
from typing import Sequence

import cv2

from recola_sta.data import face_animation, synthetic, synthetic_scenes


def bench(presets: Sequence[str], recordings: int, duration_s: float, width: int = 320,
          height: int = 240, fps: float = 25.0) -> dict[str, dict]:
    """Seconds per recording and animator set-up seconds, per preset.

    Raises:
        ValueError: unknown preset, recordings < 1 or duration_s < 1.
    """
    unknown = set(presets) - set(synthetic.PRESETS)
    if unknown or not presets:
        raise ValueError(f"presets must be a non-empty subset of {synthetic.PRESETS}, "
                         f"got {list(presets)}.")
    if recordings < 1:
        raise ValueError(f"recordings must be >= 1, got {recordings}.")
    if duration_s < 1.0:
        raise ValueError(f"duration_s must be at least 1 s, got {duration_s}.")
    cv2.setNumThreads(1)  # as in the corpus's worker processes
    landmarks = face_animation.astronaut_landmarks()
    results: dict[str, dict] = {}
    for preset in presets:
        start = time.perf_counter()
        animator = (face_animation.RecolaLikeAnimator(landmarks) if preset == "recola_like"
                    else face_animation.FaceAnimator(landmarks))
        results[preset] = {"setup_s": time.perf_counter() - start, "recording_s": [],
                           "animator": animator}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(1, recordings + 1):
            for preset in presets:
                start = time.perf_counter()
                plan = synthetic_scenes.plan_recording(f"train_{n}", "train", n, seed=0,
                                                       duration_s=duration_s, fps=fps,
                                                       annotation_delay_s=0.0, preset=preset)
                synthetic.write_recording(pathlib.Path(tmp) / preset,
                                          results[preset]["animator"], plan, width, height, fps)
                results[preset]["recording_s"].append(time.perf_counter() - start)
    for r in results.values():
        del r["animator"]
        r["median_s"] = statistics.median(r["recording_s"])
    return results


def main(argv: Sequence[str]) -> None:
    from absl import flags

    del argv
    f = flags.FLAGS
    results = bench(f.presets, f.recordings, f.duration_s, fps=f.fps)
    for preset, r in results.items():
        times = ", ".join(f"{t:.2f}" for t in r["recording_s"])
        print(f"{preset}: set-up {r['setup_s']:.2f} s; per {f.duration_s:g} s recording "
              f"at {f.fps:g} fps "
              f"[{times}] s, median {r['median_s']:.2f} s")
    if "default" in results and len(results) > 1:
        for preset, r in results.items():
            if preset != "default":
                print(f"{preset} / default (medians): "
                      f"{r['median_s'] / results['default']['median_s']:.2f}")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_list("presets", list(synthetic.PRESETS), "Presets to time.")
    flags.DEFINE_integer("recordings", 5, "Recordings per preset.", lower_bound=1)
    flags.DEFINE_float("duration_s", 10.0, "Length of each recording.", lower_bound=1.0)
    flags.DEFINE_float("fps", 25.0, "Video frame rate.", lower_bound=4.0)
    flags.register_validator(
        "presets", lambda v: bool(v) and set(v) <= set(synthetic.PRESETS),
        message=f"--presets must be a non-empty subset of {synthetic.PRESETS}.")
    app.run(main)
