"""Parameter counts and training-step times of the Table-1 networks.

Prints, for each variant and crop size, the parameter count and the median
wall time of one `train_on_batch` step (Adam, MSE, random clips) after one
warm-up step that traces the graph. Times depend on what else runs on the
machine: report them with the machine's load.

    python tools/bench_models.py --sizes 96 64 --batch 16 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def bench(
    variant: str, *, size: int, frames: int, batch: int, repeats: int, seed: int = 0
) -> dict:
    """Builds and compiles one variant; returns its parameter count and step times.

    Args:
        variant: one of `recola_sta.models.VARIANTS`.
        size: square crop size.
        frames: clip length.
        batch: clips per training step.
        repeats: timed steps (after one untimed warm-up step).
        seed: seed of the random clips and labels.

    Returns:
        {"variant", "size", "params", "step_s" (median), "steps_s" (all)}.
    """
    import keras

    from recola_sta.models import build_model

    model = build_model(variant, frames=frames, size=size)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
    rng = np.random.default_rng(seed)
    clips = rng.random((batch, frames, size, size, 3), dtype=np.float32)
    labels = rng.uniform(-1, 1, (batch, frames, 1)).astype(np.float32)
    model.train_on_batch(clips, labels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.train_on_batch(clips, labels)
        times.append(time.perf_counter() - start)
    return {
        "variant": variant,
        "size": size,
        "params": model.count_params(),
        "step_s": statistics.median(times),
        "steps_s": times,
    }


def main() -> None:
    from recola_sta.models import VARIANTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 64])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    if args.repeats < 1 or args.batch < 1 or args.frames < 1:
        parser.error("--repeats, --batch and --frames must be positive")

    import keras

    print(f"backend={keras.backend.backend()} batch={args.batch} frames={args.frames}")
    print(f"{'variant':<12} {'size':>4} {'params':>10} {'step_s':>8} {'s/clip':>7}  all steps")
    for size in args.sizes:
        for variant in args.variants:
            r = bench(
                variant, size=size, frames=args.frames, batch=args.batch,
                repeats=args.repeats,
            )
            steps = " ".join(f"{t:.2f}" for t in r["steps_s"])
            print(
                f"{variant:<12} {size:>4} {r['params']:>10,} {r['step_s']:>8.2f} "
                f"{r['step_s'] / args.batch:>7.3f}  {steps}",
                flush=True,
            )


if __name__ == "__main__":
    main()
