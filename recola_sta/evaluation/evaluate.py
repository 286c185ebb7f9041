"""Evaluate a training run: predictions, AVEC post-processing, metrics, plots.

    python -m recola_sta.evaluate --run_dir=runs/synthetic_3d_cnn_sta

For every recording of the requested partitions the model predicts one value
per 4 fps sample; samples whose face was not found are filled by linear
interpolation from their neighbours (paper, section 3.1), and the 4 fps
predictions are resampled onto the corpus' own label grid (40 ms for RECOLA,
100 ms for AV+EC 2017) so metrics are computed at the label rate. The AVEC
post-processing chain is fitted on dev and applied unchanged to every
partition. Metrics are computed on the concatenation of a partition's
recordings (as the challenges do) and per recording.

Writes into the run folder:
    evaluation.json                  metrics per partition, raw and post-processed
    postprocess.json                 the chain fitted on dev
    predictions/<partition>/<name>.csv   time,gold,raw,post at the label rate
    plots/<partition>/<name>.png     predicted vs gold valence (Figs. 3-4)
    plots/attention_regions.png      STA models: where the attention looks on
                                     dev faces (also `attention_regions` in
                                     evaluation.json)
    reports/dev/<name>.html          each dev recording's video beside its
                                     prediction and gold standard, with its CCC
                                     (`recola_sta.report`; with the plots)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import pathlib
import sys
import time
from typing import Callable, Sequence

import numpy as np

from recola_sta import cache, cli, clips, io_utils, metrics, settings
from recola_sta.analysis import plots
from recola_sta.data import corpora
from recola_sta.evaluation import postprocess
from recola_sta.training import run_state
from recola_sta.data.corpora import PARTITIONS
from recola_sta.cache import shards
from recola_sta.settings import setting
from recola_sta.targets import parse_targets


# The lock file of a run folder: one process at a time writes it (train, evaluate).
RUN_LOCK = io_utils.LOCK_NAME


def run_folder_lock(run_dir: str | os.PathLike):
    """Holds the run folder `run_dir` for the block (`io_utils.exclusive_lock`).

    `train` holds it while it trains and evaluates, `evaluate_run` while it
    rewrites the folder's evaluation; a second process is refused with one
    line naming the holder (`io_utils.LockedError`, exit 2 in the CLIs).
    """
    run_dir = pathlib.Path(run_dir)
    return io_utils.exclusive_lock(run_dir / RUN_LOCK, f"run folder {run_dir}")


@dataclasses.dataclass
class RecordingResult:
    """One recording's predictions at the label rate."""

    name: str
    partition: str
    times: np.ndarray  # label grid (or a grid at the label period if unlabeled)
    gold: np.ndarray | None  # None when the recording has no labels
    raw: np.ndarray  # prediction after face-gap interpolation and resampling
    found: np.ndarray  # per grid time: nearest 4 fps sample had a face
    post: np.ndarray | None = None  # after the post-processing chain
    video: pathlib.Path | None = None  # the corpus recording's video


