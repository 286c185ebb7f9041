"""tf.data throughput of the clip pipeline, without a model.

Builds a preprocess cache from synthetic arrays (aligned-face-like crops cut
from scikit-image's astronaut photo, jittered per sample, so PNG decoding costs
what it costs on real crops), then times:

* `first epoch`: PNG decoding + filling the in-memory cache (+ augmentation);
* `cached epoch`: what every later training epoch costs (shuffle, augment,
  batch), median of `--repeats` epochs;
* `cached, no augment`: the same without augmentation;
* `eval`: `eval_dataset` over every recording (decodes every time).

Usage::

    python tools/bench_pipeline.py --sizes=64,96
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
import types

import numpy as np
from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from recola_sta import cache, pipeline  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["64", "96"], "Crop sides to benchmark.")
flags.DEFINE_integer("recordings", 20, "Training recordings in the benchmark cache.")
flags.DEFINE_integer("samples", 240, "4 fps samples per recording (240 = 60 s).")
flags.DEFINE_integer("frames", 16, "Frames per clip.")
flags.DEFINE_integer("batch_size", 16, "Clips per batch.")
flags.DEFINE_integer("repeats", 5, "Timed cached epochs (median reported).")
flags.DEFINE_string("workdir", None, "Where to build the caches (default: a temporary folder).")
flags.DEFINE_string("out", None, "Optional JSON file for the results.")


def _face_crops(size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n jittered (size, size, 3) uint8 crops of the astronaut's face."""
    import cv2
    import skimage.data

    face = skimage.data.astronaut()[40:230, 130:320]
    base = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    out = np.empty((n, size, size, 3), np.uint8)
    for k in range(n):
        m = np.float32([[1, 0, rng.uniform(-2, 2)], [0, 1, rng.uniform(-2, 2)]])
        img = cv2.warpAffine(base, m, (size, size), borderMode=cv2.BORDER_REFLECT)
        img = img * rng.uniform(0.9, 1.1) + rng.normal(0, 2.0, img.shape)
        out[k] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def build_cache(root: pathlib.Path, size: int, recordings: int, samples: int) -> pathlib.Path:
    """A cache of `recordings` training recordings of `samples` samples each."""
    rng = np.random.default_rng(size)
    entries = []
    for i in range(1, recordings + 1):
        name = f"train_{i}"
        found = rng.random(samples) > 0.03
        crops = _face_crops(size, samples, rng)
        crops[~found] = 0
        track = types.SimpleNamespace(times=np.arange(samples) * 0.25, crops=crops, found=found)
        valence = np.sin(np.arange(samples) * 0.05 + i).astype(np.float32)
        shard = cache.shard_path("train", name)
        cache.write_shard(root / shard, track, {"valence": valence})
        entries.append(cache.CacheEntry(name, "train", shard, samples, float(found.mean()),
                                        f"{name}.mp4", ["valence"]))
    cache.write_manifest(root, cache.Manifest("bench", "synthetic", size, 4.0, entries))
    return root


def _epoch_seconds(ds) -> tuple[float, int]:
    start = time.perf_counter()
    clips = 0
    for x, _, _ in ds:
        clips += int(x.shape[0])
    return time.perf_counter() - start, clips


def bench_size(root: pathlib.Path, size: int) -> dict:
    cache_dir = build_cache(root / f"cache_{size}", size, FLAGS.recordings, FLAGS.samples)
    result = {"size": size, "clips_per_epoch": None}
    ds = pipeline.train_dataset(cache_dir, frames=FLAGS.frames, batch_size=FLAGS.batch_size, seed=0)
    seconds, clips = _epoch_seconds(ds)
    result["clips_per_epoch"] = clips
    result["first_epoch_clips_per_s"] = clips / seconds
    result["cached_epoch_clips_per_s"] = statistics.median(
        clips / _epoch_seconds(ds)[0] for _ in range(FLAGS.repeats))
    plain = pipeline.train_dataset(cache_dir, frames=FLAGS.frames, batch_size=FLAGS.batch_size,
                                   seed=0, augment=False)
    _epoch_seconds(plain)
    result["cached_no_augment_clips_per_s"] = statistics.median(
        clips / _epoch_seconds(plain)[0] for _ in range(FLAGS.repeats))
    manifest = cache.read_manifest(cache_dir)
    start, eval_clips = time.perf_counter(), 0
    for entry in manifest.entries:
        for x, _, _ in pipeline.eval_dataset(cache_dir, entry, frames=FLAGS.frames,
                                             batch_size=FLAGS.batch_size):
            eval_clips += int(x.shape[0])
    result["eval_clips_per_s"] = eval_clips / (time.perf_counter() - start)
    return result


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(FLAGS.workdir or tmp)
        results = []
        for size in (int(s) for s in FLAGS.sizes):
            r = bench_size(root, size)
            r["load_average_1min"] = os.getloadavg()[0]
            r["cpu_count"] = os.cpu_count()
            results.append(r)
            print(f"size {size}: {r['clips_per_epoch']} clips/epoch | "
                  f"first epoch {r['first_epoch_clips_per_s']:.0f} clips/s | "
                  f"cached epoch {r['cached_epoch_clips_per_s']:.0f} clips/s | "
                  f"cached, no augment {r['cached_no_augment_clips_per_s']:.0f} clips/s | "
                  f"eval {r['eval_clips_per_s']:.0f} clips/s | "
                  f"load {r['load_average_1min']:.1f} on {r['cpu_count']} CPUs", flush=True)
    if FLAGS.out:
        from recola_sta import io_utils

        io_utils.atomic_write_text(FLAGS.out, json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    app.run(main)
