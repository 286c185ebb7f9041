"""Benchmarks of predict at scale, the subcommands of tools/bench.py:

* `batch_memory`: batch predict's peak resident memory over many short
  videos (does it stay flat?);
* `onnx`: predict on ONNX Runtime against the SavedModel;
* `speed`: the windowed detection's accuracy against whole-frame detection,
  predict's marginal time on one 640x480 face video side by side with an
  earlier tree (`--base`, e.g. a `git worktree` of the commit before a
  change) with the CPU time of each run, and batch throughput over worker
  processes.

    python tools/bench.py batch_memory --videos=200
    python tools/bench.py onnx
    python tools/bench.py speed --base=/tmp/base [--accuracy=V1.mp4,V2.mp4]

It shares the machine record, the face video and the untrained model
export with tools/bench.py, which dispatches these subcommands here.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from bench import (  # noqa: E402
    _median_seconds, export_untrained_model, machine_record, make_face_video,
    predict_breakdown)


# --------------------------------------------------------------------------
# Batch predict's memory (`python tools/bench.py batch_memory --videos=200`).


def _rss_bytes(pid: int) -> int | None:
    """Resident set size of process `pid` (Linux /proc), None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _index_rows(path: pathlib.Path) -> int:
    """Rows of a batch's index.csv so far (it is rewritten atomically)."""
    try:
        return max(0, len(path.read_text(encoding="utf-8").splitlines()) - 1)
    except OSError:
        return 0


def bench_batch_memory(workdir: pathlib.Path, *, videos: int = 200, seconds: float = 2.0,
                       size: int = 32, early: int = 20, interval: float = 0.2
                       ) -> dict[str, Any]:
    """Peak RSS of one batch predict (`--video` a folder of `videos` copies of
    a `seconds` long synthetic face video, an untrained 3d_cnn_sta at `size`
    px) run in a child process, sampled every `interval` s with the number
    of videos finished so far (index.csv's rows): the peak up to `early`
    videos against the peak over all of them. Flat memory: the two agree
    to within noise."""
    import shutil

    folder = workdir / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    first = make_face_video(workdir / "face.mp4", seconds, width=320, height=240)
    for k in range(videos):
        shutil.copyfile(first, folder / f"v{k:04d}.mp4")
    model_dir = export_untrained_model(workdir / "saved_model", size)
    out = workdir / "out"
    root = str(pathlib.Path(__file__).resolve().parents[1])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "recola_sta.predict",
                             f"--model={model_dir}", f"--video={folder}", f"--out={out}",
                             "--noprogress"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    samples = []  # (seconds, rss bytes, videos done)
    while proc.poll() is None:
        rss = _rss_bytes(proc.pid)
        if rss is not None:
            samples.append((time.perf_counter() - start, rss, _index_rows(out / "index.csv")))
        time.sleep(interval)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"batch predict exited {proc.returncode}: {stderr[-2000:]}")
    total = time.perf_counter() - start
    mib = 2.0 ** 20
    upto = [rss for _, rss, done in samples if done <= early]
    after = [(t, rss) for t, rss, done in samples if done >= early]
    peak_early, peak_all = max(upto) / mib, max(rss for _, rss, _ in samples) / mib
    return {
        "videos": videos, "video_seconds": seconds, "size": size, "wall_s": total,
        "s_per_video": (after[-1][0] - after[0][0]) / (videos - early) if len(after) > 1
        else None,
        "rss_samples": len(samples), "early": early,
        "peak_rss_mib_first": peak_early, "peak_rss_mib_all": peak_all,
        "growth_mib_per_100_videos": (peak_all - peak_early) / (videos - early) * 100
        if videos > early else None,
        "printed": stdout.strip().splitlines()[-1:],
    }


