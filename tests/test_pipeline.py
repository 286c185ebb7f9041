"""Tests for recola_sta.pipeline on caches built from synthetic arrays."""

from __future__ import annotations

import dataclasses
import math
import pathlib
import types

import numpy as np
import pytest
import tensorflow as tf

from recola_sta import cache, clips
from recola_sta.training import pipeline
from recola_sta.cache import shards
from recola_sta.faces.settings import FaceSettings

S = 16  # crop side
BAND = 4  # width of the white band that marks the crop's left side


def _label(rid: int, idx: np.ndarray) -> np.ndarray:
    return np.sin(0.3 * idx + rid).astype(np.float32)


def _crops(rid: int, n: int) -> np.ndarray:
    """Asymmetric crops (white band on the left) whose pixels encode (rid, index)."""
    crops = np.full((n, S, S, 3), 60, np.uint8)
    crops[:, :, :BAND] = 255
    crops[:, S // 2:, S // 2:, 0] = np.arange(n, dtype=np.uint8)[:, None, None]
    crops[:, S // 2:, S // 2:, 2] = 10 * rid
    return crops


def _build_cache(root: pathlib.Path, recordings, targets=("valence",)) -> pathlib.Path:
    """recordings: (name, partition, n, not_found indices, NaN-label indices) tuples."""
    entries = []
    for rid, (name, partition, n, missing, unlabeled) in enumerate(recordings):
        found = np.ones(n, bool)
        found[list(missing)] = False
        values = _label(rid, np.arange(n))
        values[list(unlabeled)] = np.nan
        track = types.SimpleNamespace(times=np.arange(n) * 0.25, crops=_crops(rid, n), found=found)
        shard = cache.shard_path(partition, name)
        shards.write_shard(root / shard, track, {t: values for t in targets})
        entries.append(cache.CacheEntry(name=name, partition=partition, shard=shard, num_samples=n,
                                        found_rate=float(found.mean()), video=f"{name}.mp4",
                                        targets=list(targets)))
    cache.write_manifest(root, cache.Manifest(corpus_root="corpus", corpus_kind="synthetic",
                                              face=FaceSettings(size=S), fps=4.0, entries=entries))
    return root


RECORDINGS = [
    ("train_1", "train", 35, {3, 17}, {20}),
    ("train_2", "train", 24, set(), set()),
    ("dev_1", "dev", 13, {12}, set()),
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return _build_cache(tmp_path_factory.mktemp("cache"), RECORDINGS)


def _decode(clip: np.ndarray) -> tuple[int, np.ndarray]:
    """(rid, sample indices) encoded in an unaugmented float clip."""
    idx = np.round(clip[:, -1, -1, 0] * 255).astype(int)
    rid = int(round(clip[0, -1, -1, 2] * 255)) // 10
    return rid, idx


def _all(ds: tf.data.Dataset):
    xs, ys, ws = zip(*[(x, y, w) for x, y, w in ds.as_numpy_iterator()])
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def test_train_clips_are_non_overlapping_with_labels_at_their_samples(cache_dir):
    ds = pipeline.train_dataset(cache_dir, frames=8, batch_size=3, augment=False, shuffle=False,
                                deterministic=True)
    spec = ds.element_spec
    assert spec[0].shape.as_list() == [None, 8, S, S, 3] and spec[0].dtype == tf.float32
    assert spec[1].shape.as_list() == [None, 8, 1] and spec[2].shape.as_list() == [None, 8]
    x, y, w = _all(ds)
    assert x.min() >= 0.0 and x.max() <= 1.0
    seen = set()
    for clip, labels, weights in zip(x, y, w):
        rid, idx = _decode(clip)
        name, _, n, missing, unlabeled = RECORDINGS[rid]
        assert idx[0] % 8 == 0 and np.array_equal(idx, idx[0] + np.arange(8))
        assert idx[-1] < n
        expected = _label(rid, idx)
        bad = np.array([i in missing or i in unlabeled for i in idx])
        np.testing.assert_allclose(labels[:, 0], np.where(np.isin(idx, list(unlabeled)), 0.0, expected),
                                   atol=1e-6)
        np.testing.assert_array_equal(weights, (~bad).astype(np.float32))
        seen.add((name, idx[0]))
    # Whole clips of the two training recordings, each once; remainders dropped.
    assert seen == {("train_1", s) for s in (0, 8, 16, 24)} | {("train_2", s) for s in (0, 8, 16)}
    manifest = cache.read_manifest(cache_dir)
    assert pipeline.train_steps_per_epoch(manifest, ("train",), 8, 3) == math.ceil(7 / 3)
    assert len(list(ds)) == 3


def test_augmentation_is_the_same_for_every_frame_of_a_clip(tmp_path):
    # All frames of this recording are the same image: after a clip-consistent
    # augmentation the frames of a clip must still be identical.
    root = _build_cache(tmp_path, [("train_1", "train", 120, set(), set())])
    shard = root / "train" / "train_1.tfrecord"
    track = types.SimpleNamespace(times=np.arange(120) * 0.25,
                                  crops=np.repeat(_crops(0, 1), 120, axis=0),
                                  found=np.ones(120, bool))
    shards.write_shard(shard, track, {"valence": np.zeros(120, np.float32)})
    ds = pipeline.train_dataset(root, frames=4, batch_size=8, seed=3, deterministic=True)
    x, _, _ = _all(ds)
    assert x.shape == (30, 4, S, S, 3)
    original = _crops(0, 1)[0].astype(np.float32) / 255.0
    flipped = []
    for clip in x:
        np.testing.assert_allclose(clip, np.broadcast_to(clip[:1], clip.shape), atol=1e-6)
        left, right = clip[0, :, :BAND].mean(), clip[0, :, -BAND:].mean()
        assert abs(left - right) > 0.2  # the band survives the colour change
        flipped.append(right > left)
        # Flips never move the band anywhere else.
        ref = original[:, ::-1] if right > left else original
        assert np.corrcoef(clip[0].mean(-1).ravel(), ref.mean(-1).ravel())[0, 1] > 0.9
    assert 0 < sum(flipped) < len(flipped)
    # Colours change from clip to clip.
    assert np.std([clip[0, 0, -1].mean() for clip in x]) > 0.01


def test_seeded_deterministic_pipeline_is_reproducible(cache_dir):
    def epochs(seed):
        ds = pipeline.train_dataset(cache_dir, frames=8, batch_size=4, seed=seed, deterministic=True)
        return [_all(ds)[0] for _ in range(2)]

    a, b, c = epochs(5), epochs(5), epochs(6)
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(a[0], a[1])  # reshuffled / re-augmented each epoch
    assert not np.array_equal(a[0], c[0])


def test_train_epochs_draw_each_epoch_from_the_seed_and_the_epoch_alone(cache_dir):
    """A stream started at a later epoch, or inside one, yields what the
    stream from epoch 0 yields there: a resumed run trains on the batches of
    the uninterrupted one."""
    manifest = cache.read_manifest(cache_dir)
    steps = pipeline.train_steps_per_epoch(manifest, frames=8, batch_size=4)

    def batches(n, **kwargs):
        ds = pipeline.train_epochs(cache_dir, frames=8, batch_size=4, deterministic=True,
                                   **{"seed": 5, **kwargs})
        return [x for x, _, _ in ds.take(n).as_numpy_iterator()]

    tf.random.set_seed(0)  # as keras.utils.set_random_seed(0) leaves a training process
    try:
        full = batches(3 * steps)
        for later, start in ((batches(2 * steps, first_epoch=1), steps),
                             (batches(steps, first_epoch=1, skip_batches=1), steps + 1)):
            for a, b in zip(later, full[start:], strict=False):
                np.testing.assert_array_equal(a, b)
    finally:
        tf.random.set_seed(None)
    assert not np.array_equal(full[0], full[steps])  # each epoch its own order and draws
    assert not np.array_equal(full[0], batches(1, seed=6)[0])


def test_eval_dataset_yields_every_sample_in_order(cache_dir):
    ds = pipeline.eval_dataset(cache_dir, "train_1", frames=8, batch_size=2)
    x, y, w = _all(ds)
    assert x.shape == (5, 8, S, S, 3)
    n, missing, unlabeled = 35, {3, 17}, {20}
    idx = np.concatenate([_decode(clip)[1] for clip in x])
    np.testing.assert_array_equal(idx[:n], np.arange(n))
    np.testing.assert_array_equal(idx[n:], n - 1)  # padded with the last frame
    expected = _label(0, np.arange(n))
    expected[list(unlabeled)] = 0.0
    np.testing.assert_allclose(y.reshape(-1)[:n], expected, atol=1e-6)
    np.testing.assert_array_equal(y.reshape(-1)[n:], 0.0)
    weights = w.reshape(-1)
    assert weights[n:].sum() == 0 and weights[:n].sum() == n - len(missing) - len(unlabeled)
    assert all(weights[i] == 0 for i in missing | unlabeled)
    # Same result from the entry object, and stable across iterations.
    entry = cache.read_manifest(cache_dir).entry("train_1")
    x2, _, _ = _all(pipeline.eval_dataset(cache_dir, entry, frames=8, batch_size=3))
    np.testing.assert_array_equal(x, x2)



@pytest.mark.parametrize("name", ["train_1", "train_2", "dev_1"])
def test_eval_dataset_pads_like_clips_split_into_clips(cache_dir, name):
    """The two padding implementations agree: tf.data (`eval_dataset`, used in
    training) and NumPy (`clips.predict_clips`, used by evaluate/predict) feed
    a model the same clips, batch by batch, and the tf.data weights are 0
    exactly on the samples NumPy drops again (padding) and where no face was
    found or the label is unknown."""
    frames, batch_size = 8, 2
    entry = cache.read_manifest(cache_dir).entry(name)
    recording = shards.load_entry(cache_dir, entry)
    fed = []

    def predict_fn(batch):
        fed.append(batch)
        return {"value": np.zeros(batch.shape[:2], np.float32)}

    clips.predict_clips(predict_fn, recording.crops, frames, batch_size)
    batches = list(pipeline.eval_dataset(cache_dir, entry, frames=frames,
                                         batch_size=batch_size).as_numpy_iterator())
    assert len(batches) == len(fed)
    for (x, _, _), numpy_batch in zip(batches, fed):
        assert x.dtype == numpy_batch.dtype == np.float32 and x.shape == numpy_batch.shape
        # Same pixels; the float scaling differs by at most an ulp
        # (tf.image.convert_image_dtype multiplies by 1/255, NumPy divides).
        np.testing.assert_array_equal(np.round(x * 255), np.round(numpy_batch * 255))
        np.testing.assert_allclose(x, numpy_batch, rtol=2e-7, atol=0)
    padded = clips.split_into_clips(recording.crops, frames)
    np.testing.assert_array_equal(
        np.round(np.concatenate([x for x, _, _ in batches]) * 255).astype(np.uint8), padded)
    weights = np.concatenate([w for _, _, w in batches]).reshape(-1)
    n = entry.num_samples
    kept = recording.found & np.isfinite(recording.targets["valence"])
    np.testing.assert_array_equal(weights, np.concatenate([kept, np.zeros(len(weights) - n)]))


def test_eval_dataset_of_recording_without_the_target(tmp_path):
    root = _build_cache(tmp_path / "a", [("train_1", "train", 9, set(), set())])
    manifest = cache.read_manifest(root)
    track = types.SimpleNamespace(times=np.arange(5) * 0.25, crops=_crops(0, 5), found=np.ones(5, bool))
    shards.write_shard(root / "test" / "test_1.tfrecord", track, {})
    manifest.entries.append(cache.CacheEntry("test_1", "test", "test/test_1.tfrecord", 5, 1.0,
                                             "test_1.mp4", []))
    cache.write_manifest(root, manifest)
    x, y, w = _all(pipeline.eval_dataset(root, "test_1", frames=4))
    assert x.shape == (2, 4, S, S, 3) and not w.any() and not y.any()


def test_errors_are_clear(cache_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="No preprocess cache"):
        pipeline.train_dataset(tmp_path / "none")
    with pytest.raises(ValueError, match=r"Unknown target 'dominance'.*\['valence'\]"):
        pipeline.train_dataset(cache_dir, target="dominance")
    with pytest.raises(ValueError, match=r"Unknown target 'arousal'"):
        pipeline.eval_dataset(cache_dir, "dev_1", target="arousal")
    with pytest.raises(ValueError, match=r"no recordings in partitions \('test',\)"):
        pipeline.train_dataset(cache_dir, partitions=("test",))
    with pytest.raises(ValueError, match=r"partitions must be"):
        pipeline.train_dataset(cache_dir, partitions=("training",))
    with pytest.raises(ValueError, match=r"No clip of 64 samples .* longest recording has 35"):
        pipeline.train_dataset(cache_dir, frames=64)
    with pytest.raises(ValueError, match=r"frames must be >= 1"):
        pipeline.eval_dataset(cache_dir, "dev_1", frames=0)
    broken = _build_cache(tmp_path / "broken", RECORDINGS[:1])
    (broken / "train" / "train_1.tfrecord").unlink()
    with pytest.raises(FileNotFoundError, match=r"train_1\.tfrecord"):
        pipeline.train_dataset(broken)


def test_colour_augmentation_math():
    rng = np.random.default_rng(0)
    clip = tf.constant(rng.uniform(0.2, 0.8, (3, 5, 5, 3)), tf.float32)
    seed = tf.constant([1, 2], tf.int64)
    identity = pipeline.Augmentation(flip_probability=0.0, max_brightness=0.0, contrast=(1, 1),
                                     saturation=(1, 1), max_hue=0.0)
    np.testing.assert_allclose(pipeline.augment_clip(clip, seed, identity), clip, atol=1e-5)
    grey = pipeline.augment_clip(clip, seed, dataclasses.replace(identity, saturation=(0, 0)))
    luma = np.tensordot(clip.numpy(), [0.299, 0.587, 0.114], axes=1)
    np.testing.assert_allclose(grey, np.repeat(luma[..., None], 3, -1), atol=1e-4)
    flat = pipeline.augment_clip(clip, seed, dataclasses.replace(identity, contrast=(0, 0)))
    np.testing.assert_allclose(flat, np.broadcast_to(clip.numpy().mean((0, 1, 2)), clip.shape),
                               atol=1e-5)
    flipped = pipeline.augment_clip(clip, seed, dataclasses.replace(identity, flip_probability=1.0))
    np.testing.assert_allclose(flipped, clip.numpy()[:, :, ::-1], atol=1e-5)
    with pytest.raises(ValueError, match="contrast must be a range"):
        pipeline.Augmentation(contrast=(1.2, 0.8))


def test_default_training_pipeline_covers_the_epoch(cache_dir):
    ds = pipeline.train_dataset(cache_dir, frames=8, batch_size=4, partitions=["train", "dev"])
    x, y, w = _all(ds)
    assert x.shape == (8, 8, S, S, 3)  # 4 + 3 training clips + 1 dev clip
    assert np.isfinite(x).all() and np.isfinite(y).all() and 0.0 <= x.min() and x.max() <= 1.0
    # No face at train_1 samples 3 and 17, NaN label at 20 (dev_1 sample 12 is dropped).
    assert w.sum() == 8 * 8 - 3


def _complete_clip_before(images, labels, weights, frames):
    """eval_dataset's padding before it gathered with clips.clip_frame_index."""
    missing = frames - tf.shape(images)[0]
    images = tf.concat([images, tf.repeat(images[-1:], missing, axis=0)], axis=0)
    labels = tf.pad(labels, [[0, missing], [0, 0]])
    weights = tf.pad(weights, [[0, missing]] + [[0, 0]] * (len(weights.shape) - 1))
    return images, labels, weights


@pytest.mark.parametrize("targets", [("valence",), ("valence", "arousal")])
def test_eval_clips_are_completed_as_before(targets):
    frames = 5
    complete = tf.function(pipeline._complete_clip_fn(frames, S, targets))
    rng = np.random.default_rng(0)
    for count in range(1, frames + 1):
        images = tf.constant(rng.integers(0, 256, (count, S, S, 3), dtype=np.uint8))
        labels = tf.constant(rng.normal(size=(count, len(targets))).astype(np.float32))
        found = tf.constant(rng.random(count) < 0.8)
        got = complete(images, labels, found)
        want = _complete_clip_before(*pipeline._to_clip(images, labels, found), frames)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