def predict_targets(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    cache_dir: str | os.PathLike,
    partitions: Sequence[str],
    *,
    targets: Sequence[str],
    frames: int = 16,
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, list[RecordingResult]]:
    """Predicts every cached recording of `partitions` at its label rate,
    for each of the model's K targets (one target: a list of one).

    Args:
        predict_fn: float32 clips (B, T, S, S, 3) in [0, 1] -> (B, T, K),
            the values of `targets` in that order ((B, T) for K = 1).
        cache_dir: preprocess cache; its manifest names the corpus, whose
            label grids and gold values are read again here.
        partitions: partitions to predict.
        targets: the model's label dimensions, in its output order; each is
            compared with its own gold values.
        frames: clip length of the model.
        batch_size: clips per model call.
        progress: print a progress bar.

    Returns:
        target -> its `RecordingResult`s, the recordings in the same order
        for every target and on the same time grid per recording (the
        corpus' label grid when the recording has any of the targets).
    """
    targets = tuple(targets)
    manifest = cache.read_manifest(cache_dir)
    recordings = {r.name: r for r in corpora.load_corpus(manifest.corpus_root, manifest.corpus_kind)}
    entries = [e for e in manifest.entries if e.partition in partitions]
    if not entries:
        raise ValueError(
            f"The cache {cache_dir} holds no recordings of partitions {list(partitions)}."
        )
    results: dict[str, list[RecordingResult]] = {t: [] for t in targets}
    iterator = entries
    if progress:
        from tqdm import tqdm

        iterator = tqdm(entries, desc="predict", unit="rec", file=sys.stdout)
    for entry in iterator:
        cached = shards.load_entry(cache_dir, entry)
        if not cached.found.any():
            print(f"warning: no face found anywhere in {entry.name}; predictions are 0.")
            preds = np.zeros((len(cached.times), len(targets)))
            found = np.ones(len(cached.times), bool)
        else:
            out = clips.predict_clips(lambda batch: {"value": predict_fn(batch)},
                                      cached.crops, frames, batch_size)
            preds = out["value"].reshape(len(cached.crops), len(targets)).astype(np.float64)
            found = cached.found
        recording = recordings.get(entry.name)
        if recording is None:
            raise ValueError(
                f"Cached recording {entry.name!r} is not in the corpus at "
                f"{manifest.corpus_root}; the cache is stale, re-run preprocess."
            )
        if any(t in recording.targets for t in targets) and len(recording.times) > 0:
            grid = recording.times
        else:
            grid = np.arange(0.0, cached.times[-1] + 1e-9, recording.label_period)
        for k, target in enumerate(targets):
            gold = (np.asarray(recording.targets[target], np.float64)
                    if target in recording.targets and len(recording.times) > 0 else None)
            raw, grid_found = clips.samples_to_grid(cached.times, preds[:, k], found, grid)
            results[target].append(
                RecordingResult(entry.name, entry.partition, grid, gold, raw, grid_found,
                                video=recording.video))
    return results


def _csv_text(columns: dict[str, RecordingResult]) -> str:
    """One recording's CSV: time, then gold, raw, post per target (each name
    followed by the target's key, its `_suffixes` entry), then face_found."""
    first = next(iter(columns.values()))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["time"]
    values = [first.times]
    nan = np.full(len(first.times), np.nan)
    for suffix, result in columns.items():
        header += [f"{kind}{suffix}" for kind in ("gold", "raw", "post")]
        values += [result.gold if result.gold is not None else nan, result.raw,
                   result.post if result.post is not None else nan]
    writer.writerow(header + ["face_found"])
    for k, t in enumerate(first.times):
        writer.writerow([f"{t:.3f}", *(f"{v[k]:.6f}" for v in values[1:]), int(first.found[k])])
    return buf.getvalue()


def score_results(
    results: Sequence[RecordingResult], convention: str, which: str
) -> dict[str, dict]:
    """Metrics per labeled partition for `which` in {"raw", "post"}."""
    scores = {}
    for partition in PARTITIONS:
        labeled = [r for r in results if r.partition == partition and r.gold is not None]
        if not labeled:
            continue
        scores[partition] = metrics.score_partition(
            [r.gold for r in labeled],
            [getattr(r, which) for r in labeled],
            names=[r.name for r in labeled],
            convention=convention,
        )
    return scores


def _postprocess(results: list[RecordingResult], *, convention: str, tune_partition: str,
                 time_shift: bool) -> postprocess.PostProcessor | None:
    """Fits the chain on `tune_partition` and sets every result's `post`;
    None (post = raw) without labels there."""
    tune = [r for r in results if r.partition == tune_partition and r.gold is not None]
    chain = None
    if tune:
        frame_period = float(np.median(np.diff(tune[0].times)))
        chain = postprocess.PostProcessor.fit(
            [r.gold for r in tune], [r.raw for r in tune],
            frame_period=frame_period, time_shift=time_shift, convention=convention,
        )
    for r in results:
        r.post = chain.apply(r.raw) if chain is not None else r.raw.copy()
    return chain


