"""Multi-device and multi-worker training on TensorFlow's `tf.distribute`.

`train --distribution=` picks one of `DISTRIBUTIONS`:

* ``none``: one device, `model.fit` (train.py's own path; nothing here runs).
* ``mirrored``: every local device of one host (`tf.distribute.MirroredStrategy`).
* ``multi_worker``: one process per host, the cluster read from `TF_CONFIG`
  (`tf.distribute.MultiWorkerMirroredStrategy`).

Both distributed modes run the custom training loop of `fit`, not
`model.fit`: `model.fit` under MultiWorkerMirroredStrategy fails in Keras'
own trainer (keras-team/keras#20585), and one loop for both modes means the
mirrored test also covers the loop multi-worker training runs.

Semantics (docs/training.md, "Scaling out", gives the reasons):

* ``--batch_size`` is the global batch: clips per optimizer step over all
  replicas, split evenly among them, so a step is the same optimization as
  with ``none`` and ``--learning_rate`` keeps its meaning (no scaling rule).
* ``--seed`` is the same on every worker: each builds the same shuffled
  clip order and keeps its own part of every global batch.
* The chief (the ``chief`` task, else worker 0) alone validates, writes the
  run folder (checkpoints, history, best model) and evaluates and exports
  the best model once; every worker resumes from the chief's checkpoint, so
  for several hosts the run folder lies on storage they share.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import time
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from recola_sta.model import losses

DISTRIBUTIONS = ("none", "mirrored", "multi_worker")
TF_CONFIG = "TF_CONFIG"


class WorkerError(RuntimeError):
    """A worker of the cluster failed or could not be reached; the message names it."""


@dataclasses.dataclass
class Cluster:
    """Where this process stands in a (possibly one-process) training run.

    Attributes:
        distribution: one of `DISTRIBUTIONS`.
        strategy: the `tf.distribute` strategy; None for ``none``.
        task_type: ``chief`` or ``worker`` (``worker`` outside a cluster).
        task_index: this process' index within its task type.
        addresses: the cluster, task type -> ``host:port`` per index ({} outside one).
    """

    distribution: str
    strategy: tf.distribute.Strategy | None = None
    task_type: str = "worker"
    task_index: int = 0
    addresses: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def is_chief(self) -> bool:
        """True for the process that writes the run folder."""
        if self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.task_index == 0 and "chief" not in self.addresses

    @property
    def num_replicas(self) -> int:
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    @property
    def name(self) -> str:
        """This task as `TF_CONFIG` names it, with its address when in a cluster."""
        address = self.addresses.get(self.task_type, [])
        where = f" at {address[self.task_index]}" if self.task_index < len(address) else ""
        return f"{self.task_type} {self.task_index}{where}"

    def describe(self) -> str:
        """The cluster's tasks and addresses, for error messages."""
        return "; ".join(f"{kind} {i} at {a}" for kind, hosts in self.addresses.items()
                         for i, a in enumerate(hosts)) or "this process only"

    def scope(self) -> contextlib.AbstractContextManager:
        """Where the model and optimizer must be built (or loaded)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def parse_tf_config(text: str | None) -> tuple[dict[str, list[str]], str, int]:
    """Checks a `TF_CONFIG` value; returns (cluster, task type, task index).

    Raises:
        ValueError: naming TF_CONFIG and what is wrong with it.
    """
    example = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not text:
        raise ValueError(f"--distribution=multi_worker needs the cluster in the environment "
                         f"variable {TF_CONFIG}, e.g. {example}.")
    try:
        config = json.loads(text)
        cluster = {str(k): [str(a) for a in v] for k, v in config["cluster"].items()}
        task_type, task_index = str(config["task"]["type"]), int(config["task"]["index"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{TF_CONFIG} is not a cluster description ({e}); expected e.g. "
                         f"{example}.") from None
    if task_type not in cluster or not 0 <= task_index < len(cluster[task_type]):
        raise ValueError(f"{TF_CONFIG} names task {task_type} {task_index}, which is not in "
                         f"its cluster {cluster}.")
    unknown = set(cluster) - {"chief", "worker"}
    if unknown:
        raise ValueError(f"{TF_CONFIG} has task types {sorted(unknown)}; multi_worker training "
                         "uses only chief and worker.")
    for kind, hosts in cluster.items():
        for i, address in enumerate(hosts):
            if not re.fullmatch(r"[^:\s]+:\d+", address):
                raise ValueError(f"{TF_CONFIG}: {kind} {i} has address {address!r}; "
                                 "expected host:port.")
    return cluster, task_type, task_index


def connect(distribution: str, timeout_s: float = 600.0,
            tf_config: str | None = None) -> Cluster:
    """Creates the strategy of `distribution`; call before any TensorFlow op.

    MultiWorkerMirroredStrategy configures the collective ops of the process
    when it is created, which TensorFlow allows only before its runtime has
    started; `train.run_training` therefore connects first.

    Args:
        distribution: one of `DISTRIBUTIONS`.
        timeout_s: bound on every cross-worker operation (multi_worker): a
            worker that died or never came makes the others fail after this
            long instead of waiting forever. It must exceed the chief's
            validation pass between two epochs.
        tf_config: the cluster (default: the `TF_CONFIG` environment variable).

    Raises:
        ValueError: unknown distribution, or a bad `TF_CONFIG`.
        WorkerError: this worker's server could not start (its port is named).
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"--distribution={distribution!r} is invalid: expected one of "
                         f"{DISTRIBUTIONS}.")
    if distribution == "none":
        return Cluster(distribution)
    if distribution == "mirrored":
        return Cluster(distribution, tf.distribute.MirroredStrategy())
    cluster, task_type, task_index = parse_tf_config(
        os.environ.get(TF_CONFIG) if tf_config is None else tf_config)
    result = Cluster(distribution, None, task_type, task_index, cluster)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    try:
        result.strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver, communication_options=options)
    except (tf.errors.OpError, RuntimeError, ValueError) as e:
        raise WorkerError(
            f"{result.name} could not join the cluster ({result.describe()}): {e}. If the "
            f"port is in use, pick another in {TF_CONFIG} on every worker.") from e
    return result


