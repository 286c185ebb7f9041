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
    history.csv     per-epoch loss and CCC (train and dev)
    logs/           TensorBoard logs
    checkpoints/    last.keras and state.json (for resuming)
    best.keras      the model of the best dev epoch
    saved_model/    that model exported for `recola_sta.predict`
    results.json    dev RMSE/CC/CCC raw and post-processed, steps kept, times
    evaluation.json, postprocess.json, predictions/, plots/  (see evaluate.py)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import sys
import time
from typing import Any, Sequence

if __name__ == "__main__":
    # Before TensorFlow loads (it reads this only then): its C++ start-up
    # chatter would hide the progress bars.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from recola_sta import (  # noqa: E402
    cache,
    corpora,
    evaluate,
    export,
    faces,
    io_utils,
    layers,
    metrics,
    models,
    pipeline,
    preprocess,
    synthetic,
)

LOSSES = ("mse", "ccc")
# Settings that change the network; a run folder cannot be resumed with others.
ARCHITECTURE_KEYS = (
    "variant", "size", "frames", "fc_units", "dropout", "peephole_mode", "upsampling",
    "attention_scale", "attention_scores", "attention_weights", "attention_score_gain",
    "attention_normalize_state", "attention_location_bias", "attention_temperature",
    "readout", "target", "corpus_kind",
)
# Settings a resumed run cannot honour: the optimizer and loss are restored
# from checkpoints/last.keras (Adam's learning rate is part of its state), so
# a changed value would be silently ignored.
RESUME_KEYS = ("learning_rate", "loss")
# Synthetic-corpus settings -> the train flag that sets them.
_SYNTHETIC_FLAGS = {
    "num_train": "synthetic_num_train", "num_dev": "synthetic_num_dev",
    "num_test": "synthetic_num_test", "duration_s": "synthetic_duration_s",
    "seed": "synthetic_seed", "preset": "synthetic_preset",
}


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run (the CLI flags, typed).

    Defaults are the paper's where it gives them (section 3.1).
    """

    corpus_dir: str
    corpus_kind: str = "synthetic"
    run_dir: str = "runs/default"
    cache_dir: str = ""  # "" -> data/cache/<corpus folder name>_<size>
    variant: str = "3d_cnn_sta"
    size: int = 96
    frames: int = 16
    batch_size: int = 16
    learning_rate: float = 1e-4
    epochs: int = 20
    max_steps_per_epoch: int = 0  # 0: every training clip once per epoch
    loss: str = "mse"
    dropout: float = 0.5
    fc_units: int = models.DEFAULT_OPTIONS["fc_units"]
    peephole_mode: str = "conv"  # "conv" (eq. 1 as printed), "hadamard" (Shi et al.), "none"
    upsampling: str = models.DEFAULT_OPTIONS["upsampling"]
    attention_scale: str = models.DEFAULT_OPTIONS["attention_scale"]
    attention_scores: str = models.DEFAULT_OPTIONS["attention_scores"]
    attention_weights: str = models.DEFAULT_OPTIONS["attention_weights"]
    attention_score_gain: float = models.DEFAULT_OPTIONS["attention_score_gain"]
    attention_normalize_state: bool = models.DEFAULT_OPTIONS["attention_normalize_state"]
    attention_location_bias: bool = models.DEFAULT_OPTIONS["attention_location_bias"]
    attention_temperature: float = models.DEFAULT_OPTIONS["attention_temperature"]
    readout: str = models.DEFAULT_OPTIONS["readout"]
    target: str = "valence"
    convention: str = metrics.DEFAULT_CONVENTION
    augment: bool = True
    seed: int = 0
    workers: int = 2
    min_found_rate: float = 0.8
    # Face preprocessing (see faces.FaceAligner), forwarded to preprocess.
    upsample: int = 0
    detect_width: int = 320
    predictor_path: str | None = None
    face: str = "largest"
    redetect_every: int = faces.DEFAULT_REDETECT_EVERY
    time_shift: bool = False
    export: bool = True
    eval_partitions: tuple[str, ...] = ("dev", "test")
    progress: bool = True
    # Synthetic corpus, used only when corpus_kind == "synthetic" and it is missing.
    synthetic_num_train: int = 20
    synthetic_num_dev: int = 5
    synthetic_num_test: int = 5
    synthetic_duration_s: float = 60.0
    synthetic_seed: int = 0
    synthetic_preset: str = "default"  # one of synthetic.PRESETS

    def resolved_cache_dir(self) -> str:
        if self.cache_dir:
            return self.cache_dir
        name = pathlib.Path(self.corpus_dir).resolve().name or "corpus"
        return str(pathlib.Path("data") / "cache" / f"{name}_{self.size}")

    def validate(self) -> None:
        """Raises ValueError naming the flag of the first bad setting."""
        checks = [
            (self.variant in models.VARIANTS, "variant", f"one of {models.VARIANTS}"),
            (self.corpus_kind in corpora.CORPUS_KINDS, "corpus_kind", f"one of {corpora.CORPUS_KINDS}"),
            (self.loss in LOSSES, "loss", f"one of {LOSSES}"),
            (self.convention in metrics.CONVENTIONS, "convention", f"one of {metrics.CONVENTIONS}"),
            (self.batch_size > 0, "batch_size", "a positive number of clips"),
            (self.frames > 0, "frames", "a positive number of frames per clip"),
            (self.size >= 16 and self.size % 8 == 0, "size", "a multiple of 8, at least 16"),
            (self.epochs > 0, "epochs", "positive"),
            (self.learning_rate > 0, "learning_rate", "positive"),
            (0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)"),
            (self.fc_units > 0, "fc_units", "positive"),
            (self.peephole_mode in ("conv", "hadamard", "none"), "peephole_mode",
             "conv, hadamard or none"),
            (self.upsampling in ("transposed", "bilinear", "nearest"), "upsampling",
             "transposed, bilinear or nearest"),
            (self.attention_scale in ("hw", "none"), "attention_scale", "hw or none"),
            (self.attention_scores in layers.ATTENTION_SCORES, "attention_scores",
             " or ".join(layers.ATTENTION_SCORES)),
            (self.attention_weights in layers.ATTENTION_WEIGHTS, "attention_weights",
             " or ".join(layers.ATTENTION_WEIGHTS)),
            (self.attention_score_gain > 0, "attention_score_gain", "positive"),
            (self.attention_temperature > 0, "attention_temperature", "positive"),
            (self.readout in models.READOUTS, "readout", " or ".join(models.READOUTS)),
            (self.max_steps_per_epoch >= 0, "max_steps_per_epoch", "0 (all) or positive"),
            (self.workers > 0, "workers", "positive"),
            (0 <= self.upsample <= faces.MAX_UPSAMPLE, "upsample",
             f"0 to {faces.MAX_UPSAMPLE} (each step: 4x detection time and memory)"),
            (self.detect_width == 0 or self.detect_width >= 80, "detect_width",
             "0 (no reduction) or at least 80"),
            (self.face in faces.FACE_RULES, "face", " or ".join(faces.FACE_RULES)),
            (self.redetect_every >= 1, "redetect_every", "at least 1 (1: detect on every sample)"),
            (bool(self.corpus_dir), "corpus_dir", "a corpus folder"),
            (self.synthetic_preset in synthetic.PRESETS, "synthetic_preset",
             " or ".join(synthetic.PRESETS)),
        ]
        for ok, flag, expected in checks:
            if not ok:
                raise ValueError(f"--{flag}={getattr(self, flag)!r} is invalid: expected {expected}.")
        bad = set(self.eval_partitions) - set(evaluate.PARTITIONS)
        if bad:
            raise ValueError(f"--eval_partitions has unknown partitions {sorted(bad)}.")


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
    payload = _config_payload(config)
    # A key an older run did not record had its default value then.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    keys = ARCHITECTURE_KEYS + (RESUME_KEYS if _read_state(run_dir) is not None else ())
    changed = [k for k in keys if previous.get(k, defaults[k]) != payload[k]]
    if changed:
        details = ", ".join(
            f"--{k}: {previous.get(k, defaults[k])!r} -> {payload[k]!r}" for k in changed
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


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves what a resumed run needs after every epoch, atomically.

    `best.keras` is written first when dev CCC improved, then
    `checkpoints/last.keras` (weights and optimizer state), then
    `checkpoints/state.json` naming the finished epoch: a run killed at any
    point resumes from a consistent pair.
    """

    def __init__(self, run_dir: pathlib.Path, monitor: str, best: float, best_epoch: int):
        super().__init__()
        self.run_dir = run_dir
        self.monitor = monitor
        self.best = best
        self.best_epoch = best_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and np.isfinite(value) and value > self.best:
            self.best, self.best_epoch = float(value), epoch + 1
            with io_utils.atomic_path(self.run_dir / "best.keras", suffix=".keras") as tmp:
                self.model.save(tmp)
        with io_utils.atomic_path(self.run_dir / "checkpoints" / "last.keras", suffix=".keras") as tmp:
            self.model.save(tmp)
        state = {"epoch": epoch + 1, "best": self.best, "best_epoch": self.best_epoch,
                 "monitor": self.monitor}
        io_utils.atomic_write_text(self.run_dir / "checkpoints" / "state.json", json.dumps(state) + "\n")