def _plot(path: pathlib.Path, r: RecordingResult, convention: str, ylabel: str) -> None:
    title = r.name
    if r.gold is not None:
        s = metrics.score(r.gold, r.post, convention=convention)
        title += f"   CCC {s['ccc']:.3f}   CC {s['cc']:.3f}   RMSE {s['rmse']:.3f}"
    plots.plot_valence(path, r.times, r.post, r.gold, found=r.found, title=title, ylabel=ylabel)


def _report(out_dir: pathlib.Path, per_target: dict[str, RecordingResult], convention: str,
            evaluation: dict) -> None:
    """reports/<partition>/<name>.html: one recording's video beside each
    target's post-processed prediction and gold standard, with its CCC
    (raw and post-processed), the samples without a face shaded, and the
    recording's attention-region table where `evaluation` (the per-target
    report of `evaluate_targets`) has one."""
    from recola_sta.inference import report

    first = next(iter(per_target.values()))
    curves, facts = [], [("partition", first.partition)]
    for target, r in per_target.items():
        score = ""
        if r.gold is not None:
            post = metrics.score(r.gold, r.post, convention=convention)
            raw = metrics.score(r.gold, r.raw, convention=convention)
            score = f"CCC {post['ccc']:.3f} (raw {raw['ccc']:.3f})"
            facts.append((target, f"CCC {post['ccc']:.3f}, CC {post['cc']:.3f}, "
                                  f"RMSE {post['rmse']:.3f} post-processed; CCC "
                                  f"{raw['ccc']:.3f} raw"))
        curves.append(report.Curve(target, r.times, r.post, r.gold, score))
    kept = evaluation["postprocess_kept"][next(iter(per_target))]
    facts.append(("post-processing", ", ".join(kept) or "nothing"))
    attention = evaluation.get("attention_regions") or {}
    own = (attention.get("per_recording") or {}).get(first.name) or {}
    regions = own.get("regions") if own.get("samples") else None
    page = out_dir / "reports" / first.partition / f"{first.name}.html"
    report.write_report(
        page, title=f"{first.name}: predicted and gold {', '.join(per_target)}",
        subtitle=f"{first.partition} recording; the prediction post-processed by the chain "
                 f"fitted on {evaluation['tune_partition']} (CCC convention: {convention}).",
        curves=curves, video=first.video, found_times=first.times, found=first.found,
        facts=facts, regions=regions,
        regions_note=(f"This recording's {own.get('samples')} faces, frames "
                      f"{attention.get('frames_used', '2..T')}; the figure over all "
                      f"{attention.get('partition', first.partition)} faces is "
                      "plots/attention_regions.png." if regions is not None else ""),
        footer="Written by recola_sta.evaluation.evaluate.",
    )


def evaluate_predictions(
    results: list[RecordingResult] | dict[str, list[RecordingResult]],
    out_dir: str | os.PathLike,
    *,
    convention: str = metrics.DEFAULT_CONVENTION,
    tune_partition: str = "dev",
    time_shift: bool = False,
    write_plots: bool = True,
    extra: dict | None = None,
) -> dict:
    """`evaluate_targets`, returning the `evaluation.json` content.

    `results` is `predict_targets`' target -> list, or one list (the
    target "valence").
    """
    if not isinstance(results, dict):
        results = {"valence": results}
    return evaluation_json(evaluate_targets(
        results, out_dir, convention=convention, tune_partition=tune_partition,
        time_shift=time_shift, write_plots=write_plots, extra=extra))


