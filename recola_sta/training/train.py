"""Train a network of the paper end to end, from a corpus folder to a SavedModel.

    python -m recola_sta.train --flagfile=experiments/synthetic.cfg
    python -m recola_sta.train --flagfile=experiments/recola.cfg --corpus_dir=/data/RECOLA

One command runs every stage, each resumable: the synthetic corpus is
generated if it is the chosen corpus and is missing; faces are detected,
aligned and cached (`recola_sta.preprocess`); the model is trained with the
paper's settings (Adam 1e-4, batch 16 clips of 16 frames, MSE, dropout 0.5,
Xavier initialisation, from scratch), validated on dev after every epoch and
checkpointed; the epoch with the best dev CCC is evaluated with the AVEC
post-processing chain and exported as a SavedModel.

Killing a run and re-running the same command continues from the last
finished epoch; raising --epochs and re-running trains further.

The run folder holds:
    config.json     every setting of the run
    flags.cfg       the flags used (reusable with --flagfile)
    history.csv     per-epoch loss and CCC (train and dev); with several
                    targets (--target=valence,arousal) ccc is their mean and
                    ccc_<target> each one's
    logs/           TensorBoard logs
    checkpoints/    last.keras and state.json (for resuming), best_epoch_<N>.keras
                    (the best epoch's model, named by state.json; run_state.py)
    best.keras      a copy of the model of the best dev epoch
    saved_model/    that model exported for `recola_sta.predict`
    results.json    dev RMSE/CC/CCC raw and post-processed, steps kept, times
                    (several targets: per target, plus their mean CCC)
    evaluation.json, postprocess.json, predictions/, plots/  (see evaluate.py)
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import pathlib
import sys
import time
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from recola_sta import cache, cli, io_utils, metrics, settings
from recola_sta.cache import preprocess
from recola_sta.faces.settings import FaceSettings
from recola_sta.data import corpora, synthetic
from recola_sta.evaluation import evaluate
from recola_sta.inference import export
from recola_sta.model import layers, networks
from recola_sta.training import distributed, pipeline, run_state
from recola_sta.settings import nested, setting
from recola_sta.targets import parse_targets
from recola_sta.cache import shards
from recola_sta.model import losses

LOSSES = ("mse", "ccc")
# Settings that change the network; a run folder cannot be resumed with others.
ARCHITECTURE_KEYS = (
    "variant", "size", "frames", "fc_units", "dropout", "peephole_mode", "upsampling",
    "attention_scale", "attention_scores", "attention_weights", "attention_score_gain",
    "attention_normalize_state", "attention_location_bias", "attention_temperature",
    "readout", "target", "corpus_kind", "augment_on",
)
# Where the augmentation runs (--augment_on): the same per-clip draws and
# mapping either way (pipeline.augment_clip, layers.ClipAugmentation).
AUGMENT_PLACES = ("pipeline", "model")
# Settings a resumed run cannot honour: the optimizer and loss are restored
# from checkpoints/last.keras (Adam's learning rate is part of its state), so
# a changed value would be silently ignored.
RESUME_KEYS = ("learning_rate", "loss", "mixed_precision")
# --mixed_precision -> Keras dtype policy (variables and outputs stay float32).
PRECISION_POLICIES = {"none": "float32", "bfloat16": "mixed_bfloat16",
                      "float16": "mixed_float16"}
JIT_MODES = {"auto": "auto", "on": True, "off": False}
# Synthetic-corpus settings -> the train flag that sets them.
_SYNTHETIC_FLAGS = {
    "num_train": "synthetic_num_train", "num_dev": "synthetic_num_dev",
    "num_test": "synthetic_num_test", "duration_s": "synthetic_duration_s",
    "seed": "synthetic_seed", "preset": "synthetic_preset", "fps": "synthetic_fps",
}


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run, typed; each field is also its CLI flag
    (`settings.setting`: default, help, and choices or check in one place).

    Defaults are the paper's where it gives them (section 3.1).
    """

    corpus_dir: str = setting(
        help="Corpus folder (RECOLA, AV+EC 2017, Aff-Wild2, synthetic or csv layout).",
        check=bool, expected="a corpus folder")
    corpus_kind: str = setting("synthetic", help="Corpus layout.", choices=corpora.CORPUS_KINDS)
    run_dir: str = setting("runs/default", help="Output folder of the run; re-running resumes it.")
    # A folder that holds other files is refused without it (`check_run_folder`).
    allow_existing_dir: bool = setting(
        False, help="Write the run into an existing --run_dir that holds other files and no "
                    "run; they are kept (a file with a name the run writes is replaced).")
    cache_dir: str = setting("", help="Preprocess cache; default data/cache/<corpus>_<size>.")
    variant: str = setting("3d_cnn_sta", help="Network.", choices=networks.VARIANTS)
    # The face settings (crop size, detection, tracking): --size, --upsample, ...
    face: FaceSettings = nested(FaceSettings)
    frames: int = setting(16, help="Frames per clip (paper: 16 at 4 fps).",
                          check=lambda v: v > 0, expected="a positive number of frames per clip")
    batch_size: int = setting(16, help="Clips per batch (paper: 16).",
                              check=lambda v: v > 0, expected="a positive number of clips")
    learning_rate: float = setting(1e-4, help="Adam learning rate (paper: 1e-4).",
                                   check=lambda v: v > 0, expected="positive")
    epochs: int = setting(20, help="Epochs over the training clips.",
                          check=lambda v: v > 0, expected="positive")
    max_steps_per_epoch: int = setting(0, help="Cap on steps per epoch; 0: all clips.",
                                       check=lambda v: v >= 0, expected="0 (all) or positive")
    loss: str = setting("mse", help="Training loss (paper: mse).", choices=LOSSES)
    dropout: float = setting(0.5, help="Dropout between the fully connected layers (paper: 0.5).",
                             check=lambda v: 0.0 <= v < 1.0, expected="in [0, 1)")
    fc_units: int = setting(networks.DEFAULT_OPTIONS["fc_units"],
                            help="Width of the first fully connected layer.",
                            check=lambda v: v > 0, expected="positive")
    peephole_mode: str = setting(
        "conv", choices=(*layers.PEEPHOLE_MODES, "none"),
        help="ConvLSTM peepholes: conv (eq. 1 as printed), hadamard (Shi et al.), none.")
    upsampling: str = setting(networks.DEFAULT_OPTIONS["upsampling"],
                              help="Decoder x2 stages.", choices=layers.UPSAMPLING_MODES)
    attention_scale: str = setting(
        networks.DEFAULT_OPTIONS["attention_scale"], choices=layers.ATTENTION_SCALES,
        help="hw: attention times H*W (uniform = 1); none: raw softmax (eq. 3 literally).")
    attention_scores: str = setting(
        networks.DEFAULT_OPTIONS["attention_scores"], choices=layers.ATTENTION_SCORES,
        help="linear: eq. 2 as printed; standardized: per-frame z-scores times a learned "
             "temperature (attention that can sharpen at lr 1e-4).")
    attention_weights: str = setting(
        networks.DEFAULT_OPTIONS["attention_weights"], choices=layers.ATTENTION_WEIGHTS,
        help="Eq. 2 score weights: shared (one 1x1 map for every location), per_location "
             "(one W_i per location, eq. 2 as printed) or none (an ablation: the learned "
             "--attention_location_bias alone, one fixed map for every frame).")
    attention_score_gain: float = setting(
        networks.DEFAULT_OPTIONS["attention_score_gain"], check=lambda v: v > 0, expected="positive",
        help="Constant gain on the attention scores (weights initialised / gain): an Adam "
             "learning-rate multiplier for them; 1 = eq. 2.")
    attention_normalize_state: bool = setting(
        networks.DEFAULT_OPTIONS["attention_normalize_state"],
        help="Normalise the decoder state over its channels before eq. 2.")
    attention_location_bias: bool = setting(
        networks.DEFAULT_OPTIONS["attention_location_bias"],
        help="Add a learned per-location prior score to eq. 2 (not in the paper).")
    attention_temperature: float = setting(
        networks.DEFAULT_OPTIONS["attention_temperature"], check=lambda v: v > 0,
        expected="positive", help="Initial temperature of --attention_scores=standardized.")
    readout: str = setting(
        networks.DEFAULT_OPTIONS["readout"], choices=networks.READOUTS,
        help="Per-frame read-out before the FC layers: flatten (location-specific FC "
             "weights), average or max (pooled over space).")
    target: str = setting(
        "valence",
        help="Label dimension to learn (valence, arousal), or a comma-separated list "
             "(valence,arousal): one model with an output per target, trained on the sum of "
             "their losses, the best epoch by their mean dev CCC.")
    convention: str = setting(metrics.DEFAULT_CONVENTION, choices=metrics.CONVENTIONS,
                              help="CCC convention: avec (challenge) or population.")
    augment: bool = setting(True, help="Flip/contrast/colour augmentation (paper: on).")
    augment_on: str = setting(
        "pipeline", choices=AUGMENT_PLACES,
        help="Where --augment runs: pipeline (tf.data, on the CPU) or model (the model's "
             "first layer, on the accelerator: a GPU trains faster than 2 CPU cores "
             "augment). The same draws and mapping either way.")
    seed: int = setting(0, help="Random seed.")
    # Same seed, same run: tf.data keeps its element order and TensorFlow's
    # ops their reduction order (tf.config.experimental.enable_op_determinism);
    # a resumed run trains on as the uninterrupted one would (each epoch's
    # draws depend on the seed and the epoch alone, `EpochSeeds`).
    # Off by default: the parallel input pipeline then hands over whichever
    # clip is ready first (BUILD_NOTES.md, "Reproducibility").
    deterministic: bool = setting(
        False, help="Reproducible runs: fixed tf.data order and deterministic TensorFlow ops.")
    # Accelerator settings (BUILD_NOTES.md, "GPU path").
    mixed_precision: str = setting(
        "none", choices=tuple(PRECISION_POLICIES),
        help="Compute dtype of the layers: none (float32), bfloat16, or float16 (GPU only: "
             "TensorFlow's CPU kernels lack float16 3D pooling; with loss scaling). Weights, "
             "the output and the loss stay float32.")
    jit_compile: str = setting(
        "auto", choices=tuple(JIT_MODES),
        help="XLA compilation of the training step: auto (Keras: on with a GPU, off on CPU, "
             "where it measured slower), on or off.")
    workers: int = setting(2, help="Processes for corpus generation and face preprocessing.",
                           check=lambda v: v > 0, expected="positive")
    min_found_rate: float = setting(0.8, help="Warn for recordings with fewer faces found.")
    time_shift: bool = setting(False, help="Search annotation-delay compensation (paper: off).")
    export: bool = setting(True, help="Export the best model as a SavedModel.")
    eval_partitions: tuple[str, ...] = setting(
        ("dev", "test"), help="Partitions predicted after training.",
        check=lambda v: set(v) <= set(evaluate.PARTITIONS),
        expected=f"partitions among {evaluate.PARTITIONS}")
    progress: bool = setting(True, help="Progress bars and the model summary.")
    # Scaling out (recola_sta.distributed).
    distribution: str = setting(
        "none", choices=distributed.DISTRIBUTIONS,
        help="none: one device; mirrored: every local device; multi_worker: the cluster in "
             "TF_CONFIG. --batch_size is the global batch.")
    worker_timeout_s: float = setting(
        600.0, check=lambda v: v > 0, expected="positive seconds",
        help="multi_worker: seconds a cross-worker step may wait for the others (more than "
             "the chief's validation pass) before the run fails.")
    # Synthetic corpus, used only when corpus_kind == "synthetic" and it is missing.
    synthetic_num_train: int = setting(20, help="Synthetic corpus: train recordings.")
    synthetic_num_dev: int = setting(5, help="Synthetic corpus: dev recordings.")
    synthetic_num_test: int = setting(5, help="Synthetic corpus: test recordings.")
    synthetic_duration_s: float = setting(60.0, help="Synthetic corpus: seconds each.")
    synthetic_seed: int = setting(0, help="Synthetic corpus: seed.")
    synthetic_preset: str = setting(
        "default", choices=synthetic.PRESETS,
        help="Synthetic corpus: preset (recola_like: harder, see docs/recola_like.md).")
    # RECOLA's videos are 25 fps; faces are sampled at 4 fps
    # (preprocess.SAMPLE_FPS) whatever the rate, so a lower rate renders
    # fewer frames that are never used.
    synthetic_fps: float = setting(
        25.0, check=lambda v: v >= preprocess.SAMPLE_FPS,
        expected=f"at least the {preprocess.SAMPLE_FPS:g} fps at which faces are sampled",
        help="Synthetic corpus: video frame rate (RECOLA: 25; faces are sampled at 4).")

    @property
    def targets(self) -> tuple[str, ...]:
        """The label dimensions of --target, in order (`parse_targets`)."""
        return parse_targets(self.target)

    def resolved_cache_dir(self) -> str:
        if self.cache_dir:
            return self.cache_dir
        name = pathlib.Path(self.corpus_dir).resolve().name or "corpus"
        return str(pathlib.Path("data") / "cache" / f"{name}_{self.face.size}")

    def validate(self) -> None:
        """Raises ValueError naming the flag of the first bad setting."""
        settings.check(self)
        parse_targets(self.target)
        if self.distribution != "none" and len(self.targets) > 1:
            # The distributed loop computes one target's loss and CCC.
            raise ValueError(f"--distribution={self.distribution!r} is invalid: expected none "
                             "when --target names several targets.")


