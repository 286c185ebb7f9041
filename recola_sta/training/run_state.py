"""The files that describe a training run's progress: read, checked and kept consistent.

A run folder (`recola_sta.train`) records its progress in

    config.json                        the run's settings
    history.csv                        one row per finished epoch
    checkpoints/last.keras             the model and optimizer after the last epoch
    checkpoints/best_epoch_<N>.keras   the model of the best dev epoch N
    checkpoints/state.json             the last finished epoch, the best dev
                                       CCC, its epoch and its model file
    best.keras                         a copy of the best epoch's model

`checkpoints/state.json` is written last after every epoch: it is the commit
point. Every other file is written (atomically) before it, under a name no
earlier state refers to, so a run killed between two writes leaves a state
that describes files which all exist. The best model therefore lives first
under its epoch's name; `best.keras` is refreshed from it after the commit
(`publish_best`) and, should a run die in between, at the next start
(`settle`). Whoever needs the best model (`evaluate`, train's final
evaluation) reads it through the state (`best_model_path`), so both agree on
which epoch is best.

Every reader here raises `RunFileError` (a ValueError: exit 2 through
`cli.run`) with one line naming the file and what to do, instead of a
JSON decoder's or Keras' message that names none.
"""

from __future__ import annotations

import csv
import filecmp
import json
import math
import pathlib
import shutil
import zipfile
from typing import Any

from recola_sta import io_utils

CONFIG_NAME = "config.json"
HISTORY_NAME = "history.csv"
BEST_NAME = "best.keras"
CHECKPOINTS = "checkpoints"
STATE_NAME = f"{CHECKPOINTS}/state.json"
LAST_NAME = f"{CHECKPOINTS}/last.keras"
_BEST_GLOB = "best_epoch_*.keras"


class RunFileError(ValueError):
    """A file of a run folder is missing, malformed or corrupt; the message
    names it and says what to do."""


def best_model_name(epoch: int) -> str:
    """The run-relative name of the model of (1-based) `epoch` while it is the best."""
    return f"{CHECKPOINTS}/best_epoch_{epoch:04d}.keras"


def restart_hint(run_dir: pathlib.Path) -> str:
    """What to do with a broken checkpoint: start the run's training over."""
    return (f"delete the folder {run_dir / CHECKPOINTS} to train this run again from its "
            "first epoch, or choose another --run_dir")


def read_json(path: pathlib.Path, hint: str) -> Any:
    """The JSON content of `path`; RunFileError naming it (and `hint`) when
    it is not readable JSON."""
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunFileError(f"{path} is malformed ({e}); {hint}.") from None


