"""Contracts of recola_sta.train's run folder, on a hand-made tiny cache.

No network is built or trained here: each test stops at a guard, in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import socket

import numpy as np
import pytest

from recola_sta import cache, faces, io_utils, settings
from recola_sta.cache import preprocess
from recola_sta.data import face_animation, synthetic
from recola_sta.model.networks import ModelOptions
from recola_sta.training import checkpoints, inputs, run_folder, train
from recola_sta.cache import shards
from recola_sta.faces.settings import FaceSettings

SIZE = 16


def _write_cache(cache_dir: pathlib.Path, *, size: int = SIZE, dev_labels: bool = True,
                 dev_faces: bool = True, face: FaceSettings | None = None) -> None:
    """Two recordings of 8 samples (train_1, dev_1) with a `valence` label."""
    entries = []
    for name, partition in (("train_1", "train"), ("dev_1", "dev")):
        n = 8
        found = partition != "dev" or dev_faces
        track = faces.FaceTrack(times=np.arange(n) / 4.0,
                                crops=np.zeros((n, size, size, 3), np.uint8),
                                found=np.full(n, found))
        values = np.linspace(-0.5, 0.5, n, dtype=np.float32)
        if partition == "dev" and not dev_labels:
            values[:] = np.nan
        shard = cache.shard_path(partition, name)
        shards.write_shard(cache_dir / shard, track, {"valence": values})
        entries.append(cache.CacheEntry(name=name, partition=partition, shard=shard,
                                        num_samples=n, found_rate=float(found),
                                        video=f"/videos/{name}.mp4", targets=["valence"]))
    cache.write_manifest(cache_dir, cache.Manifest(
        corpus_root="/corpus", corpus_kind="csv", fps=4.0,
        face=face or FaceSettings(size=size), entries=entries))


@pytest.fixture
def no_preprocess(monkeypatch):
    """Replaces the preprocess stage by a spy that records its arguments."""
    calls = []
    monkeypatch.setattr(preprocess, "preprocess_corpus",
                        lambda *args, **kwargs: calls.append((args, kwargs)))
    return calls


def _config(tmp_path: pathlib.Path, **changes) -> train.TrainConfig:
    """A small run's config; `changes` may name face settings (size=...) and
    the network's options (fc_units=...) too."""
    (tmp_path / "corpus").mkdir(exist_ok=True)
    face_names = {f.name for f in dataclasses.fields(FaceSettings)}
    model_names = {f.name for f in dataclasses.fields(ModelOptions)}
    face = FaceSettings(**{"size": SIZE, **{k: v for k, v in changes.items() if k in face_names}})
    model = ModelOptions(**{k: v for k, v in changes.items() if k in model_names})
    return train.TrainConfig(**{
        "corpus_dir": str(tmp_path / "corpus"), "corpus_kind": "csv",
        "run_dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache"),
        "face": face, "model": model, "frames": 4, "batch_size": 2, "epochs": 1,
        "progress": False,
        **{k: v for k, v in changes.items() if k not in face_names | model_names}})


@pytest.mark.parametrize("cache_kwargs,changes,match", [
    ({"size": 32}, {}, "--size=16"),
    ({}, {"target": "arousal"}, "--target=arousal"),
    ({"dev_labels": False}, {}, r"dev partition is NaN.*dev_1: shard .*dev_1\.tfrecord"),
    # No dev face: val_ccc would come from no frame at all.
    ({"dev_faces": False}, {},
     r"^No face was found in any dev recording .*dev_1: video /videos/dev_1\.mp4.*cannot "
     r"select a model"),
])
def test_nothing_is_written_before_the_cache_checks_pass(tmp_path, no_preprocess,
                                                         cache_kwargs, changes, match):
    _write_cache(tmp_path / "cache", **cache_kwargs)
    config = _config(tmp_path, **changes)
    with pytest.raises(ValueError, match=match):
        train.run_training(config, flags_text="--size=16\n")
    assert not (tmp_path / "run").exists()


def test_all_nan_dev_labels_name_the_partition_and_files(tmp_path, no_preprocess):
    _write_cache(tmp_path / "cache", dev_labels=False)
    with pytest.raises(ValueError) as info:
        train.run_training(_config(tmp_path))
    message = str(info.value)
    assert "dev" in message and "/videos/dev_1.mp4" in message
    assert str(tmp_path / "cache" / "dev" / "dev_1.tfrecord") in message
    assert "val_ccc" not in message and "/corpus" in message


