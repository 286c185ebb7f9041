"""The preprocess cache: aligned face crops and labels, one TFRecord shard per
recording, listed by a manifest.

- `manifest`: which recordings a cache holds (no TensorFlow); its names are
  this package's own, so `from recola_sta import cache` reads a manifest
  without loading TensorFlow;
- `job`: one recording's face track, the work of a worker process (no
  TensorFlow);
- `shards`: the TFRecord shards (TensorFlow);
- `preprocess`: the local runner and the preprocess CLI; `beam`: the Apache
  Beam runner.
"""

from recola_sta.cache.manifest import (FORMAT_VERSION, MANIFEST_NAME, CacheEntry, Manifest,
                                       read_manifest, shard_path, write_manifest)

__all__ = ["FORMAT_VERSION", "MANIFEST_NAME", "CacheEntry", "Manifest", "read_manifest",
           "shard_path", "write_manifest"]
