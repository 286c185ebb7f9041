"""The AVEC 2016 post-processing chain as a fit (on dev) / apply (anywhere) pair.

The paper (sec. 3.1) applies "the AV+EC post-processing procedure of
predictions ... smoothing, centering and scaling except time-shifting". The
AVEC 2016 baseline learns each step on the development partition, keeps it only
if it raises the CCC there, and applies the stored parameters unchanged to the
test partition. Steps, in order:

1. `time_shift` (off by default, as in the paper): compensates the annotation
   delay by moving predictions later in time by d frames,
   `p'[t] = p[max(t - d, 0)]` (the first value is held), d searched over
   0 .. `max_shift_s` in `shift_step_s` steps. The baseline shifts the gold
   back instead, which is the same alignment, but only predictions exist at
   test time.
2. `median`: median filter of odd width w frames (edges held:
   `scipy.ndimage.median_filter(mode="nearest")`, where Matlab's `medfilt1`
   would pad with zeros and pull the edges towards 0). The window durations
   searched are 0.2 s, 0.4 s, ... up to `max_median_s` (each turned into the
   largest odd frame count not above it, widths below 3 dropped): 100
   candidates at RECOLA's 40 ms, 0.2 s apart as the label grid resolves
   nothing finer that matters. Kept only for a relative CCC gain of at least
   `min_gain` (2 %), as in the baseline.
3. `center`: adds `bias = mean(gold) - mean(pred)`.
4. `scale`: multiplies by `s = std(gold) / std(pred)` about a center c:
   `p' = c + s (p - c)`. With `scale_about="mean"` (default) c is the tuning
   prediction's mean entering this step, so scaling changes only the spread
   and keeps the mean that centering just matched (after centering, c equals
   mean(gold)). `scale_about="zero"` (c = 0) is the literal `pred * scale` of
   the challenge scripts, which also moves the mean when mean(gold) != 0.

Filters act on each recording separately; CCCs are measured on the
concatenation of the partition (the challenge's scoring). Every gain test is
strict ("raises CCC"); the median step additionally needs `min_gain`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pathlib
from typing import Any, NamedTuple, Sequence

import numpy as np
from scipy import ndimage

from recola_sta import io_utils, metrics

STEPS = ("time_shift", "median", "center", "scale")
FORMAT = "recola_sta.postprocess/1"
# Several targets' chains in one file (`save_chains`), each in FORMAT.
TARGETS_FORMAT = "recola_sta.postprocess_targets/1"
# The chains' file in a run folder and beside an exported model.
FILE_NAME = "postprocess.json"
# Parameters each kept step needs in the JSON file, and whether they are ints.
_STEP_PARAMS = {
    "time_shift": {"shift_frames": int},
    "median": {"median_window": int},
    "center": {"bias": float},
    "scale": {"scale": float, "scale_center": float},
}
_SCALE_ABOUT = ("mean", "zero")


def shift_forward(pred: np.ndarray, frames: int) -> np.ndarray:
    """Delays `pred` by `frames` samples, holding its first value at the start."""
    pred = np.asarray(pred, dtype=np.float64)
    if frames <= 0 or pred.size == 0:
        return pred.copy()
    index = np.maximum(np.arange(pred.size) - frames, 0)
    return pred[index]


def median_smooth(pred: np.ndarray, window: int) -> np.ndarray:
    """Median filter of odd width `window`, edges held (nearest-value padding)."""
    pred = np.asarray(pred, dtype=np.float64)
    if window <= 1 or pred.size == 0:
        return pred.copy()
    return ndimage.median_filter(pred, size=int(window), mode="nearest")


def median_windows(frame_period: float, max_median_s: float,
                   step_s: float = 0.2) -> list[int]:
    """The odd median widths (frames) searched: durations step_s .. max_median_s."""
    windows = []
    for k in range(1, int(math.floor(max_median_s / step_s + 1e-9)) + 1):
        frames = int(round(k * step_s / frame_period))
        frames = frames if frames % 2 else frames - 1
        if frames >= 3 and frames * frame_period <= max_median_s + 1e-9:
            windows.append(frames)
    return sorted(set(windows))


def shift_candidates(frame_period: float, max_shift_s: float,
                     shift_step_s: float) -> list[int]:
    """Delays (frames) searched for annotation-delay compensation, 0 excluded."""
    count = int(math.floor(max_shift_s / shift_step_s + 1e-9))
    frames = {int(round(k * shift_step_s / frame_period)) for k in range(1, count + 1)}
    return sorted(f for f in frames if f > 0)


def _check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}. Received: {name}={value}")
    return value


def _as_recordings(name: str, arrays) -> list[np.ndarray]:
    if isinstance(arrays, np.ndarray):
        arrays = [arrays]
    out = []
    for i, array in enumerate(arrays):
        array = np.asarray(array, dtype=np.float64)
        if array.ndim != 1:
            raise ValueError(f"{name}[{i}] must be 1-D. Received: shape={array.shape}")
        out.append(array)
    if not out:
        raise ValueError(f"{name} holds no recording.")
    return out


def _relative_gain(before: float, after: float) -> float:
    if before == 0.0:
        return math.inf if after > before else 0.0
    return (after - before) / abs(before)


@dataclasses.dataclass(frozen=True)
class _TuningSet:
    """The tuning partition's labels, concatenated over recordings."""

    gold: np.ndarray  # (frames,), NaN where unlabelled
    labelled: np.ndarray  # (frames,) bool
    convention: str

    def score(self, recordings: list[np.ndarray]) -> float:
        """CCC of predictions (one array per recording) on the whole partition."""
        return metrics.ccc(self.gold, np.concatenate(recordings), self.convention)

    def labelled_pred(self, recordings: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(recordings)[self.labelled]


class _StepFit(NamedTuple):
    """One step's best candidate: its predictions, their CCC, whether the
    step is kept, and the parameters it would store."""

    candidate: list[np.ndarray]
    ccc: float
    keep: bool
    values: dict[str, float | int]


# Each fit takes the tuning set and the predictions entering the step (and
# their CCC); it returns a _StepFit, None when the step has nothing to try,
# or a string saying why it cannot run. Each apply maps one recording's
# predictions and the stored parameters to the step's output.


def _fit_time_shift(tuning_set: _TuningSet, current: list[np.ndarray], current_ccc: float, *,
                    frame_period: float, max_shift_s: float, shift_step_s: float) -> _StepFit:
    best = _StepFit(current, current_ccc, False, {"shift_frames": 0})
    for frames in shift_candidates(frame_period, max_shift_s, shift_step_s):
        candidate = [shift_forward(p, frames) for p in current]
        value = tuning_set.score(candidate)
        if value > best.ccc:
            best = _StepFit(candidate, value, True, {"shift_frames": frames})
    return best


def _fit_median(tuning_set: _TuningSet, current: list[np.ndarray], current_ccc: float, *,
                frame_period: float, max_median_s: float, min_gain: float) -> _StepFit | None:
    windows = median_windows(frame_period, max_median_s)
    if not windows:
        return None
    best = _StepFit(current, -math.inf, False, {"median_window": 0})
    for window in windows:
        candidate = [median_smooth(p, window) for p in current]
        value = tuning_set.score(candidate)
        if value > best.ccc:
            best = _StepFit(candidate, value, False, {"median_window": window})
    keep = best.ccc > current_ccc and _relative_gain(current_ccc, best.ccc) >= min_gain
    return best._replace(keep=keep)


def _fit_center(tuning_set: _TuningSet, current: list[np.ndarray], current_ccc: float) -> _StepFit:
    bias = float(np.mean(tuning_set.gold[tuning_set.labelled])
                 - np.mean(tuning_set.labelled_pred(current)))
    candidate = [p + bias for p in current]
    value = tuning_set.score(candidate)
    return _StepFit(candidate, value, value > current_ccc, {"bias": bias})


def _fit_scale(tuning_set: _TuningSet, current: list[np.ndarray], current_ccc: float, *,
               scale_about: str) -> _StepFit | str:
    pred_all = tuning_set.labelled_pred(current)
    std_gold, std_pred = np.std(tuning_set.gold[tuning_set.labelled]), np.std(pred_all)
    if not (std_pred > 0 and std_gold > 0):
        return "constant gold or prediction"
    scale = float(std_gold / std_pred)
    center = float(np.mean(pred_all)) if scale_about == "mean" else 0.0
    candidate = [center + scale * (p - center) for p in current]
    value = tuning_set.score(candidate)
    return _StepFit(candidate, value, value > current_ccc, {"scale": scale, "scale_center": center})


_APPLY = {
    "time_shift": lambda pred, p: shift_forward(pred, int(p["shift_frames"])),
    "median": lambda pred, p: median_smooth(pred, int(p["median_window"])),
    "center": lambda pred, p: pred + p["bias"],
    "scale": lambda pred, p: p["scale_center"] + p["scale"] * (pred - p["scale_center"]),
}


@dataclasses.dataclass
class PostProcessor:
    """A fitted AVEC post-processing chain; see the module docstring.

    Attributes:
        frame_period: label period (s) the parameters were fitted at; the
            shift and window are in frames of this period.
        kept_steps: names of the steps kept, in the order they are applied.
        params: the kept steps' parameters: `shift_frames`, `median_window`,
            `bias`, `scale` and `scale_center`.
        convention: the CCC convention used to decide what to keep.
        tuning: what the fit saw (CCC before/after each step), for reports.
    """

    frame_period: float
    kept_steps: list[str]
    params: dict[str, float | int]
    convention: str = metrics.DEFAULT_CONVENTION
    tuning: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def fit(cls, golds: Sequence[np.ndarray], preds: Sequence[np.ndarray], *,
            frame_period: float, time_shift: bool = False,
            max_shift_s: float = 8.0, shift_step_s: float = 0.4,
            max_median_s: float = 20.0, min_gain: float = 0.02,
            convention: str = metrics.DEFAULT_CONVENTION,
            scale_about: str = "mean") -> "PostProcessor":
        """Learns the chain on the tuning partition (dev).

        Args:
            golds: one 1-D label array per recording, at the label rate (NaN
                marks an unlabelled frame).
            preds: the predictions on the same grid (finite: fill dropped
                faces with `resample.interpolate_missing` first).
            frame_period: label period in seconds (0.04 RECOLA, 0.1 AV+EC 2017).
            time_shift: also search an annotation-delay compensation.
            max_shift_s: longest delay searched, seconds.
            shift_step_s: delay search step, seconds.
            max_median_s: widest median window searched, seconds.
            min_gain: relative CCC gain the median filter needs to be kept.
            convention: CCC convention for the decisions.
            scale_about: `"mean"` or `"zero"`, the center of the scaling.

        Returns:
            The fitted `PostProcessor`.

        Raises:
            ValueError: recordings differ in number or length, predictions
                are not finite, a search setting is out of range, or the
                golds hold no label.
        """
        metrics.check_convention(convention)
        frame_period = _check_positive("frame_period", frame_period)
        max_shift_s = _check_positive("max_shift_s", max_shift_s, allow_zero=True)
        shift_step_s = _check_positive("shift_step_s", shift_step_s)
        max_median_s = _check_positive("max_median_s", max_median_s, allow_zero=True)
        min_gain = _check_positive("min_gain", min_gain, allow_zero=True)
        if scale_about not in _SCALE_ABOUT:
            raise ValueError(f"scale_about must be one of {_SCALE_ABOUT}. "
                             f"Received: scale_about={scale_about!r}")
        golds, preds = _as_recordings("golds", golds), _as_recordings("preds", preds)
        if len(golds) != len(preds):
            raise ValueError(f"Received {len(golds)} gold recordings and "
                             f"{len(preds)} prediction recordings.")
        for i, (gold, pred) in enumerate(zip(golds, preds)):
            if gold.shape != pred.shape:
                raise ValueError(
                    f"Recording {i}: gold has {gold.size} frames, pred has "
                    f"{pred.size}; resample predictions onto the label grid first.")
            if not np.isfinite(pred).all():
                raise ValueError(f"Recording {i}: predictions must be finite.")
        gold_all = np.concatenate(golds)
        labelled = ~np.isnan(gold_all)
        if not labelled.any():
            raise ValueError("golds hold no label (all NaN): nothing to fit on.")
        tuning_set = _TuningSet(gold_all, labelled, convention)
        step_fits = {
            "time_shift": functools.partial(
                _fit_time_shift, frame_period=frame_period, max_shift_s=max_shift_s,
                shift_step_s=shift_step_s) if time_shift else None,
            "median": functools.partial(
                _fit_median, frame_period=frame_period, max_median_s=max_median_s,
                min_gain=min_gain),
            "center": _fit_center,
            "scale": functools.partial(_fit_scale, scale_about=scale_about),
        }
        current = [p.copy() for p in preds]
        current_ccc = tuning_set.score(current)
        report: list[dict[str, Any]] = []
        kept: list[str] = []
        params: dict[str, float | int] = {}
        tuning = {"recordings": len(golds), "frames": int(gold_all.size),
                  "ccc_input": current_ccc, "steps": report}
        for step in STEPS:
            fit_step = step_fits[step]
            outcome = None if fit_step is None else fit_step(tuning_set, current, current_ccc)
            if outcome is None:
                continue
            if isinstance(outcome, str):
                report.append({"step": step, "kept": False, "reason": outcome})
                continue
            report.append({"step": step, "kept": bool(outcome.keep), **outcome.values,
                           "ccc_before": current_ccc, "ccc_after": outcome.ccc})
            if outcome.keep:
                kept.append(step)
                params.update(outcome.values)
                current, current_ccc = outcome.candidate, outcome.ccc
        tuning["ccc_output"] = current_ccc
        return cls(frame_period=frame_period, kept_steps=kept, params=params,
                   convention=convention, tuning=tuning)

    def apply(self, pred):
        """Applies the stored parameters unchanged.

        Args:
            pred: one recording's predictions at the label rate (1-D), or a
                list of them (each filtered separately).

        Returns:
            A float64 array, or a list of arrays for a list input.
        """
        if isinstance(pred, np.ndarray) and pred.ndim == 1:
            return self._apply_one(pred)
        if isinstance(pred, (list, tuple)) and pred and all(
                np.ndim(p) == 1 for p in pred):
            return [self._apply_one(np.asarray(p)) for p in pred]
        array = np.asarray(pred, dtype=np.float64)
        if array.ndim != 1:
            raise ValueError("apply takes a 1-D prediction array or a list of them. "
                             f"Received: shape={array.shape}")
        return self._apply_one(array)

    def _apply_one(self, pred: np.ndarray) -> np.ndarray:
        pred = np.asarray(pred, dtype=np.float64)
        if not np.isfinite(pred).all():
            raise ValueError("predictions must be finite; fill dropped faces first.")
        out = pred.copy()
        for step in self.kept_steps:
            out = _APPLY[step](out, self.params)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "frame_period": self.frame_period,
                "convention": self.convention, "kept_steps": list(self.kept_steps),
                "params": dict(self.params), "tuning": self.tuning}

    def to_json(self) -> str:
        """The parameters (and the tuning report) as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "<json string>") -> "PostProcessor":
        """Parses `to_json` output, checking every parameter.

        Raises:
            ValueError: invalid JSON, wrong format tag, unknown or misordered
                step, missing key, or a non-finite / out-of-range parameter;
                the message names `source` and the key.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}: not valid JSON ({err}).") from err
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object at top level.")

        def need(mapping: dict, key: str, where: str):
            if key not in mapping:
                raise ValueError(f"{source}: missing key '{where}{key}'.")
            return mapping[key]

        if need(data, "format", "") != FORMAT:
            raise ValueError(f"{source}: key 'format' is {data['format']!r}, "
                             f"expected {FORMAT!r}.")
        frame_period = _finite(source, "frame_period", need(data, "frame_period", ""))
        if frame_period <= 0:
            raise ValueError(f"{source}: key 'frame_period' must be > 0, "
                             f"got {frame_period}.")
        convention = need(data, "convention", "")
        if convention not in metrics.CONVENTIONS:
            raise ValueError(f"{source}: key 'convention' is {convention!r}, "
                             f"expected one of {metrics.CONVENTIONS}.")
        kept = need(data, "kept_steps", "")
        if (not isinstance(kept, list) or any(s not in STEPS for s in kept)
                or kept != [s for s in STEPS if s in kept]):
            raise ValueError(f"{source}: key 'kept_steps' must list steps from "
                             f"{STEPS} once each, in that order; got {kept!r}.")
        raw = need(data, "params", "")
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: key 'params' must be an object.")
        params: dict[str, float | int] = {}
        for step in kept:
            for key, kind in _STEP_PARAMS[step].items():
                value = _finite(source, f"params.{key}",
                                need(raw, key, "params."))
                if kind is int:
                    if value != int(value) or value < 0:
                        raise ValueError(f"{source}: key 'params.{key}' must be "
                                         f"a non-negative integer, got {value}.")
                    value = int(value)
                params[key] = value
        if "median" in kept and params["median_window"] % 2 == 0:
            raise ValueError(f"{source}: key 'params.median_window' must be odd, "
                             f"got {params['median_window']}.")
        tuning = data.get("tuning", {})
        return cls(frame_period=frame_period, kept_steps=list(kept), params=params,
                   convention=convention,
                   tuning=tuning if isinstance(tuning, dict) else {})

    def save(self, path: str | os.PathLike) -> None:
        """Writes `to_json()` to `path` atomically."""
        io_utils.atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PostProcessor":
        """Reads a file written by `save`; errors name the file."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Post-processing file not found: {path}")
        return cls.from_json(path.read_text(encoding="utf-8"), source=str(path))

    def describe(self) -> str:
        """A few lines saying what was kept, with the tuning CCCs."""
        lines = [f"AVEC post-processing (frame period {self.frame_period:g} s, "
                 f"CCC convention {self.convention!r})"]
        t = self.tuning
        if "ccc_input" in t:
            lines.append(f"  tuned on {t.get('frames')} frames of "
                         f"{t.get('recordings')} recordings; CCC "
                         f"{t['ccc_input']:.4f} -> {t.get('ccc_output', math.nan):.4f}")
        entries = {e.get("step"): e for e in t.get("steps", []) if isinstance(e, dict)}
        for step in STEPS:
            entry = entries.get(step)
            if step in self.kept_steps:
                status = "kept"
            elif entry is not None:
                status = "dropped"
            elif t and step == "time_shift":
                status = "off"
            else:
                status = "not kept"
            detail = self._detail(step, entry)
            gain = ""
            if entry and "ccc_after" in entry:
                gain = f"  CCC {entry['ccc_before']:.4f} -> {entry['ccc_after']:.4f}"
            elif entry and "reason" in entry:
                gain = f"  ({entry['reason']})"
            lines.append(f"  {step:<10} {status:<8} {detail}{gain}".rstrip())
        return "\n".join(lines)

    def _detail(self, step: str, entry: dict | None) -> str:
        values = dict(entry or {})
        values.update({k: v for k, v in self.params.items()
                       if k in _STEP_PARAMS[step]})
        if step == "time_shift" and "shift_frames" in values:
            f = values["shift_frames"]
            return f"delay {f} frames ({f * self.frame_period:.2f} s)"
        if step == "median" and "median_window" in values:
            w = values["median_window"]
            return f"window {w} frames ({w * self.frame_period:.2f} s)"
        if step == "center" and "bias" in values:
            return f"bias {values['bias']:+.4f}"
        if step == "scale" and "scale" in values:
            return f"scale {values['scale']:.4f} about {values['scale_center']:+.4f}"
        return ""


def save_chains(chains: dict[str, PostProcessor], path: str | os.PathLike) -> None:
    """Writes each target's chain into one JSON file, atomically: a model of
    several targets post-processes each with its own chain (`load_chains`)."""
    data = {"format": TARGETS_FORMAT,
            "targets": {name: chain.to_dict() for name, chain in chains.items()}}
    io_utils.atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def load_chains(path: str | os.PathLike, targets: Sequence[str]) -> dict[str, PostProcessor]:
    """Each target's chain from a `save_chains` file, or from a single
    chain's file (`PostProcessor.save`) for a model of one target.

    A target without a chain in the file (no labeled dev) is left out.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: invalid file, a single chain for several targets, or
            chains of targets the model does not have; the message names
            the file.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Post-processing file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}).") from err
    targets = list(targets)
    if not isinstance(data, dict) or data.get("format") != TARGETS_FORMAT:
        if len(targets) != 1:
            raise ValueError(f"{path} holds one post-processing chain, but the model has "
                             f"{len(targets)} targets {targets}.")
        return {targets[0]: PostProcessor.from_json(text, source=str(path))}
    chains = data.get("targets")
    if not isinstance(chains, dict):
        raise ValueError(f"{path}: key 'targets' must be an object of target -> chain.")
    unknown = sorted(set(chains) - set(targets))
    if unknown:
        raise ValueError(f"{path}: chains for {unknown}, which are not targets of the model "
                         f"{targets}.")
    return {name: PostProcessor.from_json(json.dumps(chains[name]), source=f"{path}: {name}")
            for name in targets if name in chains}


def _finite(source: str, key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{source}: key {key!r} must be a number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{source}: key {key!r} is not finite ({value}).")
    return value
