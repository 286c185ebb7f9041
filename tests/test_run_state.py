"""A run folder's progress files (recola_sta.run_state): the best model and the
state that describes it change together, a diverged epoch is never the best
nor checkpointed, and a broken file is named with what to do.

Everything runs in-process on a two-weight Dense model, in seconds.
"""

from __future__ import annotations

import json
import pathlib

import keras
import numpy as np
import pytest

from recola_sta import cli, io_utils
from recola_sta.evaluation import evaluate
from recola_sta.training import checkpoints, run_folder, run_state, train
from recola_sta.faces.settings import FaceSettings


def _model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(keras.optimizers.Adam(1e-3), loss="mse")
    return _as_epoch(model, 1)


def _as_epoch(model: keras.Model, epoch: int) -> keras.Model:
    """Weights that make `model` predict `epoch` for the input (1, 0)."""
    model.layers[0].kernel.assign(np.array([[float(epoch)], [0.0]], np.float32))
    return model


def _epoch_of(model: keras.Model) -> float:
    return float(model.predict_on_batch(np.array([[1.0, 0.0]], np.float32))[0, 0])


def _load(path: pathlib.Path) -> keras.Model:
    return keras.models.load_model(path, compile=False)


def _state(run: pathlib.Path) -> dict:
    return json.loads((run / "checkpoints" / "state.json").read_text())


def _checkpoint(run: pathlib.Path) -> tuple[checkpoints.EpochCheckpoint, keras.Model]:
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    model = _model()
    callback = checkpoints.EpochCheckpoint(run, "val_ccc", -np.inf, 0)
    callback.set_model(model)
    return callback, model


def _run_config(run: pathlib.Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({
        "target": "valence", "cache_dir": str(run / "cache"), "frames": 4, "batch_size": 2,
        "convention": "avec"}))


class _Evaluated(Exception):
    pass


@pytest.fixture
def model_evaluated(monkeypatch):
    """Stops `evaluate.predict_targets` at its first call, reporting the epoch
    of the model it was given (`_as_epoch`)."""
    def spy(predict_fn, *args, **kwargs):
        raise _Evaluated(float(predict_fn(np.array([[1.0, 0.0]], np.float32))[0, 0]))
    monkeypatch.setattr(evaluate, "predict_targets", spy)

    def epoch_of(call) -> float:
        with pytest.raises(_Evaluated) as info:
            call()
        return info.value.args[0]
    return epoch_of


@pytest.mark.parametrize("killed_at", ["state.json", "best.keras"])
def test_best_keras_never_runs_ahead_of_the_state(tmp_path, monkeypatch, model_evaluated,
                                                  killed_at):
    """A failure between an improved epoch's writes: best.keras, evaluate
    and a resumed run all keep to the epoch the state names."""
    run = tmp_path / "run"
    _run_config(run)
    callback, model = _checkpoint(run)
    callback.on_epoch_end(0, {"loss": 0.5, "val_ccc": 0.1})  # the model of epoch 1
    _as_epoch(model, 2)
    write, copy = io_utils.atomic_write_text, run_state._copy_atomic

    def fail_at_state(path, text):
        if pathlib.Path(path).name == "state.json":
            raise OSError(28, "No space left on device", str(path))
        write(path, text)

    def fail_at_best(source, target):
        raise OSError(28, "No space left on device", str(target))
    if killed_at == "state.json":
        monkeypatch.setattr(io_utils, "atomic_write_text", fail_at_state)
    else:
        monkeypatch.setattr(run_state, "_copy_atomic", fail_at_best)
    with pytest.raises(OSError):
        callback.on_epoch_end(1, {"loss": 0.4, "val_ccc": 0.3})
    monkeypatch.setattr(io_utils, "atomic_write_text", write)
    monkeypatch.setattr(run_state, "_copy_atomic", copy)

    committed = 2 if killed_at == "best.keras" else 1
    assert _state(run)["best_epoch"] == committed
    best_file = run_state.best_model_path(run)
    assert _epoch_of(_load(best_file)) == committed
    # evaluate uses the model of the epoch the state names.
    assert model_evaluated(lambda: evaluate.evaluate_run(run, progress=False)) == committed
    # So does train's own evaluation of the best epoch.
    config = train.TrainConfig(corpus_dir="c", run_dir=str(run), variant="2d_cnn",
                               export=False, progress=False)
    assert model_evaluated(lambda: train._evaluate_best(config, run, "cache", None)) == committed
    # best.keras holds an epoch the state names: at once where the state was
    # not written, after the next start's settling where the copy failed.
    if killed_at == "state.json":
        assert _epoch_of(_load(run / "best.keras")) == committed
    run_state.settle(run)
    assert _epoch_of(_load(run / "best.keras")) == committed
    assert sorted(p.name for p in (run / "checkpoints").glob("best_epoch_*")) == [
        f"best_epoch_{committed:04d}.keras"]


