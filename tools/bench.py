"""One benchmark for the whole package: training, prediction, preprocessing, tf.data.

Parts (`--only`, comma-separated; default all):

* `train`: clips/s of one `train_on_batch` step (Adam, MSE, random clips)
  per variant, crop size and batch; the median over `--repeats` steps after
  one untimed warm-up step that traces the graph. Runs under any Keras
  backend: TensorFlow is not imported on this path, so
  `KERAS_BACKEND=jax python tools/bench.py --only=train` measures a machine
  with JAX and no TensorFlow. `--mixed_precision` (bfloat16 policy) and
  `--jit_compile` apply here.
* `predict`: real-time factor of `recola_sta.inference.predict.predict_video` on a
  generated `--video_seconds` (60) 640x480 25 fps face video (the astronaut
  photo moving slightly), with an untrained 3d_cnn_sta model at
  `--predict_size` (32) px exported by `recola_sta.export`. Start-up
  (imports in a fresh interpreter, SavedModel load, first model call) is
  reported separately from the work with the model loaded; the work is
  split into decode, detection, alignment (landmarks + warp; with tracking,
  `redetect_every`, the landmark fits of the samples between detections),
  model and the rest (outputs, figures).
* `preprocess`: frames/s on one core of `FaceAligner.process` (detection or
  tracking, 68 landmarks, warp) on consecutive 4 fps samples of the same
  video (tracking needs consecutive samples).
* `pipeline`: tf.data clips/s of `recola_sta.training.pipeline.train_dataset` over a
  synthetic cache of astronaut face crops (PNG decoding costs what it costs
  on real crops): the first epoch (decoding + filling the in-memory cache),
  cached epochs with and without augmentation (median over repeats),
  `eval_dataset` over every recording, and the augmentation inside the
  model (`layers.ClipAugmentation`, train --augment_on=model) on the device
  TensorFlow runs on.

Every run records the machine (CPU model, avx2/avx512f, cores, load
average), the backend, the precision and the library versions. Timings on a
machine shared with other jobs are inflated: compare figures measured in
the same run.

    python tools/bench.py --out results/bench.json
    python tools/bench.py batch_memory --videos=200   # batch predict's peak RSS, flat?
    python tools/bench.py onnx   # predict on ONNX Runtime against the SavedModel
    python tools/bench.py speed --base=/tmp/base      # alignment: window, workers

(`batch_memory`, `onnx` and `speed` are in tools/bench_predict.py.)
    python tools/bench.py --only=train --sizes=64,96 --batch=16 --variants=3d_cnn,3d_cnn_sta
    KERAS_BACKEND=jax python tools/bench.py --only=train --mixed_precision --jit_compile
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from recola_sta.data.face_video import make_face_video  # noqa: E402

PARTS = ("train", "predict", "preprocess", "pipeline")
# Subcommands in tools/bench_predict.py: `python tools/bench.py NAME ...`.
PREDICT_SUBCOMMANDS = ("batch_memory", "onnx", "speed")
VARIANTS = ("2d_cnn", "3d_cnn", "3d_cnn_sta", "cnn_rnn_1s", "cnn_rnn_4s")
_PACKAGES = ("numpy", "keras", "tensorflow", "jax", "jaxlib", "opencv-python",
             "opencv-python-headless", "dlib", "dlib-bin", "scikit-image")


# --------------------------------------------------------------------------
# Machine record.


def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, Any]:
    """CPU model, the vector-extension flags that matter here, and core counts."""
    model, flags = None, set()
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    usable = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
              else os.cpu_count())
    return {
        "model": model or platform.processor() or "unknown CPU",
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
    }


def versions() -> dict[str, str]:
    """Installed versions of the libraries that set the speed (none imported)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    return out


def machine_record() -> dict[str, Any]:
    """Where a figure was measured: host, CPU, load, versions."""
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "versions": versions(),
    }


def _median_seconds(fn: Callable[[], Any], repeats: int,
                    warmup: int = 1) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


