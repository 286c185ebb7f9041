"""The callbacks of a training run: what is saved after every epoch
(`EpochCheckpoint`: the best epoch's model, history.csv, checkpoints/last.keras
and state.json), the stop at a diverged loss (`StopOnNonFiniteLoss`) and the
reseeding of the model's random generators at every epoch (`EpochSeeds`), so
that a resumed run trains on as the uninterrupted one would.
"""

from __future__ import annotations

import csv
import io
import json
import pathlib

import keras
import numpy as np

from recola_sta import cli, io_utils
from recola_sta.training import run_state


class DivergedError(ValueError):
    """The training loss became NaN or infinite (bad input: exit 2)."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite training loss by raising
    `DivergedError`, whose one line says so and suggests a lower learning rate.

    Checked after every batch (`model.fit`) and at every epoch's end (also
    `distributed.fit`, which reports epochs only), where the dev loss is
    checked too: the last step of an epoch can make the weights NaN after
    its training loss was computed, and a dev loss is finite for any
    finite model (missing labels are zeros with weight 0). Put before
    `EpochCheckpoint`: the epoch that diverged is then never checkpointed,
    so the run folder keeps the last finite epoch.
    """

    # Keras may run the batch check off the training thread (no per-step
    # wait for the loss); it re-raises the error at the next batch or at the
    # epoch's end, before any `on_epoch_end`.
    async_safe = True

    def __init__(self, learning_rate: float, run_dir: pathlib.Path):
        super().__init__()
        self.learning_rate = learning_rate
        self.run_dir = run_dir
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self._check(logs, ("loss",), f"epoch {self._epoch + 1}, step {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._check(logs, ("loss", "val_loss"), f"epoch {epoch + 1}")

    def _check(self, logs: dict[str, float] | None, names: tuple[str, ...], where: str) -> None:
        for name in names:
            value = (logs or {}).get(name)
            if value is not None and not np.isfinite(value):
                what = "the loss" if name == "loss" else "the dev loss (val_loss)"
                raise DivergedError(
                    f"training diverged: {what} became {float(value)} at {where}, so the run "
                    f"stopped; {self.run_dir} keeps the last finished epoch. Train again with "
                    f"a lower --learning_rate (this run: {self.learning_rate:g}) in a new "
                    "--run_dir (a resumed run keeps its learning rate).")


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves what a resumed run needs after every epoch, atomically.

    In order: the epoch's model under its own name
    (`checkpoints/best_epoch_<N>.keras`) when dev CCC improved, the epoch's
    row of `history.csv`, `checkpoints/last.keras` (weights and optimizer
    state), then `checkpoints/state.json` naming the finished epoch and the
    best epoch's model (the commit point), and last `best.keras`, a copy of
    that model (`run_state.publish_best`). A run killed at any point resumes
    from a consistent state whose best model exists, and `best.keras` never
    holds an epoch that state does not name (`run_state.settle` refreshes it
    at the next start should the kill fall before the copy). Its history
    keeps every finished epoch exactly once: an epoch redone after a kill
    (its row was written, its state was not) replaces its earlier row.

    A NaN or infinite dev value is never the best.
    """

    def __init__(self, run_dir: pathlib.Path, monitor: str, best: float, best_epoch: int,
                 best_model: str | None = None):
        super().__init__()
        self.run_dir = run_dir
        self.monitor = monitor
        self.best = best
        self.best_epoch = best_epoch
        # The run-relative file of the best epoch's model (`run_state.read_state`;
        # a run from before epoch-named best models has only best.keras).
        self.best_model = best_model or (run_state.BEST_NAME if best_epoch else None)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        # Ctrl-C waits for the epoch's files (`cli.interrupts_held`): they stay
        # a consistent set, and h5py, which writes the .keras files' weights,
        # would otherwise swallow the KeyboardInterrupt and the run go on.
        with cli.interrupts_held():
            self._checkpoint(epoch, logs)

    def _checkpoint(self, epoch: int, logs: dict[str, float] | None) -> None:
        logs = logs or {}
        value = logs.get(self.monitor)
        best, best_epoch, best_model = self.best, self.best_epoch, self.best_model
        if value is not None and np.isfinite(value) and value > best:
            best, best_epoch = float(value), epoch + 1
            best_model = run_state.best_model_name(best_epoch)
            with io_utils.atomic_path(self.run_dir / best_model, suffix=".keras") as tmp:
                self.model.save(tmp)
        write_history_row(self.run_dir / "history.csv", epoch, logs)
        with io_utils.atomic_path(self.run_dir / "checkpoints" / "last.keras", suffix=".keras") as tmp:
            self.model.save(tmp)
        state = {"epoch": epoch + 1, "best": best if np.isfinite(best) else None,
                 "best_epoch": best_epoch, "best_model": best_model, "monitor": self.monitor}
        io_utils.atomic_write_text(self.run_dir / "checkpoints" / "state.json", json.dumps(state) + "\n")
        if best_model != self.best_model:
            run_state.publish_best(self.run_dir, best_model)
        self.best, self.best_epoch, self.best_model = best, best_epoch, best_model


def write_history_row(path: pathlib.Path, epoch: int, logs: dict[str, float]) -> None:
    """Rewrites `history.csv` atomically with `epoch`'s row last.

    Rows of this and later epochs (left by a run killed after writing them
    and before its state) are dropped first. Columns: `epoch` (from 0, as
    Keras' CSVLogger writes it), then every logged name in sorted order.
    """
    rows = [r for r in run_state.read_history(path) if int(r["epoch"]) < epoch]
    rows.append({"epoch": str(epoch), **{k: repr(float(v)) for k, v in logs.items()}})
    columns = ["epoch", *sorted({k for r in rows for k in r} - {"epoch"})]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    io_utils.atomic_write_text(path, text.getvalue())


class EpochSeeds(keras.callbacks.Callback):
    """Reseeds the model's random generators at the start of every epoch.

    Dropout and the in-model augmentation draw from Keras `SeedGenerator`s
    whose state advances with every step and is not saved in a `.keras`
    file. Setting each one, before epoch e, to a state derived from
    (--seed, e, its position in the model) makes an epoch's draws depend on
    the seed and the epoch alone, so a run resumed from
    `checkpoints/last.keras` draws the masks the uninterrupted run would.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        reseed_generators(self.model, self.seed, epoch)


def reseed_generators(model: keras.Model, seed: int, epoch: int) -> int:
    """Sets the state of every `SeedGenerator` of `model` (in layer order) to
    one derived from (`seed`, `epoch`, its position); returns how many.

    `model.variables` holds the generators' states (Keras names each
    "seed_generator_state"): (seed, number of draws so far).
    """
    states = [v for v in model.variables if v.name == "seed_generator_state"]
    for k, state in enumerate(states):
        start = np.random.SeedSequence([seed, epoch, k]).generate_state(1, np.uint32)[0]
        state.assign(np.array([start, 0], dtype=keras.backend.standardize_dtype(state.dtype)))
    return len(states)

