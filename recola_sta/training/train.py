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

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from recola_sta import cache, cli, io_utils, settings
from recola_sta.cache import preprocess
from recola_sta.evaluation import evaluate
from recola_sta.inference import export
from recola_sta.model import losses, networks
from recola_sta.training import distributed, pipeline, run_state
from recola_sta.training.checkpoints import EpochCheckpoint, EpochSeeds, StopOnNonFiniteLoss
from recola_sta.training.config import JIT_MODES, PRECISION_POLICIES, TrainConfig
from recola_sta.training.inputs import prepare_cache, train_inputs
from recola_sta.training.results import export_metadata, run_results, summary_lines
from recola_sta.training.run_folder import (check_run_dir_is_ours, check_run_folder, read_state,
                                            write_config)

def _build_model(config: TrainConfig) -> keras.Model:
    """The run's network (`config.model`'s options), its layers computing in
    `--mixed_precision`'s dtype, augmenting its clips with --augment_on=model."""
    if config.mixed_precision == "float16" and not tf.config.list_physical_devices("GPU"):
        raise ValueError("--mixed_precision=float16 needs a GPU: TensorFlow has no float16 "
                         "3D pooling on CPU. Use --mixed_precision=bfloat16 or none.")
    augmentation = ({**dataclasses.asdict(pipeline.Augmentation()), "seed": config.seed}
                    if config.augment and config.augment_on == "model" else None)
    previous_policy = keras.mixed_precision.global_policy().name
    # Layers take the global policy when they are built; the output layer
    # is float32 whatever it is (networks.build_model).
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[config.mixed_precision])
    try:
        return networks.build_model(
            config.variant, frames=config.frames, size=config.face.size,
            num_targets=len(config.targets), augmentation=augmentation,
            **dataclasses.asdict(config.model))
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _build_and_compile(config: TrainConfig) -> keras.Model:
    """`_build_model`, compiled with Adam, the loss and the CCC metrics.

    Keras wraps Adam in a LossScaleOptimizer for a float16 model.
    """
    model = _build_model(config)
    loss, ccc_metrics = _loss_and_metrics(config.targets, config.loss)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss=loss,
        weighted_metrics=ccc_metrics,
        jit_compile=JIT_MODES[config.jit_compile],
    )
    return model


def _loss_and_metrics(targets: Sequence[str], loss: str) -> tuple[Any, list[keras.metrics.Metric]]:
    """The training loss and the CCC metrics of a model of `targets`.

    The loss is the sum of the per-target losses; "ccc" is the mean of the
    per-target CCCs (the challenge's ranking, which selects the best epoch
    as val_ccc), logged beside each target's own (`ccc_<target>`). One
    target keeps the loss and the one metric the single-target models were
    trained with (Keras' MSE, `CCCLoss`, `CCCMetric`): the same numbers (the
    summed loss equals them only to float rounding) and history.csv columns.
    """
    if len(targets) == 1:
        return ("mean_squared_error" if loss == "mse" else losses.CCCLoss(),
                [losses.CCCMetric(name="ccc")])
    return losses.SummedTargetsLoss(loss), [losses.MeanCCCMetric(len(targets), name="ccc")] + [
        losses.CCCMetric(name=f"ccc_{target}", target_index=k) for k, target in enumerate(targets)]


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
    manifest = prepare_cache(config, cache_dir)
    if not cluster.is_chief:
        # Trains in step with the chief; writes nothing.
        _seed_process(config)
        with cluster.scope():
            model, initial_epoch, _, _ = _model_for_run(config, run_dir)
        train_ds, steps_per_epoch, _ = train_inputs(config, manifest, cache_dir, initial_epoch)
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


def _seed_process(config: TrainConfig) -> None:
    """Seeds the process (before a new model draws its initial weights) and,
    with --deterministic, makes TensorFlow's ops keep their reduction order."""
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()



def _model_for_run(config: TrainConfig, run_dir: pathlib.Path):
    """The model to train and (initial epoch, best dev CCC, best epoch): the
    run folder's checkpoint when it has one, else a new model. Without a
    finite best yet, the best is -inf and its epoch 0."""
    state = read_state(run_dir)
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
    write_config(config, run_dir)
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
    results = run_results(config, int(best_model.count_params()), report, extra, best_epoch,
                          times)
    io_utils.atomic_write_text(run_dir / "results.json", json.dumps(results, indent=2) + "\n")
    return results


def _fit(config: TrainConfig, run_dir: pathlib.Path, cache_dir: str, manifest: cache.Manifest,
         cluster: distributed.Cluster) -> int:
    """Trains (or resumes) up to `--epochs`, checkpointing every epoch;
    returns the best epoch (by dev CCC)."""
    _seed_process(config)
    with cluster.scope():
        model, initial_epoch, best, best_epoch = _model_for_run(config, run_dir)
    train_ds, steps_per_epoch, val_ds = train_inputs(config, manifest, cache_dir, initial_epoch)
    if config.progress:
        model.summary(print_fn=lambda line, **_: print(line), line_length=100)
    if initial_epoch >= config.epochs:
        print(f"{run_dir} already trained {initial_epoch} epochs (--epochs={config.epochs}).")
        return best_epoch
    best_model = (read_state(run_dir) or {}).get("best_model")
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
    report = evaluate.evaluate_targets(
        predictions, run_dir, convention=config.convention, time_shift=config.time_shift,
        extra=extra,
    )
    if config.export:
        meta, folder = export_metadata(config, manifest), run_dir / "saved_model"
        if "savedmodel" in config.export_formats:
            export.export_saved_model(best_model, folder, meta,
                                      postprocess_json=run_dir / "postprocess.json")
        if "onnx" in config.export_formats:
            export.export_onnx(best_model, folder, meta,
                               postprocess_json=run_dir / "postprocess.json")
    return best_model, report, extra


def config_from_flags(flag_values) -> TrainConfig:
    """Maps parsed absl flags onto a TrainConfig (only main() calls this)."""
    return settings.from_flags(TrainConfig, flag_values)


def define_flags(flag_values=None) -> None:
    """Defines the CLI's flags: one per TrainConfig field (`settings`), the face
    flags shared with preprocess and predict, the network's options; all key
    flags of this module (those --help lists). In `flag_values` where given
    (`cli.call`), else in absl's global FLAGS."""
    from absl import flags

    where = flags.FLAGS if flag_values is None else flag_values
    settings.define_flags(TrainConfig, flag_values=where)
    for name in sorted(settings.flag_names(TrainConfig)):
        flags.declare_key_flag(name, flag_values=where)


def main(argv: Sequence[str], flag_values=None) -> int:
    """The CLI: `argv` is what flag parsing left (program name first),
    `flag_values` the parsed flags (default: absl's global FLAGS)."""
    from absl import flags, logging

    FLAGS = flags.FLAGS if flag_values is None else flag_values
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
    for line in summary_lines(results):
        print(line)
    if "attention_regions" in results:
        from recola_sta.analysis import attention_analysis

        print(attention_analysis.format_summary(results["attention_regions"]))
    print(f"Wall time {results['wall_time_s']['total']:.0f} s.")
