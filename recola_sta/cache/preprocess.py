r"""Preprocess a corpus: aligned 4 fps face crops and labels -> TFRecord cache.

For every recording of the corpus (`corpora.load_corpus`), samples the video
at t_k = k * 0.25 s while t_k <= min(video duration, last label time) (the
video duration alone for unlabeled recordings), detects and aligns the face
at each sample time (`faces.track_video`), linearly interpolates every label
dimension at the sample times, and writes one TFRecord shard per recording
plus `manifest.json` (`recola_sta.cache`).

The run is resumable: shards and the manifest are written atomically, the
manifest is rewritten after every finished recording, and a re-run skips the
recordings whose manifest entry and complete shard are already there (and
removes the temporary files of a killed run). The settings that change the
crops are stored in `preprocess.json`; re-using a cache folder with other
settings is refused. One run at a time writes a cache folder: it holds the
folder's lock (`.lock`), and a second run is refused.

Faces are found without flags from 176x144 up (`faces.FaceAligner` picks the
detection scale from the frame); `--face` picks the subject in videos with
several people. The summary lists, per recording, the face-found rate, the
smallest face found and the samples that showed more than one face.

Usage:

    python -m recola_sta.preprocess --corpus_dir=data/synthetic \
        --corpus_kind=synthetic --cache_dir=data/cache/synthetic_96 \
        --size=96 --workers=2
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import shlex
import sys
from typing import Any, Iterator, Sequence

from absl import app, flags, logging

from recola_sta import cache, cli, faces, io_utils, pools, settings
from recola_sta.cache.job import SAMPLE_FPS, Job, init_worker, track_recording
from recola_sta.cache.manifest import CacheEntry, Manifest
from recola_sta.data import corpora
from recola_sta.faces.settings import FaceSettings
from recola_sta.settings import nested, setting


# The cache folder's lock: held by the one run that writes the folder.
LOCK_NAME = io_utils.LOCK_NAME
RUNNERS = ("local", "beam")


class PreprocessError(RuntimeError):
    """Some recordings could not be preprocessed; the others are cached."""


def preprocess_corpus(
    corpus_dir: str | os.PathLike,
    corpus_kind: str,
    cache_dir: str | os.PathLike,
    *,
    face: FaceSettings = FaceSettings(),
    workers: int = 1,
    partitions: Sequence[str] | None = None,
    min_found_rate: float = 0.8,
    progress: bool = True,
    runner: str = "local",
    beam_pipeline_options: Sequence[str] = (),
) -> Manifest:
    """Preprocesses every recording not yet in the cache.

    Args:
        corpus_dir: corpus root folder.
        corpus_kind: one of `corpora.CORPUS_KINDS`.
        cache_dir: output folder (created if missing).
        face: the face settings that make the crops (`FaceSettings`: crop
            size, detection, the subject's choice, tracking, rotation).
        workers: recordings processed in parallel (one process each).
        partitions: subset of ("train", "dev", "test"); default all.
        min_found_rate: recordings whose face-found rate is lower are logged
            as warnings.
        progress: show progress bars.
        runner: "local" (`workers` processes on this host) or "beam" (one
            Apache Beam element per recording, `recola_sta.cache.beam`).
        beam_pipeline_options: Beam's own options (e.g. "--runner=FlinkRunner").

    Returns:
        The `cache.Manifest` of every finished recording.

    Raises:
        FileNotFoundError: the corpus folder or a file of it is missing.
        ValueError: a bad argument, a cache folder made with other settings,
            one that is a file or not writable (checked before any work), or
            one that another run is writing (`io_utils.LockedError`).
        PreprocessError: some recordings failed (unreadable or truncated
            video); the others are cached and listed in the manifest.
        OSError: the disk is full (ENOSPC, naming the file being written);
            the partial file is removed, the recordings finished before
            are cached.
    """
    _check_args(workers, partitions, min_found_rate, corpus_kind, runner)
    root = pathlib.Path(corpus_dir)
    recordings, selected = _select_recordings(root, corpus_kind, partitions)
    faces.FaceAligner.from_settings(face)  # fails early, here, on a bad setting or predictor
    aligner_kwargs = face.aligner_kwargs()
    cache_dir = pathlib.Path(cache_dir)
    with _cache_writer(cache_dir):
        started = (cache_dir / cache.MANIFEST_NAME).is_file()
        manifest = _ManifestWriter(cache_dir, root, corpus_kind, face, recordings,
                                   min_found_rate)
        todo = [r for r in selected if r.name not in manifest.done]
        if todo and started:
            io_utils.check_writable_dir(cache_dir, "--cache_dir")
        if len(todo) < len(selected):
            logging.info("%d of %d recordings already in %s; skipping them.",
                         len(selected) - len(todo), len(selected), cache_dir)
        failures = _run_jobs(todo, aligner_kwargs, manifest, workers=workers,
                             progress=progress, runner=runner,
                             beam_pipeline_options=beam_pipeline_options)
        if failures:
            raise PreprocessError(
                f"{len(failures)} of {len(todo)} recordings failed and are not in the "
                f"cache {cache_dir} (the others are; a re-run retries only these):\n"
                + "\n".join(f"  {name}: {msg}" for name, msg in failures.items())
            )
        return cache.read_manifest(cache_dir)


def _select_recordings(root: pathlib.Path, corpus_kind: str, partitions: Sequence[str] | None
                       ) -> tuple[list[corpora.Recording], list[corpora.Recording]]:
    """Every recording of the corpus, and those of the wanted partitions."""
    if not root.is_dir():
        raise FileNotFoundError(f"Corpus folder {root} (--corpus_dir) does not exist.")
    recordings = corpora.load_corpus(root, corpus_kind)
    wanted = tuple(partitions) if partitions else corpora.PARTITIONS
    selected = [r for r in recordings if r.partition in wanted]
    if not selected:
        raise ValueError(
            f"The {corpus_kind} corpus at {root} has no recordings in partitions "
            f"{list(wanted)} (--partitions)."
        )
    return recordings, selected


@contextlib.contextmanager
def _cache_writer(cache_dir: pathlib.Path) -> Iterator[None]:
    """Holds the cache folder's lock (`LOCK_NAME`) while a run may write it.

    Two runs writing one cache (say with different --partitions) would each
    rewrite `manifest.json` from the entries they had read, the last one
    dropping the other's; the second is refused instead (`io_utils.
    LockedError`, a ValueError naming the holder). Under the lock the
    temporary files of a killed earlier run are removed (`io_utils.
    remove_temporaries`: this project's temporaries only).

    Before any work, a new cache folder that cannot be written is refused.
    A started cache that cannot be written (a finished one on a read-only
    file system, a full disk) is read without the lock: nothing is written
    into it, and a run that has recordings to add is refused by
    `preprocess_corpus` (`io_utils.check_writable_dir`) before any work.
    """
    started = (cache_dir / cache.MANIFEST_NAME).is_file()
    with io_utils.folder_writer(cache_dir, started=started, name="--cache_dir",
                                what=f"--cache_dir={cache_dir}",
                                temp_folders=tuple(cache_dir / p for p in corpora.PARTITIONS)):
        yield


class _ManifestWriter:
    """The cache's finished recordings; `record` adds one and rewrites the
    manifest (atomically), so an interrupted run keeps what it finished."""

    def __init__(self, cache_dir: pathlib.Path, root: pathlib.Path, corpus_kind: str,
                 face: FaceSettings, recordings: Sequence[corpora.Recording],
                 min_found_rate: float):
        self.cache_dir, self.root, self.corpus_kind, self.face = cache_dir, root, corpus_kind, face
        self.recordings = list(recordings)
        self.by_name = {r.name: r for r in self.recordings}
        self.min_found_rate = min_found_rate
        self.done = _finished_entries(cache_dir, self.recordings, self._manifest([]))

    def _manifest(self, entries: list[CacheEntry]) -> Manifest:
        return Manifest(corpus_root=str(self.root.resolve()), corpus_kind=self.corpus_kind,
                        fps=SAMPLE_FPS, face=self.face, entries=entries)

    def save(self, name: str, track: faces.FaceTrack) -> None:
        """Writes a tracked recording's shard, then records it."""
        # TensorFlow loads with the first shard, not with the CLI: its flags
        # and start-up stay out of `--help`, argument errors and a finished cache.
        # Ctrl-C waits for that import (`cli.interrupts_held` says why).
        with cli.interrupts_held():
            from recola_sta.cache import shards

        self.record(shards.write_recording(self.cache_dir, self.by_name[name], track))

    def record(self, entry: Any) -> None:
        self.done[entry.name] = entry
        cache.write_manifest(self.cache_dir, self._manifest(
            [self.done[r.name] for r in self.recordings if r.name in self.done]))
        if entry.found_rate < self.min_found_rate:
            logging.warning("%s: face found in %.1f%% of %d samples (< %.0f%%).",
                            entry.name, 100 * entry.found_rate, entry.num_samples,
                            100 * self.min_found_rate)


def _run_jobs(todo: Sequence[corpora.Recording], aligner_kwargs: dict[str, Any],
              manifest: _ManifestWriter, *, workers: int, progress: bool, runner: str,
              beam_pipeline_options: Sequence[str]) -> dict[str, str]:
    """Tracks the faces of every recording of `todo` and records each as it
    ends; returns the failed ones' messages by name (unreadable or truncated
    videos), the others being in the manifest."""
    jobs = [Job(r.name, str(r.video), float(r.times[-1]) if r.labeled else None)
            for r in todo]

    def job_kwargs(job: Job) -> dict[str, Any]:
        # A recording that names its person's side (Aff-Wild2's NAME_left /
        # NAME_right annotations) overrides --face for its video.
        side = manifest.by_name[job.name].face
        return aligner_kwargs if side == "largest" else {**aligner_kwargs, "face": side}

    failures: dict[str, str] = {}
    bar = _progress_bar(len(jobs), progress)
    try:
        if runner == "beam" and jobs:
            from recola_sta.cache import beam  # only when asked for: it loads TensorFlow

            entries, beam_failures = beam.run_jobs(
                [(job, manifest.by_name[job.name], job_kwargs(job)) for job in jobs],
                manifest.cache_dir, beam_pipeline_options)
            for entry in entries:
                manifest.record(entry)
            failures.update(beam_failures)
        else:
            # Progress bars of single recordings only when they run here; on an
            # interruption the pool drops the queued recordings instead of
            # finishing them (the finished ones are in the manifest).
            inline_progress = progress and pools.runs_inline(workers, len(jobs))
            tasks = [(job, job_kwargs(job), inline_progress) for job in jobs]
            for index, outcome in pools.run_each(track_recording, tasks, workers,
                                                 initializer=init_worker):
                job = jobs[index]
                try:
                    track = outcome.result()
                except (OSError, ValueError) as e:
                    if cli.is_disk_full(e):
                        raise  # not this video's fault: the next ones would fail too
                    failures[job.name] = str(e)
                else:
                    manifest.save(job.name, track)
                _advance(bar, job.name, manifest.done, failures)
    finally:
        if bar is not None:
            bar.close()
    return failures


def summarize(manifest: Manifest, min_found_rate: float = 0.8) -> str:
    """A table per recording: samples, face-found rate (low ones marked), the
    smallest face found (side of its box in original-frame pixels) and the
    samples showing more than one face; then the smallest face overall."""
    lines = [f"{'recording':<16} {'partition':<9} {'samples':>7} {'found':>7} "
             f"{'min face':>8} {'2+ faces':>8}"]
    low = 0
    several = 0
    for e in manifest.entries:
        flag = ""
        if e.found_rate < min_found_rate:
            flag = f"  WARNING: below {min_found_rate:.0%}"
            low += 1
        min_face = "-" if e.min_face_px is None else f"{e.min_face_px:.0f}px"
        multi = "-" if e.multi_face_samples is None else str(e.multi_face_samples)
        several += e.multi_face_samples or 0
        lines.append(f"{e.name:<16} {e.partition:<9} {e.num_samples:>7d} "
                     f"{e.found_rate:>7.1%} {min_face:>8} {multi:>8}{flag}")
    sizes = [(e.min_face_px, e.name) for e in manifest.entries if e.min_face_px is not None]
    if sizes:
        px, name = min(sizes)
        lines.append(f"Smallest face found: {px:.0f} px ({name}, original-frame pixels).")
    if several:
        lines.append(f"{several} sample(s) showed more than one face; the subject was "
                     "chosen by --face and followed through each video.")
    if low:
        lines.append(
            f"{low} recording(s) with a face in fewer than {min_found_rate:.0%} of the "
            "samples: check the videos, or try --upsample=1 for small faces."
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Internals.

def _check_args(workers: int, partitions: Sequence[str] | None,
                min_found_rate: float, corpus_kind: str, runner: str = "local") -> None:
    if corpus_kind not in corpora.CORPUS_KINDS:
        raise ValueError(
            f"Unknown corpus kind {corpus_kind!r} (--corpus_kind); expected one of "
            f"{corpora.CORPUS_KINDS}."
        )
    if runner not in RUNNERS:
        raise ValueError(f"runner (--runner) must be one of {RUNNERS}. Received: {runner!r}")
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers (--workers) must be an integer >= 1. Received: {workers!r}")
    if partitions is not None:
        bad = [p for p in partitions if p not in corpora.PARTITIONS]
        if bad:
            raise ValueError(
                f"Unknown partitions {bad} (--partitions); expected a subset of "
                f"{corpora.PARTITIONS}."
            )
    if not 0.0 <= min_found_rate <= 1.0:
        raise ValueError(
            f"min_found_rate (--min_found_rate) must lie in [0, 1]. Received: {min_found_rate!r}"
        )


def _finished_entries(cache_dir: pathlib.Path, recordings: Sequence[corpora.Recording],
                      wanted: Manifest) -> dict[str, Any]:
    """Manifest entries whose complete shard exists, for recordings of the corpus.

    A shard without a manifest entry (interrupted between the two writes) is
    redone; so is an entry whose shard is missing, unreadable, or holds a
    different number of samples than the manifest says.

    Raises:
        ValueError: the cache was made with other settings than `wanted`'s
            (the settings lock: they bind once a recording is cached, so a
            first run interrupted before any may change them).
    """
    if not (cache_dir / cache.MANIFEST_NAME).is_file():
        return {}
    manifest = cache.read_manifest(cache_dir)
    _check_settings(cache_dir, manifest, wanted)
    videos = {r.name: str(r.video.resolve()) for r in recordings}
    done = {}
    for entry in manifest.entries:
        if videos.get(entry.name) != entry.video:
            continue
        if _count_records(cache_dir / entry.shard) == entry.num_samples:
            done[entry.name] = entry
    return done


def _check_settings(cache_dir: pathlib.Path, cached: Manifest, wanted: Manifest) -> None:
    """Refuses a cache made from another corpus or with other face settings."""
    diff = {k: (getattr(cached, k), getattr(wanted, k))
            for k in ("corpus_root", "corpus_kind", "fps") if getattr(cached, k) != getattr(wanted, k)}
    diff.update(cached.face.differences(wanted.face))
    if diff:
        raise ValueError(
            f"The cache {cache_dir} was made with other settings; pass another "
            "--cache_dir or the same settings. Differences (cache, now): "
            + "; ".join(f"{k}: {a!r} vs {b!r}" for k, (a, b) in diff.items())
        )


def _count_records(path: pathlib.Path) -> int | None:
    """Number of records in a TFRecord file; None if missing or corrupt."""
    with cli.interrupts_held():  # see _ManifestWriter.save
        import tensorflow as tf

    if not path.is_file():
        return None
    try:
        return sum(1 for _ in tf.data.TFRecordDataset(str(path)))
    except tf.errors.OpError:
        return None


def _progress_bar(total: int, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="preprocess", unit="rec", file=sys.stdout)


def _advance(bar, name: str, done: dict, failures: dict) -> None:
    if bar is None:
        return
    if name in failures:
        bar.set_postfix_str(f"{name}: FAILED")
    else:
        bar.set_postfix_str(f"{name}: face {done[name].found_rate:.0%}")
    bar.update(1)


# --------------------------------------------------------------------------
# Command line.


@dataclasses.dataclass(frozen=True, kw_only=True)
class PreprocessConfig:
    """The preprocess CLI's settings (each field is its flag)."""

    corpus_dir: str = setting(help="Corpus root folder.")
    corpus_kind: str = setting("synthetic", choices=corpora.CORPUS_KINDS,
                               help="Corpus layout (see recola_sta.corpora).")
    cache_dir: str = setting(help="Output cache folder (TFRecord shards + manifest).")
    face: FaceSettings = nested(FaceSettings)
    workers: int = setting(2, help="Recordings processed in parallel.", lower_bound=1)
    partitions: tuple[str, ...] = setting(
        corpora.PARTITIONS, help="Partitions to preprocess (comma-separated).",
        check=lambda v: bool(v) and set(v) <= set(corpora.PARTITIONS),
        expected=f"a non-empty subset of {','.join(corpora.PARTITIONS)}")
    min_found_rate: float = setting(
        0.8, help="Warn about recordings with a face in fewer samples than this.",
        lower_bound=0.0, upper_bound=1.0)
    progress: bool = setting(True, help="Show progress bars.")
    runner: str = setting("local", choices=RUNNERS,
                          help="local: --workers processes on this host; beam: Apache Beam "
                               "(pip install -e \".[beam]\"), one element per recording.")
    beam_pipeline_options: str = setting(
        "", help="--runner=beam: Beam's own options, e.g. \"--runner=FlinkRunner "
                 "--flink_master=host:8081\" (default: the DirectRunner).")


def define_flags(flag_values=None) -> None:
    """Defines the CLI's flags, one per `PreprocessConfig` field, in
    `flag_values` where given (`cli.call`), else in absl's global FLAGS."""
    settings.define_flags(PreprocessConfig, flag_values=flag_values)


def main(argv: Sequence[str], flag_values=None) -> int:
    """The CLI: `argv` is what flag parsing left (program name first),
    `flag_values` the parsed flags (default: absl's global FLAGS)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: quieter start-up
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    FLAGS = flags.FLAGS if flag_values is None else flag_values
    return cli.run("preprocess", lambda: _preprocess(FLAGS), output=FLAGS.cache_dir)


def _preprocess(FLAGS) -> None:
    """main()'s work: preprocess, then print the summary (also of a cache
    left incomplete by a failure)."""
    config = settings.from_flags(PreprocessConfig, FLAGS)
    settings.check(config)
    try:
        manifest = preprocess_corpus(
            config.corpus_dir, config.corpus_kind, config.cache_dir, face=config.face,
            workers=config.workers, partitions=config.partitions,
            min_found_rate=config.min_found_rate, progress=config.progress,
            runner=config.runner, beam_pipeline_options=shlex.split(config.beam_pipeline_options),
        )
    except PreprocessError as e:
        if (pathlib.Path(config.cache_dir) / cache.MANIFEST_NAME).is_file():
            print(summarize(cache.read_manifest(config.cache_dir), config.min_found_rate))
        raise ValueError(f"error: {e}") from e
    print(summarize(manifest, config.min_found_rate))
    print(f"Cache: {config.cache_dir} ({len(manifest.entries)} recordings)")