def read_config(run_dir: pathlib.Path, hint: str | None = None) -> dict[str, Any] | None:
    """The run's `config.json`, or None when there is none.

    Raises:
        RunFileError: the file is not a JSON object (naming it).
    """
    path = run_dir / CONFIG_NAME
    if not path.is_file():
        return None
    hint = hint or ("delete it and re-run the training command, which rewrites it and "
                    "resumes the run, or choose another --run_dir")
    config = read_json(path, hint)
    if not isinstance(config, dict):
        raise RunFileError(f"{path} is malformed (not a JSON object); {hint}.")
    return config


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_state(run_dir: pathlib.Path) -> dict[str, Any] | None:
    """The run's `checkpoints/state.json`, checked, or None when there is none.

    Returns:
        {"epoch": finished epochs, "best": best dev value or None (no
        finite epoch yet), "best_epoch": its epoch (0: none), "best_model":
        the run-relative file of its model or None, "monitor": ...}. A
        state written before the best model had its own file names
        `best.keras`; one written with no finite epoch held -Infinity as
        best, read as None.

    Raises:
        RunFileError: naming the file, when it is not JSON or a field is
            missing or wrong (a best that is NaN among them).
    """
    path = run_dir / STATE_NAME
    if not path.is_file():
        return None
    hint = restart_hint(run_dir)
    state = read_json(path, hint)

    def bad(why: str) -> RunFileError:
        return RunFileError(f"{path} is malformed ({why}); {hint}.")

    if not isinstance(state, dict):
        raise bad("not a JSON object")
    epoch, best, best_epoch = state.get("epoch"), state.get("best"), state.get("best_epoch")
    if not _is_int(epoch) or epoch < 0:
        raise bad(f"epoch {epoch!r} is not a number of finished epochs")
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))):
        raise bad(f"best {best!r} is not a number")
    if best is not None and math.isnan(best):
        raise bad("its best dev value is NaN")
    if best is not None and math.isinf(best):
        if best > 0:
            raise bad("its best dev value is infinite")
        best = None  # "no finite epoch yet", as older runs wrote it
    if not _is_int(best_epoch) or not 0 <= best_epoch <= epoch:
        raise bad(f"best_epoch {best_epoch!r} is not an epoch among the {epoch} finished")
    if (best is None) != (best_epoch == 0):
        raise bad(f"best {best!r} and best_epoch {best_epoch!r} disagree")
    best_model = state.get("best_model", BEST_NAME if best is not None else None)
    if best is None:
        best_model = None
    elif best_model not in (BEST_NAME, best_model_name(best_epoch)):
        raise bad(f"best_model {best_model!r} is not the model of epoch {best_epoch}")
    return {**state, "epoch": epoch, "best": best, "best_epoch": best_epoch,
            "best_model": best_model}


def read_history(path: pathlib.Path, hint: str | None = None) -> list[dict[str, str]]:
    """The rows of a `history.csv` (none when it does not exist), checked:
    an `epoch` column of increasing whole numbers, every other value a
    number or empty.

    Raises:
        RunFileError: naming the file and the first bad line.
    """
    if not path.is_file():
        return []
    hint = hint or ("delete it to keep training without its earlier rows, or choose "
                    "another --run_dir")

    def bad(why: str) -> RunFileError:
        return RunFileError(f"{path} is malformed ({why}); {hint}.")

    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = reader.fieldnames
    except (UnicodeDecodeError, csv.Error) as e:
        raise bad(str(e)) from None
    if not columns or "epoch" not in columns:
        raise bad("no header with an epoch column")
    previous = -1
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise bad(f"line {line} does not have one value per column")
        try:
            epoch = int(row["epoch"])
        except ValueError:
            raise bad(f"line {line}: epoch {row['epoch']!r} is not a whole number") from None
        if epoch <= previous:
            raise bad(f"line {line}: epoch {epoch} does not follow epoch {previous}")
        previous = epoch
        for name, value in row.items():
            if name != "epoch" and value != "":
                try:
                    float(value)
                except ValueError:
                    raise bad(f"line {line}: {name} {value!r} is not a number") from None
    return rows


def check_model_file(path: pathlib.Path, hint: str) -> None:
    """Raises RunFileError when `path` is not a complete `.keras` archive
    (truncated, or a member whose checksum fails), saying so and `hint`."""
    why = None
    if not zipfile.is_zipfile(path):
        why = "not a complete .keras archive: truncated or overwritten"
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                broken = archive.testzip()
            if broken is not None:
                why = f"its member {broken} fails its checksum"
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            why = f"an unreadable .keras archive: {e}"
    if why:
        raise RunFileError(f"{path} is corrupt ({why}); {hint}.")


def load_model(path: pathlib.Path, hint: str, **kwargs):
    """`keras.models.load_model(path, **kwargs)`, with a RunFileError that
    says the file is corrupt (and `hint`) instead of Keras' "File not found"
    for a file that exists. The caller has imported the modules that
    register the model's custom objects (`recola_sta.layers`, `metrics`)."""
    import keras

    if not path.is_file():
        raise RunFileError(f"{path} is missing; {hint}.")
    check_model_file(path, hint)
    try:
        return keras.models.load_model(path, **kwargs)
    except (zipfile.BadZipFile, EOFError) as e:
        raise RunFileError(f"{path} is corrupt ({e}); {hint}.") from None
    except ValueError as e:
        from recola_sta.model import layers

        for legacy in layers.ARCHIVE_REFUSALS:
            if legacy in str(e):  # Keras quotes it in several lines of its own
                raise RunFileError(f"{path}: {legacy} in a new --run_dir "
                                   "(python -m recola_sta.train).") from None
        raise


