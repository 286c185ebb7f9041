"""What a training run reads: the corpus (the synthetic one generated where
missing), its face cache (preprocessed where missing, then checked against
the run's settings) and the tf.data batches of training and validation.
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np
import tensorflow as tf

from recola_sta import cache
from recola_sta.cache import preprocess, shards
from recola_sta.data import synthetic
from recola_sta.training import distributed, pipeline
from recola_sta.training.config import TrainConfig

# Synthetic-corpus settings -> the train flag that sets them.
_SYNTHETIC_FLAGS = {
    "num_train": "synthetic_num_train", "num_dev": "synthetic_num_dev",
    "num_test": "synthetic_num_test", "duration_s": "synthetic_duration_s",
    "seed": "synthetic_seed", "preset": "synthetic_preset", "fps": "synthetic_fps",
}



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


def prepare_cache(config: TrainConfig, cache_dir: str) -> cache.Manifest:
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


def train_inputs(config: TrainConfig, manifest: cache.Manifest, cache_dir: str,
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
    return train_ds, steps_per_epoch, validation_dataset(cache_dir, manifest, config)


def validation_dataset(cache_dir: str, manifest: cache.Manifest, config: TrainConfig):
    """The dev recordings' batches, every sample once (`pipeline.eval_dataset`),
    of a declared length."""
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