def check_cache(cache_dir: str, manifest: cache.Manifest, config: TrainConfig) -> None:
    """Refuses a cache that cannot train this run: other crop size, a target
    it does not hold, no training or dev recording, or dev labels that are
    all NaN (model selection would log a meaningless val_ccc).

    Raises:
        ValueError: naming the cache, the flag, and for labels the partition
            and each recording's shard and video.
    """
    if manifest.size != config.size:
        raise ValueError(
            f"The cache {cache_dir} holds {manifest.size}px crops but --size={config.size}; "
            "pass another --cache_dir."
        )
    for partition in ("train", "dev"):
        entries = manifest.partition(partition)
        if not entries:
            raise ValueError(f"The cache {cache_dir} has no {partition} recordings; "
                             "training needs them (and dev for model selection).")
        lacking = [e.name for e in entries if config.target not in e.targets]
        if lacking:
            raise ValueError(
                f"--target={config.target} is not a label of the {partition} recordings "
                f"{lacking} in the cache {cache_dir} (their labels: "
                f"{sorted({t for e in entries for t in e.targets})})."
            )
    dev = manifest.partition("dev")
    if not any(np.isfinite(cache.read_target(cache_dir, e, config.target)).any() for e in dev):
        files = "; ".join(f"{e.name}: shard {pathlib.Path(cache_dir) / e.shard}, video {e.video}"
                          for e in dev)
        raise ValueError(
            f"Every {config.target} label of the dev partition is NaN (unlabeled), so dev "
            f"CCC cannot select a model. Dev recordings: {files}. Check the dev label files "
            f"of the corpus at {manifest.corpus_root} ({manifest.corpus_kind} layout)."
        )