def check_batch_size(batch_size: int, cluster: Cluster) -> None:
    """The global batch must split evenly over the replicas.

    Raises:
        ValueError: naming --batch_size and the replica count.
    """
    if batch_size % cluster.num_replicas:
        raise ValueError(
            f"--batch_size={batch_size} is the global batch and must be a multiple of the "
            f"{cluster.num_replicas} replicas of --distribution={cluster.distribution}.")


def check_ready_cache(cache_dir: str | os.PathLike) -> None:
    """multi_worker trains on a finished cache, made before the workers start.

    No worker preprocesses: while one filled the cache the others would
    read a partial manifest and train on other clips than it.

    Raises:
        FileNotFoundError: naming the cache and the command that makes it.
    """
    from recola_sta import cache

    path = pathlib.Path(cache_dir) / cache.MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"--distribution=multi_worker trains on a finished preprocess cache, and "
            f"{path} does not exist: run `python -m recola_sta.preprocess "
            f"--cache_dir={cache_dir} ...` (or `train` without --distribution) first, and "
            "give every worker the same --cache_dir.")


def check_agreement(cluster: Cluster, **values: int) -> None:
    """Refuses to train when the workers disagree on `values` (steps per
    epoch, the epoch to resume from): they would wait on each other forever.

    Raises:
        WorkerError: naming each value and what every replica saw.
    """
    if cluster.strategy is None or not values:
        return
    local = tf.constant([list(values.values())], tf.int64)
    try:
        seen = cluster.strategy.gather(cluster.strategy.run(lambda: tf.identity(local)), axis=0)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.InternalError) as e:
        raise _worker_failure(e, cluster) from e
    seen = np.asarray(seen)
    differing = [f"{name}: {sorted(set(seen[:, i].tolist()))}"
                 for i, name in enumerate(values) if len(set(seen[:, i].tolist())) > 1]
    if differing:
        raise WorkerError(
            f"The workers of the cluster ({cluster.describe()}) disagree on "
            f"{'; '.join(differing)} ({cluster.name}: {values}). Give every worker the same "
            "flags, the same --cache_dir and a --run_dir on storage they all read.")


