r"""Statistics of a corpus's valence labels and of the faces dlib sees in its videos.

For every recording of the chosen partitions (labelled ones for the
label-based figures), on frames sampled at `--fps` (4, as the paper samples):

* **valence autocorrelation time**: the lag at which the autocorrelation of
  the gold-standard valence (mean removed, biased estimator, whole recording)
  first drops below 1/e, in seconds, interpolated linearly between label rows;
* **mouth opening vs valence**: Pearson r between the inner-lip gap (mean
  distance of landmark pairs 61-67, 62-66, 63-65) and the valence label at the
  sample time; speech should make it vary with r near 0;
* **mouth-corner height vs valence**: r between the height of the mouth
  corners (landmarks 48, 54) above the eye line, both measured along the face's
  vertical axis, and valence; a smile raises the corners, so r > 0;
* **face-found rate**: the share of samples where `recola_sta.faces`'s dlib
  aligner (`FaceAligner.align_with_landmarks`) finds a face.

Distances are in inter-ocular units, from the landmarks in the aligned crop.
Correlations are given per recording (then mean and median over recordings)
and pooled over all samples after removing each recording's means (the
within-recording correlation; identities differ in their resting mouth).

The same command measures RECOLA from its gold standard, e.g.

    python tools/corpus_stats.py --corpus=data/synthetic_rl --kind=synthetic \
        --json=/tmp/stats_rl.json
    python tools/corpus_stats.py --corpus=/data/RECOLA --kind=recola --json=/tmp/stats_recola.json
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import time
from typing import Sequence

import numpy as np

from recola_sta import faces, io_utils
from recola_sta.data import corpora

INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))


def autocorrelation(values: np.ndarray) -> np.ndarray:
    """Biased autocorrelation of `values` (mean removed) at lags 0 .. n-1; acf[0] = 1.

    Raises:
        ValueError: fewer than 2 values, non-finite values, or a constant signal.
    """
    x = np.asarray(values, np.float64).reshape(-1)
    if len(x) < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"Need at least 2 finite values, got {len(x)} "
                         f"({int(np.sum(~np.isfinite(x)))} not finite).")
    x = x - x.mean()
    energy = float(np.dot(x, x))
    if energy <= 0.0:
        raise ValueError("The signal is constant: its autocorrelation is undefined.")
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n)
    return np.fft.irfft(spectrum * np.conj(spectrum), 2 * n)[:n] / energy


def autocorrelation_time(values: np.ndarray, period_s: float) -> float:
    """Lag (s) where the autocorrelation of `values` first drops below 1/e.

    Linear interpolation between the two lags around the crossing. Returns
    `inf` if it never drops below 1/e within the signal.

    Args:
        values: evenly sampled signal.
        period_s: sampling period in seconds (> 0).
    """
    if not (period_s > 0 and math.isfinite(period_s)):
        raise ValueError(f"period_s must be positive and finite, got {period_s!r}.")
    acf = autocorrelation(values)
    threshold = math.exp(-1.0)
    below = np.nonzero(acf < threshold)[0]
    if not below.size:
        return math.inf
    k = int(below[0])
    frac = (acf[k - 1] - threshold) / (acf[k - 1] - acf[k])
    return float((k - 1 + frac) * period_s)


def face_measures(landmarks: np.ndarray) -> tuple[float, float]:
    """(mouth opening, mouth-corner height) of 68 landmarks, in inter-ocular units.

    The face's vertical axis is the normal of the line between the eye
    centres, pointing down the face (mirror images included). The opening is
    the mean inner-lip gap; the corner height is minus the distance of the
    corners' midpoint below the eye line, so raising the corners (a smile)
    increases it.
    """
    p = np.asarray(landmarks, np.float64)
    left, right = p[36:42].mean(0), p[42:48].mean(0)
    iod = float(np.linalg.norm(right - left))
    if iod <= 0:
        raise ValueError("The eye centres coincide.")
    normal = np.array([-(right - left)[1], (right - left)[0]]) / iod
    normal *= np.sign(normal[1]) or 1.0
    opening = float(np.mean([np.dot(p[b] - p[a], normal) for a, b in INNER_LIP_PAIRS])) / iod
    corners = 0.5 * (p[48] + p[54])
    height = -float(np.dot(corners - 0.5 * (left + right), normal)) / iod
    return opening, height


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def measure_recording(rec: corpora.Recording, aligner: faces.FaceAligner, fps: float) -> dict:
    """Face-found count, opening and corner height per sample, and valence figures."""
    info = faces.probe_video(rec.video)
    end = float(rec.times[-1]) if rec.labeled else None
    times = faces.sample_times(info.duration, fps, end=end)
    aligner.reset()
    found, opening, height, at = [], [], [], []
    for t, frame in faces.iter_frames_at(rec.video, times):
        aligned = aligner.align_with_landmarks(frame)
        found.append(aligned is not None)
        if aligned is not None:
            o, h = face_measures(aligned[1])
            opening.append(o)
            height.append(h)
            at.append(t)
    result = {"name": rec.name, "partition": rec.partition, "samples": len(found),
              "found": int(np.sum(found))}
    if rec.labeled:
        valence = rec.targets["valence"]
        result["valence_autocorrelation_time_s"] = autocorrelation_time(valence, rec.label_period)
        result["valence_mean"] = float(np.mean(valence))
        result["valence_std"] = float(np.std(valence))
        v = np.interp(at, rec.times, valence)
        result["r_opening_valence"] = _pearson(opening, v)
        result["r_corner_height_valence"] = _pearson(height, v)
        result["_series"] = (np.asarray(opening), np.asarray(height), v)
    result["opening_mean"] = float(np.mean(opening)) if opening else math.nan
    result["opening_std"] = float(np.std(opening)) if opening else math.nan
    return result


def _summary(values: Sequence[float]) -> dict:
    x = np.asarray([v for v in values if math.isfinite(v)], np.float64)
    if not x.size:
        return {"n": 0}
    return {"n": int(x.size), "mean": float(x.mean()), "median": float(np.median(x)),
            "min": float(x.min()), "max": float(x.max())}


def corpus_stats(root: str | pathlib.Path, kind: str, partitions: Sequence[str],
                 fps: float = 4.0, max_recordings: int = 0, progress: bool = False) -> dict:
    """Measures a corpus (see the module docstring).

    Args:
        root, kind: as `corpora.load_corpus`.
        partitions: which partitions to measure ("train", "dev", "test").
        fps: face samples per second.
        max_recordings: measure at most this many recordings per partition (0: all).
        progress: print one line per recording to stderr.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    if max_recordings < 0:
        raise ValueError(f"max_recordings must be >= 0, got {max_recordings}.")
    unknown = set(partitions) - set(corpora.PARTITIONS)
    if unknown or not partitions:
        raise ValueError(f"partitions must be a non-empty subset of {corpora.PARTITIONS}, "
                         f"got {list(partitions)}.")
    recordings = [r for r in corpora.load_corpus(root, kind) if r.partition in partitions]
    if max_recordings:
        kept, count = [], {}
        for r in recordings:
            count[r.partition] = count.get(r.partition, 0) + 1
            if count[r.partition] <= max_recordings:
                kept.append(r)
        recordings = kept
    aligner = faces.FaceAligner()
    per_recording = []
    for rec in recordings:
        start = time.perf_counter()
        per_recording.append(measure_recording(rec, aligner, fps))
        if progress:
            m = per_recording[-1]
            print(f"{rec.name}: {m['found']}/{m['samples']} faces, "
                  f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    samples = sum(m["samples"] for m in per_recording)
    found = sum(m["found"] for m in per_recording)
    labeled = [m for m in per_recording if "_series" in m]
    pooled = {}
    if labeled:
        centred = [np.concatenate([s[i] - s[i].mean() for s in (m["_series"] for m in labeled)
                                   if len(s[i])]) for i in range(3)]
        pooled = {"r_opening_valence_within": _pearson(centred[0], centred[2]),
                  "r_corner_height_valence_within": _pearson(centred[1], centred[2])}
    for m in per_recording:
        m.pop("_series", None)
    return {
        "corpus": str(root), "kind": kind, "partitions": list(partitions), "fps": fps,
        "recordings": len(per_recording), "samples": samples, "faces_found": found,
        "face_found_rate": found / samples if samples else math.nan,
        "valence_autocorrelation_time_s": _summary(
            [m["valence_autocorrelation_time_s"] for m in labeled]),
        "r_opening_valence": _summary([m["r_opening_valence"] for m in labeled]),
        "r_corner_height_valence": _summary([m["r_corner_height_valence"] for m in labeled]),
        **pooled,
        "per_recording": per_recording,
    }


def _format(stats: dict) -> str:
    def s(d: dict, unit: str = "") -> str:
        if not d.get("n"):
            return "n/a"
        return (f"median {d['median']:.3f}{unit}, mean {d['mean']:.3f}{unit} "
                f"[{d['min']:.3f}, {d['max']:.3f}] over {d['n']} recordings")
    lines = [
        f"Corpus {stats['corpus']} ({stats['kind']}), partitions {','.join(stats['partitions'])}, "
        f"{stats['recordings']} recordings, {stats['samples']} samples at {stats['fps']:g} fps",
        f"  face-found rate: {stats['faces_found']}/{stats['samples']} = "
        f"{stats['face_found_rate']:.4f}",
        f"  valence autocorrelation time (1/e): {s(stats['valence_autocorrelation_time_s'], ' s')}",
        f"  r(mouth opening, valence): {s(stats['r_opening_valence'])}; within-recording pooled "
        f"{stats.get('r_opening_valence_within', math.nan):.3f}",
        f"  r(mouth-corner height, valence): {s(stats['r_corner_height_valence'])}; "
        f"within-recording pooled {stats.get('r_corner_height_valence_within', math.nan):.3f}",
    ]
    return "\n".join(lines)


def define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("corpus", None, "Corpus folder.", required=True)
    flags.DEFINE_enum("kind", "synthetic", list(corpora.CORPUS_KINDS), "Corpus layout.")
    flags.DEFINE_list("partitions", ["train", "dev"], "Partitions to measure.")
    flags.DEFINE_float("fps", 4.0, "Face samples per second.")
    flags.DEFINE_integer("max_recordings", 0, "At most this many recordings per partition "
                         "(0: all).")
    flags.DEFINE_string("json", "corpus_stats.json", "Where to write the statistics as JSON.")


def main(argv: Sequence[str]) -> None:
    from absl import flags

    del argv
    f = flags.FLAGS
    bad = set(f.partitions) - set(corpora.PARTITIONS)
    if bad or not f.partitions:
        raise app_usage_error(f"--partitions must be a non-empty subset of {corpora.PARTITIONS}, "
                              f"got {f.partitions}.")
    if not f.fps > 0:
        raise app_usage_error(f"--fps must be positive, got {f.fps}.")
    if f.max_recordings < 0:
        raise app_usage_error(f"--max_recordings must be >= 0, got {f.max_recordings}.")
    stats = corpus_stats(f.corpus, f.kind, f.partitions, fps=f.fps,
                         max_recordings=f.max_recordings, progress=True)
    print(_format(stats))
    io_utils.atomic_write_text(pathlib.Path(f.json), json.dumps(stats, indent=2) + "\n")
    print(f"Wrote {f.json}", file=sys.stderr)


def app_usage_error(message: str) -> Exception:
    from absl import app

    return app.UsageError(message)


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