# The run folder's lock file (`evaluate.run_folder_lock`).
RUN_LOCK = evaluate.RUN_LOCK
def prepare_corpus(config: TrainConfig) -> None:
    """Makes sure the corpus folder exists, generating the synthetic one."""
    root = pathlib.Path(config.corpus_dir)
    if config.corpus_kind == "synthetic":
        try:
            synthetic.ensure_corpus(
                root,
                num_train=config.synthetic_num_train,
                num_dev=config.synthetic_num_dev,
                num_test=config.synthetic_num_test,
                duration_s=config.synthetic_duration_s,
                seed=config.synthetic_seed,
                preset=config.synthetic_preset,
                fps=config.synthetic_fps,
                workers=config.workers,
                progress=config.progress,
            )
        except synthetic.CorpusSettingsError as e:
            # synthetic's own message suggests its --overwrite, which train lacks.
            details = "; ".join(
                f"{'--' + _SYNTHETIC_FLAGS[k] if k in _SYNTHETIC_FLAGS else k}: "
                f"{old!r} there, {new!r} now"
                for k, (old, new) in e.differences.items()
            )
            raise ValueError(
                f"--corpus_dir={config.corpus_dir} holds a synthetic corpus made with other "
                f"settings ({details}). Pass the --synthetic_* flags it was made with, "
                "choose another --corpus_dir, or delete that folder to regenerate it."
            ) from None
    elif not root.is_dir():
        raise FileNotFoundError(f"--corpus_dir={config.corpus_dir} does not exist or is not a folder.")


