"""Run an exported model on any face video: valence (and arousal) over time and attention.

    python -m recola_sta.predict --model=runs/synthetic_3d_cnn_sta/saved_model \\
        --video=face.mp4 --out=out/face

Only the SavedModel is loaded (`tf.saved_model.load`): no training code and
no Keras custom objects. The video may have any frame rate and size. Frames
are sampled at the model's rate (4 fps) by timestamp, faces are detected and
aligned exactly as in training (the face aligner is built from the settings
in the model's recola_sta.json; --upsample, --detect_width, --face,
--redetect_every, --rotate and --predictor_path override them; where no face
is found, the message suggests the --rotate under which a few sampled frames
show one), 16-frame clips are predicted (the last one,
or a video shorter than one clip, is padded by repeating its last frame),
samples without a face are interpolated from their neighbours, and the
result is resampled to the video's own frame times.

Writes into --out:
    valence.csv       time,valence,face_found at the video's frame rate
    valence.png       valence over time (grey where no face was found)
                      A model of other or several targets (its
                      recola_sta.json `targets`) writes <targets>.csv, named
                      after them joined by "_" (valence_arousal.csv: time,
                      valence,arousal,face_found), and one <target>.png each;
                      each target gets its own post-processing chain.
    attention.png     for the attention model: aligned faces with the
                      attention overlaid (paper Fig. 5)
    attention_regions.png  for the attention model: the mean attention over
                      the video's aligned faces beside each facial region's
                      share of it (also `attention_regions` in summary.json)
    attention.mp4     with --attention_video: every 4 fps sample, overlaid
    summary.json      video facts, face-found rate, smallest face, samples
                      with several faces, the aligner's settings, timing
Exit codes: 0 success, 2 bad input (missing/corrupt file, not a model),
3 no face found anywhere in the video.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import sys
import threading
import time
from typing import Any, Sequence

import numpy as np

from recola_sta import attention_analysis, clips, export, faces, io_utils

# matplotlib (recola_sta.plots, over a second of imports) is imported where the
# figures are drawn, after the model has run: start-up reaches the first frame
# sooner.

EXIT_BAD_INPUT = 2
EXIT_NO_FACE = 3


class NoFaceError(RuntimeError):
    """No face was found in any sampled frame of a video."""


def _load_chains(model_dir: pathlib.Path, targets: Sequence[str]) -> dict[str, Any]:
    """The post-processing chain of each target stored beside the model
    (none for a target without one)."""
    path = model_dir / export.POSTPROCESS_NAME
    if not path.is_file():
        return {}
    from recola_sta import postprocess

    return postprocess.load_chains(path, targets)


def make_aligner(meta: dict[str, Any], model_dir: pathlib.Path,
                 overrides: dict[str, Any] | None = None) -> faces.FaceAligner:
    """The `FaceAligner` the model's crops were made with (`face_aligner` in
    its recola_sta.json), with the non-None `overrides` applied.

    Raises:
        ValueError: a recorded setting is invalid (naming recola_sta.json),
            or an override is (naming its flag).
        FileNotFoundError: the landmark model file does not exist.
    """
    recorded = dict(meta["face_aligner"])
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    kwargs = {
        "size": int(meta["size"]),
        "upsample": given.get("upsample", recorded["upsample"]),
        "detect_width": given.get("detect_width", recorded["detect_width"]),
        "face": given.get("face", recorded["face"]),
        "redetect_every": given.get("redetect_every", recorded["redetect_every"]),
        "rotate": given.get("rotate", recorded["rotate"]),
        "predictor_path": given.get("predictor_path", recorded["predictor_path"]),
    }
    if recorded.get("template") is not None:
        kwargs["template"] = recorded["template"]
    try:
        return faces.FaceAligner(**kwargs)
    except ValueError as e:
        raise ValueError(
            f"Cannot build the face aligner from {model_dir / export.METADATA_NAME} "
            f"(face_aligner: {recorded}) and the flags {given or 'given (none)'}: {e}"
        ) from e


class ModelLoadError(ValueError):
    """A SavedModel cannot be loaded (corrupt or truncated files) or does not
    take the clips its recola_sta.json describes; the message names the file."""


# Which file of a SavedModel an error of `tf.saved_model.load` points at,
# by a phrase of its message (TensorFlow raises OSError, IndexError,
# ValueError or OpErrors of several kinds, none naming the file).
_LOAD_ERROR_FILES = (
    ("Cannot parse file", "saved_model.pb"),
    ("MetaGraph", "saved_model.pb"),
    ("sstable", "variables/variables.index"),
    ("Checksum", "variables/variables.data-*"),
    ("Read less bytes", "variables/variables.data-*"),
    ("TensorSliceReader", "variables/"),
)


def describe_load_error(model_dir: pathlib.Path, error: BaseException) -> str:
    """One line saying which file of the SavedModel `model_dir` is broken."""
    text = " ".join(str(error).split())
    if text.startswith("{{function_node"):  # TensorFlow's op prefix: no information
        text = text.split("}}", 1)[-1].strip()
    culprit = next((name for phrase, name in _LOAD_ERROR_FILES if phrase in text),
                   "saved_model.pb or variables/")
    matches = sorted(model_dir.glob(culprit)) if "*" in culprit else []
    if matches:
        culprit = str(matches[0].relative_to(model_dir))
    if len(text) > 200:
        text = text[:197] + "..."
    return (f"Cannot load the SavedModel {model_dir}: {model_dir / culprit} is corrupt or "
            f"truncated ({type(error).__name__}: {text}). Re-export the model from its run "
            "folder.")


def check_serving_shape(model: Any, model_dir: pathlib.Path, meta: dict[str, Any]) -> None:
    """Checks that the loaded SavedModel serves clips of the frames and crop
    size its recola_sta.json records; a mismatch would otherwise surface as
    a TensorFlow error printing a whole input batch.

    Raises:
        ModelLoadError: no `serve` signature, or other clip dimensions.
    """
    serve = getattr(model, "serve", None)
    signature = getattr(serve, "input_signature", None)
    if serve is None or not signature:
        raise ModelLoadError(f"The SavedModel {model_dir} has no `serve` signature: it was "
                             "not exported by recola_sta. Re-export the model from its run "
                             "folder.")
    served = tuple(signature[0].shape)[1:]
    wanted = (meta["frames"], meta["size"], meta["size"], 3)
    if served != wanted:
        raise ModelLoadError(
            f"{model_dir / export.METADATA_NAME} records clips of {meta['frames']} frames of "
            f"{meta['size']}x{meta['size']} px (frames={meta['frames']}, size={meta['size']}), "
            f"but the SavedModel in {model_dir} takes clips of shape {served} "
            "(frames, size, size, channels): the metadata does not belong to this model. "
            "Re-export the model from its run folder."
        )


class _ModelLoader:
    """Imports TensorFlow and loads a SavedModel in a background thread;
    `result` waits for it and raises what the load raised, as a
    `ModelLoadError` naming the broken file where TensorFlow could not read
    the model."""

    def __init__(self, model_dir: pathlib.Path, meta: dict[str, Any]):
        self._model_dir = model_dir
        self._meta = meta
        self._model: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name="load-model", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            import tensorflow as tf
        except BaseException as e:  # raised in the caller's thread by result()
            self._error = e
            return
        try:
            model = tf.saved_model.load(str(self._model_dir))
        except (MemoryError, KeyboardInterrupt) as e:
            self._error = e
            return
        except Exception as e:  # any reader error of a broken file
            self._error = ModelLoadError(describe_load_error(self._model_dir, e))
            return
        try:
            check_serving_shape(model, self._model_dir, self._meta)
        except ModelLoadError as e:
            self._error = e
            return
        self._model = model

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._model


def run_model(serve, crops: np.ndarray, frames: int, batch_size: int,
              targets: Sequence[str] = ("valence",)) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-sample values of the model's `targets` (its metadata's
    `targets`): (N,) for one target, (N, K) for K; and attention maps
    (N, S, S) or None."""
    import tensorflow as tf

    out = clips.predict_clips(
        lambda batch: {k: v.numpy() for k, v in serve(tf.constant(batch)).items()},
        crops, frames, batch_size,
    )
    keys = export.serving_keys(targets)
    missing = [k for k in keys if k not in out]
    if missing:
        raise ValueError(f"The SavedModel serves {sorted(out)}, not the outputs {missing} of "
                         f"its targets {list(targets)}; re-export the model from its run folder.")
    values = np.stack([out[k].astype(np.float64) for k in keys], axis=-1)
    return (values[:, 0] if len(keys) == 1 else values), out.get("attention")


