"""The run folder's guards and settings file: whether a folder holds a run
(`check_run_dir_is_ours`), whether the run there can go on with these
settings (`check_run_folder`), and its `config.json` (`write_config`).

config.json holds every setting of the run (`TrainConfig`), its groups (the
face settings, the network's options) as objects; the guard compares
settings by flag name (`flag_values`), so a group's place in the file does
not matter.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

from recola_sta import io_utils
from recola_sta.evaluation import evaluate
from recola_sta.training import run_state
from recola_sta.training.config import TrainConfig

# Settings that change the network; a run folder cannot be resumed with others
# (among them every flag of `networks.ModelOptions`).
ARCHITECTURE_KEYS = (
    "variant", "size", "frames", "fc_units", "dropout", "peephole_mode", "upsampling",
    "attention_scale", "attention_scores", "attention_weights", "attention_score_gain",
    "attention_normalize_state", "attention_location_bias", "attention_temperature",
    "readout", "target", "corpus_kind", "augment_on",
)
# Settings a resumed run cannot honour: the optimizer and loss are restored
# from checkpoints/last.keras (Adam's learning rate is part of its state), so
# a changed value would be silently ignored.
RESUME_KEYS = ("learning_rate", "loss", "mixed_precision")
# The run folder's lock file (`evaluate.run_folder_lock`).
RUN_LOCK = evaluate.RUN_LOCK


def config_payload(config: TrainConfig) -> dict[str, Any]:
    """config.json's content: every setting, the groups as objects, the
    cache folder resolved."""
    payload = dataclasses.asdict(config)
    payload["cache_dir"] = config.resolved_cache_dir()
    return json.loads(json.dumps(payload))  # tuples -> lists, as read back


def flag_values(payload: dict[str, Any]) -> dict[str, Any]:
    """config.json's settings by flag name: the nested groups (`face`,
    `model`) flattened, as their flags are."""
    flat = {}
    for key, value in payload.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat.setdefault(key, value)
    return flat


def _is_run_folder(run_dir: pathlib.Path) -> bool:
    """Whether `run_dir` holds a run of `train`: a config.json with the run's
    settings (one that is not JSON counts, for `check_run_folder` to name it)
    or a checkpoint state."""
    if (run_dir / "checkpoints" / "state.json").is_file():
        return True
    path = run_dir / "config.json"
    if not path.is_file():
        return False
    try:
        previous = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return True
    return isinstance(previous, dict) and {"variant", "corpus_dir"} <= previous.keys()


def check_run_dir_is_ours(config: TrainConfig, run_dir: pathlib.Path) -> None:
    """Refuses an existing, non-empty `run_dir` that holds no run (a folder
    of the user's), unless --allow_existing_dir: a run writes and cleans up
    there as in a folder of its own. Writes nothing.

    Raises:
        ValueError: naming the folder and a few of its files.
    """
    if config.allow_existing_dir or not run_dir.is_dir() or _is_run_folder(run_dir):
        return
    entries = sorted(entry.name for entry in run_dir.iterdir() if entry.name != RUN_LOCK)
    if entries:
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3
                                          else "")
        raise ValueError(
            f"--run_dir={run_dir} is a folder that holds other files ({shown}) and no "
            "training run (no config.json); choose a new or empty --run_dir, or pass "
            "--allow_existing_dir to write the run beside them."
        )


def check_run_folder(config: TrainConfig, run_dir: pathlib.Path) -> None:
    """The settings guard: refuses a run folder made with another network
    (ARCHITECTURE_KEYS) or, once it holds a checkpoint, a resume with another
    learning rate or loss (RESUME_KEYS). Writes nothing.

    Raises:
        ValueError: naming each changed flag, its old and new value.
    """
    path = run_dir / "config.json"
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"Malformed run settings {path}: {e}; delete the file or choose "
                         "another --run_dir.") from e
    if not isinstance(previous, dict) or not isinstance(previous.get("face"), dict):
        raise ValueError(
            f"{path} was written by an older recola_sta (its settings are not grouped as "
            "this version writes them): train into a new --run_dir.")
    before, now = flag_values(previous), flag_values(config_payload(config))
    keys = ARCHITECTURE_KEYS + (RESUME_KEYS if read_state(run_dir) is not None else ())
    changed = [k for k in keys if before.get(k) != now[k]]
    if changed:
        details = ", ".join(
            f"--{k}: {before.get(k)!r} -> {now[k]!r}" for k in changed
        )
        why = (" (a resumed run restores its optimizer and loss from "
               "checkpoints/last.keras, so --learning_rate and --loss cannot change)"
               if set(changed) & set(RESUME_KEYS) else "")
        raise ValueError(
            f"--run_dir={run_dir} holds a run with other settings ({details}){why}; "
            "pass the run's own values, choose a new --run_dir or delete the old one."
        )


def write_config(config: TrainConfig, run_dir: pathlib.Path) -> None:
    """Writes config.json after the settings guard (`check_run_folder`)."""
    check_run_folder(config, run_dir)
    io_utils.atomic_write_text(run_dir / "config.json",
                               json.dumps(config_payload(config), indent=2) + "\n")


def read_state(run_dir: pathlib.Path) -> dict[str, Any] | None:
    """The state to resume from (`run_state.read_state`, checked), or None
    when the run has none: no state.json or no last.keras."""
    if not (run_dir / run_state.LAST_NAME).is_file():
        return None
    return run_state.read_state(run_dir)