def test_face_flags_are_forwarded_to_preprocess(tmp_path, no_preprocess):
    _write_cache(tmp_path / "cache", size=32)  # stops the run after preprocess
    config = _config(tmp_path, upsample=1, detect_width=0, face="right",
                     predictor_path="/models/shape.dat", redetect_every=2, rotate=90)
    with pytest.raises(ValueError, match="--size"):
        train.run_training(config)
    (_, kwargs), = no_preprocess
    assert kwargs["face"] == FaceSettings(
        size=SIZE, upsample=1, detect_width=0, face="right",
        predictor_path="/models/shape.dat", redetect_every=2, rotate=90)


@pytest.mark.parametrize("changes,flag", [
    ({"upsample": 3}, "--upsample"),
    ({"face": "biggest"}, "--face"),
    ({"detect_width": 40}, "--detect_width"),
    ({"redetect_every": 0}, "--redetect_every"),
    ({"rotate": 45}, "--rotate"),
])
def test_bad_face_flags_are_named(tmp_path, changes, flag):
    with pytest.raises(ValueError, match=flag):
        _config(tmp_path, **changes).validate()


@pytest.mark.parametrize("changes,flag", [
    ({"learning_rate": 1e-3}, r"--learning_rate: 0\.0001 -> 0\.001"),
    ({"loss": "ccc"}, "--loss: 'mse' -> 'ccc'"),
])
def test_resume_with_another_learning_rate_or_loss_is_refused(tmp_path, no_preprocess,
                                                               changes, flag):
    config = _config(tmp_path)
    run = pathlib.Path(config.run_dir)
    run.mkdir()
    run_folder.write_config(config, run)
    # Not trained yet: nothing to resume, so the schedule may still change.
    train.check_run_folder(_config(tmp_path, **changes), run)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.keras").write_bytes(b"")
    (run / "checkpoints" / "state.json").write_text('{"epoch": 1, "best": 0.1, "best_epoch": 1}')
    before = (run / "config.json").read_text()
    with pytest.raises(ValueError, match=flag):
        train.run_training(_config(tmp_path, **changes), flags_text="--x\n")
    assert (run / "config.json").read_text() == before
    assert not (run / "flags.cfg").exists() and not no_preprocess


def test_the_networks_options_are_guarded_by_flag_name_wherever_config_json_holds_them(
        tmp_path):
    """Every flag of `ModelOptions` changes the network, so the guard refuses
    a resume with another value; a config.json with the options at the top
    level (as runs wrote it before they were grouped) is read the same way."""
    assert settings.flag_names(ModelOptions) <= set(run_folder.ARCHITECTURE_KEYS)
    config = _config(tmp_path, fc_units=8, peephole_mode="none")
    run = pathlib.Path(config.run_dir)
    run.mkdir()
    run_folder.write_config(config, run)
    stored = json.loads((run / "config.json").read_text())
    assert stored["model"]["fc_units"] == 8 and "fc_units" not in stored
    flat = {key: value for key, value in stored.items() if key != "model"}
    flat.update(stored["model"])
    (run / "config.json").write_text(json.dumps(flat))
    run_folder.check_run_folder(config, run)
    with pytest.raises(ValueError, match="--fc_units: 8 -> 16, --peephole_mode: 'none' -> 'conv'"):
        run_folder.check_run_folder(_config(tmp_path, fc_units=16), run)


def test_synthetic_corpus_mismatch_names_train_flags(tmp_path, no_preprocess):
    corpus = tmp_path / "synthetic"
    corpus.mkdir()
    params = {"format_version": 1, "num_train": 20, "num_dev": 5, "num_test": 5}
    (corpus / synthetic.MARKER_NAME).write_text(json.dumps({"params": params}))
    config = _config(tmp_path, corpus_dir=str(corpus), corpus_kind="synthetic",
                     synthetic_num_train=2, workers=1)
    with pytest.raises(ValueError) as info:
        train.run_training(config)
    message = str(info.value)
    assert "--overwrite" not in message and "overwrite" not in message
    assert "--synthetic_num_train: 20 there, 2 now" in message
    assert re.search(r"--corpus_dir=\S*synthetic", message)
    assert not (tmp_path / "run").exists()


