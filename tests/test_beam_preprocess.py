"""`preprocess --runner=beam` on the DirectRunner against the local runner.

Needs the `[beam]` extra (`pip install -e ".[test,beam]"`); skipped without it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("apache_beam")

from recola_sta import cache, io_utils  # noqa: E402
from recola_sta.cache import beam as beam_preprocess  # noqa: E402
from recola_sta.cache import preprocess, shards  # noqa: E402
from recola_sta.faces.settings import FaceSettings  # noqa: E402
from test_preprocess import SIZE, _write_corpus  # noqa: E402  (the tiny RECOLA-layout corpus)


def test_beam_runner_writes_the_local_runners_cache_and_skips_finished_recordings(
        tmp_path, monkeypatch):
    corpus = _write_corpus(tmp_path / "corpus")
    local, beam = tmp_path / "local", tmp_path / "beam"
    preprocess.preprocess_corpus(corpus, "recola", local,
                                 face=FaceSettings(size=SIZE), workers=1, progress=False)
    preprocess.preprocess_corpus(corpus, "recola", beam,
                                 face=FaceSettings(size=SIZE), progress=False,
                                 runner="beam",
                                 beam_pipeline_options=["--runner=DirectRunner"])
    ours, theirs = cache.read_manifest(beam), cache.read_manifest(local)
    assert ours == theirs  # same entries, in corpus order
    assert json.loads((beam / preprocess.SETTINGS_NAME).read_text()) == json.loads(
        (local / preprocess.SETTINGS_NAME).read_text())
    for entry in ours.entries:
        a, b = shards.load_entry(beam, entry), shards.load_entry(local, entry)
        np.testing.assert_array_equal(a.crops, b.crops)
        np.testing.assert_array_equal(a.found, b.found)
        for name in entry.targets:
            np.testing.assert_array_equal(shards.read_target(beam, entry, name),
                                          shards.read_target(local, entry, name))
    assert not list(beam.glob(io_utils.TEMP_PREFIX + "*"))  # results are cleaned up

    def fail(*args, **kwargs):
        raise AssertionError("a finished recording was processed again")

    monkeypatch.setattr(beam_preprocess, "run_jobs", fail)
    again = preprocess.preprocess_corpus(corpus, "recola", beam,
                                         face=FaceSettings(size=SIZE), progress=False,
                                         runner="beam")
    assert again == ours
