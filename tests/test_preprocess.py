"""Tests of recola_sta.preprocess on a tiny RECOLA-layout corpus."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage import data

from recola_sta import cache, cli, faces, io_utils
from recola_sta.cache import preprocess, shards
from recola_sta.data import corpora
from recola_sta.faces.settings import FaceSettings

SIZE = 64
# name -> (video seconds, fps, with a face, last label time or None)
_RECORDINGS = {
    "train_1": (2.0, 25.0, True, 1.6),
    "dev_1": (2.0, 30.0, True, 2.0),
    "test_1": (1.0, 25.0, False, None),
}


def _valence(t):
    return 0.5 * np.sin(t)


def _arousal(t):
    return 0.1 * t - 0.2


def _write_corpus(root: pathlib.Path) -> pathlib.Path:
    photo = data.astronaut()
    (root / "recordings_video").mkdir(parents=True)
    for name, (seconds, fps, face, label_end) in _RECORDINGS.items():
        writer = cv2.VideoWriter(str(root / "recordings_video" / f"{name}.mp4"),
                                 cv2.VideoWriter_fourcc(*"mp4v"), fps, (320, 240))
        for i in range(int(round(seconds * fps))):
            if face:
                x0 = 105 + i % 15
                frame = cv2.resize(photo[37:217, x0:x0 + 240], (320, 240),
                                   interpolation=cv2.INTER_AREA)
            else:
                frame = np.full((240, 320, 3), (i * 5) % 256, np.uint8)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        if label_end is not None:
            times = np.arange(round(label_end / 0.04) + 1) * 0.04
            for target, fn in (("valence", _valence), ("arousal", _arousal)):
                corpora.write_arff(root / "ratings_gold_standard" / target / f"{name}.arff",
                                   name, times, fn(times))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pathlib.Path:
    return _write_corpus(tmp_path_factory.mktemp("recola"))


@pytest.fixture(scope="module")
def reference_cache(corpus, tmp_path_factory) -> pathlib.Path:
    """The corpus preprocessed once, sequentially."""
    cache_dir = tmp_path_factory.mktemp("cache")
    preprocess.preprocess_corpus(corpus, "recola", cache_dir,
                                 face=FaceSettings(size=SIZE), workers=1,
                                 progress=False)
    return cache_dir


@pytest.fixture
def spy(monkeypatch):
    """Records the recordings tracked in-process; can simulate a Ctrl-C."""
    calls: list[str] = []
    state = {"interrupt_at": None}
    real = preprocess.track_recording

    def track(job, aligner_kwargs, progress):
        calls.append(job.name)
        if state["interrupt_at"] == len(calls):
            raise KeyboardInterrupt
        return real(job, aligner_kwargs, progress)

    monkeypatch.setattr(preprocess, "track_recording", track)
    return calls, state


def _run(corpus, cache_dir, partitions=None, **face):
    """preprocess_corpus with one worker; `face` holds face settings besides the size."""
    return preprocess.preprocess_corpus(corpus, "recola", cache_dir,
                                        face=FaceSettings(**{"size": SIZE, **face}),
                                        workers=1, progress=False, partitions=partitions)


def test_shards_hold_crops_labels_and_found_mask(corpus, reference_cache):
    manifest = cache.read_manifest(reference_cache)
    assert [e.name for e in manifest.entries] == ["train_1", "dev_1", "test_1"]
    assert manifest.face.size == SIZE and manifest.fps == 4.0
    assert manifest.corpus_kind == "recola"
    assert pathlib.Path(manifest.corpus_root) == corpus.resolve()
    # Samples stop at min(video duration, last label time).
    assert [e.num_samples for e in manifest.entries] == [7, 9, 5]
    assert [e.found_rate for e in manifest.entries] == [1.0, 1.0, 0.0]
    for entry in manifest.entries:
        assert entry.shard == f"{entry.partition}/{entry.name}.tfrecord"
        labeled = entry.partition != "test"
        assert entry.targets == (["valence", "arousal"] if labeled else ["valence"])
        got = shards.load_entry(reference_cache, entry)
        t = np.arange(entry.num_samples) * 0.25
        np.testing.assert_allclose(got.times, t)
        assert got.crops.shape == (entry.num_samples, SIZE, SIZE, 3)
        if not labeled:  # and no face
            assert np.isnan(got.targets["valence"]).all()
            assert not got.found.any() and not got.crops.any()
        else:
            # Labels linearly interpolated from the 0.04 s grid.
            np.testing.assert_allclose(got.targets["valence"], _valence(t), atol=1e-3)
            np.testing.assert_allclose(got.targets["arousal"], _arousal(t), atol=1e-5)
            assert got.found.all() and got.crops.reshape(len(t), -1).max(1).min() > 0


def test_labels_at_interpolates_linearly():
    rec = corpora.Recording("dev_1", "dev", pathlib.Path("v.mp4"),
                            np.array([0.0, 0.1, 0.2]),
                            {"valence": np.array([0.0, 1.0, 0.0])}, 0.1)
    got = shards.labels_at(rec, np.array([0.0, 0.05, 0.15, 0.2]))
    np.testing.assert_allclose(got["valence"], [0.0, 0.5, 0.5, 0.0])


@pytest.mark.slow
def test_parallel_workers_give_the_same_cache(corpus, reference_cache, tmp_path):
    manifest = preprocess.preprocess_corpus(corpus, "recola", tmp_path,
                                            face=FaceSettings(size=SIZE),
                                            workers=2, progress=False)
    reference = cache.read_manifest(reference_cache)
    assert manifest.entries == reference.entries
    for entry in manifest.entries:
        a = shards.load_entry(tmp_path, entry)
        b = shards.load_entry(reference_cache, entry)
        np.testing.assert_array_equal(a.crops, b.crops)
        np.testing.assert_array_equal(a.found, b.found)


def test_rerun_after_an_interruption_does_only_the_missing_recordings(
        corpus, reference_cache, tmp_path, spy):
    calls, state = spy
    state["interrupt_at"] = 2
    with pytest.raises(KeyboardInterrupt):
        _run(corpus, tmp_path)
    assert [e.name for e in cache.read_manifest(tmp_path).entries] == ["train_1"]
    train_shard = tmp_path / "train" / "train_1.tfrecord"
    mtime = train_shard.stat().st_mtime_ns

    calls.clear()
    state["interrupt_at"] = None
    manifest = _run(corpus, tmp_path)
    assert calls == ["dev_1", "test_1"]
    assert manifest.entries == cache.read_manifest(reference_cache).entries
    assert train_shard.stat().st_mtime_ns == mtime
    assert not [p for p in tmp_path.rglob("*") if io_utils.is_temporary(p.name)]

    # A lost shard is redone, and only it.
    calls.clear()
    (tmp_path / "dev" / "dev_1.tfrecord").unlink()
    manifest = _run(corpus, tmp_path)
    assert calls == ["dev_1"]
    assert [e.name for e in manifest.entries] == ["train_1", "dev_1", "test_1"]

    calls.clear()
    _run(corpus, tmp_path)
    assert calls == []


def test_partitions_subset_then_the_rest(corpus, tmp_path, spy):
    calls, _ = spy
    manifest = _run(corpus, tmp_path, partitions=["dev"])
    assert [e.name for e in manifest.entries] == ["dev_1"]
    manifest = _run(corpus, tmp_path)
    assert calls == ["dev_1", "train_1", "test_1"]
    assert [e.name for e in manifest.entries] == ["train_1", "dev_1", "test_1"]


def test_a_broken_video_is_reported_and_the_others_cached(corpus, tmp_path, spy):
    calls, _ = spy
    root = tmp_path / "corpus"
    shutil.copytree(corpus, root)
    video = root / "recordings_video" / "dev_1.mp4"
    video.write_bytes(video.read_bytes()[:3000])
    cache_dir = tmp_path / "cache"
    with pytest.raises(preprocess.PreprocessError, match=re.escape(str(video))):
        _run(root, cache_dir)
    assert [e.name for e in cache.read_manifest(cache_dir).entries] == ["train_1", "test_1"]
    shutil.copy(corpus / "recordings_video" / "dev_1.mp4", video)
    calls.clear()
    manifest = _run(root, cache_dir)
    assert calls == ["dev_1"] and len(manifest.entries) == 3


def test_other_settings_on_an_existing_cache_are_refused(corpus, reference_cache):
    with pytest.raises(ValueError, match="other settings.*size"):
        _run(corpus, reference_cache, size=SIZE + 16)
    # The rotation is a face setting like the others: recorded and checked.
    assert cache.read_manifest(reference_cache).face.rotate == 0
    with pytest.raises(ValueError, match="other settings.*rotate: 0 vs 90"):
        _run(corpus, reference_cache, rotate=90)


def test_settings_bind_only_once_a_recording_is_cached(corpus, tmp_path, spy):
    _, state = spy
    state["interrupt_at"] = 1
    with pytest.raises(KeyboardInterrupt):
        _run(corpus, tmp_path)
    state["interrupt_at"] = None
    manifest = _run(corpus, tmp_path, partitions=["test"], size=SIZE + 16)
    assert manifest.face.size == SIZE + 16


# Holds a lock file, as another preprocess or train run would, until killed.
_HOLD_LOCK = """
import sys, time
from recola_sta import io_utils
with io_utils.exclusive_lock(sys.argv[1], "a cache folder"):
    print("held", flush=True)
    time.sleep(300)
