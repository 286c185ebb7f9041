"""Corpus preprocessing on Apache Beam (`preprocess --runner=beam`).

`preprocess.preprocess_corpus` keeps everything that makes the cache: the
argument checks, the settings lock (`preprocess.json`), skipping finished
recordings, the manifest and the failure report. With `runner="beam"` it
hands the recordings still to do to `run_jobs`, which makes each one a Beam
element: a Beam worker tracks its face with the local runner's code
(`recola_sta.cache.job.track_recording`) and writes its shard and entry with
`recola_sta.cache.shards.write_recording`, the same TFRecord shard the local runner
writes. The small per-recording results (entry or error) go to text files
under the cache folder; the driver reads them back and writes the manifest.

The runner and its settings are Beam's own options (`--beam_pipeline_options`):
the DirectRunner by default, Dataflow, Flink or Spark on a cluster, whose
workers must see the corpus and the cache folder at the same paths (shared
storage). Apache Beam is an optional dependency (`pip install -e ".[beam]"`),
imported only here.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import tempfile
from typing import Any, Sequence

from absl import logging

from recola_sta import cache, io_utils
from recola_sta.data import corpora
from recola_sta.cache import shards
from recola_sta.cache.job import Job, track_recording

# The results folder inside the cache folder, named as this project's
# temporaries (`io_utils.temp_prefix`): removed after each run, and by the
# next run where a killed one left it.
RESULTS_DIR = "beam_results"


def _import_beam():
    try:
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions
    except ImportError:
        raise ImportError(
            "preprocess --runner=beam needs Apache Beam: pip install -e \".[beam]\" "
            "(or pip install apache-beam)."
        ) from None
    return beam, PipelineOptions


def process_recording(work: tuple[Job, corpora.Recording, dict[str, Any]],
                      cache_dir: str) -> str:
    """One recording, on a Beam worker: face track, labels, shard.

    Returns a JSON line: {"entry": manifest entry} or {"name", "error"} for a
    video that could not be read (the local runner's failures, same types).
    """
    job, recording, aligner_kwargs = work
    try:
        track = track_recording(job, aligner_kwargs, False)
    except (OSError, ValueError) as e:
        logging.error("preprocess --runner=beam: %s failed: %s", job.name, e)
        return json.dumps({"name": job.name, "error": str(e)})
    entry = shards.write_recording(pathlib.Path(cache_dir), recording, track)
    return json.dumps({"entry": dataclasses.asdict(entry)})


def run_jobs(work: Sequence[tuple[Job, corpora.Recording, dict[str, Any]]],
             cache_dir: str | pathlib.Path, pipeline_args: Sequence[str] = ()
             ) -> tuple[list[Any], dict[str, str]]:
    """Runs one Beam pipeline over `work` (job, recording, aligner settings).

    Returns:
        (cache entries of the recordings done, {name: error} of those that failed).

    Raises:
        ImportError: Apache Beam is not installed (names the extra).
        RuntimeError: the pipeline did not finish, or lost recordings.
    """


    beam, PipelineOptions = _import_beam()
    cache_dir = pathlib.Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    results = pathlib.Path(tempfile.mkdtemp(prefix=io_utils.temp_prefix(RESULTS_DIR),
                                            dir=cache_dir))
    try:
        options = PipelineOptions(list(pipeline_args))
        with beam.Pipeline(options=options) as pipeline:
            _ = (pipeline
                 | "recordings" >> beam.Create(list(work))
                 | "spread" >> beam.Reshuffle()
                 | "track and write" >> beam.Map(process_recording, str(cache_dir))
                 | "results" >> beam.io.WriteToText(str(results / "part"), file_name_suffix=".jsonl"))
        lines = [json.loads(line) for path in sorted(results.glob("part*.jsonl"))
                 for line in path.read_text().splitlines() if line.strip()]
    finally:
        shutil.rmtree(results, ignore_errors=True)
    entries = [cache.CacheEntry(**line["entry"]) for line in lines if "entry" in line]
    failures = {line["name"]: line["error"] for line in lines if "error" in line}
    missing = {job.name for job, _, _ in work} - {e.name for e in entries} - set(failures)
    if missing:
        raise RuntimeError(f"The Beam pipeline returned no result for {sorted(missing)}; "
                           f"check the runner's logs (--beam_pipeline_options={list(pipeline_args)}).")
    return entries, failures