# --------------------------------------------------------------------------
# Training steps (no TensorFlow import here: any Keras backend).


def bench_train(
    variant: str, *, size: int, batch: int, frames: int = 16, repeats: int = 3,
    mixed_precision: bool = False, jit_compile: bool = False, seed: int = 0,
) -> dict[str, Any]:
    """Clips/s of one `train_on_batch` step of `variant` (median of `repeats`).

    `mixed_precision` sets the bfloat16 global policy for this model (restored
    afterwards); `jit_compile` is passed to `compile`.
    """
    import keras

    from recola_sta.model.networks import build_model

    previous = keras.mixed_precision.global_policy().name
    policy = "mixed_bfloat16" if mixed_precision else "float32"
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(seed)
        model = build_model(variant, frames=frames, size=size)
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse",
                      jit_compile=jit_compile)
        rng = np.random.default_rng(seed)
        clips = rng.random((batch, frames, size, size, 3), dtype=np.float32)
        labels = rng.uniform(-1, 1, (batch, frames, 1)).astype(np.float32)
        step, steps = _median_seconds(lambda: model.train_on_batch(clips, labels), repeats)
        params = model.count_params()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return {
        "variant": variant, "size": size, "batch": batch, "frames": frames,
        "backend": keras.backend.backend(), "precision": policy,
        "jit_compile": jit_compile, "params": int(params),
        "step_s": step, "steps_s": steps, "clips_per_s": batch / step,
        "load_average_1min": os.getloadavg()[0],
    }


# --------------------------------------------------------------------------
# The face video of the predict and preprocess parts.


def export_untrained_model(path: pathlib.Path, size: int, frames: int = 16,
                           variant: str = "3d_cnn_sta") -> pathlib.Path:
    """An untrained `variant` exported as predict expects (default aligner)."""
    import keras

    from recola_sta.faces.settings import FaceSettings
    from recola_sta.inference import export
    from recola_sta.model import networks

    keras.utils.set_random_seed(0)
    model = networks.build_model(variant, frames=frames, size=size)
    meta = export.export_metadata(variant=variant, targets=["valence"], fps=4.0,
                                  face=FaceSettings(size=size))
    return export.export_saved_model(model, path, meta)


# --------------------------------------------------------------------------
# Prediction.