def _config_payload(config: TrainConfig) -> dict[str, Any]:
    payload = dataclasses.asdict(config)
    payload["cache_dir"] = config.resolved_cache_dir()
    return json.loads(json.dumps(payload))  # tuples -> lists, as read back


def _flag_values(payload: dict[str, Any]) -> dict[str, Any]:
    """config.json's settings by flag name: the nested groups (`face`)
    flattened, as their flags are."""
    flat = {}
    for key, value in payload.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat.setdefault(key, value)
    return flat


def _is_run_folder(run_dir: pathlib.Path) -> bool:
    """Whether `run_dir` holds a run of `train`: a config.json with the run's
    settings (one that is not JSON counts, for `check_run_folder` to name it)
    or a checkpoint state."""
    if (run_dir / "checkpoints" / "state.json").is_file():
        return True
    path = run_dir / "config.json"
    if not path.is_file():
        return False
    try:
        previous = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return True
    return isinstance(previous, dict) and {"variant", "corpus_dir"} <= previous.keys()


def check_run_dir_is_ours(config: TrainConfig, run_dir: pathlib.Path) -> None:
    """Refuses an existing, non-empty `run_dir` that holds no run (a folder
    of the user's), unless --allow_existing_dir: a run writes and cleans up
    there as in a folder of its own. Writes nothing.

    Raises:
        ValueError: naming the folder and a few of its files.
    """
    if config.allow_existing_dir or not run_dir.is_dir() or _is_run_folder(run_dir):
        return
    entries = sorted(entry.name for entry in run_dir.iterdir() if entry.name != RUN_LOCK)
    if entries:
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3
                                          else "")
        raise ValueError(
            f"--run_dir={run_dir} is a folder that holds other files ({shown}) and no "
            "training run (no config.json); choose a new or empty --run_dir, or pass "
            "--allow_existing_dir to write the run beside them."
        )