def distribute_dataset(dataset: tf.data.Dataset, cluster: Cluster):
    """The global-batch dataset split over replicas (and workers).

    Every worker builds the same dataset (same seed, deterministic order) and
    keeps its own part of each global batch (AutoShardPolicy.DATA): a corpus
    of a few recordings cannot be split by shard file over many workers.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return cluster.strategy.experimental_distribute_dataset(dataset.with_options(options))


def _loss_object(model: keras.Model) -> keras.losses.Loss:
    """The compiled loss as a `keras.losses.Loss`, which divides by the
    replica count under a strategy (so summing replicas gives the batch mean)."""
    loss = keras.losses.get(model.loss) if isinstance(model.loss, str) else model.loss
    return loss if isinstance(loss, keras.losses.Loss) else _FunctionLoss(loss)


class _FunctionLoss(keras.losses.Loss):
    """A loss function (e.g. "mean_squared_error") as a `keras.losses.Loss`
    with the compiled default reduction (mean over the batch's elements)."""

    def __init__(self, fn: Callable):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


def _worker_failure(error: Exception, cluster: Cluster) -> WorkerError:
    """A `WorkerError` naming the peer that failed where TensorFlow's message does."""
    text = str(error)
    match = re.search(r"/job:(\w+)/replica:\d+/task:(\d+)", text)
    peer = ""
    if match:
        kind, index = match.group(1), int(match.group(2))
        hosts = cluster.addresses.get(kind, [])
        where = f" at {hosts[index]}" if index < len(hosts) else ""
        peer = f" The failing peer is {kind} {index}{where}."
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # TensorFlow's first line is often "Graph execution error:"; prefer the cause.
    first = next((line for line in lines if "/job:" in line or "eadline" in line),
                 lines[0] if lines else type(error).__name__)[:300]
    return WorkerError(
        f"{cluster.name} lost the cluster ({cluster.describe()}) during training: "
        f"{type(error).__name__}: {first}.{peer} A worker died, was unreachable or exceeded "
        "--worker_timeout_s; restart every worker with the same command to resume from the "
        "last finished epoch.")


def fit(
    model: keras.Model,
    cluster: Cluster,
    train_dataset: tf.data.Dataset,
    *,
    steps_per_epoch: int,
    epochs: int,
    initial_epoch: int,
    validate: Callable[[keras.Model], dict[str, float]] | None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: bool = True,
) -> list[dict[str, float]]:
    """Trains `model` (built under `cluster.scope()`) with a custom loop.

    Each step runs the forward and backward pass on every replica, whose
    gradients the optimizer all-reduces (`optimizer.apply_gradients` under
    the strategy). The logged training ``loss`` is the global batch's mean
    and ``ccc`` is computed over the gathered global batch, as `model.fit`
    would report them on one device.

    Args:
        model: the compiled model (its loss and optimizer are used).
        cluster: from `connect`, with a strategy.
        train_dataset: repeated global batches of (clips, labels, weights).
        steps_per_epoch, epochs, initial_epoch: as for `model.fit`.
        validate: on the chief, maps the model to its ``val_*`` logs; None on
            the other workers.
        callbacks: Keras callbacks, run on the chief only; they get
            `on_train_begin`, `on_epoch_end` and `on_train_end`.
        verbose: print one line per epoch.

    Returns:
        The logs of each epoch trained.

    Raises:
        WorkerError: a cross-worker operation failed or timed out.
    """
    strategy = cluster.strategy
    loss_object = _loss_object(model)
    optimizer = model.optimizer
    train_ccc = losses.CCCMetric(name="ccc")
    history = []
    if not optimizer.built:
        # Its slots must exist, mirrored, before the step function is traced.
        with cluster.scope():
            optimizer.build(model.trainable_variables)

    @tf.function
    def step(iterator):
        def replica_step(clips, labels, weights):
            with tf.GradientTape() as tape:
                predictions = model(clips, training=True)
                loss = loss_object(labels, predictions, sample_weight=weights)
                if model.losses:
                    loss += tf.add_n(model.losses) / strategy.num_replicas_in_sync
                scaled = optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss, labels, predictions, weights

        loss, labels, predictions, weights = strategy.run(replica_step, args=next(iterator))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                strategy.gather(labels, axis=0), strategy.gather(predictions, axis=0),
                strategy.gather(weights, axis=0))

    check_agreement(cluster, steps_per_epoch=steps_per_epoch, epochs=epochs,
                    initial_epoch=initial_epoch)
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    iterator = iter(distribute_dataset(train_dataset, cluster))
    try:
        for epoch in range(initial_epoch, epochs):
            start = time.time()
            train_ccc.reset_state()
            loss_sum, clips_seen = 0.0, 0
            for _ in range(steps_per_epoch):
                loss, labels, predictions, weights = step(iterator)
                batch = int(labels.shape[0])
                loss_sum += float(loss) * batch
                clips_seen += batch
                train_ccc.update_state(labels, predictions, sample_weight=weights)
            logs = {"loss": loss_sum / max(clips_seen, 1), "ccc": float(train_ccc.result())}
            if validate is not None:
                logs.update(validate(model))
            history.append(logs)
            for callback in callbacks:
                callback.on_epoch_end(epoch, dict(logs))
            if verbose:
                shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
                print(f"Epoch {epoch + 1}/{epochs} ({cluster.name}, {cluster.num_replicas} "
                      f"replicas) - {time.time() - start:.0f}s - {shown}", flush=True)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.AbortedError, tf.errors.InternalError) as e:
        raise _worker_failure(e, cluster) from e
    for callback in callbacks:
        callback.on_train_end()
    return history


def validator(model: keras.Model, dataset: tf.data.Dataset) -> Callable[[keras.Model], dict[str, float]]:
    """Returns validate(model) -> {"val_loss", "val_ccc"} on `dataset`, computed
    like `model.fit`'s validation but on a single-device copy of the model
    (built here, outside the strategy) refreshed with the trained weights:
    the chief validates alone, with no cross-worker operation.
    """
    copy = keras.models.clone_model(model)
    copy.compile(loss=model.loss, weighted_metrics=[losses.CCCMetric(name="ccc")])

    def validate(current: keras.Model) -> dict[str, float]:
        copy.set_weights(current.get_weights())
        logs = copy.evaluate(dataset, verbose=0, return_dict=True)
        return {f"val_{k}": float(v) for k, v in logs.items()}

    return validate


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of the model's weights (equal on every worker of a healthy run)."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def worker_summary(cluster: Cluster, history: list[dict[str, float]],
                   model: keras.Model) -> dict[str, Any]:
    """What a non-chief worker returns: its task, the epochs it trained and a
    digest of its final weights (equal on every worker of a healthy run)."""
    return {"worker": cluster.name, "epochs_trained": len(history),
            "weights_sha256": weights_digest(model)}
