"""Run an exported model on any face video: valence (and arousal) over time and attention.

    python -m recola_sta.predict --model=runs/synthetic_3d_cnn_sta/saved_model \\
        --video=face.mp4 --out=out/face

Only the SavedModel is loaded (`tf.saved_model.load`): no training code and
no Keras custom objects. --model naming a .onnx file (`export --format=onnx`),
or a folder holding model.onnx and no SavedModel, runs it on ONNX Runtime
instead, without importing TensorFlow (`inference.onnx_model`). The video may have any frame rate and size. Frames
are sampled at the model's rate (4 fps) by timestamp, faces are detected and
aligned exactly as in training (the face aligner is built from the settings
in the model's recola_sta.json; --upsample, --detect_width, --face,
--redetect_every, --rotate and --predictor_path override them; where no face
is found, the message suggests the --rotate under which a few sampled frames
show one), 16-frame clips are predicted (the last one,
or a video shorter than one clip, is padded by repeating its last frame),
samples without a face are interpolated from their neighbours, and the
result is resampled to the video's own frame times.

The video streams through `--batch_size` clips at a time: only per-sample
values, the running sums of the attention-region report, the clip
attention.png shows and attention.mp4 (written as it goes) are kept, so
memory stays flat with the video's length. The CSV is written at the end,
as the post-processing chains need the whole series.

Live input (--video=0, a camera index, or a stream URL; --realtime reads a
file at its real pace instead): samples at 4 fps by the wall clock, appends
each completed clip's raw rows to <targets>.live.csv (flushed, a valid CSV
at any moment), and on Ctrl-C, --max_seconds or the end of the stream
writes <targets>.csv post-processed over what was seen, at the 4 fps sample
times, with the plots and summary.json.

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
    valence.live.csv  live input only: raw rows per 4 fps sample, appended
                      as each clip completes
    report.html       the video (by its path relative to --out; none for a
                      camera or stream) beside each target's curve: a cursor
                      follows playback, a click on a curve seeks, the samples
                      without a face are shaded; the attention figures and
                      region table (self-contained: opens offline in a browser)
    summary.json      video facts, face-found rate, smallest face, samples
                      with several faces, the aligner's settings, timing
The files are written to temporary names and renamed together at the end,
summary.json last: a run that fails or is interrupted (Ctrl-C, a full disk)
leaves --out as it was (a live source keeps its .live.csv), and a
summary.json always describes complete outputs of one run.
Exit codes (`recola_sta.cli`): 0 success, 2 bad input (missing/corrupt file,
not a model, a full disk), 3 no face found anywhere in the video, 130
interrupted.

Many videos (`recola_sta.inference.batch`): --video a folder (its .mp4 .avi
.mov .mkv .webm .m4v files), a glob ("clips/*.mp4", quoted) or a .txt list
(one path a line, relative to the list; # comments) loads the model once
and writes each video's outputs above into --out/<video stem>/ (a clash
becomes <stem>_2, ... in input order), and --out/index.csv and index.html,
one row per video (facts, each target's mean and std, status ok, skipped,
failed or no_face, and the error), rewritten after each video. A bad or
faceless video is recorded and the batch goes on; the exit code is then 2
(3 where the only failures were videos without a face). A video whose
folder holds its complete outputs (summary.json) is skipped on a re-run,
unless --overwrite.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import sys
import time
from typing import Any, Sequence

from recola_sta import cli, io_utils, pools, settings
from recola_sta.faces import settings as face_settings
from recola_sta.faces import tracking
from recola_sta.inference import batch, export, onnx_model
from recola_sta.inference.loading import (ModelLoadError, ModelLoader, check_serving_shape,
                                          load_chains, make_aligner, run_model)
from recola_sta.inference.outputs import Outputs
from recola_sta.inference.results import summarize, write_outputs
from recola_sta.inference.stream import frame_grid, no_face_message, open_input, run_stream
from recola_sta.settings import setting

# The steps live in loading (the aligner, the SavedModel), stream (the input
# and the model run over it), results (the CSV, figures, report, summary) and
# outputs (the files as one set); these names are kept here for the callers
# of `predict` (tools/bench.py, the tests).
__all__ = ["EXIT_BAD_INPUT", "EXIT_NO_FACE", "ModelLoadError", "NoFaceError", "define_flags",
           "main", "make_aligner", "no_face_message", "predict_video", "predict_videos",
           "run_model"]

EXIT_BAD_INPUT = cli.EXIT_BAD_INPUT
EXIT_NO_FACE = cli.EXIT_NO_FACE
NoFaceError = cli.NoFaceError


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
    max_seconds: float | None = None,
    realtime: bool = False,
    workers: int = 1,
    then: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Predicts valence (and attention) for one video; see the module doc.

    The video streams through in chunks of `batch_size` clips: memory stays
    flat with its length (only per-sample values are kept whole, as the
    post-processing chains need the whole series).

    `upsample`, `detect_width`, `face`, `predictor_path`, `redetect_every`
    and `rotate` override the face aligner's settings recorded with the
    model; None keeps them. Where no face is found, a few sampled frames are
    turned by 90, 180 and 270 degrees and the message suggests the `rotate`
    (--rotate) under which a face appears. `model_dir`: the export
    folder, or its .onnx file to run on ONNX Runtime (`onnx_model.locate`).
    `model`: the model already loaded (`tf.saved_model.load`, `onnx_model.load`), to
    predict several videos without loading it again; None loads it.
    `prefetch`: sampled frames decoded ahead of the face aligner by a
    background thread (`faces.sampled_frames`); 0 decodes in line.
    `workers`: processes aligning the faces of a file, a chunk of
    `faces.tracking.CHUNK_SAMPLES` samples each, tracking restarting at each
    chunk (`stream.aligned_samples`), each decoding its own chunks, and
    then draw the attention figures while this process writes the CSV; 1
    aligns in this process, as does a live source. `then`: the video
    predicted next with the same arguments (`predict_videos`), whose first
    chunks the workers align as soon as this video's are handed out
    (`tracking.align_next`): the same results, the cores kept busy.

    Live input: `video` a camera index ("0") or a stream URL
    (`faces.is_live_source`), or with `realtime` a file read at its real
    pace standing in for a camera. Samples are taken at 4 fps by the wall
    clock, the model runs on each clip as it completes and its raw rows are
    appended to <targets>.live.csv; the run stops at the end of the stream,
    after `max_seconds`, or on KeyboardInterrupt (Ctrl-C), and then writes
    <targets>.csv post-processed over what was seen, at the 4 fps sample
    times, with the plots and summary.json. `max_seconds` also limits a
    file.

    Steps: check the input and open it (`open_input`), align and run the
    model clip by clip (`run_stream`), the output's time grid
    (`frame_grid`), the CSV and figures (`write_outputs`), summary.json
    (`summarize`).

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
    given = pathlib.Path(model_dir)
    model_dir, onnx_file = onnx_model.locate(given)
    out_dir = pathlib.Path(out_dir)
    meta = export.read_metadata(model_dir)
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"--max_seconds={max_seconds} must be positive.")
    # Before any work: a run that cannot save its results wastes all of it.
    io_utils.check_writable_dir(out_dir, "--out")
    aligner = make_aligner(meta, model_dir, {"upsample": upsample, "detect_width": detect_width,
                                             "face": face, "predictor_path": predictor_path,
                                             "redetect_every": redetect_every,
                                             "rotate": rotate})
    source = open_input(video, float(meta["fps"]), realtime=realtime, max_seconds=max_seconds,
                        prefetch=prefetch, progress=progress)
    # TensorFlow is imported and the SavedModel loaded in a background thread
    # while the first frames are decoded and aligned.
    loading = None
    if model is None:
        loading = ModelLoader(model_dir, meta, onnx_file)
        serve_fn = lambda: loading.result().serve  # noqa: E731
    else:
        check_serving_shape(model, model_dir, meta)
        serve_fn = lambda: model.serve  # noqa: E731
    outputs = Outputs(out_dir)
    if then is not None and workers > 1 and not source.live:
        _align_next(then, float(meta["fps"]), aligner, workers, max_seconds)
    try:
        track = run_stream(source, aligner, serve_fn, meta, outputs, batch_size=batch_size,
                           attention_video=attention_video, max_seconds=max_seconds,
                           workers=workers)
        chains = load_chains(model_dir, meta["targets"]) if apply_postprocess else {}
        grid = frame_grid(source, track.times, float(meta["fps"]), max_seconds)
        # The alignment workers, idle now, draw the attention figures.
        pool = pools.running_kept_pool(workers) if workers > 1 else None
        written, kept, regions_report = write_outputs(outputs, source, track, grid, meta,
                                                      chains, attention_columns, pool)
        summary = summarize(source, track, grid, meta, given, aligner, written, kept,
                            regions_report, seconds=time.time() - start,
                            limited=max_seconds is not None)
        outputs.commit(summary)
    except BaseException as e:
        error = outputs.discard(e)
        if error is e:
            raise
        raise error from e
    finally:
        tracking.align_next(None, aligner, workers)  # this run did not take it up
        if loading is not None:
            loading.join()
    return summary


def _align_next(video: str | os.PathLike, fps: float, aligner: Any, workers: int,
                max_seconds: float | None) -> None:
    """Names `video` as the one the workers align next (`tracking.align_next`),
    where its run will align it in chunks (`stream.aligned_samples`); a
    video that cannot be read is left to fail in its own run."""
    try:
        source = open_input(video, fps, realtime=False, max_seconds=max_seconds, prefetch=0,
                            progress=False)
    except (OSError, ValueError):
        return
    if not source.live and source.num_samples > tracking.CHUNK_SAMPLES:
        tracking.align_next(source.frames, aligner, workers)


# predict_video's arguments that override the face aligner's recorded settings.
_FACE_OVERRIDES = ("upsample", "detect_width", "face", "predictor_path", "redetect_every",
                   "rotate")


def predict_videos(model_dir: str | os.PathLike, videos: str | os.PathLike,
                   out_dir: str | os.PathLike, *, overwrite: bool = False,
                   progress: bool = True, **kwargs: Any) -> list[dict[str, Any]]:
    """Predicts every video `videos` names (a folder, a glob or a .txt
    list: `batch.resolve_videos`) with the model loaded once, each into
    `out_dir`/<its name> as `predict_video` does, and writes
    `out_dir`/index.csv and index.html (see `recola_sta.inference.batch`).
    A video whose folder holds its complete outputs is skipped unless
    `overwrite`; a bad or faceless one is recorded and the batch goes on.
    `kwargs`: `predict_video`'s.

    Returns the index rows (`batch.exit_code` turns them into the exit code).

    Raises (before any video is predicted):
        ValueError: nothing to predict or a listed file missing, the model's
            recola_sta.json or a face flag invalid, `out_dir` not writable
            or in use by another run (`io_utils.LockedError`).
        ModelLoadError: the SavedModel cannot be loaded.
    """
    given = pathlib.Path(model_dir)
    model_dir, onnx_file = onnx_model.locate(given)
    out_dir = pathlib.Path(out_dir)
    paths = batch.resolve_videos(videos)
    meta = export.read_metadata(model_dir)
    max_seconds = kwargs.get("max_seconds")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"--max_seconds={max_seconds} must be positive.")
    # Checked once here: an invalid face flag would otherwise fail every video.
    make_aligner(meta, model_dir, {k: kwargs.get(k) for k in _FACE_OVERRIDES})
    io_utils.check_writable_dir(out_dir, "--out")
    out_dir.mkdir(parents=True, exist_ok=True)
    with io_utils.exclusive_lock(out_dir / io_utils.LOCK_NAME, f"--out={out_dir}"):
        jobs = batch.plan(paths, out_dir, overwrite)
        model = None
        if not all(job.done for job in jobs):
            loader = ModelLoader(model_dir, meta, onnx_file)
            try:
                model = loader.result()
            finally:
                loader.join()  # Ctrl-C while TensorFlow loads: let the load end first

        # Each video's workers go on to the next one's first chunks (`then`).
        todo = [job.video for job in jobs if not job.done]
        following = dict(zip(todo, todo[1:]))

        def predict_one(video: pathlib.Path, folder: pathlib.Path) -> dict[str, Any]:
            return predict_video(given, video, folder, model=model, progress=progress,
                                 then=following.get(video), **kwargs)

        return batch.run_batch(jobs, out_dir, predict_one, targets=list(meta["targets"]),
                               progress=progress,
                               title=f"Predictions of the {meta['variant']} model")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PredictConfig:
    """The predict CLI's settings (each field is its flag) besides the face
    flags, which override the model's recorded `FaceSettings` when set."""

    model: str = setting(help="Exported SavedModel folder (RUN_DIR/saved_model), or its "
                              "model.onnx to run on ONNX Runtime without TensorFlow (also a "
                              "folder holding model.onnx and no SavedModel).")
    video: str = setting(help="Face video to analyse (any frame rate and size), a live source: "
                              "a camera index (0) or a stream URL (rtsp://...), or many videos: "
                              "a folder, a glob (quoted) or a .txt file listing one a line.")
    out: str = setting(help="Output folder (many videos: one folder each inside, and "
                            "index.csv, index.html).")
    postprocess: bool = setting(True, help="Apply the post-processing chain fitted on dev.")
    attention_video: bool = setting(False, help="Also write attention.mp4 (attention model "
                                                "only).")
    batch_size: int = setting(16, help="Clips per model call.", check=lambda v: v > 0,
                              expected="a positive number of clips")
    max_seconds: float | None = setting(
        None, help="Stop after this many seconds of video (live input: of wall-clock time); "
                   "unset: to the end, or Ctrl-C.")
    realtime: bool = setting(False, help="Read the --video file at its real pace as a live "
                                         "source standing in for a camera (tests live mode).")
    overwrite: bool = setting(False, help="Many videos: predict again the videos whose outputs "
                                          "in --out are complete (by default they are skipped).")
    progress: bool = setting(True, help="Show a progress bar.")
    workers: int = setting(
        len(os.sched_getaffinity(0)),
        help="Processes aligning a video's faces, a chunk of 8 s each (face tracking restarts "
             "at each chunk); default: the usable cores. The outputs are the same for every "
             "value above 1; 1 aligns in the main process, as a live source does.",
        lower_bound=1, check=lambda v: not isinstance(v, bool) and int(v) == v,
        expected="at least 1 process")