def evaluate_targets(
    results: dict[str, list[RecordingResult]],
    out_dir: str | os.PathLike,
    *,
    convention: str = metrics.DEFAULT_CONVENTION,
    tune_partition: str = "dev",
    time_shift: bool = False,
    write_plots: bool = True,
    extra: dict | None = None,
) -> dict:
    """Post-processes, scores and writes everything for the predictions of
    one or several targets (`predict_targets`).

    Each target gets its own post-processing chain, fitted on its own
    `tune_partition` labels (dev, as in the challenges) and applied
    unchanged to every recording; without labels there, its predictions are
    reported raw and the chain is skipped. Each target gets its own metrics,
    and a partition scored for every target the mean of their CCCs (the
    challenge's ranking). `extra` entries (e.g. the attention analysis) are
    added to the report.

    Writes postprocess.json, predictions/<partition>/<name>.csv (gold, raw,
    post per target), plots/<partition>/<name>[_<target>].png, the reports
    of the `tune_partition` recordings and evaluation.json (in the layout of
    `evaluation_json`).

    Returns:
        The report: `convention`, `tune_partition`, `targets`; per target
        `postprocess_kept`, `postprocess`, `raw`, `post` (each {target:
        ...}); `mean_ccc` {"raw"|"post": {partition: mean CCC}}; `extra`.
    """
    out_dir = pathlib.Path(out_dir)
    targets = list(results)
    chains = {t: _postprocess(results[t], convention=convention, tune_partition=tune_partition,
                              time_shift=time_shift) for t in targets}
    _save_chains(chains, out_dir / postprocess.FILE_NAME)
    report = {
        "convention": convention,
        "tune_partition": tune_partition,
        "targets": targets,
        "postprocess_kept": {t: c.kept_steps if c is not None else [] for t, c in chains.items()},
        "postprocess": {t: c.describe() if c is not None else "not fitted (no labeled dev)"
                        for t, c in chains.items()},
        "raw": {t: score_results(results[t], convention, "raw") for t in targets},
        "post": {t: score_results(results[t], convention, "post") for t in targets},
    }
    report["mean_ccc"] = {
        stage: {p: float(np.mean([report[stage][t][p]["all"]["ccc"] for t in targets]))
                for p in PARTITIONS if all(p in report[stage][t] for t in targets)}
        for stage in ("raw", "post")
    }
    report.update(extra or {})
    suffixes = _suffixes(targets)
    for per_target in zip(*(results[t] for t in targets)):
        r = per_target[0]
        io_utils.atomic_write_text(out_dir / "predictions" / r.partition / f"{r.name}.csv",
                                   _csv_text({suffixes[t]: x for t, x in zip(targets, per_target)}))
        if write_plots:
            for target, result in zip(targets, per_target):
                _plot(out_dir / "plots" / r.partition / f"{r.name}{suffixes[target]}.png", result,
                      convention, target)
            if r.partition == tune_partition:
                _report(out_dir, dict(zip(targets, per_target)), convention, report)
    io_utils.atomic_write_text(out_dir / "evaluation.json",
                               json.dumps(evaluation_json(report), indent=2) + "\n")
    return report


# Where a run of one target writes otherwise than a run of several: the
# layouts its files had before models of several targets existed, kept so
# that its files read as before. Everything above is one path for any number
# of targets; these functions give its results their one-target form.

# The report entries that hold one value per target.
PER_TARGET_KEYS = ("postprocess_kept", "postprocess", "raw", "post")


def evaluation_json(report: dict) -> dict:
    """evaluation.json's content from `evaluate_targets`' report: that report
    for several targets; for one, the report without `targets` and
    `mean_ccc`, each `PER_TARGET_KEYS` entry that target's value."""
    if len(report["targets"]) > 1:
        return report
    (target,) = report["targets"]
    return {key: value[target] if key in PER_TARGET_KEYS else value
            for key, value in report.items() if key not in ("targets", "mean_ccc")}


def report_by_target(report: dict) -> dict:
    """`evaluate_targets`' form of an evaluation.json of either layout (the
    inverse of `evaluation_json`; one target's name is not in its file,
    and is "" here)."""
    if "targets" in report:
        return report
    return {**{key: {"": value} if key in PER_TARGET_KEYS else value
               for key, value in report.items()},
            "targets": [""], "mean_ccc": {"raw": {}, "post": {}}}


def _suffixes(targets: Sequence[str]) -> dict[str, str]:
    """Each target's suffix of a recording's CSV columns and plot file name:
    none for one target, `_<target>` for several."""
    return {t: "" if len(targets) == 1 else f"_{t}" for t in targets}