def _default_preset_marker(corpus: pathlib.Path) -> None:
    """A synthetic.json as a default-preset corpus of train's default settings
    wrote it before presets existed (no "preset" key)."""
    corpus.mkdir()
    params = {"format_version": synthetic._FORMAT_VERSION, "source": "skimage.data.astronaut",
              "num_train": 20, "num_dev": 5, "num_test": 5, "duration_s": 60.0,
              "width": 320, "height": 240, "fps": 25.0, "seed": 0,
              "annotation_delay_s": 0.0, "mouth_shift_px": face_animation.MOUTH_SHIFT_PX}
    (corpus / synthetic.MARKER_NAME).write_text(json.dumps({"params": params, "complete": True}))


@pytest.mark.parametrize("preset", synthetic.PRESETS)
def test_synthetic_preset_reaches_ensure_corpus_and_the_recorded_config(
        tmp_path, no_preprocess, monkeypatch, preset):
    calls = []
    monkeypatch.setattr(synthetic, "ensure_corpus",
                        lambda root, **kwargs: calls.append((root, kwargs)))
    _write_cache(tmp_path / "cache", size=32)  # stops the run after preprocess
    config = _config(tmp_path, corpus_dir=str(tmp_path / "synthetic"),
                     corpus_kind="synthetic", synthetic_preset=preset, workers=1)
    with pytest.raises(ValueError, match="--size"):
        train.run_training(config)
    (root, kwargs), = calls
    assert root == tmp_path / "synthetic" and kwargs["preset"] == preset
    run = tmp_path / "run"
    run.mkdir()
    run_folder.write_config(config, run)
    assert json.loads((run / "config.json").read_text())["synthetic_preset"] == preset


def test_synthetic_preset_mismatch_names_the_train_flag(tmp_path, no_preprocess):
    corpus = tmp_path / "synthetic"
    _default_preset_marker(corpus)
    # The same settings and preset are accepted (the corpus is complete: nothing is generated).
    inputs.prepare_corpus(_config(tmp_path, corpus_dir=str(corpus), corpus_kind="synthetic",
                                 workers=1))
    config = _config(tmp_path, corpus_dir=str(corpus), corpus_kind="synthetic",
                     synthetic_preset="recola_like", workers=1)
    with pytest.raises(ValueError) as info:
        train.run_training(config)
    message = str(info.value)
    assert "--synthetic_preset: 'default' there, 'recola_like' now" in message
    assert "overwrite" not in message and "mouth_shift_px" not in message
    assert "--synthetic_num_train" not in message  # only what differs is named
    assert re.search(r"--corpus_dir=\S*synthetic", message)
    assert not (tmp_path / "run").exists() and not no_preprocess


def test_synthetic_fps_reaches_ensure_corpus_and_a_mismatch_names_the_flag(
        tmp_path, no_preprocess, monkeypatch):
    corpus = tmp_path / "synthetic"
    _default_preset_marker(corpus)  # made at 25 fps
    config = _config(tmp_path, corpus_dir=str(corpus), corpus_kind="synthetic",
                     synthetic_fps=8.0, workers=1)
    with pytest.raises(ValueError) as info:
        train.run_training(config)
    assert "--synthetic_fps: 25.0 there, 8.0 now" in str(info.value)
    calls = []
    monkeypatch.setattr(synthetic, "ensure_corpus",
                        lambda root, **kwargs: calls.append(kwargs))
    inputs.prepare_corpus(config)
    assert calls[0]["fps"] == 8.0


