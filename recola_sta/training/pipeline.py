"""tf.data input pipelines over the preprocess cache (paper, section 3.1).

Training: each recording's 4 fps samples are cut into consecutive,
non-overlapping clips of `frames` samples (16 in the paper: 4 s); a
recording's last incomplete clip is dropped. Clips are decoded once and kept
in memory (`cache()`), shuffled over the whole training set each epoch,
augmented at random with one parameter set per clip (the same flip and colour
change for all its frames, so augmentation never creates motion), batched and
prefetched. `train_dataset` is one such epoch; `train_epochs`, which `train`
uses, streams them one after another, each epoch's order and augmentation
drawn from (seed, epoch) alone, so a resumed run can start at any epoch.

Evaluation: every sample of one recording, in time order, in clips of
`frames`; the last clip is padded by repeating its last frame, with weight 0
on the padding, so clip `i`, frame `j` is sample `i * frames + j`.

Both yield `(clips, labels, weights)`:

* `clips`: float32 (B, T, S, S, 3), RGB in [0, 1];
* `labels`: float32 (B, T, 1), the label at each sample's time (0 where
  unknown); (B, T, K) for K targets (`target=("valence", "arousal")`), in
  that order;
* `weights`: float32 (B, T), 1 for frames that count in the loss, 0 where the
  face was not found, the label is NaN (unlabeled) or the frame is padding;
  for K > 1 targets (B, T, K), per target, so a frame that lacks one label
  and has the other is masked for the missing one only.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from typing import Sequence

import numpy as np
import tensorflow as tf

from recola_sta import cache
from recola_sta.clips import clip_frame_index
from recola_sta.model import layers
from recola_sta.cache import shards
from recola_sta.data.corpora import PARTITIONS
from recola_sta.targets import as_targets

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Ranges of the per-clip random augmentation (paper: "flips, contrast,
    and color changes"; the ranges are ours, BUILD_NOTES.md explains them).

    Each clip draws one value per field, uniformly in the range, and applies
    it to all its frames, in this order: horizontal flip, brightness,
    contrast, saturation, hue; the result is clipped to [0, 1].

    Attributes:
        flip_probability: chance of mirroring the clip left-right.
        max_brightness: brightness offset in [-max, max] (pixel values in [0, 1]).
        contrast: range of the contrast factor about the clip's mean colour.
        saturation: range of the factor scaling the chroma (YIQ's I and Q);
            0 gives grey.
        max_hue: rotation of the chroma about the luma axis in [-max, max],
            as a fraction of a full turn.
    """

    flip_probability: float = 0.5
    max_brightness: float = 0.1
    contrast: tuple[float, float] = (0.8, 1.25)
    saturation: tuple[float, float] = (0.8, 1.25)
    max_hue: float = 0.03

    def __post_init__(self):
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be in [0, 1]. Received: {self.flip_probability}")
        for name in ("contrast", "saturation"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi:
                raise ValueError(f"{name} must be a range 0 <= lo <= hi. Received: {(lo, hi)}")
        if not 0.0 <= self.max_hue <= 0.5 or self.max_brightness < 0.0:
            raise ValueError(
                f"max_hue must be in [0, 0.5] and max_brightness >= 0. Received: "
                f"max_hue={self.max_hue}, max_brightness={self.max_brightness}"
            )


def augment_clip(clip: tf.Tensor, seed: tf.Tensor, params: Augmentation = Augmentation()) -> tf.Tensor:
    """Applies one random flip and colour change to every frame of a clip.

    Draws the parameters from `seed` and applies `layers.apply_augmentation`
    (the mapping `layers.ClipAugmentation` applies inside the model): the
    same pixel-value mapping for every frame.

    Args:
        clip: float32 (T, H, W, 3) in [0, 1], or uint8 (T, H, W, 3) (the
            conversion to [0, 1] is then folded into the colour matrix).
        seed: int (2,) stateless seed; equal seeds give equal augmentations.
        params: ranges to draw from.

    Returns:
        The augmented clip, float32 (T, H, W, 3) in [0, 1].
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)

    def uniform(k: int, lo: float, hi: float) -> tf.Tensor:
        return tf.random.stateless_uniform([], seeds[k], lo, hi)

    return layers.apply_augmentation(
        clip,
        flip=uniform(0, 0.0, 1.0) < params.flip_probability,
        brightness=uniform(1, -params.max_brightness, params.max_brightness),
        contrast=uniform(2, *params.contrast),
        saturation=uniform(3, *params.saturation),
        angle=2.0 * math.pi * uniform(4, -params.max_hue, params.max_hue),
    )


def _select_entries(
    manifest: cache.Manifest, cache_dir: pathlib.Path, partitions: Sequence[str],
    targets: tuple[str, ...]
) -> list[cache.CacheEntry]:
    if isinstance(partitions, str):
        partitions = (partitions,)
    unknown = [p for p in partitions if p not in PARTITIONS]
    if unknown or not partitions:
        raise ValueError(f"partitions must be a non-empty subset of {PARTITIONS}. Received: {partitions}")
    entries = [e for p in partitions for e in manifest.partition(p)]
    if not entries:
        raise ValueError(
            f"The cache {cache_dir} has no recordings in partitions {tuple(partitions)} "
            f"(it has: {sorted({e.partition for e in manifest.entries})})."
        )
    _check_targets(manifest, cache_dir, targets)
    for target in targets:
        lacking = [e.name for e in entries if target not in e.targets]
        if lacking:
            raise ValueError(
                f"Target {target!r} is not stored for recordings {lacking} of the cache "
                f"{cache_dir}."
            )
    return entries


def _check_targets(manifest: cache.Manifest, cache_dir: pathlib.Path,
                   targets: tuple[str, ...]) -> None:
    known = sorted({t for e in manifest.entries for t in e.targets})
    for target in targets:
        if target not in known:
            raise ValueError(f"Unknown target {target!r}: the cache {cache_dir} stores {known}.")


def _shard_file(cache_dir: pathlib.Path, entry: cache.CacheEntry) -> str:
    path = cache_dir / entry.shard
    if not path.is_file():
        raise FileNotFoundError(
            f"Shard {path} of recording {entry.name!r} is missing; re-run preprocess."
        )
    return str(path)


def _check_sizes(frames: int, batch_size: int) -> None:
    if frames < 1:
        raise ValueError(f"frames must be >= 1. Received: frames={frames}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")


def _parse_fn(stored: list[str], targets: tuple[str, ...]):
    """Serialized sample -> (image uint8, labels float32 (K,), found bool);
    a target the recording does not store is NaN (unlabeled)."""

    def parse(serialized: tf.Tensor):
        sample = shards.parse_example(serialized, stored)
        labels = tf.stack([sample[t] if t in stored else tf.constant(math.nan, tf.float32)
                           for t in targets])
        return sample["image"], labels, sample["found"]

    return parse


def _to_clip(images: tf.Tensor, labels: tf.Tensor, found: tf.Tensor):
    """(T,...) samples -> (uint8 clip, labels (T, K) with NaN -> 0, weights).

    Weights are (T,) for one target (as the single-target models were
    trained) and (T, K) for several: 0 where the face was not found or that
    target's label is missing.
    """
    known = tf.math.is_finite(labels)
    weights = tf.cast(tf.logical_and(found[:, None], known), tf.float32)
    labels = tf.where(known, labels, tf.zeros_like(labels))
    if labels.shape[-1] == 1:
        weights = weights[:, 0]
    return images, labels, weights


def _weights_shape(frames: int, targets: tuple[str, ...]) -> list[int]:
    return [frames] if len(targets) == 1 else [frames, len(targets)]


def _to_float(images: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor):
    return tf.image.convert_image_dtype(images, tf.float32), labels, weights


def num_clips(manifest: cache.Manifest, partitions: Sequence[str], frames: int) -> int:
    """Training clips per epoch: whole clips of `frames` samples per recording."""
    if isinstance(partitions, str):
        partitions = (partitions,)
    return sum(e.num_samples // frames for p in partitions for e in manifest.partition(p))


def train_steps_per_epoch(
    manifest: cache.Manifest,
    partitions: Sequence[str] = ("train",),
    frames: int = 16,
    batch_size: int = 16,
    drop_remainder: bool = False,
) -> int:
    """Batches per epoch that `train_dataset` yields with the same arguments."""
    _check_sizes(frames, batch_size)
    n = num_clips(manifest, partitions, frames)
    return n // batch_size if drop_remainder else -(-n // batch_size)


@dataclasses.dataclass(frozen=True)
class _TrainingClips:
    """What `train_dataset` and `train_epochs` read: the training shards and
    how to turn them into uint8 clips."""

    files: list[str]
    total: int  # whole clips over all the shards
    frames: int
    size: int
    targets: tuple[str, ...]

    def read(self, files: tf.data.Dataset, deterministic: bool) -> tf.data.Dataset:
        """The clips of `files` (paths), interleaved over the shards."""
        frames, size, targets = self.frames, self.size, self.targets
        parse = _parse_fn(list(targets), targets)

        def clips_of_shard(path: tf.Tensor) -> tf.data.Dataset:
            # The order of a recording's samples is the order of its frames:
            # this map stays deterministic whatever `deterministic` says.
            return (
                tf.data.TFRecordDataset(path)
                .map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)
                .batch(frames, drop_remainder=True)
                .map(_to_clip)
            )

        ds = files.interleave(
            clips_of_shard,
            cycle_length=min(len(self.files), 8),
            num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
        return ds.map(
            lambda x, y, w: (
                tf.ensure_shape(x, [frames, size, size, 3]),
                tf.ensure_shape(y, [frames, len(targets)]),
                tf.ensure_shape(w, _weights_shape(frames, targets)),
            )
        )

    def shuffle_buffer(self, cache_in_memory: bool) -> int:
        # A buffer of the whole set is a uniform permutation per epoch; clips
        # are small (T x S x S x 3 uint8), so the set fits where the cache does.
        return self.total if cache_in_memory else min(self.total, 1024)


def _training_clips(cache_dir: pathlib.Path, partitions: Sequence[str],
                    target: str | Sequence[str], frames: int,
                    batch_size: int) -> _TrainingClips:
    """Checks the arguments and the cache; the training shards to read."""
    _check_sizes(frames, batch_size)
    manifest = cache.read_manifest(cache_dir)
    targets = as_targets(target)
    entries = _select_entries(manifest, cache_dir, partitions, targets)
    total = sum(e.num_samples // frames for e in entries)
    if total == 0:
        longest = max(e.num_samples for e in entries)
        raise ValueError(
            f"No clip of {frames} samples in partitions {tuple(partitions)} of the cache "
            f"{cache_dir}: the longest recording has {longest} samples."
        )
    files = [_shard_file(cache_dir, e) for e in entries if e.num_samples >= frames]
    return _TrainingClips(files, total, frames, manifest.face.size, targets)


def _augment_and_batch(ds: tf.data.Dataset, seeds: tf.data.Dataset | None,
                       params: Augmentation, batch_size: int, drop_remainder: bool,
                       deterministic: bool) -> tf.data.Dataset:
    """uint8 clips -> float batches, each clip augmented with its seed from
    `seeds` (int64 pairs; None: no augmentation)."""
    if seeds is not None:
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda clip, s: (augment_clip(clip[0], s, params), clip[1], clip[2]),
            num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
    else:
        ds = ds.map(_to_float, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return ds.batch(batch_size, drop_remainder=drop_remainder)


def _with_determinism(ds: tf.data.Dataset, deterministic: bool) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.prefetch(AUTOTUNE).with_options(options)


def train_dataset(
    cache_dir: str | os.PathLike,
    *,
    partitions: Sequence[str] = ("train",),
    target: str | Sequence[str] = "valence",
    frames: int = 16,
    batch_size: int = 16,
    augment: bool = True,
    shuffle: bool = True,
    seed: int | None = None,
    deterministic: bool = False,
    augmentation: Augmentation | None = None,
    drop_remainder: bool = False,
    cache_in_memory: bool = True,
) -> tf.data.Dataset:
    """Batches of non-overlapping training clips from the preprocess cache.

    Args:
        cache_dir: preprocess cache folder (`manifest.json` + shards).
        partitions: partitions whose recordings are used.
        target: label dimension (`"valence"`, `"arousal"`, ...), or a
            sequence of them (labels (B, T, K), weights per target).
        frames: samples per clip T (16 in the paper).
        batch_size: clips per batch.
        augment: apply `augmentation` (random, per clip).
        shuffle: shuffle clips over the whole set each epoch.
        seed: seed of shuffling and augmentation; with `deterministic` (or
            any fixed seed and `deterministic`), two datasets built alike
            yield identical batches, epoch after epoch.
        deterministic: keep tf.data's element order reproducible (slower
            parallel reads); seed 0 when `seed` is None.
        augmentation: ranges of the augmentation (defaults: `Augmentation()`).
        drop_remainder: drop the last incomplete batch of each epoch.
        cache_in_memory: keep the decoded uint8 clips in memory after the
            first epoch (decode once); turn off for caches that do not fit.

    Returns:
        A `tf.data.Dataset` of one epoch of `(clips, labels, weights)`, see
        the module docstring; repeat it (or call `fit` per epoch) for more.
        Each repetition draws its order and augmentation from generators
        that run on from the previous one: a run that starts again at a
        later epoch should use `train_epochs`.

    Raises:
        FileNotFoundError: the cache or a shard is missing.
        ValueError: unknown partition or target, bad sizes, no clips.
    """
    cache_dir = pathlib.Path(cache_dir)
    clips = _training_clips(cache_dir, partitions, target, frames, batch_size)
    if deterministic and seed is None:
        seed = 0
    shuffle_seed = None if seed is None else seed
    augment_seed = None if seed is None else seed + 1
    files = tf.data.Dataset.from_tensor_slices(clips.files)
    if shuffle and not cache_in_memory:
        files = files.shuffle(len(clips.files), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = clips.read(files, deterministic)
    if cache_in_memory:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(clips.shuffle_buffer(cache_in_memory), seed=shuffle_seed,
                        reshuffle_each_iteration=True)
    seeds = (tf.data.Dataset.random(seed=augment_seed, rerandomize_each_iteration=True).batch(2)
             if augment else None)
    ds = _augment_and_batch(ds, seeds, augmentation or Augmentation(), batch_size,
                            drop_remainder, deterministic)
    return _with_determinism(ds, deterministic)


def epoch_seeds(seed: int | tf.Tensor, epoch: int | tf.Tensor) -> tf.Tensor:
    """The int64 seeds of one training epoch of `train_epochs`: the order of
    the shards, the order of the clips, and the augmentation's; a function of
    (`seed`, `epoch`) alone (Philox, the same on every device)."""
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.stateless_uniform([3], key, minval=None, maxval=None, dtype=tf.int64,
                                       alg="philox")


def train_epochs(
    cache_dir: str | os.PathLike,
    *,
    first_epoch: int = 0,
    skip_batches: int = 0,
    partitions: Sequence[str] = ("train",),
    target: str | Sequence[str] = "valence",
    frames: int = 16,
    batch_size: int = 16,
    augment: bool = True,
    seed: int = 0,
    deterministic: bool = False,
    augmentation: Augmentation | None = None,
    drop_remainder: bool = False,
    cache_in_memory: bool = True,
) -> tf.data.Dataset:
    """Shuffled training batches epoch after epoch, from `first_epoch` on, without end.

    Epoch `e` is one pass over the training clips, as `train_dataset` yields
    it, whose clip order and augmentation are drawn from seeds of (`seed`,
    `e`) alone (`epoch_seeds`), not from generators that ran through the
    earlier epochs. A run stopped after epoch k and started again with
    `first_epoch=k` therefore gets the batches an uninterrupted run gets from
    epoch k on; with `deterministic` (a fixed element order) they are equal
    bit for bit.

    Args:
        cache_dir: preprocess cache folder.
        first_epoch: the pass to start with (0-based).
        skip_batches: batches of that pass to leave out first (a run whose
            epochs are capped shorter than a pass resumes inside one).
        seed: the run's seed.
        partitions, target, frames, batch_size, augment, deterministic,
            augmentation, drop_remainder, cache_in_memory: as for
            `train_dataset` (clips are always shuffled).

    Returns:
        An infinite `tf.data.Dataset` of `(clips, labels, weights)` batches;
        every pass has `train_steps_per_epoch` batches (the last one of a
        pass may be short unless `drop_remainder`).

    Raises:
        FileNotFoundError: the cache or a shard is missing.
        ValueError: unknown partition or target, bad sizes, no clips, a
            negative `first_epoch` or `skip_batches`.
    """
    if first_epoch < 0 or skip_batches < 0:
        raise ValueError(f"first_epoch and skip_batches must be >= 0. Received: "
                         f"first_epoch={first_epoch}, skip_batches={skip_batches}")
    cache_dir = pathlib.Path(cache_dir)
    clips = _training_clips(cache_dir, partitions, target, frames, batch_size)
    params = augmentation or Augmentation()
    files = tf.data.Dataset.from_tensor_slices(clips.files)
    # Decoded once, kept in memory, and shared by every pass.
    cached = clips.read(files, deterministic).cache() if cache_in_memory else None
    buffer = clips.shuffle_buffer(cache_in_memory)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        # This function's graph takes no graph-level seed: the epoch's seeds
        # below are whole, and `shuffle` would compare a graph seed of 0
        # (keras.utils.set_random_seed(0)) with the seed tensor in Python.
        tf.random.set_seed(None)
        seeds = epoch_seeds(seed, epoch)
        if cached is None:
            ds = clips.read(files.shuffle(len(clips.files), seed=seeds[0]), deterministic)
        else:
            ds = cached
        ds = ds.shuffle(buffer, seed=seeds[1])
        clip_seeds = None
        if augment:  # clip i of the epoch: (the epoch's augmentation seed, i)
            clip_seeds = tf.data.Dataset.range(clips.total).map(
                lambda i: tf.stack([seeds[2], i]))
        return _augment_and_batch(ds, clip_seeds, params, batch_size, drop_remainder,
                                  deterministic)

    ds = tf.data.Dataset.range(first_epoch, tf.int64.max).flat_map(one_epoch)
    if skip_batches:
        ds = ds.skip(skip_batches)
    return _with_determinism(ds, deterministic)


def _complete_clip_fn(frames: int, size: int, targets: tuple[str, ...]):
    """The step of `eval_dataset` that turns the k <= `frames` samples of one
    clip into a whole clip: images completed as `clip_frame_index` completes
    a recording's last clip (the last frame repeated), labels 0 and weights 0
    on the padding."""
    # Row k - 1: the frames of a clip of k samples.
    index = tf.constant(np.concatenate([clip_frame_index(k, frames) for k in range(1, frames + 1)]))

    def pad(images: tf.Tensor, labels: tf.Tensor, found: tf.Tensor):
        images, labels, weights = _to_clip(images, labels, found)
        count = tf.shape(images)[0]
        missing = frames - count
        images = tf.gather(images, index[count - 1])
        labels = tf.pad(labels, [[0, missing], [0, 0]])
        weights = tf.pad(weights, [[0, missing]] + [[0, 0]] * (len(weights.shape) - 1))
        return (
            tf.ensure_shape(images, [frames, size, size, 3]),
            tf.ensure_shape(labels, [frames, len(targets)]),
            tf.ensure_shape(weights, _weights_shape(frames, targets)),
        )

    return pad


def eval_dataset(
    cache_dir: str | os.PathLike,
    entry: cache.CacheEntry | str,
    *,
    target: str | Sequence[str] = "valence",
    frames: int = 16,
    batch_size: int = 16,
) -> tf.data.Dataset:
    """Every sample of one recording, in time order, as padded clips.

    The last clip is completed by repeating the recording's last frame (black
    padding would shift the model's per-clip standardisation of the real
    frames), with label 0 and weight 0. Clip `i`, frame `j` is sample
    `i * frames + j`; there are `ceil(entry.num_samples / frames)` clips.

    Args:
        cache_dir: preprocess cache folder.
        entry: the recording's `cache.CacheEntry`, or its name.
        target: label dimension, or a sequence of them (as for
            `train_dataset`); a recording stored without one (unlabeled)
            gets label 0 and weight 0 for it everywhere, ready for prediction.
        frames: samples per clip T.
        batch_size: clips per batch.

    Raises:
        FileNotFoundError: the cache or the shard is missing.
        ValueError: unknown target (stored for no recording of the cache),
            empty recording, bad sizes.
    """
    _check_sizes(frames, batch_size)
    cache_dir = pathlib.Path(cache_dir)
    manifest = cache.read_manifest(cache_dir)
    if isinstance(entry, str):
        entry = manifest.entry(entry)
    targets = as_targets(target)
    _check_targets(manifest, cache_dir, targets)
    if entry.num_samples == 0:
        raise ValueError(f"Recording {entry.name!r} of the cache {cache_dir} has no samples.")
    path = _shard_file(cache_dir, entry)
    parse = _parse_fn(list(entry.targets), targets)
    pad = _complete_clip_fn(frames, manifest.face.size, targets)
    ds = (
        tf.data.TFRecordDataset(path)
        .map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)
        .batch(frames)
        .map(pad)
        .map(_to_float, num_parallel_calls=AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(AUTOTUNE)
    )
    return ds