def _save_chains(chains: dict[str, postprocess.PostProcessor | None],
                 path: pathlib.Path) -> None:
    """Writes the fitted chains (none: no file): one target's as a single
    chain (`PostProcessor.save`), several targets' in one file
    (`postprocess.save_chains`); `postprocess.load_chains` reads both."""
    fitted = {t: chain for t, chain in chains.items() if chain is not None}
    if not fitted:
        return
    if len(chains) == 1:
        next(iter(fitted.values())).save(path)
    else:
        postprocess.save_chains(fitted, path)


def attention_regions(
    model, cache_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
    partition: str = "dev", batch_size: int = 16,
) -> dict:
    """Where a STA model looks on a cache partition (`attention_analysis`).

    Writes `plots/attention_regions.png` under `out_dir` and returns the
    report (with `partition`), or `{"available": False, ...}` for a model
    without attention.
    """
    from recola_sta.analysis import attention_analysis

    try:
        attention_analysis.check_attention_model(model)
    except attention_analysis.NoAttentionError as e:
        return {"available": False, "reason": str(e), "partition": partition}
    recordings = attention_analysis.load_partition(cache_dir, cache.read_manifest(cache_dir),
                                                   partition)
    report = attention_analysis.analyze(
        model, recordings, batch_size=batch_size,
        figure=pathlib.Path(out_dir) / "plots" / "attention_regions.png",
        title=f"{model.name}: where the attention looks on {partition} faces",
    )
    return {"partition": partition, **report}


def keras_predict_fn(model) -> Callable[[np.ndarray], np.ndarray]:
    """Wraps a Keras model as a NumPy clip -> value function."""
    return lambda batch: model.predict_on_batch(batch)


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    partitions: Sequence[str] = ("dev", "test"),
    model_file: str | None = None,
    convention: str | None = None,
    write_plots: bool = True,
    progress: bool = True,
) -> dict:
    """Evaluates the model a training run selected on dev.

    Args:
        run_dir: folder written by `recola_sta.train` (holds `config.json`).
        partitions: partitions to predict; dev is always included because the
            post-processing chain is fitted on it.
        model_file: the `.keras` file inside `run_dir` to evaluate; None:
            the best dev epoch's model that `checkpoints/state.json` names
            (`best.keras` is its copy), the one train evaluated.
        convention: CCC convention; the run's own when None.
        write_plots: write one PNG per recording.
        progress: show a progress bar.

    Raises:
        io_utils.LockedError: another process (a trainer) holds the run folder.
    """
    run_dir = pathlib.Path(run_dir)
    config = run_state.read_config(run_dir)  # a malformed one: named
    if config is None:
        raise FileNotFoundError(f"{run_dir / run_state.CONFIG_NAME} is missing: --run_dir must "
                                "be a training run folder.")
    unknown = set(partitions) - set(PARTITIONS)
    if unknown:
        raise ValueError(f"Unknown partitions {sorted(unknown)}; choose from {PARTITIONS}.")
    # Before the model is chosen and read: a trainer still writing the folder
    # (the best model of a later epoch) would leave evaluation files of a
    # model that is no longer its best.
    with run_folder_lock(run_dir):
        return _evaluate_locked(run_dir, config, partitions=partitions, model_file=model_file,
                                convention=convention, write_plots=write_plots,
                                progress=progress)


def _evaluate_locked(run_dir: pathlib.Path, config: dict, *, partitions: Sequence[str],
                     model_file: str | None, convention: str | None, write_plots: bool,
                     progress: bool) -> dict:
    """`evaluate_run`'s work, with the run folder locked."""
    from recola_sta.model import layers  # registers the custom layers, for load_model

    del layers  # needed for that alone

    if model_file is None:
        model_path = run_state.best_model_path(run_dir)
    else:
        model_path = run_dir / model_file
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path} is missing: the run has not finished an "
                                    "epoch yet, or --model_file names no file of the run.")
    last = run_dir / run_state.LAST_NAME
    hint = "train the run again in a new --run_dir"
    if model_path != last and last.is_file():
        hint = f"evaluate the last epoch instead with --model_file={run_state.LAST_NAME}, or {hint}"
    model = run_state.load_model(model_path, hint, compile=False)
    wanted = list(dict.fromkeys(["dev", *partitions]))
    targets = list(parse_targets(config["target"]))
    results = predict_targets(
        keras_predict_fn(model), config["cache_dir"], wanted,
        targets=targets, frames=config["frames"],
        batch_size=config["batch_size"], progress=progress,
    )
    extra = {}
    if "attention" in {layer.name for layer in model.layers}:
        extra["attention_regions"] = attention_regions(
            model, config["cache_dir"], run_dir, batch_size=config["batch_size"])
    return evaluate_predictions(
        results, run_dir, convention=convention or config["convention"],
        write_plots=write_plots, extra=extra,
    )