def define_flags(flag_values=None) -> None:
    """Defines the CLI's flags (one per `PredictConfig` field, and the face
    flags, unset meaning as recorded with the model) in `flag_values` where
    given (`cli.call`), else in absl's global FLAGS."""
    settings.define_flags(PredictConfig, flag_values=flag_values)
    # Unset: as recorded with the model (recola_sta.json).
    face_settings.define_flags({"upsample": None, "detect_width": None, "face": None,
                                "redetect_every": None, "rotate": None}, skip=("size",),
                               flag_values=flag_values)


def main(argv: Sequence[str], flag_values=None) -> int:
    """The CLI: `argv` is what flag parsing left (program name first),
    `flag_values` the parsed flags (default: absl's global FLAGS)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: quieter start-up
    from absl import flags, logging

    FLAGS = flags.FLAGS if flag_values is None else flag_values
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines hide the progress bars
    if batch.is_batch(FLAGS.video):
        interrupted = ("the videos finished so far are in --out and its index.csv; run the "
                       "same command to go on (finished videos are skipped)")
    else:
        interrupted = ("no output was written (they are renamed into --out together at the "
                       "end); run the same command to predict again")
    return cli.run("predict", lambda: _predict(argv, FLAGS), output=FLAGS.out,
                   interrupted=interrupted)


def _predict(argv: Sequence[str], FLAGS) -> int:
    """main()'s work: predict the video (or videos), then print what was
    written."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    config = settings.from_flags(PredictConfig, FLAGS)
    settings.check(config)
    kwargs = dict(
        apply_postprocess=config.postprocess, attention_video=config.attention_video,
        batch_size=config.batch_size, progress=config.progress,
        max_seconds=config.max_seconds, realtime=config.realtime, workers=config.workers,
        **{name: getattr(FLAGS, name) for name in _FACE_OVERRIDES},
    )
    if batch.is_batch(config.video):
        return _predict_many(config, kwargs)
    summary = predict_video(config.model, config.video, config.out, **kwargs)
    smallest = summary["smallest_face_px"]
    stopped = f"; stopped: {summary['stopped']}" if "stopped" in summary else ""
    print(
        f"{summary['samples']} samples, faces found in {summary['face_found_rate']:.0%} "
        f"(smallest {smallest:.0f} px; {summary['samples_with_several_faces']} samples with "
        f"several faces, subject by --face={summary['face_aligner']['face']}); "
        f"{summary['wall_time_s']:.1f} s ({summary['real_time_factor']}x real time{stopped}). "
        f"Wrote {', '.join(summary['files'])} to {config.out}"
    )
    return 0


def _predict_many(config: PredictConfig, kwargs: dict[str, Any]) -> int:
    """Batch mode: predict every video, print the count of each status and
    return the batch's exit code (`batch.exit_code`)."""
    rows = predict_videos(config.model, config.video, config.out, overwrite=config.overwrite,
                          **kwargs)
    counts = collections.Counter(row["status"] for row in rows)

    def told(statuses: Sequence[str]) -> str:
        return ", ".join(f"{counts[s]} {s}" for s in statuses if counts[s])

    index = pathlib.Path(config.out) / batch.INDEX_CSV
    print(f"{len(rows)} videos: {told((batch.OK, batch.SKIPPED, batch.FAILED, batch.NO_FACE))}."
          f" Wrote {index} and {batch.INDEX_HTML} beside it.")
    code = batch.exit_code(rows)
    if code != cli.EXIT_DONE:
        failed = counts[batch.FAILED] + counts[batch.NO_FACE]
        print(f"predict: {failed} of {len(rows)} videos were not predicted "
              f"({told((batch.FAILED, batch.NO_FACE))}); see {index}.", file=sys.stderr)
    return code