"""


@pytest.mark.slow
def test_a_second_writer_of_a_cache_is_refused(corpus, tmp_path, spy):
    calls, _ = spy
    cache_dir = tmp_path / "cache"
    _run(corpus, cache_dir, partitions=["dev"])
    manifest_text = (cache_dir / cache.MANIFEST_NAME).read_text()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK,
                               str(cache_dir / preprocess.LOCK_NAME)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        calls.clear()
        # Another --partitions while the holder writes: refused before any
        # work, so the holder's manifest cannot lose its entries to this one.
        with pytest.raises(io_utils.LockedError, match=re.escape(f"--cache_dir={cache_dir}")):
            _run(corpus, cache_dir, partitions=["train"])
        assert calls == []
        assert (cache_dir / cache.MANIFEST_NAME).read_text() == manifest_text
        done = _cli(f"--corpus_dir={corpus}", "--corpus_kind=recola", f"--cache_dir={cache_dir}",
                    f"--size={SIZE}", "--partitions=train", "--workers=1", "--noprogress")
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert re.search(rf"^preprocess: .*--cache_dir={re.escape(str(cache_dir))}.* in use",
                         done.stderr, re.M), done.stderr
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # Once it is free, both runs' recordings are in the manifest.
    manifest = _run(corpus, cache_dir, partitions=["train"])
    assert [e.name for e in manifest.entries] == ["train_1", "dev_1"]


def test_a_run_removes_the_temporaries_a_killed_run_left(corpus, tmp_path):
    cache_dir = tmp_path / "cache"
    _run(corpus, cache_dir, partitions=["test"])
    # What kill -9 leaves during a shard, a manifest or a Beam run; and the
    # user's own files, which stay.
    prefix = io_utils.TEMP_PREFIX
    leftovers = [cache_dir / "train" / f"{prefix}train_1.tfrecord.a1b2c3d4.tmp",
                 cache_dir / f"{prefix}manifest.json.e5f6g7h8.tmp",
                 cache_dir / f"{prefix}beam_results.i9j0k1l2" / "part-00000.jsonl"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    mine = [cache_dir / ".notes.v2.txt", cache_dir / "test" / ".keep.me.tmp"]
    for path in mine:
        path.write_text("mine")
    # A run with nothing to do cleans up too.
    _run(corpus, cache_dir, partitions=["test"])
    assert not [p for p in cache_dir.rglob("*") if io_utils.is_temporary(p.name)]
    assert all(path.read_text() == "mine" for path in mine)


class _FullDiskWriter:
    """`tf.io.TFRecordWriter` on a disk that fills up after `room` records:
    then it fails as TensorFlow does (ResourceExhaustedError naming the file)."""

    room = 0

    def __init__(self, path):
        self.path = path
        self.file = open(path, "wb")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def write(self, record):
        import tensorflow as tf

        if _FullDiskWriter.room == 0:
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{self.path}; No space left on device")
        _FullDiskWriter.room -= 1
        self.file.write(record)


def test_a_full_disk_ends_in_one_line_and_leaves_no_partial_shard(corpus, tmp_path, monkeypatch,
                                                                  capsys):
    import tensorflow as tf

    cache_dir = tmp_path / "cache"
    _FullDiskWriter.room = 7 + 3  # train_1's 7 samples, then 3 of dev_1's
    monkeypatch.setattr(tf.io, "TFRecordWriter", _FullDiskWriter)
    code = cli.run("preprocess", lambda: _run(corpus, cache_dir), output=cache_dir)
    assert code == cli.EXIT_BAD_INPUT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    shard = cache_dir / "dev" / "dev_1.tfrecord"
    assert lines[0].startswith(f"preprocess: no space left on device while writing {shard} ")
    # The partial shard is gone; the recording finished before stays cached.
    assert not shard.exists() and not list((cache_dir / "dev").iterdir())
    assert [e.name for e in cache.read_manifest(cache_dir).entries] == ["train_1"]
    monkeypatch.undo()
    assert len(_run(corpus, cache_dir).entries) == 3


def test_a_full_disk_in_a_worker_stops_the_run(corpus, tmp_path, monkeypatch):
    # Not a broken video: reported as the disk error it is, and the
    # recordings after it are not tried (they would fail alike).
    calls = []

    def track(job, aligner_kwargs, progress):
        calls.append(job.name)
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/somewhere")

    monkeypatch.setattr(preprocess, "track_recording", track)
    with pytest.raises(OSError) as raised:
        _run(corpus, tmp_path / "cache")
    assert raised.value.errno == errno.ENOSPC and calls == ["train_1"]


@pytest.mark.parametrize("kwargs,match", [
    ({"workers": 0}, "--workers"),
    ({"face": FaceSettings(size=4)}, "--size=4"),
    ({"face": FaceSettings(size=100)}, "--size=100 .*multiple of 8"),
    ({"partitions": ["val"]}, "--partitions"),
    ({"min_found_rate": 2.0}, "--min_found_rate"),
])
def test_bad_arguments(corpus, tmp_path, kwargs, match):
    args = {"face": FaceSettings(size=SIZE), "workers": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        preprocess.preprocess_corpus(corpus, "recola", tmp_path, progress=False, **args)


def test_missing_corpus_folder_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        preprocess.preprocess_corpus(missing, "recola", tmp_path / "c", progress=False)


def test_summary_warns_below_the_threshold(reference_cache):
    text = preprocess.summarize(cache.read_manifest(reference_cache), 0.8)
    lines = text.splitlines()
    assert "WARNING" in next(line for line in lines if line.startswith("test_1"))
    assert "WARNING" not in next(line for line in lines if line.startswith("dev_1"))
    assert "1 recording(s)" in lines[-1]


def test_summary_reports_the_smallest_face_and_several_faces(reference_cache):
    manifest = cache.read_manifest(reference_cache)
    # The corpus' faces: detection boxes of about 110-130 px in 320 x 240 frames.
    sizes = {e.name: e.min_face_px for e in manifest.entries}
    assert sizes["test_1"] is None and 90 < sizes["train_1"] < 150
    assert all(e.multi_face_samples == 0 for e in manifest.entries)
    smallest = min(sizes["train_1"], sizes["dev_1"])
    text = preprocess.summarize(manifest)
    assert re.search(rf"^dev_1 .* {sizes['dev_1']:.0f}px\s+0$", text, re.M), text
    assert f"Smallest face found: {smallest:.0f} px" in text
    manifest.entries[0].multi_face_samples = 3
    assert "3 sample(s) showed more than one face" in preprocess.summarize(manifest)


@pytest.mark.parametrize("name,default,other", [
    ("face", "largest", "left"),
    ("redetect_every", 1, 4),
])
def test_face_settings_are_cache_settings(corpus, reference_cache, name, default, other):
    assert faces.DEFAULT_REDETECT_EVERY == 1  # the paper detects in every frame
    assert getattr(cache.read_manifest(reference_cache).face, name) == default
    with pytest.raises(ValueError, match=f"other settings.*{name}: {default!r} vs {other!r}"):
        _run(corpus, reference_cache, **{name: other})


def test_a_cache_of_an_older_layout_is_refused_with_the_command_that_rebuilds_it(
        reference_cache, tmp_path):
    # Caches before the face settings moved into the manifest (format 1) held
    # `size` there and the rest in preprocess.json.
    old = tmp_path / "old"
    shutil.copytree(reference_cache, old)
    payload = json.loads((old / cache.MANIFEST_NAME).read_text())
    size = payload.pop("face")["size"]
    (old / cache.MANIFEST_NAME).write_text(json.dumps({**payload, "format_version": 1,
                                                       "size": size}))
    with pytest.raises(ValueError) as raised:
        cache.read_manifest(old)
    message = str(raised.value)
    assert "\n" not in message and str(old) in message
    assert "older recola_sta" in message and "python -m recola_sta.preprocess" in message


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recola_sta.preprocess", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(pathlib.Path.cwd())})


def test_cli_with_a_flagfile(corpus, tmp_path, call_cli):
    flagfile = tmp_path / "prep.flags"
    flagfile.write_text(
        f"# preprocess the unlabeled test partition\n--corpus_dir={corpus}\n"
        f"--corpus_kind=recola\n--cache_dir={tmp_path / 'cache'}\n--size={SIZE}\n"
        "--partitions=test\n--workers=1\n--noprogress\n"
    )
    done = call_cli("preprocess", f"--flagfile={flagfile}")
    assert done.returncode == 0, done.stderr
    assert re.search(r"test_1 .* 0\.0%\s+-\s+0\s+WARNING", done.stdout), done.stdout
    assert [e.name for e in cache.read_manifest(tmp_path / "cache").entries] == ["test_1"]


@pytest.mark.slow
def test_cli_at_its_default_worker_count(corpus, tmp_path):
    # Two recordings and --workers at its default (2): a pool of two workers,
    # whose tasks the module run with -m pickles as __main__._track_recording.
    done = _cli(f"--corpus_dir={corpus}", "--corpus_kind=recola",
                f"--cache_dir={tmp_path / 'cache'}", "--size=16", "--partitions=train,dev",
                "--noprogress")
    assert done.returncode == 0, done.stderr
    assert "(2 recordings)" in done.stdout, done.stdout
    manifest = cache.read_manifest(tmp_path / "cache")
    assert [e.name for e in manifest.entries] == ["train_1", "dev_1"]
    assert [e.found_rate for e in manifest.entries] == [1.0, 1.0]


def test_cli_errors_name_the_problem(tmp_path, call_cli):
    missing, cache_dir = tmp_path / "nowhere", f"--cache_dir={tmp_path / 'c'}"
    done = call_cli("preprocess", f"--corpus_dir={missing}", cache_dir)
    assert done.returncode == 2 and str(missing) in done.stderr, done.stderr
    done = call_cli("preprocess", f"--corpus_dir={tmp_path}", cache_dir, "--workers=0")
    assert done.returncode != 0 and "workers" in done.stderr
    done = call_cli("preprocess", cache_dir)
    assert done.returncode != 0 and "corpus_dir" in done.stderr
    done = call_cli("preprocess", f"--corpus_dir={tmp_path}", cache_dir, "--upsample=9")
    assert done.returncode != 0 and "--upsample" in done.stderr
    done = call_cli("preprocess", f"--corpus_dir={tmp_path}", cache_dir, "--face=biggest")
    assert done.returncode != 0 and "--face" in done.stderr


def test_a_recording_that_names_its_side_overrides_the_face_flag(corpus, tmp_path, monkeypatch):
    # Aff-Wild2's NAME_left / NAME_right annotations become recordings with
    # face="left" / "right"; their video is tracked with that rule.
    real_load = corpora.load_corpus

    def load(root, kind):
        return [dataclasses.replace(r, face="right") if r.name == "dev_1" else r
                for r in real_load(root, kind)]

    rules = {}
    real_track = preprocess.track_recording

    def track(job, aligner_kwargs, progress):
        rules[job.name] = aligner_kwargs["face"]
        return real_track(job, aligner_kwargs, progress)

    monkeypatch.setattr(corpora, "load_corpus", load)
    monkeypatch.setattr(preprocess, "track_recording", track)
    _run(corpus, tmp_path, partitions=["train", "dev"], face="center")
    assert rules == {"train_1": "center", "dev_1": "right"}