def predict_video(
    model_dir: str | os.PathLike,
    video: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    apply_postprocess: bool = True,
    attention_video: bool = False,
    attention_columns: int = 8,
    batch_size: int = 16,
    upsample: int | None = None,
    detect_width: int | None = None,
    face: str | None = None,
    predictor_path: str | None = None,
    redetect_every: int | None = None,
    rotate: int | None = None,
    progress: bool = True,
    model: Any = None,
    prefetch: int = 4,
) -> dict[str, Any]:
    """Predicts valence (and attention) for one video; see the module doc.

    `upsample`, `detect_width`, `face`, `predictor_path`, `redetect_every`
    and `rotate` override the face aligner's settings recorded with the
    model; None keeps them. Where no face is found, a few sampled frames are
    turned by 90, 180 and 270 degrees and the message suggests the `rotate`
    (--rotate) under which a face appears. `model`: the
    SavedModel of `model_dir` already loaded (`tf.saved_model.load`), to
    predict several videos without loading it again; None loads it.
    `prefetch`: sampled frames decoded ahead of the face aligner by a
    background thread (`faces.track_video`); 0 decodes in line.

    Raises:
        FileNotFoundError: the model folder or video does not exist.
        ValueError: the video cannot be decoded; the model's recola_sta.json
            is invalid; `out_dir` is a file or not writable (checked before
            any work).
        ModelLoadError (a ValueError): the SavedModel's files are corrupt or
            truncated, or it takes other clips than its recola_sta.json says.
        NoFaceError: no face in any sampled frame.
    """
    start = time.time()
    model_dir = pathlib.Path(model_dir)
    out_dir = pathlib.Path(out_dir)
    meta = export.read_metadata(model_dir)
    # Before any work: a run that cannot save its results wastes all of it.
    io_utils.check_writable_dir(out_dir, "--out")
    aligner = make_aligner(meta, model_dir, {"upsample": upsample, "detect_width": detect_width,
                                             "face": face, "predictor_path": predictor_path,
                                             "redetect_every": redetect_every,
                                             "rotate": rotate})
    info = faces.probe_video(video)
    # TensorFlow is imported and the SavedModel loaded in a background thread
    # while the first frames are decoded and aligned.
    loading = _ModelLoader(model_dir, meta) if model is None else None
    if model is not None:
        check_serving_shape(model, model_dir, meta)

    # Sample up to the last frame's own time, not past the end of the video.
    last_frame_time = max(0.0, info.duration - 1.0 / info.fps)
    sample_times = faces.sample_times(info.duration, fps=meta["fps"], end=last_frame_time)
    track = faces.track_video(video, sample_times, aligner, progress=progress,
                              prefetch=prefetch)
    if not track.found.any():
        raise NoFaceError(no_face_message(video, info, track.times, aligner))
    serve = (loading.result() if loading is not None else model).serve
    targets = list(meta["targets"])
    values, attention = run_model(serve, track.crops, meta["frames"], batch_size, targets)
    values = values.reshape(len(track.crops), len(targets))
    chains = _load_chains(model_dir, targets) if apply_postprocess else {}
    from recola_sta import plots

    frame_count = info.frame_count or int(round(info.duration * info.fps))
    frame_times = np.arange(frame_count) / info.fps
    _, frame_found = clips.samples_to_grid(track.times, values[:, 0], track.found, frame_times)
    columns, kept = [], {}
    for k, target in enumerate(targets):
        chain = chains.get(target)
        if chain is not None:
            # The chain was fitted at the corpus label rate; apply it on that grid.
            grid = np.arange(0.0, track.times[-1] + 1e-9, chain.frame_period)
            on_grid, _ = clips.samples_to_grid(track.times, values[:, k], track.found, grid)
            series_t, series_v = grid, chain.apply(on_grid)
            kept[target] = ", ".join(chain.kept_steps) or "nothing"
        else:
            series_t = track.times
            series_v = clips.samples_to_grid(track.times, values[:, k], track.found,
                                             track.times)[0]
            kept[target] = "none"
        columns.append(clips.samples_to_grid(series_t, series_v, np.ones(len(series_t), bool),
                                             frame_times)[0])

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["time", *targets, "face_found"])
    for i, (t, f) in enumerate(zip(frame_times, frame_found)):
        writer.writerow([f"{t:.4f}", *(f"{c[i]:.6f}" for c in columns), int(f)])
    csv_name = f"{'_'.join(targets)}.csv"
    io_utils.atomic_write_text(out_dir / csv_name, buf.getvalue())
    name = pathlib.Path(video).name
    written = [csv_name]
    for target, column in zip(targets, columns):
        plots.plot_valence(
            out_dir / f"{target}.png", frame_times, column, found=frame_found,
            title=f"{name}: predicted {target} ({meta['variant']})", ylabel=target,
        )
        written.append(f"{target}.png")
    if attention is not None:
        pick = _display_clip(track.found, meta["frames"])
        plots.plot_attention_grid(
            out_dir / "attention.png", track.crops[pick], attention[pick], track.times[pick],
            columns=attention_columns,
            title=f"{name}: spatiotemporal attention over one clip (its first frame has no "
                  "previous state: uniform)",
        )
        written.append("attention.png")
        regions_report = attention_analysis.report_with_figure(
            {name: track}, attention, meta["frames"], figure=out_dir / "attention_regions.png",
            title=f"{name}: where the attention looks (mean over the video's faces)",
        )
        regions_report.pop("per_recording", None)
        if regions_report.get("available") and regions_report["samples"]:
            written.append("attention_regions.png")
        if attention_video:
            write_attention_video(out_dir / "attention.mp4", track.crops, attention, track.found, meta["fps"])
            written.append("attention.mp4")
    seconds = time.time() - start
    summary = {
        "video": str(video),
        "model": str(model_dir),
        "variant": meta["variant"],
        "video_fps": info.fps,
        "video_frames": frame_count,
        "duration_s": info.duration,
        "samples": int(len(track.times)),
        "face_found_rate": float(track.found.mean()),
        "video_size": [info.width, info.height],
        "smallest_face_px": track.smallest_face_px,
        "samples_with_several_faces": track.multi_face_samples,
        "face_aligner": {**aligner.settings(), "predictor_path": aligner.predictor_path},
        "targets": targets,
        "postprocess_kept": kept[targets[0]] if len(targets) == 1 else kept,
        "wall_time_s": round(seconds, 2),
        "real_time_factor": round(info.duration / seconds, 2) if seconds > 0 else None,
        "files": written,
    }
    if attention is not None:
        summary["attention_regions"] = regions_report
    io_utils.atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def no_face_message(video: str | os.PathLike, info: faces.VideoInfo, times: np.ndarray,
                    aligner: faces.FaceAligner) -> str:
    """The message of a video without any face, with the advice that fits:
    --rotate where a few sampled frames turned show a face
    (`faces.rotation_hint`), else --upsample for small faces."""
    message = (f"No face was found in any of the {len(times)} frames sampled from {video} "
               f"({info.width}x{info.height}"
               f"{f', turned {aligner.rotate} degrees' if aligner.rotate else ''}); nothing "
               "to predict.")
    hint = faces.rotation_hint(video, times, aligner)
    if hint is not None:
        turn, hits, tried = hint
        return (f"{message} The video looks sideways: turned {turn} degrees clockwise, "
                f"{hits} of {tried} sampled frames show a face; try --rotate={turn}.")
    return (f"{message} Is the face frontal and upright? Faces down to about an eighth of "
            "the frame height are searched for at the default settings; try --upsample=1 "
            "for smaller faces.")