@pytest.mark.parametrize("changes,match", [
    ({"corpus_kind": "synthetic", "synthetic_fps": 3.0},
     r"--synthetic_fps=3.0 is invalid: expected at least the 4 fps"),
    ({"corpus_kind": "synthetic", "synthetic_preset": "recola"},
     r"--synthetic_preset='recola' is invalid: expected default or recola_like"),
    ({"distribution": "mirrored", "target": "valence,arousal"},
     r"--distribution='mirrored' is invalid: expected none when --target names several "
     r"targets"),
    # Non-finite floats: inf passes "positive", NaN fails no comparison.
    ({"learning_rate": float("inf")},
     r"--learning_rate=inf is invalid: expected a finite number \(positive\)"),
    ({"learning_rate": float("nan")}, r"--learning_rate=nan is invalid: expected a finite"),
    ({"dropout": float("nan")}, r"--dropout=nan is invalid: expected a finite"),
    ({"min_found_rate": float("-inf")}, r"--min_found_rate=-inf is invalid: expected a finite"),
    ({"synthetic_duration_s": float("inf")},
     r"--synthetic_duration_s=inf is invalid: expected a finite"),
])
def test_invalid_settings_are_named_before_any_work(tmp_path, no_preprocess, changes, match):
    with pytest.raises(ValueError, match=match):
        train.run_training(_config(tmp_path, **changes))
    assert not (tmp_path / "run").exists() and not no_preprocess


def test_synthetic_preset_flag_choices():
    """The CLI flag: parsed into the config, a bad value refused naming the flag."""
    from absl import flags

    flag_values = flags.FlagValues()  # the CLI's flags, apart from absl's global ones
    train.define_flags(flag_values)
    flag_values(["train", "--corpus_dir=c", "--synthetic_preset=recola_like",
                 "--allow_existing_dir"])
    assert train.config_from_flags(flag_values).synthetic_preset == "recola_like"
    assert train.config_from_flags(flag_values).allow_existing_dir is True
    flag_values.unparse_flags()
    with pytest.raises(flags.Error) as refused:
        flag_values(["train", "--corpus_dir=c", "--synthetic_preset=recola"])
    assert "--synthetic_preset=recola" in str(refused.value)
    assert "default|recola_like" in str(refused.value)


def test_export_metadata_records_the_caches_aligner(tmp_path):
    face = FaceSettings(size=SIZE, upsample=1, detect_width=0, face="left")
    _write_cache(tmp_path / "cache", face=face)
    config = _config(tmp_path, target="valence", frames=4)  # its own face flags: defaults
    meta = train.export_metadata(config, cache.read_manifest(tmp_path / "cache"))
    assert meta["fps"] == 4.0 and meta["targets"] == ["valence"]
    assert meta["face"] == face.to_json()  # the cache's settings, not the run's flags