def best_model_path(run_dir: pathlib.Path) -> pathlib.Path:
    """The model of the run's best dev epoch, as `checkpoints/state.json`
    names it (`best.keras` for a run without a state).

    Raises:
        RunFileError: no epoch has finished, none had a finite dev CCC, or
            the file the state names is missing.
    """
    state = read_state(run_dir)
    if state is None:
        path = run_dir / BEST_NAME
        if not path.is_file():
            raise RunFileError(f"{path} is missing: the run has not finished an epoch yet.")
        return path
    if state["best_model"] is None:
        raise RunFileError(
            f"No epoch of {run_dir} produced a finite dev CCC (see {run_dir / HISTORY_NAME}); "
            "there is no best model. Check the dev recordings' labels and faces, or train "
            "again with a lower --learning_rate in a new --run_dir.")
    path = run_dir / state["best_model"]
    if not path.is_file():
        raise RunFileError(f"{path}, the model of the best epoch {state['best_epoch']} named by "
                           f"{run_dir / STATE_NAME}, is missing; {restart_hint(run_dir)}.")
    return path


def check_files(run_dir: pathlib.Path) -> None:
    """Checks, before any training, every file a resumed run reads or
    rewrites: config.json, history.csv, checkpoints/state.json, and the
    last and best models as archives. Reads only.

    Raises:
        RunFileError: naming the first bad file and what to do.
    """
    read_config(run_dir, hint="delete the file or choose another --run_dir")
    read_history(run_dir / HISTORY_NAME)
    if not (run_dir / LAST_NAME).is_file():
        return  # nothing to resume: `settle` clears what is left
    state = read_state(run_dir)
    if state is None:
        return
    check_model_file(run_dir / LAST_NAME, restart_hint(run_dir))
    if state["best_model"] is not None:
        best = run_dir / state["best_model"]
        if not best.is_file():
            best_model_path(run_dir)  # raises, naming it
        check_model_file(best, restart_hint(run_dir))


def _copy_atomic(source: pathlib.Path, target: pathlib.Path) -> None:
    with io_utils.atomic_path(target, suffix=target.suffix) as tmp:
        shutil.copyfile(source, tmp)


def publish_best(run_dir: pathlib.Path, best_model: str | None) -> None:
    """Makes `best.keras` the copy of `best_model` (run-relative; None: the
    run has no best yet, so no best.keras), and removes every epoch-named
    best model but it. Called after the state naming `best_model` is written."""
    best = run_dir / BEST_NAME
    if best_model is None:
        best.unlink(missing_ok=True)
    elif best_model != BEST_NAME:
        source = run_dir / best_model
        if not (best.is_file() and filecmp.cmp(source, best, shallow=False)):
            _copy_atomic(source, best)
    for path in (run_dir / CHECKPOINTS).glob(_BEST_GLOB):
        if best_model is None or path != run_dir / best_model:
            path.unlink(missing_ok=True)


def settle(run_dir: pathlib.Path) -> dict[str, Any] | None:
    """Brings the run folder in line with its state before training (under
    the run's lock, after `check_files`): a best model written by an epoch
    that did not commit its state is removed, `best.keras` is refreshed
    from the best model the state names. Without a state to resume (no
    state.json or no last.keras) training starts over, and what described
    an earlier start (state.json, best models) goes. Returns the state."""
    if (run_dir / LAST_NAME).is_file():
        state = read_state(run_dir)
    else:
        (run_dir / STATE_NAME).unlink(missing_ok=True)
        state = None
    publish_best(run_dir, state["best_model"] if state else None)
    return state