def check_run_folder(config: TrainConfig, run_dir: pathlib.Path) -> None:
    """The settings guard: refuses a run folder made with another network
    (ARCHITECTURE_KEYS) or, once it holds a checkpoint, a resume with another
    learning rate or loss (RESUME_KEYS). Writes nothing.

    Raises:
        ValueError: naming each changed flag, its old and new value.
    """
    path = run_dir / "config.json"
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"Malformed run settings {path}: {e}; delete the file or choose "
                         "another --run_dir.") from e
    if not isinstance(previous, dict) or not isinstance(previous.get("face"), dict):
        raise ValueError(
            f"{path} was written by an older recola_sta (its settings are not grouped as "
            "this version writes them): train into a new --run_dir.")
    before, now = _flag_values(previous), _flag_values(_config_payload(config))
    keys = ARCHITECTURE_KEYS + (RESUME_KEYS if _read_state(run_dir) is not None else ())
    changed = [k for k in keys if before.get(k) != now[k]]
    if changed:
        details = ", ".join(
            f"--{k}: {before.get(k)!r} -> {now[k]!r}" for k in changed
        )
        why = (" (a resumed run restores its optimizer and loss from "
               "checkpoints/last.keras, so --learning_rate and --loss cannot change)"
               if set(changed) & set(RESUME_KEYS) else "")
        raise ValueError(
            f"--run_dir={run_dir} holds a run with other settings ({details}){why}; "
            "pass the run's own values, choose a new --run_dir or delete the old one."
        )


def _write_config(config: TrainConfig, run_dir: pathlib.Path) -> None:
    """Writes config.json after the settings guard (`check_run_folder`)."""
    check_run_folder(config, run_dir)
    io_utils.atomic_write_text(run_dir / "config.json",
                               json.dumps(_config_payload(config), indent=2) + "\n")