@pytest.mark.slow
def test_a_run_folder_in_use_is_refused_and_a_killed_runs_leftovers_are_cleared(
        tmp_path, no_preprocess):
    _write_cache(tmp_path / "cache")
    config = _config(tmp_path, variant="2d_cnn", fc_units=8)  # the quickest network to train
    run = tmp_path / "run"
    run.mkdir()
    run_folder.write_config(config, run)  # as a run killed during its first epoch left it
    (run / "checkpoints").mkdir()
    # A holder (here another open of the lock file in this very process)
    # keeps a second run out, naming itself.
    with io_utils.exclusive_lock(run / ".lock", "a trainer"):
        with pytest.raises(io_utils.LockedError, match=rf"in use by process {os.getpid()}"):
            train.run_training(config, flags_text="--x\n")
    assert not (run / "flags.cfg").exists()
    # The lock file a killed run left holds nothing, whatever it names (here a
    # live process: pids are reused); a killed run's temporaries go too.
    (run / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    leftover = run / "checkpoints" / f"{io_utils.TEMP_PREFIX}last.keras.k1ll3d.keras"
    leftover.write_bytes(b"half a model")
    # The run takes the folder and trains; it then stops at evaluation, which
    # needs the corpus this cache-only fixture does not have.
    with pytest.raises(FileNotFoundError, match="Corpus root"):
        train.run_training(config)
    assert (run / "config.json").is_file() and (run / "checkpoints" / "last.keras").is_file()
    assert not leftover.exists()
    with io_utils.exclusive_lock(run / ".lock", "the next run"):
        pass  # released however the run ends


USER_FILES = {".env.local": "TOKEN=1\n", ".eslintrc.json": "{}\n", "notes.txt": "mine\n"}


def test_a_folder_of_other_files_is_refused_as_run_dir_and_left_untouched(tmp_path,
                                                                          no_preprocess):
    _write_cache(tmp_path / "cache")
    run = tmp_path / "run"
    run.mkdir()
    for name, text in USER_FILES.items():
        (run / name).write_text(text)
    with pytest.raises(ValueError) as info:
        train.run_training(_config(tmp_path), flags_text="--x\n")
    assert str(info.value) == (
        f"--run_dir={run} is a folder that holds other files (.env.local, .eslintrc.json, "
        "notes.txt) and no training run (no config.json); choose a new or empty --run_dir, "
        "or pass --allow_existing_dir to write the run beside them.")
    assert {p.name: p.read_text() for p in run.iterdir()} == USER_FILES
    assert not no_preprocess  # refused before any work
    # A config.json of something else does not make it a run folder.
    (run / "config.json").write_text('{"name": "my-app"}\n')
    with pytest.raises(ValueError, match="holds other files"):
        train.check_run_dir_is_ours(_config(tmp_path), run)
    # The flag lets the run in, and config.json records it.
    (run / "config.json").unlink()
    allowed = _config(tmp_path, allow_existing_dir=True)
    train.check_run_dir_is_ours(allowed, run)
    run_folder.write_config(allowed, run)
    assert json.loads((run / "config.json").read_text())["allow_existing_dir"] is True
    # Once the run is there, the folder is a run folder: resuming needs no flag.
    train.check_run_dir_is_ours(_config(tmp_path), run)


@pytest.mark.parametrize("contents", [{}, {".lock": ""}])
def test_a_new_or_empty_run_dir_needs_no_flag(tmp_path, contents):
    run = tmp_path / "run"
    run.mkdir()
    for name, text in contents.items():  # the lock file of a run killed at its start
        (run / name).write_text(text)
    train.check_run_dir_is_ours(_config(tmp_path), run)
    train.check_run_dir_is_ours(_config(tmp_path), tmp_path / "missing")


def test_history_keeps_each_finished_epoch_once_across_a_kill(tmp_path, monkeypatch):
    """A kill after an epoch's history row and before its state: the resumed
    run redoes that epoch, and history.csv still has one row per epoch."""
    import keras

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    first = checkpoints.EpochCheckpoint(run, "val_ccc", -np.inf, 0)
    first.set_model(model)
    first.on_epoch_end(0, {"loss": 0.5, "val_ccc": 0.1})

    write = io_utils.atomic_write_text

    def killed_at_state(path, text):
        if pathlib.Path(path).name == "state.json":
            raise KeyboardInterrupt  # the process dies before state.json names epoch 2
        write(path, text)
    monkeypatch.setattr(io_utils, "atomic_write_text", killed_at_state)
    with pytest.raises(KeyboardInterrupt):
        first.on_epoch_end(1, {"loss": 0.4, "val_ccc": 0.3})
    monkeypatch.undo()
    assert (run / "history.csv").read_text().splitlines()[-1] == "1,0.4,0.3"
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 1  # a resume restarts at the second epoch

    resumed = checkpoints.EpochCheckpoint(run, "val_ccc", state["best"], state["best_epoch"])
    resumed.set_model(model)
    for epoch, logs in ((1, {"loss": 0.35, "val_ccc": 0.4}), (2, {"loss": 0.3, "val_ccc": 0.2})):
        resumed.on_epoch_end(epoch, logs)
    lines = (run / "history.csv").read_text().splitlines()
    assert lines == ["epoch,loss,val_ccc", "0,0.5,0.1", "1,0.35,0.4", "2,0.3,0.2"]
    assert json.loads((run / "checkpoints" / "state.json").read_text()) == {
        "epoch": 3, "best": 0.4, "best_epoch": 2,
        "best_model": "checkpoints/best_epoch_0002.keras", "monitor": "val_ccc"}


@pytest.mark.parametrize("deterministic", [False, True])
def test_deterministic_fixes_the_pipeline_order_and_the_ops(tmp_path, no_preprocess,
                                                            monkeypatch, deterministic):
    import tensorflow as tf

    from recola_sta.training import pipeline

    calls = {"ops": 0}
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism",
                        lambda: calls.__setitem__("ops", calls["ops"] + 1))

    def spy(*args, **kwargs):
        calls["pipeline"] = kwargs["deterministic"]
        raise KeyboardInterrupt  # stop before any training
    monkeypatch.setattr(pipeline, "train_epochs", spy)
    _write_cache(tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        train.run_training(_config(tmp_path, deterministic=deterministic))
    assert calls == {"ops": int(deterministic), "pipeline": deterministic}
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["deterministic"] is deterministic



def _write_varied_cache(cache_dir: pathlib.Path) -> None:
    """Random faces and labels: two train recordings (12 clips of 4 samples)
    and one dev recording, enough for shuffling, augmentation and dropout to
    change what a step learns."""
    rng = np.random.default_rng(0)
    entries = []
    for name, partition in (("train_1", "train"), ("train_2", "train"), ("dev_1", "dev")):
        n = 24
        track = faces.FaceTrack(times=np.arange(n) / 4.0,
                                crops=rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8),
                                found=np.ones(n, bool))
        shard = cache.shard_path(partition, name)
        shards.write_shard(cache_dir / shard, track,
                          {"valence": rng.uniform(-0.5, 0.5, n).astype(np.float32)})
        entries.append(cache.CacheEntry(name=name, partition=partition, shard=shard,
                                        num_samples=n, found_rate=1.0,
                                        video=f"/videos/{name}.mp4", targets=["valence"]))
    cache.write_manifest(cache_dir, cache.Manifest(corpus_root="/corpus", corpus_kind="csv",
                                                   face=FaceSettings(size=SIZE), fps=4.0, entries=entries))


