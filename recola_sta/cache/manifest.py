"""The preprocess cache's manifest: which recordings a cache holds, and where.

Layout of a cache folder::

    CACHE/manifest.json
    CACHE/<partition>/<recording>.tfrecord   (`recola_sta.cache.shards`)
    CACHE/.lock                  (held by the one run writing the folder)

This module needs no TensorFlow, so worker processes and tools that only list
a cache stay light. The manifest is written atomically, so a file that exists
is complete. Recording names are unique in a cache (readers find an entry by
name); `read_manifest` refuses a manifest that repeats one.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
from typing import Any


from recola_sta import io_utils
from recola_sta.faces.settings import FaceSettings

MANIFEST_NAME = "manifest.json"
# 2: the face settings in the manifest (`face`), no preprocess.json.
FORMAT_VERSION = 2


@dataclasses.dataclass
class CacheEntry:
    """One preprocessed recording.

    Attributes:
        name: recording name, e.g. `"dev_1"`.
        partition: `"train"`, `"dev"` or `"test"`.
        shard: path of the TFRecord shard, relative to the cache folder.
        num_samples: number of 4 fps samples in the shard.
        found_rate: share of samples where a face was found.
        video: path of the source video.
        targets: names of the label dimensions stored per sample.
        landmarks: whether the shard stores each sample's landmarks.
        min_face_px: side of the smallest face found, original-frame
            pixels; None without a face (or not measured).
        multi_face_samples: samples in which more than one face was
            detected; None where not counted.
    """

    name: str
    partition: str
    shard: str
    num_samples: int
    found_rate: float
    video: str
    targets: list[str]
    landmarks: bool = False
    min_face_px: float | None = None
    multi_face_samples: int | None = None


@dataclasses.dataclass
class Manifest:
    """Everything a reader needs to know about a cache folder.

    Attributes:
        corpus_root: folder of the corpus the cache was made from.
        corpus_kind: kind passed to `corpora.load_corpus`.
        fps: sampling rate of the samples (4 in the paper).
        face: the face settings that made the crops (their `size` is the
            crops' side); the one place a cache records them.
        entries: one per recording, in corpus order.
    """

    corpus_root: str
    corpus_kind: str
    fps: float
    face: FaceSettings
    entries: list[CacheEntry]

    def partition(self, name: str) -> list[CacheEntry]:
        """Returns the entries of one partition, in corpus order."""
        return [e for e in self.entries if e.partition == name]

    def entry(self, name: str) -> CacheEntry:
        """Returns the entry of the recording called `name`."""
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(f"No recording named {name!r} in the cache.")


def shard_path(partition: str, name: str) -> str:
    """Relative path of a recording's shard inside the cache folder."""
    return f"{partition}/{name}.tfrecord"


def write_manifest(cache_dir: str | os.PathLike, manifest: Manifest) -> None:
    """Writes `manifest.json` atomically."""
    payload = {"format_version": FORMAT_VERSION, **dataclasses.asdict(manifest),
               "face": manifest.face.to_json()}
    io_utils.atomic_write_text(
        pathlib.Path(cache_dir) / MANIFEST_NAME, json.dumps(payload, indent=2) + "\n"
    )


def read_manifest(cache_dir: str | os.PathLike) -> Manifest:
    """Reads and checks `manifest.json`.

    Raises:
        FileNotFoundError: the folder or its manifest does not exist.
        ValueError: the manifest is malformed, of another format version, or
            lists one recording name twice.
    """
    path = pathlib.Path(cache_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"No preprocess cache at {cache_dir}: {path} is missing. "
            "Run `python -m recola_sta.preprocess` first."
        )
    try:
        payload: dict[str, Any] = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Malformed cache manifest {path}: {e}") from e
    version = payload.get("format_version") if isinstance(payload, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(
            f"The cache {cache_dir} was written by an older recola_sta (manifest format "
            f"{version}, this version reads {FORMAT_VERSION}): delete the folder and "
            "rebuild it with `python -m recola_sta.preprocess` (or `python -m "
            "recola_sta.train`, which preprocesses a missing cache)."
        )
    try:
        del payload["format_version"]
        entries = [CacheEntry(**e) for e in payload.pop("entries")]
        face = FaceSettings.from_json(payload.pop("face"), path)
        manifest = Manifest(entries=entries, face=face, **payload)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"Malformed cache manifest {path}: {e}") from e
    # Readers find a recording by its name alone (`Manifest.entry`, reports,
    # predictions): a name listed twice would make one entry hide the other.
    twice = [name for name, n in collections.Counter(e.name for e in entries).items() if n > 1]
    if twice:
        raise ValueError(
            f"Malformed cache manifest {path}: recording {twice[0]!r} is listed twice "
            "(recording names must be unique across the partitions); delete the cache "
            "folder and preprocess again."
        )
    return manifest