def batch_memory_main(argv: list[str]) -> int:
    """`python tools/bench.py batch_memory [--videos=200] [--seconds=2] ...`"""
    parser = argparse.ArgumentParser(prog="bench.py batch_memory",
                                     description=bench_batch_memory.__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--early", type=int, default=20)
    parser.add_argument("--workdir", default=None, help="Scratch folder (default: temporary).")
    parser.add_argument("--out", default=None, help="JSON file for the results (atomic).")
    args = parser.parse_args(argv)
    if args.videos <= args.early or args.early < 1:
        parser.error("--videos must exceed --early, which must be positive")
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(args.workdir or tmp)
        r = bench_batch_memory(root, videos=args.videos, seconds=args.seconds, size=args.size,
                               early=args.early)
    r = {"machine": machine_record(), "batch_memory": r}
    b = r["batch_memory"]
    print(f"batch_memory {b['videos']} videos of {b['video_seconds']:g} s: peak RSS "
          f"{b['peak_rss_mib_first']:.0f} MiB after {b['early']} videos, "
          f"{b['peak_rss_mib_all']:.0f} MiB after {b['videos']} "
          f"({b['growth_mib_per_100_videos']:+.1f} MiB per 100 videos); "
          f"{b['wall_s']:.0f} s in all, {b['s_per_video']:.2f} s per video", flush=True)
    if args.out:
        from recola_sta import io_utils

        io_utils.atomic_write_text(args.out, json.dumps(r, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


# --------------------------------------------------------------------------
# ONNX Runtime against the SavedModel (`python tools/bench.py onnx`).


def _export_both(folder: pathlib.Path, size: int) -> pathlib.Path:
    """An untrained 3d_cnn_sta (16 frames) exported as SavedModel and model.onnx."""
    import keras

    from recola_sta.faces.settings import FaceSettings
    from recola_sta.inference import export
    from recola_sta.model import networks

    keras.utils.set_random_seed(0)
    model = networks.build_model("3d_cnn_sta", frames=16, size=size)
    meta = export.export_metadata(variant="3d_cnn_sta", targets=["valence"], fps=4.0,
                                  face=FaceSettings(size=size))
    export.export_saved_model(model, folder, meta)
    export.export_onnx(model, folder, meta)
    return folder


def _first_output_seconds(model: pathlib.Path, video: pathlib.Path, out: pathlib.Path) -> float:
    """Wall time of a fresh `python -m recola_sta.predict` until it has
    written its outputs (imports, model load, a short video)."""
    root = str(pathlib.Path(__file__).resolve().parents[1])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "recola_sta.predict", f"--model={model}",
                    f"--video={video}", f"--out={out}", "--noprogress"],
                   capture_output=True, env=env, check=True)
    return time.perf_counter() - start


def bench_onnx(workdir: pathlib.Path, *, seconds: float = 20.0, repeats: int = 3,
               sizes: tuple[int, ...] = (32, 96), batch: int = 16) -> dict[str, Any]:
    """predict on ONNX Runtime against the SavedModel (TensorFlow): start-up
    to the first output in a fresh process (a 2 s video), model clips/s per
    crop size (`batch` clips a call), and predict's work with the model
    loaded on a `seconds` 640x480 video at the first size. Medians."""
    import tensorflow as tf

    from recola_sta.inference import export, onnx_model, predict

    rng = np.random.default_rng(0)
    result: dict[str, Any] = {"model": "3d_cnn_sta untrained, 16 frames", "batch": batch,
                              "clips_per_s": {}}
    loaded = {}
    for size in sizes:
        folder = _export_both(workdir / f"model_{size}", size)
        models = {"tensorflow": tf.saved_model.load(str(folder)),
                  "onnxruntime": onnx_model.load(folder / export.ONNX_NAME)}
        clips = rng.random((batch, 16, size, size, 3), dtype=np.float32)
        result["clips_per_s"][size] = {
            name: batch / _median_seconds(lambda m=m: m.serve(clips), repeats)[0]
            for name, m in models.items()}
        loaded[size] = (folder, models)
    folder, models = loaded[sizes[0]]
    short = make_face_video(workdir / "short.mp4", 2.0)
    result["first_output_s"] = {
        name: statistics.median(_first_output_seconds(model, short, workdir / f"first_{name}")
                                for _ in range(repeats))
        for name, model in (("tensorflow", folder), ("onnxruntime", folder / export.ONNX_NAME))}
    video = make_face_video(workdir / "face.mp4", seconds)
    result["predict"] = {"video_s": seconds, "size": sizes[0]}
    for name, model in models.items():
        path = folder if name == "tensorflow" else folder / export.ONNX_NAME

        def work(path=path, model=model):
            predict.predict_video(path, video, workdir / f"out_{name}", progress=False,
                                  model=model)

        work_s = _median_seconds(work, repeats)[0]
        result["predict"][name] = {"work_s": work_s, "real_time_factor": seconds / work_s}
    return result


def onnx_main(argv: list[str]) -> int:
    """`python tools/bench.py onnx [--seconds=20] [--repeats=3] [--out=FILE]`"""
    parser = argparse.ArgumentParser(prog="bench.py onnx",
                                     description=bench_onnx.__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="Scratch folder (default: temporary).")
    parser.add_argument("--out", default=None, help="JSON file for the results (atomic).")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        r = {"machine": machine_record(),
             "onnx": bench_onnx(root, seconds=args.seconds, repeats=args.repeats)}
    cpu, o = r["machine"]["cpu"], r["onnx"]
    print(f"{cpu['model']} (avx512f={cpu['avx512f']}, {cpu['usable_cores']} usable cores)")
    for size, rates in o["clips_per_s"].items():
        print(f"model {size:>3} px: " + ", ".join(f"{k} {v:.1f} clips/s" for k, v in rates.items()))
    print("first output (fresh process, 2 s video): " + ", ".join(
        f"{k} {v:.1f} s" for k, v in o["first_output_s"].items()))
    p = o["predict"]
    print(f"predict {p['video_s']:g} s 640x480 video at {p['size']} px, model loaded: " + ", ".join(
        f"{k} {p[k]['work_s']:.2f} s ({p[k]['real_time_factor']:.1f}x real time)"
        for k in ("tensorflow", "onnxruntime")))
    if args.out:
        from recola_sta import io_utils

        io_utils.atomic_write_text(args.out, json.dumps(r, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


# --------------------------------------------------------------------------
# Faster face alignment (issue 22): the window's accuracy, predict's marginal
# speed against an earlier tree, batch throughput over worker processes.
# `python tools/bench.py speed --base=/tmp/base --videos=... --out=speed.json`


def _sampled(path: pathlib.Path) -> list[np.ndarray]:
    """The 4 fps sampled frames of a video, as predict samples them."""
    from recola_sta import faces

    info = faces.probe_video(path)
    times = faces.sample_times(info.duration, 4.0, end=max(0.0, info.duration - 1 / info.fps))
    return [frame for _, frame in faces.iter_frames_at(path, times)]


def _aligned(frames: list[np.ndarray], **kwargs) -> tuple[list, float]:
    """Frame landmarks and 96 px crop of each frame (None without a face),
    and CPU ms per sample, with `FaceAligner(96, **kwargs)`."""
    import cv2

    from recola_sta import faces

    aligner = faces.FaceAligner(96, **kwargs)
    out = []
    start = time.process_time()
    for frame in frames:
        pts = aligner.landmarks(frame)
        out.append(None if pts is None else (pts, cv2.warpAffine(
            frame, aligner.transform(pts), (96, 96), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE)))
    return out, (time.process_time() - start) / max(1, len(frames)) * 1000


def window_accuracy(path: pathlib.Path) -> dict[str, Any]:
    """Windowed detection against whole-frame detection on one video, as the
    tracking table of docs/benchmarks.md: faces found, mean absolute
    difference of the 96 px crops (grey levels), key points' (eye centres,
    nose tip) distance in frame pixels and as % of the inter-ocular distance."""
    from recola_sta import faces

    frames = _sampled(path)
    whole, whole_ms = _aligned(frames, window=False)
    window, window_ms = _aligned(frames, window=True)
    both = [(a, b) for a, b in zip(whole, window) if a is not None and b is not None]
    dist, rel, mad = [], [], []
    for (pa, ca), (pb, cb) in both:
        ka, kb = faces.key_points(pa), faces.key_points(pb)
        d = np.linalg.norm(ka - kb, axis=1)
        dist += d.tolist()
        rel += (d / np.linalg.norm(ka[0] - ka[1])).tolist()
        mad.append(float(np.abs(ca.astype(np.float64) - cb).mean()))
    dist, rel = np.array(dist or [0.0]), np.array(rel or [0.0])
    return {"video": path.name, "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
            "samples": len(frames), "found_whole": sum(a is not None for a in whole),
            "found_window": sum(b is not None for b in window),
            "crop_mean_abs_diff": float(np.mean(mad or [0.0])),
            "crop_mean_abs_diff_max": float(np.max(mad or [0.0])),
            "key_point_px_mean_p95_max": [float(dist.mean()), float(np.percentile(dist, 95)),
                                          float(dist.max())],
            "key_point_iod_pct_p95": float(100 * np.percentile(rel, 95)),
            "cpu_ms_per_sample_whole": whole_ms, "cpu_ms_per_sample_window": window_ms}


_PREDICT_RUNS = """
import inspect, json, os, pathlib, sys, time
import tensorflow as tf
from recola_sta.inference import predict
model_dir, video, out, workers, runs = sys.argv[1:6]
model = tf.saved_model.load(model_dir)
kwargs = {"workers": int(workers)} if "workers" in inspect.signature(
    predict.predict_video).parameters else {}
def cpu():
    # CPU seconds of this process and of its live children (the kept pool's
    # workers, which outlive each run), from /proc.
    own = os.times()
    total = own.user + own.system
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
def work():
    start, used = time.perf_counter(), cpu()
    predict.predict_video(model_dir, video, out, progress=False, model=model, **kwargs)
    return time.perf_counter() - start, cpu() - used
work()  # warm-up: the worker pool, fonts, caches
runs = [work() for _ in range(int(runs))]
print(json.dumps({"runs_s": [r[0] for r in runs], "cpu_s": [r[1] for r in runs],
                  "module": predict.__file__}))
"""


def _tree_runs(tree: pathlib.Path, code: str, *args: Any) -> dict[str, Any]:
    """Runs `code` in a fresh interpreter importing recola_sta from `tree`
    (its working folder: `-c` puts that first on the path)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=env, check=True, cwd=tree)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def predict_side_by_side(workdir: pathlib.Path, base: pathlib.Path, *, seconds: float,
                         size: int, rounds: int, runs: int, workers: int) -> dict[str, Any]:
    """predict_video's marginal time (model loaded, warmed up) on one
    640x480 face video: the tree at `base`, and this tree with one worker
    (the window alone) and with `workers`, in fresh processes taking turns
    (the order reversed every round), `rounds` x `runs` timed runs each."""
    here = pathlib.Path(__file__).resolve().parents[1]
    video = make_face_video(workdir / "face.mp4", seconds)
    model_dir = export_untrained_model(workdir / "saved_model", size)
    arms = [("base", base, 1), ("new_1", here, 1), ("new", here, workers)]
    times: dict[str, list[float]] = {name: [] for name, _, _ in arms}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in arms}
    for r in range(rounds):
        for name, tree, w in (arms if r % 2 == 0 else arms[::-1]):
            got = _tree_runs(tree, _PREDICT_RUNS, model_dir, video, workdir / f"out_{name}",
                             w, runs)
            assert got["module"].startswith(str(tree)), got["module"]
            times[name] += got["runs_s"]
            cpu[name] += got["cpu_s"]
    med = {name: statistics.median(t) for name, t in times.items()}
    return {"video_s": seconds, "workers": workers, "runs_s": times, "median_s": med,
            "cpu_s": cpu, "median_cpu_s": {name: statistics.median(c) for name, c in cpu.items()},
            "real_time": {name: seconds / t for name, t in med.items()},
            "speedup": med["base"] / med["new"], "speedup_1": med["base"] / med["new_1"]}


_BATCH_RUN = """
import json, sys, time
import tensorflow as tf
from recola_sta.inference import predict
model_dir, folder, out, workers = sys.argv[1:5]
first = sorted(__import__("pathlib").Path(folder).glob("*.mp4"))[0]
predict.predict_video(model_dir, first, out + "_warm", progress=False, workers=int(workers),
                      model=tf.saved_model.load(model_dir))
start = time.perf_counter()
rows = predict.predict_videos(model_dir, folder, out, progress=False, overwrite=True,
                              workers=int(workers))
print(json.dumps({"s": time.perf_counter() - start, "ok": [r["status"] for r in rows]}))
"""


def batch_throughput(workdir: pathlib.Path, *, videos: int, seconds: float, size: int,
                     rounds: int) -> dict[str, Any]:
    """Wall time of predict_videos over `videos` face videos of `seconds`
    with workers 1 and 2 (alternating fresh processes; the model load is
    inside, the worker pool's start is not: a warm-up video starts it)."""
    here = pathlib.Path(__file__).resolve().parents[1]
    folder = workdir / "videos"
    folder.mkdir(exist_ok=True)
    for k in range(videos):
        if not (folder / f"v{k}.mp4").exists():
            make_face_video(folder / f"v{k}.mp4", seconds)
    model_dir = workdir / "saved_model"
    if not model_dir.exists():
        export_untrained_model(model_dir, size)
    times: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):
        for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
            got = _tree_runs(here, _BATCH_RUN, model_dir, folder, workdir / f"b{workers}",
                             workers)
            assert set(got["ok"]) == {"ok"}, got
            times[workers].append(got["s"])
    one, two = statistics.median(times[1]), statistics.median(times[2])
    return {"videos": videos, "video_s": seconds, "workers_1_s": times[1],
            "workers_2_s": times[2], "speedup": one / two,
            "videos_per_min_1": 60 * videos / one, "videos_per_min_2": 60 * videos / two}


def speed_main(argv: list[str]) -> int:
    """`python tools/bench.py speed --base=TREE [--accuracy=V1,V2] ...`"""
    parser = argparse.ArgumentParser(prog="bench.py speed")
    parser.add_argument("--base", required=True, help="Tree of the commit to compare with.")
    parser.add_argument("--accuracy", default="", help="Videos, comma-separated, on which to "
                        "compare windowed and whole-frame detection (the bench video too).")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--batch_videos", type=int, default=4)
    parser.add_argument("--batch_seconds", type=float, default=60.0)
    parser.add_argument("--skip", default="", help="Parts to skip: accuracy,predict,batch.")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    result: dict[str, Any] = {"machine": machine_record()}
    cpu = result["machine"]["cpu"]
    print(f"{cpu['model']} avx2={cpu['avx2']} avx512f={cpu['avx512f']}, load "
          f"{result['machine']['load_average_1min']:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        bench_video = make_face_video(root / "face.mp4", args.seconds)
        if "accuracy" not in skip:
            rows = result["accuracy"] = []
            for path in [bench_video] + [pathlib.Path(p) for p in args.accuracy.split(",") if p]:
                rows.append(window_accuracy(path))
                print("window   ", json.dumps(rows[-1]), flush=True)
        if "predict" not in skip:
            r = result["predict"] = predict_side_by_side(
                root, pathlib.Path(args.base), seconds=args.seconds, size=args.size,
                rounds=args.rounds, runs=args.runs, workers=args.workers)
            m, rt = r["median_s"], r["real_time"]
            print(f"predict   base {m['base']:.2f} s ({rt['base']:.1f}x real time); new, "
                  f"--workers=1 {m['new_1']:.2f} s ({rt['new_1']:.1f}x, {r['speedup_1']:.2f}x); "
                  f"--workers={r['workers']} {m['new']:.2f} s ({rt['new']:.1f}x, "
                  f"{r['speedup']:.2f}x)", flush=True)
            c = r["median_cpu_s"]
            print(f"cpu       per run, the process and its workers: base {c['base']:.2f} s; "
                  f"--workers=1 {c['new_1']:.2f} s; --workers={r['workers']} {c['new']:.2f} s "
                  f"(on {r['workers']} cores at least {c['new'] / r['workers']:.2f} s)",
                  flush=True)
            model = _loaded(root / "saved_model")
            st = result["stages_s"] = predict_breakdown(root / "saved_model", bench_video,
                                                        model.serve)
            # predict_breakdown times whole-frame detection; the aligner's
            # own time per pass, with and without the window:
            st.update(_process_seconds(bench_video, args.size))
            print("stages   ", json.dumps(st), flush=True)
        if "batch" not in skip:
            r = result["batch"] = batch_throughput(root, videos=args.batch_videos,
                                                   seconds=args.batch_seconds,
                                                   size=args.size, rounds=args.rounds)
            print(f"batch     {r['videos']} x {r['video_s']:g} s: workers 1 "
                  f"{statistics.median(r['workers_1_s']):.1f} s, 2 "
                  f"{statistics.median(r['workers_2_s']):.1f} s: {r['speedup']:.2f}x",
                  flush=True)
    if args.out:
        from recola_sta import io_utils

        io_utils.atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return 0


def _process_seconds(video: pathlib.Path, size: int) -> dict[str, float]:
    """Seconds of `FaceAligner(size).process` over the video's samples, one
    pass each with the window and without."""
    from recola_sta import faces

    frames = _sampled(video)
    out = {}
    for name, window in (("process_window_s", True), ("process_whole_frame_s", False)):
        aligner = faces.FaceAligner(size, window=window)
        start = time.perf_counter()
        for frame in frames:
            aligner.process(frame)
        out[name] = time.perf_counter() - start
    return out


def _loaded(model_dir: pathlib.Path):
    import tensorflow as tf

    return tf.saved_model.load(str(model_dir))