def startup_seconds(model_dir: pathlib.Path) -> dict[str, float]:
    """Imports and SavedModel load in a fresh interpreter, as `predict` pays them."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "import tensorflow as tf\n"
        "from recola_sta.inference import predict\n"
        "t1 = time.perf_counter()\n"
        f"m = tf.saved_model.load({str(model_dir)!r})\n"
        "t2 = time.perf_counter()\n"
        "print(t1 - t0, t2 - t1)\n"
    )
    root = str(pathlib.Path(__file__).resolve().parents[1])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    imports, load = (float(v) for v in proc.stdout.split()[-2:])
    return {"imports_s": imports, "saved_model_load_s": load}


def predict_breakdown(model_dir: pathlib.Path, video: pathlib.Path, serve,
                      batch_size: int = 16) -> dict[str, float]:
    """Seconds of each stage of predict's work on `video`, measured one by one:
    decoding the sampled frames, detection (on the samples where `process`
    ran the detector: all, or every `redetect_every`-th of a tracked face),
    alignment (landmark fits and warp: `process` minus that detection), and
    the model on the crops."""
    from recola_sta import faces
    from recola_sta.inference import export, predict

    meta = export.read_metadata(model_dir)
    aligner = predict.make_aligner(meta, model_dir)
    info = faces.probe_video(video)
    times = faces.sample_times(info.duration, fps=meta["fps"],
                               end=max(0.0, info.duration - 1.0 / info.fps))
    start = time.perf_counter()
    frames = [frame for _, frame in faces.iter_frames_at(video, times)]
    decode = time.perf_counter() - start
    aligner.reset()
    crops = np.zeros((len(frames), aligner.size, aligner.size, 3), np.uint8)
    process = 0.0
    detected = []
    for k, frame in enumerate(frames):
        start = time.perf_counter()
        out = aligner.process(frame)
        process += time.perf_counter() - start
        if out.crop is not None:
            crops[k] = out.crop
        if out.detected:
            detected.append(frame)
    # The detector alone on the samples where process ran it (every one with
    # redetect_every=1); with tracking the others only fit landmarks.
    detect = 0.0
    for frame in detected:
        start = time.perf_counter()
        aligner.detect(frame)
        detect += time.perf_counter() - start
    start = time.perf_counter()
    predict.run_model(serve, crops, meta["frames"], batch_size)
    model = time.perf_counter() - start
    return {"samples": len(frames), "detector_runs": len(detected), "decode_s": decode,
            "detect_s": detect, "align_s": max(0.0, process - detect), "model_s": model}


def bench_predict(workdir: pathlib.Path, *, seconds: float, size: int,
                  repeats: int, compare_prefetch: bool = False) -> dict[str, Any]:
    """Real-time factor of predict_video with the model loaded, and its parts.

    With `compare_prefetch`, each repeat also runs predict_video decoding in
    line (`prefetch=0`), in alternating order, for the before/after ratio.
    """
    import tensorflow as tf

    from recola_sta.inference import predict

    video = make_face_video(workdir / "face.mp4", seconds)
    model_dir = export_untrained_model(workdir / "saved_model", size)
    startup = startup_seconds(model_dir)
    start = time.perf_counter()
    loaded = tf.saved_model.load(str(model_dir))
    in_process_load = time.perf_counter() - start
    start = time.perf_counter()
    loaded.serve(tf.zeros((1, 16, size, size, 3)))
    first_call = time.perf_counter() - start
    startup["first_model_call_s"] = first_call

    def work(**kwargs):
        return predict.predict_video(model_dir, video, workdir / "out", progress=False,
                                     model=loaded, **kwargs)

    summary = work()  # warm-up: plots, fonts, attention analysis caches
    totals, parts, in_line = [], [], []
    for i in range(repeats):  # whole runs and their parts interleaved
        runs = [(totals, {})]
        if compare_prefetch:  # the same work decoding in line; order alternating
            runs = runs + [(in_line, {"prefetch": 0})] if i % 2 == 0 else \
                [(in_line, {"prefetch": 0})] + runs
        for out, kwargs in runs:
            start = time.perf_counter()
            work(**kwargs)
            out.append(time.perf_counter() - start)
        parts.append(predict_breakdown(model_dir, video, loaded.serve))
    total = statistics.median(totals)
    stages = {k: statistics.median(p[k] for p in parts)
              for k in ("decode_s", "detect_s", "align_s", "model_s")}
    stages["other_s"] = max(0.0, total - sum(stages.values()))
    return {
        "video": {"seconds": seconds, "width": 640, "height": 480, "fps": 25.0,
                  "samples": summary["samples"],
                  "face_found_rate": summary["face_found_rate"]},
        "model": {"variant": "3d_cnn_sta", "size": size, "frames": 16, "trained": False},
        "backend": "tensorflow (SavedModel)", "precision": "float32",
        "work_s": total, "work_runs_s": totals,
        "real_time_factor": seconds / total,
        "startup": {**startup, "in_process_saved_model_load_s": in_process_load},
        "stages_s": stages,
        "stage_share": {k: v / total for k, v in stages.items()},
        **({"work_in_line_decode_s": statistics.median(in_line),
            "work_in_line_decode_runs_s": in_line,
            "prefetch_speedup": statistics.median(in_line) / total} if in_line else {}),
        "load_average_1min": os.getloadavg()[0],
    }


# --------------------------------------------------------------------------
# Preprocessing (one core).


@contextlib.contextmanager
def one_core():
    """Runs the block on one core with OpenCV single-threaded."""
    import cv2

    threads = cv2.getNumThreads()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cv2.setNumThreads(1)
    if affinity:
        os.sched_setaffinity(0, {min(affinity)})
    try:
        yield
    finally:
        cv2.setNumThreads(threads)
        if affinity:
            os.sched_setaffinity(0, affinity)


def bench_preprocess(video: pathlib.Path, *, size: int = 96, samples: int = 40,
                     repeats: int = 3) -> dict[str, Any]:
    """Frames/s per core of `FaceAligner.process` on `samples` frames of `video`."""
    from recola_sta import faces

    info = faces.probe_video(video)
    times = np.arange(samples) / 4.0  # consecutive 4 fps samples, as preprocess sees them
    times = times[times <= max(0.0, info.duration - 1.0 / info.fps)]
    frames = [f for _, f in faces.iter_frames_at(video, times)]
    aligner = faces.FaceAligner(size)

    def run():
        aligner.reset()
        return sum(aligner.process(f).crop is not None for f in frames)

    with one_core():
        found = run()
        per_pass, passes = _median_seconds(run, repeats, warmup=0)
    return {"size": size, "frame": [info.width, info.height], "frames": len(frames),
            "found": int(found), "frames_per_s_per_core": len(frames) / per_pass,
            "ms_per_frame": 1000 * per_pass / len(frames),
            "passes_s": passes, "load_average_1min": os.getloadavg()[0]}


# --------------------------------------------------------------------------
# tf.data pipeline.


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
    """A preprocess cache of `recordings` training recordings (astronaut crops,
    3 % missing faces) of `samples` 4 fps samples each."""
    import types

    from recola_sta import cache
    from recola_sta.cache import shards
    from recola_sta.faces.settings import FaceSettings

    rng = np.random.default_rng(size)
    entries = []
    for i in range(1, recordings + 1):
        name = f"train_{i}"
        found = rng.random(samples) > 0.03
        crops = _face_crops(size, samples, rng)
        crops[~found] = 0
        track = types.SimpleNamespace(times=np.arange(samples) * 0.25, crops=crops, found=found,
                                      landmarks=None)
        valence = np.sin(np.arange(samples) * 0.05 + i).astype(np.float32)
        shard = cache.shard_path("train", name)
        shards.write_shard(root / shard, track, {"valence": valence})
        entries.append(cache.CacheEntry(name, "train", shard, samples, float(found.mean()),
                                        f"{name}.mp4", ["valence"]))
    cache.write_manifest(root, cache.Manifest(corpus_root="bench", corpus_kind="synthetic", fps=4.0,
                                              face=FaceSettings(size=size), entries=entries))
    return root


def _epoch(ds) -> tuple[float, int]:
    start, clips = time.perf_counter(), 0
    for x, _, _ in ds:
        clips += int(x.shape[0])
    return time.perf_counter() - start, clips


def bench_pipeline(root: pathlib.Path, *, size: int, batch: int, frames: int = 16,
                   recordings: int = 10, samples: int = 240, repeats: int = 3) -> dict[str, Any]:
    """tf.data clips/s: first epoch (PNG decoding), then cached epochs with and
    without augmentation, interleaved epoch by epoch, and `eval_dataset` over
    every recording (decodes every time)."""
    from recola_sta import cache
    from recola_sta.training import pipeline

    cache_dir = build_cache(root / f"cache_{size}", size, recordings, samples)
    datasets = {
        augment: pipeline.train_dataset(cache_dir, frames=frames, batch_size=batch, seed=0,
                                        augment=augment)
        for augment in (True, False)
    }
    first, clips = _epoch(datasets[True])
    _epoch(datasets[False])
    seconds = {True: [], False: []}
    for _ in range(repeats):
        for augment, ds in datasets.items():
            seconds[augment].append(_epoch(ds)[0])
    start, eval_clips = time.perf_counter(), 0
    for entry in cache.read_manifest(cache_dir).entries:
        for x, _, _ in pipeline.eval_dataset(cache_dir, entry, frames=frames, batch_size=batch):
            eval_clips += int(x.shape[0])
    eval_seconds = time.perf_counter() - start
    return {
        **bench_model_augmentation(size=size, batch=batch, frames=frames, repeats=repeats),
        "size": size, "batch": batch, "frames": frames, "clips_per_epoch": clips,
        "backend": "tensorflow (tf.data)",
        "first_epoch_clips_per_s": clips / first,
        "augment_clips_per_s": clips / statistics.median(seconds[True]),
        "no_augment_clips_per_s": clips / statistics.median(seconds[False]),
        "eval_clips_per_s": eval_clips / eval_seconds,
        "load_average_1min": os.getloadavg()[0],
    }


def bench_model_augmentation(*, size: int, batch: int, frames: int = 16, repeats: int = 3,
                             steps: int = 20) -> dict[str, Any]:
    """clips/s of the augmentation inside the model (`layers.ClipAugmentation`,
    train --augment_on=model) on this machine's device, traced once with
    tf.function as in a training step; median over `repeats` runs of `steps`
    batches."""
    import tensorflow as tf

    from recola_sta.model import layers
    from recola_sta.training import pipeline

    layer = layers.ClipAugmentation(**dataclasses.asdict(pipeline.Augmentation()), seed=0)
    step = tf.function(lambda x: layer(x, training=True))
    x = tf.random.uniform((batch, frames, size, size, 3))
    step(x).numpy()  # trace

    def run():
        for _ in range(steps):
            out = step(x)
        out.numpy()

    seconds, _ = _median_seconds(run, repeats)
    return {"model_augment_clips_per_s": steps * batch / seconds,
            "model_augment_device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU"}


# --------------------------------------------------------------------------
# Command line.


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas: {text!r}") from e
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers: {text!r}")
    return values


def _choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if not values or bad:
            raise argparse.ArgumentTypeError(
                f"expected some of {', '.join(allowed)} separated by commas; got {text!r}")
        return values
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=_choices(PARTS), default=list(PARTS),
                        help="Parts to run, comma-separated: " + ", ".join(PARTS))
    parser.add_argument("--sizes", type=_int_list, default=[64, 96],
                        help="Crop sizes of the train and pipeline parts.")
    parser.add_argument("--batch", type=_int_list, default=[16],
                        help="Batch sizes of the train part (the first one: pipeline).")
    parser.add_argument("--variants", type=_choices(VARIANTS), default=list(VARIANTS),
                        help="Variants of the train part.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed repeats (median).")
    parser.add_argument("--frames", type=int, default=16, help="Frames per clip.")
    parser.add_argument("--mixed_precision", action="store_true",
                        help="Train with the mixed_bfloat16 policy.")
    parser.add_argument("--jit_compile", action="store_true", help="compile(jit_compile=True).")
    parser.add_argument("--video_seconds", type=float, default=60.0,
                        help="Length of the predict/preprocess video.")
    parser.add_argument("--predict_size", type=int, default=32, help="Crop size of predict.")
    parser.add_argument("--compare_prefetch", action="store_true",
                        help="Predict: also time decoding in line (prefetch=0), interleaved.")
    parser.add_argument("--preprocess_samples", type=int, default=40,
                        help="Frames the preprocess part aligns per pass.")
    parser.add_argument("--recordings", type=int, default=10,
                        help="Recordings of 60 s in the pipeline cache.")
    parser.add_argument("--workdir", default=None, help="Scratch folder (default: temporary).")
    parser.add_argument("--out", default=None, help="JSON file for the results (atomic).")
    args = parser.parse_args(argv)
    for name in ("repeats", "frames", "predict_size", "preprocess_samples", "recordings"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive")
    if args.video_seconds < 5:
        parser.error("--video_seconds must be at least 5 (one 16-frame clip at 4 fps)")
    if args.predict_size < 16:
        parser.error("--predict_size must be at least 16")
    return args


def _print_train(r: dict[str, Any]) -> None:
    print(f"train     {r['variant']:<11} {r['size']:>3} px batch {r['batch']:>3} "
          f"{r['precision']:<14} jit={int(r['jit_compile'])}: {r['clips_per_s']:8.2f} clips/s "
          f"(step {r['step_s']:.3f} s, {r['params']:,} params)", flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the selected parts; returns the JSON-ready record (also printed)."""
    import keras  # the backend is fixed here; TensorFlow only where a part needs it

    result: dict[str, Any] = {
        "machine": machine_record(),
        "backend": keras.backend.backend(),
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "workdir")},
        "results": {},
    }
    cpu = result["machine"]["cpu"]
    print(f"{cpu['model']} ({cpu['usable_cores']} usable cores of {cpu['cpu_count']}; "
          f"avx2={cpu['avx2']} avx512f={cpu['avx512f']}), load "
          f"{result['machine']['load_average_1min']:.1f}, backend {result['backend']}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        if "train" in args.only:
            rows = result["results"]["train"] = []
            for size in args.sizes:
                for batch in args.batch:
                    for variant in args.variants:
                        rows.append(bench_train(
                            variant, size=size, batch=batch, frames=args.frames,
                            repeats=args.repeats, mixed_precision=args.mixed_precision,
                            jit_compile=args.jit_compile))
                        _print_train(rows[-1])
        if "predict" in args.only:
            (root / "predict").mkdir(exist_ok=True)
            r = result["results"]["predict"] = bench_predict(
                root / "predict", seconds=args.video_seconds, size=args.predict_size,
                repeats=args.repeats, compare_prefetch=args.compare_prefetch)
            s, st = r["startup"], r["stages_s"]
            print(f"predict   {args.video_seconds:.0f} s 640x480 video, {r['video']['samples']} "
                  f"samples: work {r['work_s']:.2f} s = {r['real_time_factor']:.1f}x real time; "
                  f"start-up: imports {s['imports_s']:.1f} s + load "
                  f"{s['saved_model_load_s']:.1f} s + first call {s['first_model_call_s']:.1f} s",
                  flush=True)
            print("          " + ", ".join(
                f"{k[:-2]} {v:.2f} s ({r['stage_share'][k]:.0%})" for k, v in st.items()))
            if "prefetch_speedup" in r:
                print(f"          decoding in line (prefetch=0): work "
                      f"{r['work_in_line_decode_s']:.2f} s; prefetch speed-up "
                      f"{r['prefetch_speedup']:.3f}x")
        if "preprocess" in args.only:
            video = root / "predict" / "face.mp4"
            if not video.is_file():
                video.parent.mkdir(exist_ok=True)
                make_face_video(video, min(args.video_seconds, 10.0))
            r = result["results"]["preprocess"] = bench_preprocess(
                video, samples=args.preprocess_samples, repeats=args.repeats)
            print(f"preprocess {r['frame'][0]}x{r['frame'][1]} -> {r['size']} px, one core: "
                  f"{r['frames_per_s_per_core']:.1f} frames/s ({r['ms_per_frame']:.1f} ms/frame, "
                  f"{r['found']}/{r['frames']} faces)", flush=True)
        if "pipeline" in args.only:
            rows = result["results"]["pipeline"] = []
            for size in args.sizes:
                rows.append(bench_pipeline(root, size=size, batch=args.batch[0],
                                           frames=args.frames, recordings=args.recordings,
                                           repeats=args.repeats))
                r = rows[-1]
                print(f"pipeline  {size:>3} px batch {r['batch']}: first epoch "
                      f"{r['first_epoch_clips_per_s']:.0f}, cached with augmentation "
                      f"{r['augment_clips_per_s']:.0f}, without "
                      f"{r['no_augment_clips_per_s']:.0f}, eval "
                      f"{r['eval_clips_per_s']:.0f} clips/s; augmentation in the model "
                      f"({r['model_augment_device']}) {r['model_augment_clips_per_s']:.0f} "
                      "clips/s", flush=True)
    result["machine"]["load_average_1min_end"] = os.getloadavg()[0]
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in PREDICT_SUBCOMMANDS:
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
        import bench_predict

        return getattr(bench_predict, f"{argv[0]}_main")(argv[1:])
    args = parse_args(argv)
    result = run(args)
    if args.out:
        from recola_sta import io_utils

        io_utils.atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