def _display_clip(found: np.ndarray, frames: int) -> np.ndarray:
    """Sample indices of the clip shown in attention.png (like the paper's Fig. 5).

    A whole clip shows how the attention evolves from frame to frame: the
    clip nearest the middle of the video among those with the most faces.
    """
    num_clips = -(-len(found) // frames)
    counts = [found[k * frames : (k + 1) * frames].sum() for k in range(num_clips)]
    best = max(counts)
    middle = (num_clips - 1) / 2
    clip = min((k for k in range(num_clips) if counts[k] == best), key=lambda k: abs(k - middle))
    indices = np.arange(clip * frames, min((clip + 1) * frames, len(found)))
    return indices[found[indices]]


def write_attention_video(
    path: pathlib.Path, crops: np.ndarray, attention: np.ndarray, found: np.ndarray, fps: float
) -> None:
    """Writes every sample's face with its attention overlaid as an mp4."""
    import cv2

    from recola_sta import plots

    size = crops.shape[1]
    scale = max(1, 256 // size)
    vmax = plots.attention_colour_limit(attention[found] if found.any() else attention)
    with io_utils.atomic_path(path, suffix=".mp4") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size * scale, size * scale))
        if not writer.isOpened():
            raise ValueError(f"OpenCV cannot write {path} (no mp4v encoder).")
        try:
            for crop, att, ok in zip(crops, attention, found):
                frame = plots.overlay_attention(crop, att, vmax=vmax) if ok else crop
                frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()