def _score_lines(stages: dict) -> list[str]:
    lines = []
    for stage in ("raw", "post"):
        for partition, scores in stages[stage].items():
            s = scores["all"]
            lines.append(
                f"{partition:>5} {stage:>4}: RMSE {s['rmse']:.3f}  CC {s['cc']:.3f}  CCC {s['ccc']:.3f}"
            )
    return lines


def format_report(report: dict) -> str:
    """A few human-readable lines of an `evaluation.json` (either layout)."""
    report = report_by_target(report)
    lines = []
    for target in report["targets"]:
        kept = ", ".join(report["postprocess_kept"][target]) or "nothing"
        lines.append(f"{target + ': ' if target else ''}post-processing kept: {kept}")
        lines += _score_lines({stage: report[stage][target] for stage in ("raw", "post")})
    for stage in ("raw", "post"):
        for partition, value in report["mean_ccc"][stage].items():
            lines.append(f"{partition:>5} {stage:>4}: mean CCC over targets {value:.3f}")
    if "attention_regions" in report:
        from recola_sta.analysis import attention_analysis

        lines.append(attention_analysis.format_summary(report["attention_regions"]))
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """The settings of `python -m recola_sta.evaluate`, each also its flag
    (`recola_sta.settings`)."""

    run_dir: str = setting(help="Training run folder (written by recola_sta.train).")
    partitions: tuple[str, ...] = setting(
        ("dev", "test"), help="Partitions to predict (dev is always included).")
    model_file: str | None = setting(
        None, help="Model file inside --run_dir; default: the best dev epoch's, named by "
                   "checkpoints/state.json (best.keras is its copy).")
    convention: str | None = setting(None, choices=metrics.CONVENTIONS,
                                     help="CCC convention; default: the run's.")
    plots: bool = setting(True, help="Write a valence plot per recording, and a playable "
                                     "report (reports/dev/<name>.html) per dev recording.")


def main(argv: Sequence[str], flag_values=None) -> int:
    """The CLI: `argv` is what flag parsing left (program name first),
    `flag_values` the parsed flags (default: absl's global FLAGS)."""
    from absl import flags, logging

    FLAGS = flags.FLAGS if flag_values is None else flag_values
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines hide the progress bars
    return cli.run("evaluate", lambda: _evaluate(argv, FLAGS), output=FLAGS.run_dir)


def _evaluate(argv: Sequence[str], FLAGS) -> None:
    """main()'s work: evaluate the run, then print the report."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    config = settings.from_flags(EvaluateConfig, FLAGS)
    settings.check(config)
    partitions = [p.strip() for p in config.partitions if p.strip()]
    start = time.time()
    report = evaluate_run(
        config.run_dir, partitions=partitions, model_file=config.model_file,
        convention=config.convention, write_plots=config.plots,
    )
    print(format_report(report))
    print(f"Wrote evaluation.json, predictions/ and plots/ under {config.run_dir} "
          f"in {time.time() - start:.0f} s.")


def define_flags(flag_values=None) -> None:
    """Defines the CLI's flags, one per `EvaluateConfig` field, as key flags
    of this module (those --help lists). In `flag_values` where given
    (`cli.call`), else in absl's global FLAGS."""
    from absl import flags

    where = flags.FLAGS if flag_values is None else flag_values
    settings.define_flags(EvaluateConfig, flag_values=where)
    for name in sorted(settings.flag_names(EvaluateConfig)):
        flags.declare_key_flag(name, flag_values=where)