def test_a_nan_dev_ccc_is_never_the_best(tmp_path):
    run = tmp_path / "run"
    callback, model = _checkpoint(run)
    callback.on_epoch_end(0, {"loss": 0.5, "val_ccc": float("nan")})
    text = (run / "checkpoints" / "state.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert _state(run)["best"] is None and not (run / "best.keras").exists()
    with pytest.raises(run_state.RunFileError, match="No epoch of .* produced a finite dev CCC"):
        run_state.best_model_path(run)
    _as_epoch(model, 2)
    callback.on_epoch_end(1, {"loss": 0.4, "val_ccc": 0.2})
    _as_epoch(model, 3)
    callback.on_epoch_end(2, {"loss": 0.3, "val_ccc": float("nan")})
    state = _state(run)
    assert (state["best"], state["best_epoch"]) == (0.2, 2)
    assert _epoch_of(_load(run / "best.keras")) == 2
    # A state that records a NaN best is refused, naming the file.
    (run / "checkpoints" / "state.json").write_text(text.replace("null", "NaN", 1))
    with pytest.raises(run_state.RunFileError,
                       match=r"state\.json is malformed \(its best dev value is NaN\)"):
        run_state.read_state(run)


def test_a_non_finite_loss_stops_training_before_its_epoch_is_checkpointed(tmp_path, capsys):
    run = tmp_path / "run"
    callback, model = _checkpoint(run)
    x = np.ones((8, 2), np.float32)
    y = np.zeros((8, 1), np.float32)
    callbacks = [checkpoints.StopOnNonFiniteLoss(1e-4, run), callback]
    model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=1, callbacks=callbacks,
              verbose=0)
    assert _state(run)["epoch"] == 1
    x[5, 0] = np.inf  # the second batch's loss is infinite, the weights then NaN
    with pytest.raises(checkpoints.DivergedError) as info:
        model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=3, initial_epoch=1,
                  callbacks=callbacks, verbose=0)
    message = str(info.value)
    assert message.startswith("training diverged: the loss became ")
    assert "at epoch 2" in message and "lower --learning_rate (this run: 0.0001)" in message
    assert "\n" not in message
    assert _state(run)["epoch"] == 1  # the diverged epoch left no trace
    assert len((run / "history.csv").read_text().splitlines()) == 2  # header, epoch 1
    # distributed.fit reports epochs only: checked there too.
    with pytest.raises(checkpoints.DivergedError, match="the loss became nan at epoch 4"):
        callbacks[0].on_epoch_end(3, {"loss": float("nan")})
    # The epoch's last step can turn the weights NaN after its loss was
    # computed: the dev loss tells.
    with pytest.raises(checkpoints.DivergedError,
                       match=r"the dev loss \(val_loss\) became inf at epoch 4"):
        callbacks[0].on_epoch_end(3, {"loss": 0.1, "val_loss": float("inf")})

    def body():
        raise info.value
    assert cli.run("train", body) == cli.EXIT_BAD_INPUT
    assert capsys.readouterr().err == f"train: {message}\n"


def _resumable_run(tmp_path: pathlib.Path) -> tuple[train.TrainConfig, pathlib.Path]:
    """A run folder after one epoch, with config.json matching the config."""
    config = train.TrainConfig(corpus_dir=str(tmp_path), corpus_kind="csv",
                               run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
                               face=FaceSettings(size=16), frames=4, batch_size=2, epochs=2, progress=False)
    run = pathlib.Path(config.run_dir)
    run.mkdir()
    run_folder.write_config(config, run)
    callback, _ = _checkpoint(run)
    callback.on_epoch_end(0, {"loss": 0.5, "val_ccc": 0.1})
    return config, run