def _read_state(run_dir: pathlib.Path) -> dict[str, Any] | None:
    path = run_dir / "checkpoints" / "state.json"
    if not path.is_file() or not (run_dir / "checkpoints" / "last.keras").is_file():
        return None
    return json.loads(path.read_text())


def _validation_dataset(cache_dir: str, manifest: cache.Manifest, config: TrainConfig):
    dev = manifest.partition("dev")
    if not dev:
        raise ValueError(f"The cache {cache_dir} has no dev recordings; model selection needs them.")
    parts = [
        pipeline.eval_dataset(cache_dir, entry, target=config.target, frames=config.frames,
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


def _build_and_compile(config: TrainConfig) -> keras.Model:
    peephole_options = (
        {"peepholes": False} if config.peephole_mode == "none"
        else {"peepholes": True, "peephole_mode": config.peephole_mode}
    )
    model = models.build_model(
        config.variant, frames=config.frames, size=config.size,
        fc_units=config.fc_units, dropout=config.dropout, upsampling=config.upsampling,
        attention_scale=config.attention_scale, attention_scores=config.attention_scores,
        attention_weights=config.attention_weights,
        attention_score_gain=config.attention_score_gain,
        attention_normalize_state=config.attention_normalize_state,
        attention_location_bias=config.attention_location_bias,
        attention_temperature=config.attention_temperature, readout=config.readout,
        **peephole_options,
    )
    loss = "mean_squared_error" if config.loss == "mse" else metrics.CCCLoss()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss=loss,
        weighted_metrics=[metrics.CCCMetric(name="ccc")],
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
    run_dir = pathlib.Path(config.run_dir)
    check_run_folder(config, run_dir)
    cache_dir = config.resolved_cache_dir()

    prepare_corpus(config)
    preprocess.preprocess_corpus(
        config.corpus_dir, config.corpus_kind, cache_dir, size=config.size,
        workers=config.workers, upsample=config.upsample, detect_width=config.detect_width,
        predictor_path=config.predictor_path, face=config.face,
        redetect_every=config.redetect_every, min_found_rate=config.min_found_rate, progress=config.progress,
    )
    manifest = cache.read_manifest(cache_dir)
    check_cache(cache_dir, manifest, config)
    run_dir.mkdir(parents=True, exist_ok=True)
    with io_utils.exclusive_lock(run_dir / ".lock", f"run folder {run_dir}"):
        # Temporary files of a killed earlier run (atomic writes never renamed).
        io_utils.remove_temporaries(run_dir)
        io_utils.remove_temporaries(run_dir / "checkpoints")
        return _train_locked(config, run_dir, cache_dir, manifest, flags_text, start)


def _train_locked(config: TrainConfig, run_dir: pathlib.Path, cache_dir: str,
                  manifest: cache.Manifest, flags_text: str | None,
                  start: float) -> dict[str, Any]:
    """The stages of `run_training` that write the run folder (held locked)."""
    _write_config(config, run_dir)
    if flags_text is not None:
        io_utils.atomic_write_text(run_dir / "flags.cfg", flags_text)
    prep_seconds = time.time() - start

    keras.utils.set_random_seed(config.seed)
    train_ds = pipeline.train_dataset(
        cache_dir, target=config.target, frames=config.frames, batch_size=config.batch_size,
        augment=config.augment, shuffle=True, seed=config.seed,
    )
    # An epoch is one pass over the training clips. The dataset is repeated
    # and the pass length given explicitly: Keras then knows the epoch size
    # (no "ran out of data" stop), and a capped epoch (--max_steps_per_epoch)
    # does not truncate a pass, which would keep the pipeline's in-memory
    # cache from ever completing.
    # (train_dataset has already refused a corpus without a whole clip.)
    steps_per_epoch = pipeline.train_steps_per_epoch(
        manifest, frames=config.frames, batch_size=config.batch_size
    )
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    train_ds = train_ds.repeat()
    val_ds = _validation_dataset(cache_dir, manifest, config)

    state = _read_state(run_dir)
    if state is not None:
        model = keras.models.load_model(run_dir / "checkpoints" / "last.keras")
        initial_epoch, best, best_epoch = state["epoch"], state["best"], state["best_epoch"]
        print(f"Resuming {run_dir} after epoch {initial_epoch} (best dev CCC {best:.4f} "
              f"at epoch {best_epoch}).")
    else:
        model = _build_and_compile(config)
        initial_epoch, best, best_epoch = 0, -np.inf, 0
    if config.progress:
        model.summary(print_fn=lambda line, **_: print(line), line_length=100)

    train_start = time.time()
    if initial_epoch < config.epochs:
        callbacks = [
            EpochCheckpoint(run_dir, "val_ccc", best, best_epoch),
            keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
            keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs")),
        ]
        model.fit(
            train_ds, validation_data=val_ds, epochs=config.epochs,
            steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch, callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles clips itself
            verbose=(1 if sys.stdout.isatty() else 2) if config.progress else 0,
        )
        best_epoch = callbacks[0].best_epoch
    else:
        print(f"{run_dir} already trained {initial_epoch} epochs (--epochs={config.epochs}).")
    train_seconds = time.time() - train_start

    if not (run_dir / "best.keras").is_file():
        raise RuntimeError(
            f"No epoch of {run_dir} produced a finite dev CCC; nothing to evaluate. "
            "Check the dev recordings' labels and the face-found rate."
        )
    best_model = keras.models.load_model(run_dir / "best.keras", compile=False)
    results_list = evaluate.predict_recordings(
        evaluate.keras_predict_fn(best_model), cache_dir,
        list(dict.fromkeys(["dev", *config.eval_partitions])),
        target=config.target, frames=config.frames, batch_size=config.batch_size,
        progress=config.progress,
    )
    extra = {}
    if config.variant == "3d_cnn_sta":
        extra["attention_regions"] = evaluate.attention_regions(
            best_model, cache_dir, run_dir, batch_size=config.batch_size)
    report = evaluate.evaluate_predictions(
        results_list, run_dir, convention=config.convention, time_shift=config.time_shift,
        extra=extra,
    )
    if config.export:
        export.export_saved_model(
            best_model, run_dir / "saved_model", export_metadata(config, manifest, cache_dir),
            postprocess_json=run_dir / "postprocess.json",
        )

    dev_raw = report["raw"].get("dev", {}).get("all", {})
    dev_post = report["post"].get("dev", {}).get("all", {})
    results = {
        "variant": config.variant,
        "corpus_kind": config.corpus_kind,
        "target": config.target,
        "convention": config.convention,
        "best_epoch": best_epoch,
        "epochs": config.epochs,
        "parameters": int(best_model.count_params()),
        "dev_raw": dev_raw,
        "dev_post": dev_post,
        "postprocess_kept": report["postprocess_kept"],
        **extra,
        "wall_time_s": {
            "total": round(time.time() - start, 1),
            "corpus_and_preprocess": round(prep_seconds, 1),
            "training_this_invocation": round(train_seconds, 1),
        },
    }
    io_utils.atomic_write_text(run_dir / "results.json", json.dumps(results, indent=2) + "\n")
    return results


def export_metadata(config: TrainConfig, manifest: cache.Manifest,
                    cache_dir: str | os.PathLike) -> dict[str, Any]:
    """What `predict` needs to prepare a video exactly as in training.

    The face aligner's settings are those the cache's crops were made with
    (its `preprocess.json`), which may predate this run's flags.
    """
    settings_path = pathlib.Path(cache_dir) / preprocess.SETTINGS_NAME
    try:
        aligner = json.loads(settings_path.read_text()) if settings_path.is_file() else {}
        if aligner:  # settings an older cache did not record had their old default
            aligner = {**preprocess.SETTING_DEFAULTS, **aligner}
    except json.JSONDecodeError as e:
        raise ValueError(f"Malformed preprocess settings {settings_path}: {e}") from e
    if not aligner:
        aligner = {"upsample": config.upsample, "detect_width": config.detect_width,
                   "face": config.face, "predictor_path": config.predictor_path,
                   "redetect_every": config.redetect_every}
    return export.export_metadata(
        variant=config.variant, target=config.target, frames=config.frames,
        size=config.size, fps=manifest.fps, face_aligner=aligner,
    )


def config_from_flags(flag_values) -> TrainConfig:
    """Maps parsed absl flags onto a TrainConfig (only main() calls this)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    kwargs = {name: getattr(flag_values, name) for name in names}
    kwargs["eval_partitions"] = tuple(kwargs["eval_partitions"])
    return TrainConfig(**kwargs)


def define_flags() -> None:
    from absl import flags

    d = TrainConfig
    flags.DEFINE_string("corpus_dir", None, "Corpus folder (RECOLA, AV+EC 2017, synthetic or csv layout).")
    flags.DEFINE_string("corpus_kind", d.corpus_kind, f"One of {corpora.CORPUS_KINDS}.")
    flags.DEFINE_string("run_dir", d.run_dir, "Output folder of the run; re-running resumes it.")
    flags.DEFINE_string("cache_dir", d.cache_dir, "Preprocess cache; default data/cache/<corpus>_<size>.")
    flags.DEFINE_string("variant", d.variant, f"Network: one of {models.VARIANTS}.")
    flags.DEFINE_integer("size", d.size, "Side of the aligned face crops, pixels.")
    flags.DEFINE_integer("frames", d.frames, "Frames per clip (paper: 16 at 4 fps).")
    flags.DEFINE_integer("batch_size", d.batch_size, "Clips per batch (paper: 16).")
    flags.DEFINE_float("learning_rate", d.learning_rate, "Adam learning rate (paper: 1e-4).")
    flags.DEFINE_integer("epochs", d.epochs, "Epochs over the training clips.")
    flags.DEFINE_integer("max_steps_per_epoch", d.max_steps_per_epoch, "Cap on steps per epoch; 0: all clips.")
    flags.DEFINE_string("loss", d.loss, f"One of {LOSSES} (paper: mse).")
    flags.DEFINE_float("dropout", d.dropout, "Dropout between the fully connected layers (paper: 0.5).")
    flags.DEFINE_integer("fc_units", d.fc_units, "Width of the first fully connected layer.")
    flags.DEFINE_string("peephole_mode", d.peephole_mode,
                        "ConvLSTM peepholes: conv (eq. 1 as printed), hadamard (Shi et al.), none.")
    flags.DEFINE_string("upsampling", d.upsampling, "Decoder x2 stages: transposed, bilinear, nearest.")
    flags.DEFINE_string("attention_scale", d.attention_scale,
                        "hw: attention times H*W (uniform = 1); none: raw softmax (eq. 3 literally).")
    flags.DEFINE_string("attention_scores", d.attention_scores,
                        "linear: eq. 2 as printed; standardized: per-frame z-scores times a "
                        "learned temperature (attention that can sharpen at lr 1e-4).")
    flags.DEFINE_string("attention_weights", d.attention_weights,
                        "Eq. 2 score weights: shared (one 1x1 map for every location) or "
                        "per_location (one W_i per location, eq. 2 as printed).")
    flags.DEFINE_float("attention_score_gain", d.attention_score_gain,
                       "Constant gain on the attention scores (weights initialised / gain): "
                       "an Adam learning-rate multiplier for them; 1 = eq. 2.")
    flags.DEFINE_bool("attention_normalize_state", d.attention_normalize_state,
                      "Normalise the decoder state over its channels before eq. 2.")
    flags.DEFINE_bool("attention_location_bias", d.attention_location_bias,
                      "Add a learned per-location prior score to eq. 2 (not in the paper).")
    flags.DEFINE_float("attention_temperature", d.attention_temperature,
                       "Initial temperature of --attention_scores=standardized.")
    flags.DEFINE_string("readout", d.readout,
                        "Per-frame read-out before the FC layers: flatten (location-specific "
                        "FC weights), average or max (pooled over space).")
    flags.DEFINE_string("target", d.target, "Label dimension to learn (valence, arousal).")
    flags.DEFINE_string("convention", d.convention, "CCC convention: avec (challenge) or population.")
    flags.DEFINE_bool("augment", d.augment, "Flip/contrast/colour augmentation (paper: on).")
    flags.DEFINE_integer("seed", d.seed, "Random seed.")
    flags.DEFINE_integer("workers", d.workers, "Processes for corpus generation and face preprocessing.")
    flags.DEFINE_float("min_found_rate", d.min_found_rate, "Warn for recordings with fewer faces found.")
    preprocess.define_face_flags({"upsample": d.upsample, "detect_width": d.detect_width,
                                  "predictor_path": d.predictor_path, "face": d.face,
                                  "redetect_every": d.redetect_every})
    flags.DEFINE_bool("time_shift", d.time_shift, "Search annotation-delay compensation (paper: off).")
    flags.DEFINE_bool("export", d.export, "Export the best model as a SavedModel.")
    flags.DEFINE_list("eval_partitions", list(d.eval_partitions), "Partitions predicted after training.")
    flags.DEFINE_bool("progress", d.progress, "Progress bars and the model summary.")
    flags.DEFINE_integer("synthetic_num_train", d.synthetic_num_train, "Synthetic corpus: train recordings.")
    flags.DEFINE_integer("synthetic_num_dev", d.synthetic_num_dev, "Synthetic corpus: dev recordings.")
    flags.DEFINE_integer("synthetic_num_test", d.synthetic_num_test, "Synthetic corpus: test recordings.")
    flags.DEFINE_float("synthetic_duration_s", d.synthetic_duration_s, "Synthetic corpus: seconds each.")
    flags.DEFINE_integer("synthetic_seed", d.synthetic_seed, "Synthetic corpus: seed.")
    flags.DEFINE_enum("synthetic_preset", d.synthetic_preset, list(synthetic.PRESETS),
                      "Synthetic corpus: preset (recola_like: harder, see docs/recola_like.md).")
    flags.mark_flag_as_required("corpus_dir")


def main(argv: Sequence[str]) -> None:
    from absl import flags, logging

    FLAGS = flags.FLAGS
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines hide the progress bars
    if len(argv) > 1:
        raise SystemExit(f"Unexpected arguments: {argv[1:]}")
    try:
        config = config_from_flags(FLAGS)
        results = run_training(config, flags_text=FLAGS.flags_into_string())
    except (FileNotFoundError, ValueError, preprocess.PreprocessError) as e:
        raise SystemExit(f"train: {e}") from None
    dev = results["dev_post"]
    print(f"\nRun folder: {config.run_dir}")
    print(f"Best epoch {results['best_epoch']}; post-processing kept: "
          f"{', '.join(results['postprocess_kept']) or 'nothing'}")
    if dev:
        raw = results["dev_raw"]
        print(f"dev raw : RMSE {raw['rmse']:.3f}  CC {raw['cc']:.3f}  CCC {raw['ccc']:.3f}")
        print(f"dev post: RMSE {dev['rmse']:.3f}  CC {dev['cc']:.3f}  CCC {dev['ccc']:.3f}")
        print(f"dev CCC: {dev['ccc']:.3f}")
    if "attention_regions" in results:
        from recola_sta import attention_analysis

        print(attention_analysis.format_summary(results["attention_regions"]))
    print(f"Wall time {results['wall_time_s']['total']:.0f} s.")


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
