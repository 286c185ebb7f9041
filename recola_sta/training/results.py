"""What a training run reports: `results.json` (dev metrics raw and
post-processed, the steps post-processing kept, wall times), the lines `train`
prints from it, and the metadata the exported SavedModel carries.

A run of one target and a run of several go through one path (per target,
with the mean dev CCC over targets); `results_json` gives a run of one target
the layout its results.json had before runs of several targets existed
(each per-target entry that target's value, no `targets`, no mean).
"""

from __future__ import annotations

from typing import Any

from recola_sta import cache
from recola_sta.inference import export
from recola_sta.training.config import TrainConfig

# The results.json entries that hold one value per target.
PER_TARGET_KEYS = ("dev_raw", "dev_post", "postprocess_kept")
# The wall times of results.json, in order.
TIMES = ("total", "corpus_and_preprocess", "training_this_invocation", "evaluation_and_export")


def run_results(config: TrainConfig, parameters: int, report: dict[str, Any],
                extra: dict[str, Any], best_epoch: int,
                times: dict[str, float]) -> dict[str, Any]:
    """The `results.json` of a run (`results_json`'s layout): each target's
    dev metrics and their mean CCC (the challenge's ranking of a valence +
    arousal model), what post-processing kept, wall times.

    Args:
        config: the run's settings.
        parameters: the model's parameter count.
        report: `evaluation.evaluate.evaluate_targets`' per-target report.
        extra: entries added as they are (the attention regions).
        best_epoch: the epoch evaluated.
        times: seconds of each of `TIMES`.
    """
    targets = config.targets
    dev_raw, dev_post = ({
        **{t: report[stage][t].get("dev", {}).get("all", {}) for t in targets},
        "mean_ccc": report["mean_ccc"][stage].get("dev"),
    } for stage in ("raw", "post"))
    return results_json({
        "variant": config.variant,
        "corpus_kind": config.corpus_kind,
        "target": config.target,
        "targets": list(targets),
        "convention": config.convention,
        "deterministic": config.deterministic,
        "best_epoch": best_epoch,
        "epochs": config.epochs,
        "parameters": parameters,
        "dev_raw": dev_raw,
        "dev_post": dev_post,
        "postprocess_kept": report["postprocess_kept"],
        **extra,
        "wall_time_s": {name: round(times[name], 1) for name in TIMES},
    })


def results_json(results: dict[str, Any]) -> dict[str, Any]:
    """results.json's layout: `results` for several targets; for one, without
    `targets`, each `PER_TARGET_KEYS` entry that target's value (and no mean
    CCC)."""
    if len(results["targets"]) > 1:
        return results
    (target,) = results["targets"]
    return {key: value[target] if key in PER_TARGET_KEYS else value
            for key, value in results.items() if key != "targets"}


def results_by_target(results: dict[str, Any]) -> dict[str, Any]:
    """`run_results`' one-path form of a results.json of either layout (the
    inverse of `results_json`; one target is named "" here, and its mean
    CCC is its own)."""
    if "targets" in results:
        return results
    per_target = {key: {"": results[key]} for key in PER_TARGET_KEYS}
    for key in ("dev_raw", "dev_post"):
        per_target[key]["mean_ccc"] = results[key].get("ccc")
    return {**results, **per_target, "targets": [""]}


def summary_lines(results: dict[str, Any]) -> list[str]:
    """What `train` prints of a run's results.json: the best epoch, each
    target's post-processing and dev metrics, and the dev CCC (the mean over
    targets for several)."""
    results = results_by_target(results)
    targets, best_epoch = results["targets"], results["best_epoch"]
    several = len(targets) > 1
    lines = [f"Best epoch {best_epoch} (by the mean dev CCC over targets)."] if several else []
    for target in targets:
        raw, dev = results["dev_raw"][target], results["dev_post"][target]
        kept = ("post-processing kept: "
                f"{', '.join(results['postprocess_kept'][target]) or 'nothing'}")
        lines.append(f"{target}: {kept}" if several else f"Best epoch {best_epoch}; {kept}")
        if dev:
            name = f"{target} " if several else ""
            lines.append(f"{name}dev raw : RMSE {raw['rmse']:.3f}  CC {raw['cc']:.3f}  "
                         f"CCC {raw['ccc']:.3f}")
            lines.append(f"{name}dev post: RMSE {dev['rmse']:.3f}  CC {dev['cc']:.3f}  "
                         f"CCC {dev['ccc']:.3f}")
    mean = results["dev_post"]["mean_ccc"]
    if mean is not None:
        over = f" (mean over {', '.join(targets)})" if several else ""
        lines.append(f"dev CCC{over}: {mean:.3f}")
    return lines


def export_metadata(config: TrainConfig, manifest: cache.Manifest) -> dict[str, Any]:
    """What `predict` needs to prepare a video exactly as in training: the
    face settings the cache's crops were made with (`manifest.face`)."""
    return export.export_metadata(variant=config.variant, targets=config.targets,
                                  fps=manifest.fps, face=manifest.face)