class DivergedError(ValueError):
    """The training loss became NaN or infinite (bad input: exit 2)."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite training loss by raising
    `DivergedError`, whose one line says so and suggests a lower learning rate.

    Checked after every batch (`model.fit`) and at every epoch's end (also
    `distributed.fit`, which reports epochs only), where the dev loss is
    checked too: the last step of an epoch can make the weights NaN after
    its training loss was computed, and a dev loss is finite for any
    finite model (missing labels are zeros with weight 0). Put before
    `EpochCheckpoint`: the epoch that diverged is then never checkpointed,
    so the run folder keeps the last finite epoch.
    """

    # Keras may run the batch check off the training thread (no per-step
    # wait for the loss); it re-raises the error at the next batch or at the
    # epoch's end, before any `on_epoch_end`.
    async_safe = True

    def __init__(self, learning_rate: float, run_dir: pathlib.Path):
        super().__init__()
        self.learning_rate = learning_rate
        self.run_dir = run_dir
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self._check(logs, ("loss",), f"epoch {self._epoch + 1}, step {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._check(logs, ("loss", "val_loss"), f"epoch {epoch + 1}")

    def _check(self, logs: dict[str, float] | None, names: tuple[str, ...], where: str) -> None:
        for name in names:
            value = (logs or {}).get(name)
            if value is not None and not np.isfinite(value):
                what = "the loss" if name == "loss" else "the dev loss (val_loss)"
                raise DivergedError(
                    f"training diverged: {what} became {float(value)} at {where}, so the run "
                    f"stopped; {self.run_dir} keeps the last finished epoch. Train again with "
                    f"a lower --learning_rate (this run: {self.learning_rate:g}) in a new "
                    "--run_dir (a resumed run keeps its learning rate).")


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves what a resumed run needs after every epoch, atomically.

    In order: the epoch's model under its own name
    (`checkpoints/best_epoch_<N>.keras`) when dev CCC improved, the epoch's
    row of `history.csv`, `checkpoints/last.keras` (weights and optimizer
    state), then `checkpoints/state.json` naming the finished epoch and the
    best epoch's model (the commit point), and last `best.keras`, a copy of
    that model (`run_state.publish_best`). A run killed at any point resumes
    from a consistent state whose best model exists, and `best.keras` never
    holds an epoch that state does not name (`run_state.settle` refreshes it
    at the next start should the kill fall before the copy). Its history
    keeps every finished epoch exactly once: an epoch redone after a kill
    (its row was written, its state was not) replaces its earlier row.

    A NaN or infinite dev value is never the best.
    """

    def __init__(self, run_dir: pathlib.Path, monitor: str, best: float, best_epoch: int,
                 best_model: str | None = None):
        super().__init__()
        self.run_dir = run_dir
        self.monitor = monitor
        self.best = best
        self.best_epoch = best_epoch
        # The run-relative file of the best epoch's model (`run_state.read_state`;
        # a run from before epoch-named best models has only best.keras).
        self.best_model = best_model or (run_state.BEST_NAME if best_epoch else None)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        value = logs.get(self.monitor)
        best, best_epoch, best_model = self.best, self.best_epoch, self.best_model
        if value is not None and np.isfinite(value) and value > best:
            best, best_epoch = float(value), epoch + 1
            best_model = run_state.best_model_name(best_epoch)
            with io_utils.atomic_path(self.run_dir / best_model, suffix=".keras") as tmp:
                self.model.save(tmp)
        write_history_row(self.run_dir / "history.csv", epoch, logs)
        with io_utils.atomic_path(self.run_dir / "checkpoints" / "last.keras", suffix=".keras") as tmp:
            self.model.save(tmp)
        state = {"epoch": epoch + 1, "best": best if np.isfinite(best) else None,
                 "best_epoch": best_epoch, "best_model": best_model, "monitor": self.monitor}
        io_utils.atomic_write_text(self.run_dir / "checkpoints" / "state.json", json.dumps(state) + "\n")
        if best_model != self.best_model:
            run_state.publish_best(self.run_dir, best_model)
        self.best, self.best_epoch, self.best_model = best, best_epoch, best_model


def write_history_row(path: pathlib.Path, epoch: int, logs: dict[str, float]) -> None:
    """Rewrites `history.csv` atomically with `epoch`'s row last.

    Rows of this and later epochs (left by a run killed after writing them
    and before its state) are dropped first. Columns: `epoch` (from 0, as
    Keras' CSVLogger writes it), then every logged name in sorted order.
    """
    rows = [r for r in run_state.read_history(path) if int(r["epoch"]) < epoch]
    rows.append({"epoch": str(epoch), **{k: repr(float(v)) for k, v in logs.items()}})
    columns = ["epoch", *sorted({k for r in rows for k in r} - {"epoch"})]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    io_utils.atomic_write_text(path, text.getvalue())


def check_cache(cache_dir: str, manifest: cache.Manifest, config: TrainConfig) -> None:
    """Refuses a cache that cannot train this run: other crop size, a target
    it does not hold, no training or dev recording, or dev recordings in
    which no face was found or whose labels are all NaN (model selection
    would log a meaningless val_ccc).

    Raises:
        ValueError: naming the cache, the flag, and for labels the partition
            and each recording's shard and video.
    """
    if manifest.face.size != config.face.size:
        raise ValueError(
            f"The cache {cache_dir} holds {manifest.face.size}px crops but "
            f"--size={config.face.size}; pass another --cache_dir."
        )
    for partition in ("train", "dev"):
        entries = manifest.partition(partition)
        if not entries:
            raise ValueError(f"The cache {cache_dir} has no {partition} recordings; "
                             "training needs them (and dev for model selection).")
        for target in config.targets:
            lacking = [e.name for e in entries if target not in e.targets]
            if lacking:
                raise ValueError(
                    f"--target={config.target}: {target} is not a label of the {partition} "
                    f"recordings {lacking} in the cache {cache_dir} (their labels: "
                    f"{sorted({t for e in entries for t in e.targets})})."
                )
    dev = manifest.partition("dev")
    if not any(e.found_rate > 0 for e in dev):
        # Every dev frame would have weight 0: val_ccc "computed" from no frame.
        videos = "; ".join(f"{e.name}: video {e.video}" for e in dev)
        raise ValueError(
            f"No face was found in any dev recording of the cache {cache_dir} (found rate 0 "
            f"in each: {videos}), so dev CCC cannot select a model. Check those videos, or "
            "preprocess them into a new --cache_dir with other face flags (--upsample, "
            "--detect_width, --rotate).")
    for target in config.targets:
        if not any(np.isfinite(shards.read_target(cache_dir, e, target)).any() for e in dev):
            files = "; ".join(f"{e.name}: shard {pathlib.Path(cache_dir) / e.shard}, "
                              f"video {e.video}" for e in dev)
            raise ValueError(
                f"Every {target} label of the dev partition is NaN (unlabeled), so dev "
                f"CCC cannot select a model. Dev recordings: {files}. Check the dev label "
                f"files of the corpus at {manifest.corpus_root} ({manifest.corpus_kind} layout)."
            )


def _read_state(run_dir: pathlib.Path) -> dict[str, Any] | None:
    """The state to resume from (`run_state.read_state`, checked), or None
    when the run has none: no state.json or no last.keras."""
    if not (run_dir / run_state.LAST_NAME).is_file():
        return None
    return run_state.read_state(run_dir)


def _validation_dataset(cache_dir: str, manifest: cache.Manifest, config: TrainConfig):
    dev = manifest.partition("dev")
    if not dev:
        raise ValueError(f"The cache {cache_dir} has no dev recordings; model selection needs them.")
    parts = [
        pipeline.eval_dataset(cache_dir, entry, target=config.targets, frames=config.frames,
                              batch_size=config.batch_size)
        for entry in dev
    ]
    # Declaring the batch count lets Keras size the validation pass instead of
    # warning that the (finite) dataset "ran out of data".
    batches = sum(
        -(-(-(-entry.num_samples // config.frames)) // config.batch_size) for entry in dev
    )
    dataset = functools.reduce(lambda a, b: a.concatenate(b), parts).cache()
    return dataset.apply(tf.data.experimental.assert_cardinality(batches))


def _build_model(config: TrainConfig) -> keras.Model:
    """The run's network, its layers computing in `--mixed_precision`'s dtype."""
    peephole_options = (
        {"peepholes": False} if config.peephole_mode == "none"
        else {"peepholes": True, "peephole_mode": config.peephole_mode}
    )
    if config.mixed_precision == "float16" and not tf.config.list_physical_devices("GPU"):
        raise ValueError("--mixed_precision=float16 needs a GPU: TensorFlow has no float16 "
                         "3D pooling on CPU. Use --mixed_precision=bfloat16 or none.")
    previous_policy = keras.mixed_precision.global_policy().name
    # Layers take the global policy when they are built; the output layer
    # is float32 whatever it is (networks.build_model).
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[config.mixed_precision])
    try:
        return networks.build_model(
            config.variant, frames=config.frames, size=config.face.size,
            num_targets=len(config.targets),
            fc_units=config.fc_units, dropout=config.dropout, upsampling=config.upsampling,
            attention_scale=config.attention_scale, attention_scores=config.attention_scores,
            attention_weights=config.attention_weights,
            attention_score_gain=config.attention_score_gain,
            attention_normalize_state=config.attention_normalize_state,
            attention_location_bias=config.attention_location_bias,
            attention_temperature=config.attention_temperature, readout=config.readout,
            augmentation=({**dataclasses.asdict(pipeline.Augmentation()), "seed": config.seed}
                          if config.augment and config.augment_on == "model" else None),
            **peephole_options,
        )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _build_and_compile(config: TrainConfig) -> keras.Model:
    """`_build_model`, compiled with Adam, the loss and the CCC metrics.

    Keras wraps Adam in a LossScaleOptimizer for a float16 model.
    """
    model = _build_model(config)
    targets = config.targets
    if len(targets) == 1:
        loss = "mean_squared_error" if config.loss == "mse" else losses.CCCLoss()
        ccc_metrics = [losses.CCCMetric(name="ccc")]
    else:
        # The sum of the per-target losses; "ccc" is the mean of the
        # per-target CCCs (the challenge's ranking, which selects the best
        # epoch as val_ccc), logged beside each target's own.
        loss = losses.SummedTargetsLoss(config.loss)
        ccc_metrics = [losses.MeanCCCMetric(len(targets), name="ccc")] + [
            losses.CCCMetric(name=f"ccc_{target}", target_index=k)
            for k, target in enumerate(targets)
        ]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss=loss,
        weighted_metrics=ccc_metrics,
        jit_compile=JIT_MODES[config.jit_compile],
    )
    return model


def run_training(config: TrainConfig, flags_text: str | None = None) -> dict[str, Any]:
    """Runs every stage of a training run and returns its `results.json`.

    Nothing is written into the run folder (not even the folder itself)
    before the settings guard (`check_run_folder`) and the cache checks
    (`check_cache`) have passed; then `config.json` and, when given,
    `flags.cfg` (`flags_text`, the CLI's flags) are written.
    """
    config.validate()
    start = time.time()
    # Before any TensorFlow op: a multi-worker strategy must configure the runtime.
    cluster = distributed.connect(config.distribution, config.worker_timeout_s)
    distributed.check_batch_size(config.batch_size, cluster)
    run_dir = pathlib.Path(config.run_dir)
    if cluster.is_chief:  # the one process that writes the run folder
        check_run_dir_is_ours(config, run_dir)
    check_run_folder(config, run_dir)
    run_state.check_files(run_dir)  # before hours of training find a broken file
    cache_dir = config.resolved_cache_dir()
    # Before any work (corpus generation, preprocessing, training): folders
    # that cannot be written would waste all of it. Only the chief writes
    # the run folder. A cache not yet started is checked here; one started
    # (possibly finished and read-only) by preprocess where it has work.
    if cluster.is_chief:
        io_utils.check_writable_dir(run_dir, "--run_dir")
    if (config.distribution != "multi_worker"
            and not (pathlib.Path(cache_dir) / cache.MANIFEST_NAME).is_file()):
        io_utils.check_writable_dir(cache_dir, "--cache_dir")
    manifest = _prepare_cache(config, cache_dir)
    if not cluster.is_chief:
        # Trains in step with the chief; writes nothing.
        _seed_process(config)
        with cluster.scope():
            model, initial_epoch, _, _ = _model_for_run(config, run_dir)
        train_ds, steps_per_epoch, _ = _train_inputs(config, manifest, cache_dir, initial_epoch)
        history = distributed.fit(
            model, cluster, train_ds, steps_per_epoch=steps_per_epoch, epochs=config.epochs,
            initial_epoch=initial_epoch, validate=None, verbose=config.progress)
        return distributed.worker_summary(cluster, history, model)
    run_dir.mkdir(parents=True, exist_ok=True)
    with evaluate.run_folder_lock(run_dir):
        # Temporary files of a killed earlier run (atomic writes never renamed).
        io_utils.remove_temporaries(run_dir)
        io_utils.remove_temporaries(run_dir / "checkpoints")
        return _train_locked(config, run_dir, cache_dir, manifest, flags_text, start, cluster)


def _prepare_cache(config: TrainConfig, cache_dir: str) -> cache.Manifest:
    """The corpus (generated if synthetic) and its face cache (preprocessed
    where missing), checked against the run's settings; returns its manifest."""
    if config.distribution == "multi_worker":
        # Workers must all train on one finished cache: preprocess first.
        distributed.check_ready_cache(cache_dir)
    else:
        prepare_corpus(config)
        preprocess.preprocess_corpus(
            config.corpus_dir, config.corpus_kind, cache_dir, face=config.face,
            workers=config.workers,
            min_found_rate=config.min_found_rate, progress=config.progress,
        )
    manifest = cache.read_manifest(cache_dir)
    check_cache(cache_dir, manifest, config)
    return manifest


def _seed_process(config: TrainConfig) -> None:
    """Seeds the process (before a new model draws its initial weights) and,
    with --deterministic, makes TensorFlow's ops keep their reduction order."""
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def _train_inputs(config: TrainConfig, manifest: cache.Manifest, cache_dir: str,
                  initial_epoch: int):
    """Returns (training batches from epoch `initial_epoch` on, steps per
    epoch, validation batches).

    Each epoch's clip order and augmentation are drawn from (--seed, epoch)
    alone (`pipeline.train_epochs`), so a resumed run trains on the batches
    the uninterrupted run would have.
    """
    # An epoch is one pass over the training clips. The stream has no end
    # and the pass length is given explicitly: Keras then knows the epoch
    # size (no "ran out of data" stop), and a capped epoch
    # (--max_steps_per_epoch) does not truncate a pass, which would keep the
    # pipeline's in-memory cache from ever completing; the next epoch goes
    # on where it stopped, and a resumed run starts at that same batch.
    steps_per_pass = pipeline.train_steps_per_epoch(
        manifest, frames=config.frames, batch_size=config.batch_size
    )
    steps_per_epoch = steps_per_pass
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_pass, config.max_steps_per_epoch)
    # (No clip at all gives 0 steps; train_epochs then says so.)
    first_pass, skip_batches = divmod(initial_epoch * steps_per_epoch, max(steps_per_pass, 1))
    train_ds = pipeline.train_epochs(
        cache_dir, first_epoch=first_pass, skip_batches=skip_batches,
        target=config.targets, frames=config.frames, batch_size=config.batch_size,
        augment=config.augment and config.augment_on == "pipeline", seed=config.seed,
        # Distributed workers must each build the same clip order.
        deterministic=config.deterministic or config.distribution != "none",
    )
    return train_ds, steps_per_epoch, _validation_dataset(cache_dir, manifest, config)


class EpochSeeds(keras.callbacks.Callback):
    """Reseeds the model's random generators at the start of every epoch.

    Dropout and the in-model augmentation draw from Keras `SeedGenerator`s
    whose state advances with every step and is not saved in a `.keras`
    file. Setting each one, before epoch e, to a state derived from
    (--seed, e, its position in the model) makes an epoch's draws depend on
    the seed and the epoch alone, so a run resumed from
    `checkpoints/last.keras` draws the masks the uninterrupted run would.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        reseed_generators(self.model, self.seed, epoch)


def reseed_generators(model: keras.Model, seed: int, epoch: int) -> int:
    """Sets the state of every `SeedGenerator` of `model` (in layer order) to
    one derived from (`seed`, `epoch`, its position); returns how many.

    `model.variables` holds the generators' states (Keras names each
    "seed_generator_state"): (seed, number of draws so far).
    """
    states = [v for v in model.variables if v.name == "seed_generator_state"]
    for k, state in enumerate(states):
        start = np.random.SeedSequence([seed, epoch, k]).generate_state(1, np.uint32)[0]
        state.assign(np.array([start, 0], dtype=keras.backend.standardize_dtype(state.dtype)))
    return len(states)


def _model_for_run(config: TrainConfig, run_dir: pathlib.Path):
    """The model to train and (initial epoch, best dev CCC, best epoch): the
    run folder's checkpoint when it has one, else a new model. Without a
    finite best yet, the best is -inf and its epoch 0."""
    state = _read_state(run_dir)
    if state is not None:
        model = run_state.load_model(run_dir / run_state.LAST_NAME,
                                     run_state.restart_hint(run_dir))
        if config.jit_compile != "auto":  # free to change on resume: not part of the state
            model.jit_compile = JIT_MODES[config.jit_compile]
        initial_epoch, best, best_epoch = state["epoch"], state["best"], state["best_epoch"]
        print(f"Resuming {run_dir} after epoch {initial_epoch} ("
              + (f"best dev CCC {best:.4f} at epoch {best_epoch}" if best is not None
                 else "no finite dev CCC yet") + ").")
        return model, initial_epoch, -np.inf if best is None else best, best_epoch
    return _build_and_compile(config), 0, -np.inf, 0


def _train_locked(config: TrainConfig, run_dir: pathlib.Path, cache_dir: str,
                  manifest: cache.Manifest, flags_text: str | None,
                  start: float, cluster: distributed.Cluster) -> dict[str, Any]:
    """The stages of `run_training` that write the run folder (held locked):
    settings, training, evaluation and export of the best epoch, results."""
    _write_config(config, run_dir)
    run_state.settle(run_dir)  # best.keras as the state describes it
    if flags_text is not None:
        io_utils.atomic_write_text(run_dir / "flags.cfg", flags_text)
    times = {"corpus_and_preprocess": time.time() - start}
    train_start = time.time()
    best_epoch = _fit(config, run_dir, cache_dir, manifest, cluster)
    times["training_this_invocation"] = time.time() - train_start
    evaluation_start = time.time()
    best_model, report, extra = _evaluate_best(config, run_dir, cache_dir, manifest)
    times["evaluation_and_export"] = time.time() - evaluation_start
    times["total"] = time.time() - start
    results = _results(config, best_model, report, extra, best_epoch, times)
    io_utils.atomic_write_text(run_dir / "results.json", json.dumps(results, indent=2) + "\n")
    return results


def _fit(config: TrainConfig, run_dir: pathlib.Path, cache_dir: str, manifest: cache.Manifest,
         cluster: distributed.Cluster) -> int:
    """Trains (or resumes) up to `--epochs`, checkpointing every epoch;
    returns the best epoch (by dev CCC)."""
    _seed_process(config)
    with cluster.scope():
        model, initial_epoch, best, best_epoch = _model_for_run(config, run_dir)
    train_ds, steps_per_epoch, val_ds = _train_inputs(config, manifest, cache_dir, initial_epoch)
    if config.progress:
        model.summary(print_fn=lambda line, **_: print(line), line_length=100)
    if initial_epoch >= config.epochs:
        print(f"{run_dir} already trained {initial_epoch} epochs (--epochs={config.epochs}).")
        return best_epoch
    best_model = (_read_state(run_dir) or {}).get("best_model")
    checkpoint = EpochCheckpoint(run_dir, "val_ccc", best, best_epoch, best_model)  # and history.csv
    # The divergence check first: an epoch with a NaN loss is not checkpointed.
    callbacks = [StopOnNonFiniteLoss(config.learning_rate, run_dir), checkpoint,
                 keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs"))]
    if cluster.strategy is None:
        callbacks.insert(0, EpochSeeds(config.seed))
        model.fit(
            train_ds, validation_data=val_ds, epochs=config.epochs,
            steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles clips itself
            verbose=(1 if sys.stdout.isatty() else 2) if config.progress else 0,
        )
    else:  # model.fit fails under MultiWorkerMirroredStrategy (keras#20585)
        distributed.fit(
            model, cluster, train_ds, steps_per_epoch=steps_per_epoch,
            epochs=config.epochs, initial_epoch=initial_epoch,
            validate=distributed.validator(model, val_ds), callbacks=callbacks,
            verbose=config.progress)
    return checkpoint.best_epoch


def _evaluate_best(config: TrainConfig, run_dir: pathlib.Path, cache_dir: str,
                   manifest: cache.Manifest) -> tuple[keras.Model, dict[str, Any], dict[str, Any]]:
    """Predicts the evaluated partitions with `best.keras`, fits and applies
    the post-processing (evaluation.json, predictions/, plots/), measures the
    attention of a STA model and exports the SavedModel. Returns the model,
    the evaluation report and the extra results (attention regions)."""
    # The model the state names (`best.keras` is its copy): the epoch that
    # results.json reports as best.
    best_model = run_state.load_model(
        run_state.best_model_path(run_dir),
        f"the best epoch's model is lost; {run_state.restart_hint(run_dir)}", compile=False)
    predictions = evaluate.predict_targets(
        evaluate.keras_predict_fn(best_model), cache_dir,
        list(dict.fromkeys(["dev", *config.eval_partitions])),
        targets=config.targets, frames=config.frames, batch_size=config.batch_size,
        progress=config.progress,
    )
    extra = {}
    if config.variant == "3d_cnn_sta":
        extra["attention_regions"] = evaluate.attention_regions(
            best_model, cache_dir, run_dir, batch_size=config.batch_size)
    report = evaluate.evaluate_predictions(
        predictions, run_dir, convention=config.convention, time_shift=config.time_shift,
        extra=extra,
    )
    if config.export:
        export.export_saved_model(
            best_model, run_dir / "saved_model", export_metadata(config, manifest),
            postprocess_json=run_dir / "postprocess.json",
        )
    return best_model, report, extra


def _results(config: TrainConfig, best_model: keras.Model, report: dict[str, Any],
             extra: dict[str, Any], best_epoch: int, times: dict[str, float]) -> dict[str, Any]:
    """The `results.json` of a run: dev metrics (per target and their mean
    CCC for several targets), what post-processing kept, wall times."""
    targets = config.targets
    if len(targets) == 1:
        dev_raw = report["raw"].get("dev", {}).get("all", {})
        dev_post = report["post"].get("dev", {}).get("all", {})
        per_target = {}
    else:
        # Each target's dev metrics, and the mean of their CCCs (the
        # challenge's ranking of a valence + arousal model).
        dev_raw, dev_post = ({
            **{t: report[stage][t].get("dev", {}).get("all", {}) for t in targets},
            "mean_ccc": report["mean_ccc"][stage].get("dev"),
        } for stage in ("raw", "post"))
        per_target = {"targets": list(targets)}
    return {
        "variant": config.variant,
        "corpus_kind": config.corpus_kind,
        "target": config.target,
        **per_target,
        "convention": config.convention,
        "deterministic": config.deterministic,
        "best_epoch": best_epoch,
        "epochs": config.epochs,
        "parameters": int(best_model.count_params()),
        "dev_raw": dev_raw,
        "dev_post": dev_post,
        "postprocess_kept": report["postprocess_kept"],
        **extra,
        "wall_time_s": {name: round(seconds, 1) for name, seconds in (
            ("total", times["total"]),
            ("corpus_and_preprocess", times["corpus_and_preprocess"]),
            ("training_this_invocation", times["training_this_invocation"]),
            ("evaluation_and_export", times["evaluation_and_export"]),
        )},
    }


def export_metadata(config: TrainConfig, manifest: cache.Manifest) -> dict[str, Any]:
    """What `predict` needs to prepare a video exactly as in training: the
    face settings the cache's crops were made with (`manifest.face`)."""
    return export.export_metadata(variant=config.variant, targets=config.targets,
                                  fps=manifest.fps, face=manifest.face)


def config_from_flags(flag_values) -> TrainConfig:
    """Maps parsed absl flags onto a TrainConfig (only main() calls this)."""
    return settings.from_flags(TrainConfig, flag_values)


def define_flags() -> None:
    """Defines the CLI's flags: one per TrainConfig field (`settings`), the face
    flags shared with preprocess and predict."""
    settings.define_flags(TrainConfig)


def _print_targets(results: dict[str, Any]) -> None:
    """The dev lines of a run of several targets (`main`)."""
    print(f"Best epoch {results['best_epoch']} (by the mean dev CCC over targets).")
    for target in results["targets"]:
        raw, dev = results["dev_raw"][target], results["dev_post"][target]
        print(f"{target}: post-processing kept: "
              f"{', '.join(results['postprocess_kept'][target]) or 'nothing'}")
        if dev:
            print(f"{target} dev raw : RMSE {raw['rmse']:.3f}  CC {raw['cc']:.3f}  "
                  f"CCC {raw['ccc']:.3f}")
            print(f"{target} dev post: RMSE {dev['rmse']:.3f}  CC {dev['cc']:.3f}  "
                  f"CCC {dev['ccc']:.3f}")
    if results["dev_post"]["mean_ccc"] is not None:
        print(f"dev CCC (mean over {', '.join(results['targets'])}): "
              f"{results['dev_post']['mean_ccc']:.3f}")


def main(argv: Sequence[str]) -> int:
    from absl import flags, logging

    FLAGS = flags.FLAGS
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines hide the progress bars
    return cli.run("train", lambda: _train(argv, FLAGS), output=FLAGS.run_dir,
                   bad_input=(OSError, ValueError, preprocess.PreprocessError,
                              distributed.WorkerError))


def _train(argv: Sequence[str], FLAGS) -> None:
    """main()'s work: train, then print the dev results."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    config = config_from_flags(FLAGS)
    results = run_training(config, flags_text=FLAGS.flags_into_string())
    if "worker" in results:  # a multi_worker task other than the chief
        print(f"\n{results['worker']} trained {results['epochs_trained']} epoch(s); the chief "
              f"wrote the run folder.\nWorker weights sha256: {results['weights_sha256']}")
        return
    print(f"\nRun folder: {config.run_dir}")
    if "targets" in results:
        _print_targets(results)
    else:
        dev = results["dev_post"]
        print(f"Best epoch {results['best_epoch']}; post-processing kept: "
              f"{', '.join(results['postprocess_kept']) or 'nothing'}")
        if dev:
            raw = results["dev_raw"]
            print(f"dev raw : RMSE {raw['rmse']:.3f}  CC {raw['cc']:.3f}  CCC {raw['ccc']:.3f}")
            print(f"dev post: RMSE {dev['rmse']:.3f}  CC {dev['cc']:.3f}  CCC {dev['ccc']:.3f}")
            print(f"dev CCC: {dev['ccc']:.3f}")
    if "attention_regions" in results:
        from recola_sta.analysis import attention_analysis

        print(attention_analysis.format_summary(results["attention_regions"]))
    print(f"Wall time {results['wall_time_s']['total']:.0f} s.")
