"""Tests of recola_sta.cache: shards with and without landmarks."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from recola_sta import cache, faces
from recola_sta.cache import shards
from recola_sta.faces.settings import FaceSettings


def _track(n: int, size: int, with_landmarks: bool) -> faces.FaceTrack:
    rng = np.random.default_rng(0)
    found = np.array([True, False, True, True][:n])
    landmarks = None
    if with_landmarks:
        landmarks = rng.uniform(0, size, (n, 68, 2)).astype(np.float32)
        landmarks[~found] = np.nan
    return faces.FaceTrack(
        times=np.arange(n) / 4.0,
        crops=rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8),
        found=found, landmarks=landmarks,
    )


def _write(tmp_path, track, landmarks_flag):
    shards.write_shard(tmp_path / "dev" / "dev_1.tfrecord", track,
                      {"valence": np.linspace(-1, 1, len(track.times))})
    entry = cache.CacheEntry(name="dev_1", partition="dev", shard="dev/dev_1.tfrecord",
                             num_samples=len(track.times), found_rate=track.found_rate,
                             video="v.mp4", targets=["valence"], landmarks=landmarks_flag)
    cache.write_manifest(tmp_path, cache.Manifest(corpus_root="c", corpus_kind="synthetic",
                                                  face=FaceSettings(size=track.crops.shape[1]), fps=4.0,
                                                  entries=[entry]))
    return entry


def test_landmarks_round_trip(tmp_path):
    track = _track(4, 16, with_landmarks=True)
    entry = _write(tmp_path, track, True)
    rec = shards.load_entry(tmp_path, cache.read_manifest(tmp_path).entries[0])
    assert cache.read_manifest(tmp_path).entries[0].landmarks
    np.testing.assert_array_equal(rec.crops, track.crops)
    np.testing.assert_array_equal(rec.landmarks, track.landmarks)  # NaN where no face
    assert np.isnan(rec.landmarks[1]).all() and entry.landmarks


def test_a_cache_written_before_landmarks_still_loads(tmp_path):
    track = _track(4, 16, with_landmarks=False)
    _write(tmp_path, track, False)
    # Manifests of that time have no `landmarks` key at all.
    path = tmp_path / cache.MANIFEST_NAME
    payload = json.loads(path.read_text())
    del payload["entries"][0]["landmarks"]
    path.write_text(json.dumps(payload))
    entry = cache.read_manifest(tmp_path).entries[0]
    assert entry.landmarks is False
    rec = shards.load_entry(tmp_path, entry)
    assert rec.landmarks is None
    np.testing.assert_array_equal(rec.found, track.found)


def test_a_manifest_that_lists_a_name_twice_is_refused(tmp_path):
    # Caches written while a csv corpus could hold train/a.mp4 and dev/a.mp4
    # list "a" twice; readers know a recording by its name alone.
    entry = _write(tmp_path, _track(4, 16, with_landmarks=False), False)
    other = dataclasses.replace(entry, partition="train", shard="train/dev_1.tfrecord")
    cache.write_manifest(tmp_path, cache.Manifest(corpus_root="c", corpus_kind="csv",
                                                  face=FaceSettings(size=16),
                                                  fps=4.0, entries=[other, entry]))
    with pytest.raises(ValueError, match=r"manifest\.json: recording 'dev_1' is listed twice"):
        cache.read_manifest(tmp_path)
