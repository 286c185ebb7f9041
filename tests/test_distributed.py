"""`train --distribution=mirrored|multi_worker` on CPU, with a tiny hand-made cache.

Every run is a fresh interpreter: TensorFlow fixes the logical devices and
the collective ops of a process when its runtime starts. Shapes are tiny
(32 px, 4-frame clips, a 3D-CNN with 8 FC units) so the module stays under
about two minutes on two cores; each subprocess has a timeout, so a hang
fails the test instead of the suite.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from recola_sta import cache, faces, io_utils
from recola_sta.cache import shards
from recola_sta.faces.settings import FaceSettings
from recola_sta.training import distributed

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZE = 32
FRAMES = 4
# The network and schedule of every run here (dropout 0 and no augmentation:
# per-replica random masks would differ from one device's).
FLAGS = [f"--size={SIZE}", f"--frames={FRAMES}", "--batch_size=4", "--variant=3d_cnn",
         "--fc_units=8", "--dropout=0", "--noaugment", "--noprogress", "--noexport",
         "--eval_partitions=dev", "--corpus_kind=csv", "--seed=1"]


def _write_corpus_and_cache(root: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A csv-layout corpus (train_1: 8 clips, dev_1: 2 clips) and its cache.

    The videos are empty files: the cache is written here, as preprocess
    would, and only evaluation reads the corpus (its label files).
    """
    corpus, cache_dir = root / "corpus", root / "cache"
    rng = np.random.default_rng(0)
    entries = []
    for name, partition, n in (("train_1", "train", 32), ("dev_1", "dev", 8)):
        folder = corpus / partition
        folder.mkdir(parents=True, exist_ok=True)
        video = folder / f"{name}.mp4"
        video.write_bytes(b"")
        times = np.arange(n) / 4.0
        valence = (0.5 * np.sin(times + len(name))).astype(np.float32)
        with (folder / f"{name}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["time", "valence"])
            writer.writerows([[f"{t:.2f}", f"{v:.6f}"] for t, v in zip(times, valence)])
        # Brightness follows the label, so the loss falls as the model learns.
        crops = rng.integers(0, 64, (n, SIZE, SIZE, 3)) + (128 + 100 * valence)[:, None, None, None]
        track = faces.FaceTrack(times=times, crops=crops.clip(0, 255).astype(np.uint8),
                                found=np.ones(n, bool))
        shard = cache.shard_path(partition, name)
        shards.write_shard(cache_dir / shard, track, {"valence": valence})
        entries.append(cache.CacheEntry(name=name, partition=partition, shard=shard,
                                        num_samples=n, found_rate=1.0,
                                        video=str(video.resolve()), targets=["valence"]))
    cache.write_manifest(cache_dir, cache.Manifest(
        corpus_root=str(corpus.resolve()), corpus_kind="csv", face=FaceSettings(size=SIZE), fps=4.0,
        entries=entries))
    return corpus, cache_dir


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _write_corpus_and_cache(tmp_path_factory.mktemp("distributed"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def _history(run: pathlib.Path) -> list[dict[str, float]]:
    with (run / "history.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


# The same run with `none` and with `mirrored` on two logical CPU devices, in
# one interpreter (logical devices are set before TensorFlow starts).
_MIRRORED = """
import json, sys
import tensorflow as tf
cpu, = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from recola_sta.cache import preprocess
from recola_sta.faces.settings import FaceSettings
from recola_sta.model.networks import ModelOptions
from recola_sta.training import train
preprocess.preprocess_corpus = lambda *args, **kwargs: None  # the cache is hand-made
args = json.loads(sys.argv[1])
face, model = FaceSettings(**args.pop("face")), ModelOptions(**args.pop("model"))
for distribution in ("none", "mirrored"):
    config = train.TrainConfig(**args, face=face, model=model,
                               run_dir=args["cache_dir"] + "_" + distribution,
                               distribution=distribution)
    train.run_training(config)
"""


@pytest.mark.slow
def test_mirrored_on_two_devices_follows_the_single_device_loss_curve(data, tmp_path):
    corpus, cache_dir = data
    args = {"corpus_dir": str(corpus), "corpus_kind": "csv", "cache_dir": str(cache_dir),
            "face": {"size": SIZE}, "frames": FRAMES, "batch_size": 4, "variant": "3d_cnn",
            "model": {"fc_units": 8, "dropout": 0.0}, "augment": False, "progress": False,
            "export": False, "eval_partitions": ["dev"], "epochs": 2, "seed": 1}
    done = subprocess.run([sys.executable, "-c", _MIRRORED, json.dumps(args)],
                          capture_output=True, text=True, timeout=180, env=_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    single, mirrored = (_history(pathlib.Path(f"{cache_dir}_{d}")) for d in ("none", "mirrored"))
    assert len(single) == len(mirrored) == 2
    for a, b in zip(single, mirrored):
        for key in ("loss", "ccc", "val_loss", "val_ccc"):
            assert b[key] == pytest.approx(a[key], rel=1e-2, abs=1e-3), (key, single, mirrored)
    assert single[-1]["loss"] < single[0]["loss"]  # it learns: the comparison is not vacuous
    results = json.loads((pathlib.Path(f"{cache_dir}_mirrored") / "results.json").read_text())
    assert results["best_epoch"] >= 1


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start_workers(data, run: pathlib.Path, *extra: str) -> tuple[list[subprocess.Popen], list[int]]:
    corpus, cache_dir = data
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "recola_sta.train", f"--corpus_dir={corpus}",
             f"--cache_dir={cache_dir}", f"--run_dir={run}", "--distribution=multi_worker",
             *FLAGS, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=_env(TF_CONFIG=tf_config), cwd=run.parent))
    return procs, ports


def _finish(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str]]:
    deadline = time.time() + timeout
    out = []
    try:
        for proc in procs:
            text, _ = proc.communicate(timeout=max(1.0, deadline - time.time()))
            out.append((proc.returncode, text))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return out


def _digest_of(path: pathlib.Path) -> str:
    import keras

    from recola_sta.model import networks  # registers the custom layers, for load_model

    del networks  # needed for that alone

    return distributed.weights_digest(keras.models.load_model(path, compile=False))


@pytest.mark.slow
def test_two_workers_a_killed_worker_names_it_and_a_rerun_resumes_in_step(data, tmp_path):
    """Two workers on localhost: killing one fails the run with a message
    naming it; re-running resumes both from the chief's checkpoint, they end
    with identical weights, and the chief alone wrote the run folder. (One
    test, so that the suite starts four TensorFlow workers, not six.)"""
    run = tmp_path / "run"
    procs, ports = _start_workers(data, run, "--epochs=500", "--worker_timeout_s=20",
                                  "--dropout=0.5")
    try:
        deadline = time.time() + 120
        while not (run / "checkpoints" / "state.json").is_file():  # training is under way
            assert time.time() < deadline and procs[0].poll() is None, procs[0].stdout.read()
            time.sleep(0.5)
        procs[1].send_signal(signal.SIGKILL)
    finally:
        (chief_rc, chief_out), _ = _finish(procs, timeout=90)
    assert chief_rc not in (0, None)
    message = chief_out.strip().splitlines()[-1]
    assert message.startswith("train: worker 0 at localhost:") and "lost the cluster" in message
    assert f"localhost:{ports[1]}" in message  # the dead worker's address
    # Re-running the same command (one epoch further) resumes every worker
    # from the chief's last checkpoint.
    finished = json.loads((run / "checkpoints" / "state.json").read_text())["epoch"]
    procs, _ = _start_workers(data, run, f"--epochs={finished + 1}", "--worker_timeout_s=20",
                              "--dropout=0.5")
    (chief_rc, chief_out), (worker_rc, worker_out) = _finish(procs, timeout=150)
    assert chief_rc == 0 and worker_rc == 0, chief_out[-3000:] + worker_out[-3000:]
    assert f"after epoch {finished}" in chief_out and f"after epoch {finished}" in worker_out
    # One history row per epoch, one validation and one evaluation: the chief's.
    assert [row["epoch"] for row in _history(run)] == list(range(finished + 1))
    assert (run / "results.json").is_file() and (run / "best.keras").is_file()
    assert "Worker weights sha256" not in chief_out and "Run folder" not in worker_out
    with io_utils.exclusive_lock(run / ".lock", "the run folder"):
        pass  # the chief released it
    digest = worker_out.split("Worker weights sha256: ")[1].split()[0]
    assert digest == _digest_of(run / "checkpoints" / "last.keras")
    print(message)


@pytest.mark.parametrize("text,match", [
    (None, "TF_CONFIG"),
    ("{not json", "not a cluster description"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
     "worker 1, which is not in"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
     "worker 0 has address 'a'"),
])
def test_bad_cluster_descriptions_are_named(text, match):
    with pytest.raises(ValueError, match=match):
        distributed.parse_tf_config(text)