def define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("model", None, "Exported SavedModel folder (RUN_DIR/saved_model).")
    flags.DEFINE_string("video", None, "Face video to analyse (any frame rate and size).")
    flags.DEFINE_string("out", None, "Output folder.")
    flags.DEFINE_bool("postprocess", True, "Apply the post-processing chain fitted on dev.")
    flags.DEFINE_bool("attention_video", False, "Also write attention.mp4 (attention model only).")
    flags.DEFINE_integer("batch_size", 16, "Clips per model call.")
    from recola_sta import preprocess

    # Unset: as recorded with the model (recola_sta.json).
    preprocess.define_face_flags({"upsample": None, "detect_width": None, "face": None,
                                  "redetect_every": None, "rotate": None})
    flags.DEFINE_bool("progress", True, "Show a progress bar.")
    for name in ("model", "video", "out"):
        flags.mark_flag_as_required(name)


def main(argv: Sequence[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: quieter start-up
    from absl import flags, logging

    FLAGS = flags.FLAGS
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines hide the progress bars
    if len(argv) > 1:
        print(f"predict: unexpected arguments {argv[1:]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if FLAGS.batch_size <= 0:
        print(f"predict: --batch_size={FLAGS.batch_size} must be positive.", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        summary = predict_video(
            FLAGS.model, FLAGS.video, FLAGS.out, apply_postprocess=FLAGS.postprocess,
            attention_video=FLAGS.attention_video, batch_size=FLAGS.batch_size,
            upsample=FLAGS.upsample, detect_width=FLAGS.detect_width, face=FLAGS.face,
            predictor_path=FLAGS.predictor_path, redetect_every=FLAGS.redetect_every,
            rotate=FLAGS.rotate, progress=FLAGS.progress,
        )
    except NoFaceError as e:
        print(f"predict: {e}", file=sys.stderr)
        return EXIT_NO_FACE
    except (OSError, ValueError) as e:  # FileNotFoundError, faces.VideoError, ModelLoadError
        print(f"predict: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    smallest = summary["smallest_face_px"]
    print(
        f"{summary['samples']} samples, faces found in {summary['face_found_rate']:.0%} "
        f"(smallest {smallest:.0f} px; {summary['samples_with_several_faces']} samples with "
        f"several faces, subject by --face={summary['face_aligner']['face']}); "
        f"{summary['wall_time_s']:.1f} s ({summary['real_time_factor']}x real time). "
        f"Wrote {', '.join(summary['files'])} to {FLAGS.out}"
    )
    return 0


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
