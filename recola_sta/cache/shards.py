"""The preprocess cache's shards: one TFRecord file per recording.

Layout of a cache folder::

    CACHE/manifest.json
    CACHE/<partition>/<recording>.tfrecord
    CACHE/preprocess.json        (the settings, `recola_sta.preprocess`)
    CACHE/.lock                  (held by the one run writing the folder)

Each shard holds one `tf.train.Example` per 4 fps sample, in time order, with
the features `image` (PNG bytes of the aligned face crop), `time` (seconds),
`found` (1 if a face was found), `landmarks` (the face's 68 dlib landmarks
in crop pixels, x0 y0 x1 y1 ..., NaN without a face; left out for a track
without landmarks, whose manifest entry then says `landmarks: false`) and
`target/<name>` (the label at that time, NaN where the recording is
unlabeled). A sample's number is its position in the shard. PNG keeps the
crops lossless: the synthetic valence signal is a few pixels of mouth motion.

The preprocess CLI writes this cache; the tf.data pipeline, evaluation and
training read it. Shards and the manifest are written atomically, so a file
that exists is complete. Recording names are unique in a cache (readers find
an entry by name); `read_manifest` refuses a manifest that repeats one.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import pathlib
from typing import Any, Sequence

import cv2
import numpy as np
import tensorflow as tf

from recola_sta import faces, io_utils
from recola_sta.data import corpora
from recola_sta.cache.manifest import CacheEntry, shard_path

LANDMARK_VALUES = 68 * 2  # dlib's 68 points, (x, y) each


def _float_feature(value: float) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _floats_feature(values: np.ndarray) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(values).tolist()))


def encode_png(rgb: np.ndarray) -> bytes:
    """Encodes an RGB uint8 image as PNG bytes."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"Could not PNG-encode an image of shape {rgb.shape}.")
    return buf.tobytes()


def serialize_sample(
    image: np.ndarray,
    time: float,
    found: bool,
    targets: dict[str, float],
    landmarks: np.ndarray | None = None,
) -> bytes:
    """Serializes one 4 fps sample as a `tf.train.Example`.

    `landmarks`, (68, 2) in crop pixels, is stored when given.
    """
    feature = {
        "image": _bytes_feature(encode_png(image)),
        "time": _float_feature(time),
        "found": _int_feature(bool(found)),
    }
    if landmarks is not None:
        feature["landmarks"] = _floats_feature(np.asarray(landmarks, np.float32))
    for name, value in targets.items():
        feature[f"target/{name}"] = _float_feature(value)
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString()


def write_shard(
    path: str | os.PathLike,
    track: Any,
    targets: dict[str, np.ndarray],
) -> None:
    """Writes one recording's face track and labels as a TFRecord shard.

    Args:
        path: destination `.tfrecord` file; written atomically.
        track: a `faces.FaceTrack` (`times`, `crops`, `found`, and
            `landmarks`, stored when not None).
        targets: label name -> values at `track.times` (NaN if unlabeled).

    Raises:
        OSError: ENOSPC naming `path` where the disk is full (TensorFlow
            reports it as a `ResourceExhaustedError` naming the temporary
            file); the partial file is removed.
    """
    n = len(track.times)
    if track.crops.shape[0] != n or track.found.shape[0] != n:
        raise ValueError(
            f"Face track for {path} is inconsistent: {n} times, "
            f"{track.crops.shape[0]} crops, {track.found.shape[0]} found flags."
        )
    for name, values in targets.items():
        if len(values) != n:
            raise ValueError(
                f"Target {name!r} for {path} has {len(values)} values, expected {n}."
            )
    try:
        with io_utils.atomic_path(path) as tmp:
            with tf.io.TFRecordWriter(str(tmp)) as writer:
                landmarks = getattr(track, "landmarks", None)  # None: a track without them
                for k in range(n):
                    writer.write(
                        serialize_sample(
                            track.crops[k],
                            track.times[k],
                            track.found[k],
                            {name: values[k] for name, values in targets.items()},
                            None if landmarks is None else landmarks[k],
                        )
                    )
    except tf.errors.OpError as e:
        if "No space left on device" not in str(e):
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e


def feature_spec(
    target_names: Sequence[str], landmarks: bool = False
) -> dict[str, tf.io.FixedLenFeature]:
    """The `tf.io.parse_single_example` spec of one sample."""
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "time": tf.io.FixedLenFeature([], tf.float32),
        "found": tf.io.FixedLenFeature([], tf.int64),
    }
    if landmarks:
        spec["landmarks"] = tf.io.FixedLenFeature([LANDMARK_VALUES], tf.float32)
    for name in target_names:
        spec[f"target/{name}"] = tf.io.FixedLenFeature([], tf.float32)
    return spec