def _truncate(path: pathlib.Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("broken,write,match", [
    ("checkpoints/last.keras", _truncate,
     r"checkpoints/last\.keras is corrupt \(not a complete \.keras archive.*\); delete the "
     r"folder .*checkpoints to train this run again from its first epoch"),
    ("checkpoints/best_epoch_0001.keras", _truncate,
     r"best_epoch_0001\.keras is corrupt .*delete the folder .*checkpoints"),
    ("checkpoints/state.json", lambda p: p.write_text(""),
     r"checkpoints/state\.json is malformed \(Expecting value.*\); delete the folder "
     r".*checkpoints to train this run again"),
    ("checkpoints/state.json", lambda p: p.write_text('{"epoch": 1}'),
     r"state\.json is malformed \(best_epoch None is not an epoch"),
    ("history.csv", lambda p: p.write_text("epoch,loss\nabc,0.5\n"),
     r"history\.csv is malformed \(line 2: epoch 'abc' is not a whole number\); delete it"),
    ("history.csv", lambda p: p.write_text("epoch,loss\n0,x\n"),
     r"history\.csv is malformed \(line 2: loss 'x' is not a number\)"),
])
def test_a_broken_run_file_is_named_before_any_work(tmp_path, monkeypatch, broken, write,
                                                    match):
    """Refused before preprocessing or training, naming the file and what to do."""
    from recola_sta.cache import preprocess

    calls = []
    monkeypatch.setattr(preprocess, "preprocess_corpus", lambda *a, **k: calls.append(a))
    config, run = _resumable_run(tmp_path)
    write(run / broken)
    with pytest.raises(run_state.RunFileError, match=match):
        train.run_training(config)
    assert not calls


def test_evaluate_names_a_corrupt_model_or_a_malformed_config(tmp_path):
    run = tmp_path / "run"
    _run_config(run)
    callback, _ = _checkpoint(run)
    callback.on_epoch_end(0, {"loss": 0.5, "val_ccc": 0.1})
    _truncate(run / "checkpoints" / "best_epoch_0001.keras")
    with pytest.raises(run_state.RunFileError,
                       match=r"best_epoch_0001\.keras is corrupt \(not a complete \.keras "
                             r"archive.*\); evaluate the last epoch instead with "
                             r"--model_file=checkpoints/last\.keras"):
        evaluate.evaluate_run(run, progress=False)
    _truncate(run / "best.keras")
    with pytest.raises(run_state.RunFileError, match=r"run/best\.keras is corrupt"):
        evaluate.evaluate_run(run, model_file="best.keras", progress=False)
    (run / "config.json").write_text("")
    with pytest.raises(run_state.RunFileError,
                       match=r"run/config\.json is malformed \(Expecting value.*\); delete it "
                             r"and re-run the training command"):
        evaluate.evaluate_run(run, progress=False)


def test_a_run_folder_of_an_earlier_version_still_resumes_and_evaluates(tmp_path,
                                                                        model_evaluated):
    """A state without best_model (its model is best.keras), or with -Infinity
    as the best of a run without a finite epoch."""
    run = tmp_path / "run"
    _run_config(run)
    (run / "checkpoints").mkdir()
    model = _as_epoch(_model(), 1)
    model.save(run / "best.keras")
    model.save(run / "checkpoints" / "last.keras")
    (run / "checkpoints" / "state.json").write_text(
        '{"epoch": 1, "best": 0.1, "best_epoch": 1, "monitor": "val_ccc"}')
    assert run_state.settle(run)["best_model"] == "best.keras"
    assert model_evaluated(lambda: evaluate.evaluate_run(run, progress=False)) == 1
    (run / "checkpoints" / "state.json").write_text(
        '{"epoch": 1, "best": -Infinity, "best_epoch": 0, "monitor": "val_ccc"}')
    assert run_state.read_state(run)["best"] is None
    run_state.settle(run)
    assert not (run / "best.keras").exists()


@pytest.mark.parametrize("refusal", ["LEGACY_UPSAMPLING", "LEGACY_SCORE_WEIGHTS"])
def test_an_archive_of_the_older_decoder_is_refused_in_one_line(tmp_path, monkeypatch, refusal):
    """Keras quotes the layer's refusal inside a message of several lines;
    the run's loader gives the one line, naming the file and what to do."""
    from recola_sta.model import layers

    assert getattr(layers, refusal) in layers.ARCHIVE_REFUSALS
    path = tmp_path / "best.keras"
    _model().save(path)

    def old_archive(*args, **kwargs):
        raise ValueError(f"A total of 1 objects could not be loaded.\n"
                         f"Exception: {getattr(layers, refusal)}\nList of objects: ...")

    monkeypatch.setattr(keras.models, "load_model", old_archive)
    with pytest.raises(run_state.RunFileError) as raised:
        run_state.load_model(path, "unused")
    message = str(raised.value)
    assert "\n" not in message and str(path) in message
    assert "train the model again" in message and "python -m recola_sta.train" in message


@pytest.fixture
def ctrl_c():
    """Ctrl-C raising KeyboardInterrupt in this process, as in a terminal
    (pytest-xdist's workers ignore SIGINT); restored afterwards."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be set in the main thread")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_a_checkpoint_waits_for_its_files(tmp_path, monkeypatch, ctrl_c):
    """SIGINT while the epoch's .keras file is written (h5py would swallow
    its KeyboardInterrupt) is raised once the epoch's files are all written:
    last.keras whole, state.json naming that epoch."""
    import os
    import signal

    run = tmp_path / "run"
    callback, model = _checkpoint(run)
    save = type(model).save

    def save_then_ctrl_c(self, path, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # held back: nothing raised here
        save(self, path, *args, **kwargs)

    monkeypatch.setattr(type(model), "save", save_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        callback.on_epoch_end(0, {"val_ccc": 0.5})
    assert _state(run)["epoch"] == 1 and _state(run)["best_epoch"] == 1
    assert _epoch_of(_load(run / "checkpoints" / "last.keras")) == 1.0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_interrupts_held_raises_at_the_end_of_the_block(ctrl_c):
    import os
    import signal

    done = []
    with pytest.raises(KeyboardInterrupt):
        with cli.interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("the rest of the block ran")
    assert done == ["the rest of the block ran"]
    with cli.interrupts_held():  # nothing pending: nothing raised
        pass
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()
