"""Export a trained model as a self-contained TensorFlow SavedModel, an ONNX
model, or both, and the `python -m recola_sta.export` CLI that re-exports a
finished run from its best model.

    python -m recola_sta.export --run_dir=runs/synthetic_3d_cnn_sta --format=both

Keras and TensorFlow are imported only inside the export functions, so
`predict` can read the metadata without loading any model-building code (and
an ONNX model is predicted without TensorFlow at all).

The SavedModel is what `predict` loads: `tf.saved_model.load(path)` and no
project code or Keras custom objects. Its `serve` signature maps float32 clips
(batch, frames, size, size, 3) in [0, 1] to a dict with one (batch, frames)
entry per target, named after it (`valence`, `arousal`; `serving_keys`), and,
for the attention variant, `attention` (batch, frames, size, size). A `recola_sta.json` file beside `saved_model.pb` names the
targets (`targets`, in the model's output order) and says how to make those
clips (frames per clip, sampling rate, and the face settings, crop size
included), so a video is prepared exactly as in training.

The ONNX model (`model.onnx`, beside the SavedModel in the same folder with the
same `recola_sta.json`) is the same serving model: input `clips` with a
dynamic batch dimension, one output per target by name and `attention` for
the STA variant. `predict` runs it on ONNX Runtime (`inference.onnx_model`).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import pathlib
import shutil
from typing import Any, Sequence

from recola_sta import cli, io_utils, settings
from recola_sta.faces.settings import FaceSettings
from recola_sta.settings import setting

METADATA_NAME = "recola_sta.json"
# The ONNX model's file name in an export folder.
ONNX_NAME = "model.onnx"
# --format: what `export_run` writes.
FORMATS = ("savedmodel", "onnx", "both")
# 2: the face settings as one object (`face`, whose `size` is the crops'),
# the clip length read from the model.
FORMAT_VERSION = 2
# The post-processing chain fitted on dev, copied beside the model by train.
POSTPROCESS_NAME = "postprocess.json"


def serving_keys(targets: Sequence[str]) -> list[str]:
    """The SavedModel's output key of each target: its own name, for one
    target as for several."""
    return list(targets)


def _serving_model(model, targets: Sequence[str]):
    """A functional model with the dict of outputs the SavedModel serves."""
    import keras

    from recola_sta.model import networks

    keys = serving_keys(targets)
    if model.output.shape[-1] != len(keys):
        raise ValueError(f"The model has {model.output.shape[-1]} outputs per frame but "
                         f"{len(keys)} targets {list(targets)}.")
    outputs = {
        key: keras.layers.Reshape(model.output.shape[1:2], name=f"serving_{key}")(
            model.output[..., k:k + 1])
        for k, key in enumerate(keys)
    }
    try:
        outputs["attention"] = networks.attention_model(model).output
    except ValueError:
        pass  # Variants without attention serve valence only.
    return keras.Model(model.inputs, outputs, name=f"{model.name}_serving")


def export_saved_model(
    model,
    path: str | os.PathLike,
    metadata: dict[str, Any],
    postprocess_json: str | os.PathLike | None = None,
) -> pathlib.Path:
    """Writes `model` as a SavedModel with a `serve` signature, atomically.

    Args:
        model: a model from `networks.build_model`.
        path: destination folder; replaced if it exists.
        metadata: `export_metadata`'s facts a predictor needs; written as
            `recola_sta.json` with the model's clip length (`frames`).
        postprocess_json: optional fitted post-processing chain(s), copied
            in as `postprocess.json` so `predict` can apply them.

    Returns:
        The destination folder.

    Raises:
        OSError: the disk filled up (errno ENOSPC, naming `path`, also where
            TensorFlow raised its own error). On this or any other failure
            (Ctrl-C included) the partial export is removed and `path` is
            left as it was.
    """
    import keras
    import tensorflow as tf

    path = pathlib.Path(path)
    metadata = _with_frames(model, metadata)
    _, frames, height, width, channels = model.input.shape
    serving = _serving_model(model, metadata["targets"])
    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.add_endpoint(
        name="serve",
        fn=lambda clips: serving(clips, training=False),
        input_signature=[
            tf.TensorSpec((None, frames, height, width, channels), tf.float32, name="clips")
        ],
    )
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # left by an export that was killed
    try:
        archive.write_out(str(tmp), verbose=False)
        io_utils.atomic_write_text(tmp / METADATA_NAME, json.dumps(metadata, indent=2) + "\n")
        if postprocess_json is not None and pathlib.Path(postprocess_json).is_file():
            shutil.copyfile(postprocess_json, tmp / POSTPROCESS_NAME)
    except BaseException as e:
        # A partial export (a full disk, Ctrl-C) would hold its space until
        # the next export; `path` is left as it was.
        shutil.rmtree(tmp, ignore_errors=True)
        if cli.is_disk_full(e):
            # TensorFlow's ResourceExhaustedError names no file: name the
            # export folder (the CLI prints it with the free space).
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def _with_frames(model, metadata: dict[str, Any]) -> dict[str, Any]:
    """`metadata` with the model's clip length (`frames`), after checking
    that the model takes the crops its face settings make."""
    _, frames, height, width, _ = model.input.shape
    if (height, width) != (metadata["face"]["size"],) * 2:
        raise ValueError(f"The model takes {height}x{width} px crops but the face settings "
                         f"make {metadata['face']['size']} px ones.")
    return {**metadata, "frames": int(frames)}


def export_onnx(
    model,
    path: str | os.PathLike,
    metadata: dict[str, Any],
    postprocess_json: str | os.PathLike | None = None,
) -> pathlib.Path:
    """Writes `model`'s serving model (the SavedModel's: `_serving_model`)
    as `path`/model.onnx, with `recola_sta.json` (and `postprocess.json`)
    beside it, so the folder is one a SavedModel export also writes.

    The ONNX graph takes `clips` (batch, frames, size, size, 3) with a
    dynamic batch and gives one (batch, frames) output per target, by name,
    and `attention` for the STA variant. It is written to a temporary file
    and renamed: a failed export leaves an earlier model.onnx as it was.

    Returns:
        The written model.onnx.

    Raises:
        OSError: the disk filled up (ENOSPC, naming the file).
    """
    import logging

    import tensorflow as tf

    path = pathlib.Path(path)
    metadata = _with_frames(model, metadata)
    _, frames, height, width, channels = model.input.shape
    serving = _serving_model(model, metadata["targets"])
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)  # its INFO lines per conversion step
    path.mkdir(parents=True, exist_ok=True)
    target = path / ONNX_NAME
    tmp = path / f".{ONNX_NAME}.tmp"
    try:
        serving.export(str(tmp), format="onnx", verbose=False, input_signature=[
            tf.TensorSpec((None, frames, height, width, channels), tf.float32, name="clips")])
        io_utils.atomic_write_text(path / METADATA_NAME, json.dumps(metadata, indent=2) + "\n")
        if postprocess_json is not None and pathlib.Path(postprocess_json).is_file():
            with io_utils.atomic_path(path / POSTPROCESS_NAME, suffix=".json") as copy:
                shutil.copyfile(postprocess_json, copy)
        os.replace(tmp, target)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if cli.is_disk_full(e):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target)) from e
        raise
    return target


def export_metadata(*, variant: str, targets: Sequence[str], fps: float,
                    face: FaceSettings) -> dict[str, Any]:
    """What `predict` needs to prepare a video exactly as in training
    (`export_saved_model` adds the clip length, read from the model).

    Args:
        variant: network name (`networks.VARIANTS`).
        targets: the label dimensions the model predicts, in its output order.
        fps: sampling rate of the frames, per second.
        face: the face settings that made the training crops (the cache's);
            their `size` is the model's input size.
    """
    return {"format_version": FORMAT_VERSION, "variant": variant, "targets": list(targets),
            "fps": float(fps), "face": face.to_json()}


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Reads and checks the `recola_sta.json` of an export folder (holding
    a SavedModel, a model.onnx or both), or of the folder of the .onnx
    file `path` names.

    Returns its object, with `face` read as `FaceSettings`.

    Raises:
        FileNotFoundError: `path` is not an exported recola_sta model.
        ValueError: `recola_sta.json` is not valid JSON, was written by an
            older version, or lacks a field or has one of the wrong type; the
            message names the file.
    """
    path = pathlib.Path(path)
    has_model = path.suffix == ".onnx" and path.is_file()
    if has_model:
        path = path.parent
    meta_path = path / METADATA_NAME
    has_model = has_model or (path / "saved_model.pb").is_file() or (path / ONNX_NAME).is_file()
    if not has_model or not meta_path.is_file():
        raise FileNotFoundError(
            f"{path} is not a recola_sta SavedModel (expected saved_model.pb or {ONNX_NAME}, "
            f"and {METADATA_NAME}); pass RUN_DIR/saved_model from a training run."
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Invalid model metadata {meta_path}: not JSON ({e}).") from e
    if not isinstance(meta, dict):
        raise ValueError(f"Invalid model metadata {meta_path}: expected a JSON object.")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{meta_path} was written by an older recola_sta (metadata format "
            f"{meta.get('format_version')}, this version reads {FORMAT_VERSION}): export the "
            "model again from its run folder by re-running its `python -m recola_sta.train` "
            "command with this version (a finished run is evaluated and exported again).")
    problems = [f"{key}={meta.get(key)!r}" for key, kind, ok in (
        ("variant", str, lambda v: bool(v)),
        ("frames", int, lambda v: v > 0),
        ("fps", (int, float), lambda v: v > 0),
    ) if isinstance(meta.get(key), bool) or not isinstance(meta.get(key), kind)
        or not ok(meta.get(key))]
    targets = meta.get("targets")
    if (not isinstance(targets, list) or not targets
            or not all(isinstance(t, str) and t for t in targets)
            or len(set(targets)) != len(targets) or "attention" in targets):
        problems.append(f"targets={targets!r}")
    if problems:
        raise ValueError(
            f"Invalid model metadata {meta_path}: missing or bad {', '.join(problems)} "
            "(expected variant: a name, frames > 0, fps > 0, targets: a list of distinct "
            "label names). Re-export the model from its run folder.")
    try:
        meta["face"] = FaceSettings.from_json(meta.get("face"), meta_path)
    except ValueError as e:
        raise ValueError(f"Invalid model metadata {e} Re-export the model from its run "
                         "folder.") from None
    return meta


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """The export CLI's settings (each field is its flag)."""

    run_dir: str = setting(help="A training run folder (python -m recola_sta.train --run_dir): "
                                "its best model is exported into RUN_DIR/saved_model.")
    format: str = setting("savedmodel", choices=FORMATS,
                          help="savedmodel: the SavedModel (replacing the folder, as train "
                               "does); onnx: model.onnx beside it (ONNX Runtime, no "
                               "TensorFlow at predict time); both.")


def _run_metadata(run_dir: pathlib.Path) -> dict[str, Any]:
    """`export_metadata` of a run, as `train` builds it: the variant and
    targets of its config.json, the rate and face settings of its cache's
    manifest (the crops the model was trained on)."""
    from recola_sta import cache
    from recola_sta.targets import parse_targets
    from recola_sta.training import run_state

    config = run_state.read_config(run_dir)
    if config is None:
        raise FileNotFoundError(f"{run_dir / run_state.CONFIG_NAME} is missing: --run_dir="
                                f"{run_dir} is not a training run folder.")
    bad = [k for k in ("variant", "target", "cache_dir") if not isinstance(config.get(k), str)]
    if bad:
        raise ValueError(f"{run_dir / run_state.CONFIG_NAME} lacks {', '.join(bad)}: it was "
                         "not written by this recola_sta; train into a new --run_dir.")
    manifest = cache.read_manifest(config["cache_dir"])
    return export_metadata(variant=config["variant"], targets=parse_targets(config["target"]),
                           fps=manifest.fps, face=manifest.face)


def export_run(run_dir: str | os.PathLike, format: str = "savedmodel") -> list[pathlib.Path]:
    """Exports a run's best model (`run_state.best_model_path`) into
    `run_dir`/saved_model as `format` (`FORMATS`), with the metadata and
    post-processing chains `train` exports, the run folder locked.

    Returns the written paths (the SavedModel folder, model.onnx).

    Raises:
        FileNotFoundError: no config.json, or the run's cache is gone.
        ValueError: a bad `format`; a run file is corrupt or the run has no
            best model (`run_state.RunFileError`); the folder is in use.
    """
    from recola_sta.model import layers
    from recola_sta.training import run_state

    del layers  # imported to register the model's custom layers for load_model

    if format not in FORMATS:
        raise ValueError(f"--format={format!r} is invalid: expected one of {list(FORMATS)}.")
    run_dir = pathlib.Path(run_dir)
    meta = _run_metadata(run_dir)
    folder = run_dir / "saved_model"
    postprocess_json = run_dir / POSTPROCESS_NAME
    written = []
    with io_utils.exclusive_lock(run_dir / io_utils.LOCK_NAME, f"run folder {run_dir}"):
        model = run_state.load_model(
            run_state.best_model_path(run_dir),
            f"the best epoch's model is lost; {run_state.restart_hint(run_dir)}", compile=False)
        if format in ("savedmodel", "both"):
            written.append(export_saved_model(model, folder, meta, postprocess_json))
        if format in ("onnx", "both"):
            written.append(export_onnx(model, folder, meta, postprocess_json))
    return written


def define_flags(flag_values=None) -> None:
    """Defines the CLI's flags, one per `ExportConfig` field, in
    `flag_values` where given (`cli.call`), else in absl's global FLAGS."""
    settings.define_flags(ExportConfig, flag_values=flag_values)


def main(argv: Sequence[str], flag_values=None) -> int:
    """The CLI: `argv` is what flag parsing left (program name first),
    `flag_values` the parsed flags (default: absl's global FLAGS)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads
    from absl import flags

    FLAGS = flags.FLAGS if flag_values is None else flag_values

    def body() -> int:
        if len(argv) > 1:
            raise ValueError(f"unexpected arguments {argv[1:]}")
        config = settings.from_flags(ExportConfig, FLAGS)
        settings.check(config)
        written = export_run(config.run_dir, config.format)
        print(f"Wrote {', '.join(str(p) for p in written)}")
        return cli.EXIT_DONE

    return cli.run("export", body, output=FLAGS.run_dir)