@pytest.mark.slow
def test_a_resumed_deterministic_run_trains_as_the_uninterrupted_one(tmp_path, monkeypatch):
    """Killed after epoch 1 and resumed (what a resume does: the same
    command, the checkpoint there) against one uninterrupted run: the same
    weights and history, bit for bit. Shuffled and augmented clips, dropout,
    and epochs of 4 steps in passes of 6, so the resumed epoch starts inside
    a pass and ends in the next."""
    import keras
    import tensorflow as tf

    from recola_sta.training import distributed

    # Op determinism cannot be turned off again, and would refuse the
    # unseeded random ops of later tests in this process; these ops on the
    # CPU keep their order without it.
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: None)
    _write_varied_cache(tmp_path / "cache")
    manifest = cache.read_manifest(tmp_path / "cache")

    def fit(name: str, epochs: int) -> None:
        config = _config(tmp_path, run_dir=str(tmp_path / name), epochs=epochs,
                         variant="3d_cnn", fc_units=32, dropout=0.5, deterministic=True,
                         jit_compile="off", max_steps_per_epoch=4)
        run = pathlib.Path(config.run_dir)
        run.mkdir(exist_ok=True)
        train._fit(config, run, config.cache_dir, manifest, distributed.connect("none"))

    fit("uninterrupted", 2)
    fit("resumed", 1)
    fit("resumed", 2)
    runs = [tmp_path / name for name in ("uninterrupted", "resumed")]
    history = [(run / "history.csv").read_text().splitlines() for run in runs]
    assert len(history[0]) == 3 and history[0] == history[1]
    weights = [keras.models.load_model(run / "checkpoints" / "last.keras").get_weights()
               for run in runs]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_mixed_precision_computes_in_bfloat16_and_keeps_float32_outputs(tmp_path):
    import keras

    from recola_sta.model import networks

    config = _config(tmp_path, variant="3d_cnn_sta", mixed_precision="bfloat16",
                     jit_compile="off", fc_units=8)
    model = train._build_and_compile(config)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    assert model.output.dtype == "float32" and model.jit_compile is False
    clips = np.random.default_rng(0).random((2, 4, SIZE, SIZE, 3), np.float32)
    loss = model.train_on_batch(clips, np.zeros((2, 4, 1), np.float32), np.ones((2, 4)))
    assert np.isfinite(loss).all()
    attention = networks.attention_model(model).predict(clips, verbose=0)
    assert attention.dtype == np.float32
    np.testing.assert_allclose(attention.sum(axis=(2, 3)), 1.0, atol=0.02)  # bfloat16 maps


def test_float16_without_a_gpu_is_refused_naming_the_flag(tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present: float16 is allowed")
    with pytest.raises(ValueError, match=r"--mixed_precision=float16 needs a GPU"):
        train._build_and_compile(_config(tmp_path, mixed_precision="float16"))