def parse_example(
    serialized: tf.Tensor, target_names: Sequence[str], landmarks: bool = False
) -> dict[str, tf.Tensor]:
    """Parses and decodes one serialized sample (usable inside `tf.data`).

    Returns:
        A dict with `image` (uint8, (size, size, 3)), `time` (float32),
        `found` (bool), with `landmarks=True` also
        `landmarks` (float32, (68, 2)), and one float32 entry per target name.
    """
    parsed = tf.io.parse_single_example(serialized, feature_spec(target_names, landmarks))
    out = {
        "image": tf.io.decode_png(parsed["image"], channels=3),
        "time": parsed["time"],
        "found": tf.cast(parsed["found"], tf.bool),
    }
    if landmarks:
        out["landmarks"] = tf.reshape(parsed["landmarks"], (LANDMARK_VALUES // 2, 2))
    for name in target_names:
        out[name] = parsed[f"target/{name}"]
    return out


def read_target(cache_dir: str | os.PathLike, entry: CacheEntry, name: str) -> np.ndarray:
    """One label dimension of a recording, (num_samples,) float32, without
    decoding its images (NaN where unlabeled).

    Raises:
        FileNotFoundError: the shard is missing.
        KeyError: `name` is not one of the entry's targets.
        ValueError: the shard is corrupt.
    """
    if name not in entry.targets:
        raise KeyError(f"Recording {entry.name!r} has no target {name!r} ({entry.targets}).")
    path = pathlib.Path(cache_dir) / entry.shard
    if not path.is_file():
        raise FileNotFoundError(
            f"Shard {path} of recording {entry.name!r} is missing; "
            "re-run preprocess to rebuild it."
        )
    spec = {f"target/{name}": tf.io.FixedLenFeature([], tf.float32)}
    ds = tf.data.TFRecordDataset(str(path)).map(
        lambda s: tf.io.parse_single_example(s, spec)[f"target/{name}"])
    try:
        return np.fromiter(ds.as_numpy_iterator(), np.float32)
    except tf.errors.DataLossError as e:
        raise ValueError(f"Corrupt cache shard {path}: {e.message}") from e


@dataclasses.dataclass
class CachedRecording:
    """A whole recording read back from the cache, as NumPy arrays."""

    times: np.ndarray  # (N,) float64 seconds
    crops: np.ndarray  # (N, size, size, 3) uint8
    found: np.ndarray  # (N,) bool
    targets: dict[str, np.ndarray]  # name -> (N,) float32
    landmarks: np.ndarray | None = None  # (N, 68, 2) float32 crop pixels; None: not stored


def load_entry(cache_dir: str | os.PathLike, entry: CacheEntry) -> CachedRecording:
    """Reads one recording's shard into memory, in time order."""
    path = pathlib.Path(cache_dir) / entry.shard
    if not path.is_file():
        raise FileNotFoundError(
            f"Shard {path} of recording {entry.name!r} is missing; "
            "re-run preprocess to rebuild it."
        )
    ds = tf.data.TFRecordDataset(str(path)).map(
        lambda s: parse_example(s, entry.targets, entry.landmarks)
    )
    times, crops, found, landmarks = [], [], [], []
    targets: dict[str, list[float]] = {name: [] for name in entry.targets}
    try:
        for sample in ds.as_numpy_iterator():
            times.append(sample["time"])
            crops.append(sample["image"])
            found.append(sample["found"])
            if entry.landmarks:
                landmarks.append(sample["landmarks"])
            for name in entry.targets:
                targets[name].append(sample[name])
    except tf.errors.DataLossError as e:
        raise ValueError(f"Corrupt cache shard {path}: {e.message}") from e
    if len(times) != entry.num_samples:
        raise ValueError(
            f"Shard {path} holds {len(times)} samples, the manifest says "
            f"{entry.num_samples}; re-run preprocess."
        )
    return CachedRecording(
        times=np.asarray(times, np.float64),
        crops=np.stack(crops) if crops else np.zeros((0, 0, 0, 3), np.uint8),
        found=np.asarray(found, bool),
        targets={k: np.asarray(v, np.float32) for k, v in targets.items()},
        landmarks=(np.asarray(landmarks, np.float32).reshape(-1, LANDMARK_VALUES // 2, 2)
                   if entry.landmarks else None),
    )


def write_recording(cache_dir: pathlib.Path, recording: corpora.Recording,
                    track: faces.FaceTrack) -> CacheEntry:
    """Writes one recording's shard (crops, labels at its sample times) and
    returns its `CacheEntry` (used by both runners)."""
    targets = labels_at(recording, track.times)
    shard = shard_path(recording.partition, recording.name)
    write_shard(pathlib.Path(cache_dir) / shard, track, targets)
    return CacheEntry(
        name=recording.name, partition=recording.partition, shard=shard,
        num_samples=len(track.times), found_rate=track.found_rate,
        video=str(recording.video.resolve()), targets=list(targets),
        landmarks=track.landmarks is not None,
        min_face_px=track.smallest_face_px,
        multi_face_samples=track.multi_face_samples,
    )


def labels_at(recording: corpora.Recording, times: np.ndarray) -> dict[str, np.ndarray]:
    """Every label dimension linearly interpolated (`np.interp`) at `times`.

    Times before the first label take the first label; a NaN label spreads
    NaN to the samples on either side of it. Unlabeled recordings get NaN.
    """
    out = {}
    for name, values in recording.targets.items():
        if recording.labeled and len(values):
            out[name] = np.interp(times, recording.times, values).astype(np.float32)
        else:
            out[name] = np.full(len(times), np.nan, np.float32)
    return out
