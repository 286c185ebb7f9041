"""Where does a trained STA network look? Attention mass per facial region.

The spatial softmax of eq. (2) gives one map per frame that sums to 1. For
every aligned face with landmarks (stored by preprocess), this module sums
each map inside the facial regions of `recola_sta.regions` and compares that
share of the mass with the region's share of the area (ratio 1 = uniform,
position-blind attention). Only frames 2..T of each clip count: frame 1 has
no previous decoder state and is uniform by construction (eq. 2 uses
H_{t-1}). Samples without a face have no landmarks: they are left out and
counted.

Used by `train` (results.json `attention_regions`, plots/attention_regions.png),
`evaluate`, `predict` (summary.json, attention_regions.png) and
`tools/attention_study.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from recola_sta import clips
from recola_sta.faces import regions

ATTENTION_LAYER = "attention"


class NoAttentionError(ValueError):
    """The model has no attention maps to analyse."""


def check_attention_model(model) -> None:
    """Raises NoAttentionError (one clear line) for a model without attention."""
    names = {layer.name for layer in model.layers}
    if ATTENTION_LAYER not in names:
        raise NoAttentionError(
            f"Model {model.name!r} has no attention (no layer named {ATTENTION_LAYER!r}); "
            "attention analysis needs a '3d_cnn_sta' model."
        )


def keras_outputs_fn(model) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """clips -> {"valence": (B, T, K), "attention": (B, T, S, S) if any};
    "valence" holds the model's output, K = 1 but for a model of several
    targets."""
    import keras

    outputs = {"valence": model.output}
    if ATTENTION_LAYER in {layer.name for layer in model.layers}:
        outputs["attention"] = model.get_layer(ATTENTION_LAYER).output
    both = keras.Model(model.input, outputs)
    return lambda batch: {k: keras.ops.convert_to_numpy(v)
                          for k, v in both(batch, training=False).items()}


def load_partition(cache_dir: str | os.PathLike, manifest, partition: str) -> dict[str, Any]:
    """Every recording of a cache partition, in corpus order: name -> CachedRecording."""
    from recola_sta.cache import shards

    return {e.name: shards.load_entry(cache_dir, e) for e in manifest.partition(partition)}


def predict_partition(
    model, recordings: Mapping[str, Any], batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-sample predictions and attention maps of all recordings, concatenated.

    Returns:
        `(valence (N,), attention (N, S, S) or None)` in the order of
        `recordings`, one entry per 4 fps sample.
    """
    outputs_fn = keras_outputs_fn(model)
    frames = int(model.input_shape[1])
    values, maps = [], []
    for rec in recordings.values():
        out = clips.predict_clips(outputs_fn, rec.crops, frames, batch_size)
        # A model of several targets: its first target's values.
        values.append(out["valence"].reshape(len(rec.crops), -1)[:, 0])
        if "attention" in out:
            maps.append(out["attention"])
    return np.concatenate(values), (np.concatenate(maps) if maps else None)


def region_report(
    recordings: Mapping[str, Any],
    attention: np.ndarray,
    frames: int,
    margin: float = regions.DEFAULT_MARGIN,
) -> dict[str, Any]:
    """Region shares of the attention over many recordings.

    Args:
        recordings: name -> CachedRecording (with `crops`, `found`,
            `landmarks`), in the order the maps were concatenated.
        attention: (N, S, S) maps, one per sample of all recordings.
        frames: clip length T (frame k of a recording is frame k mod T of its
            clip; frame 1 of every clip is left out).
        margin: box margin of `regions.region_masks`.

    Returns:
        A JSON-ready dict: `available` (False, with `reason`, when the cache
        has no landmarks), `regions` (name -> attention_share, area_share,
        ratio, attention_share_std over all kept samples), `per_recording`,
        sample counts, and percentiles of the maps relative to uniform.
    """
    total = sum(len(r.found) for r in recordings.values())
    if attention.shape[0] != total:
        raise ValueError(f"{attention.shape[0]} attention maps for {total} samples.")
    if any(r.landmarks is None for r in recordings.values()):
        return {"available": False,
                "reason": "the preprocess cache stores no landmarks (written before they were "
                          "stored); re-run preprocess into a new --cache_dir to get them"}
    map_size = attention.shape[-1]
    per_recording, all_mass, all_area = {}, [], []
    no_face = first_frames = 0
    kept_maps = []
    offset = 0
    for name, rec in recordings.items():
        n = len(rec.found)
        maps = attention[offset : offset + n]
        offset += n
        keep, missing, first = _kept_samples(rec.found, rec.landmarks, 0, frames)
        no_face += missing
        first_frames += first
        mass, area = _shares(maps[keep], rec.landmarks[keep], rec.crops.shape[1], margin)
        per_recording[name] = {"samples": int(keep.sum()),
                               "regions": regions.summarize_shares(mass, area)}
        all_mass.append(mass)
        all_area.append(area)
        kept_maps.append(maps[keep])
    relative = np.concatenate(kept_maps) * map_size * map_size
    percentiles = np.percentile(relative, [1, 50, 99]) if len(relative) else []
    return {**_report(frames, margin, all_mass, all_area, no_face, first_frames, percentiles),
            "per_recording": per_recording}


def _report(frames: int, margin: float, mass: list[np.ndarray], area: list[np.ndarray],
            no_face: int, first_frames: int, percentiles) -> dict[str, Any]:
    """The report's JSON from the kept samples' per-region shares (lists of
    (n, regions) arrays), the sample counts and the maps' 1st/50th/99th
    percentiles relative to uniform (empty without samples)."""
    mass = np.concatenate(mass) if mass else np.zeros((0, len(regions.REGIONS)))
    area = np.concatenate(area) if area else np.zeros((0, len(regions.REGIONS)))
    return {
        "available": True,
        "frames_used": f"2..{frames} of every clip",
        "margin": margin,
        "samples": int(len(mass)),
        "samples_without_face": no_face,
        "first_frames_excluded": first_frames,
        "regions": regions.summarize_shares(mass, area),
        "map_percentiles_x_uniform": [round(float(v), 3) for v in percentiles],
    }


def _kept_samples(found: np.ndarray, landmarks: np.ndarray, first_index: int,
                  frames: int) -> tuple[np.ndarray, int, int]:
    """Which samples count for the region report (frames 2..T of each clip,
    with a face and its landmarks), how many of frames 2..T lack a face, and
    how many are frame 1 of their clip (left out).
    `first_index`: the position of the first sample in its recording."""
    later = (first_index + np.arange(len(found))) % frames != 0
    has_face = np.asarray(found, bool) & np.all(np.isfinite(landmarks), axis=(1, 2))
    return later & has_face, int(np.sum(later & ~has_face)), int(np.sum(~later))


def _shares(maps: np.ndarray, landmarks: np.ndarray, crop_size: int,
            margin: float) -> tuple[np.ndarray, np.ndarray]:
    """`regions.attention_shares` of kept maps with their faces' region masks."""
    if not len(maps):
        return np.zeros((0, len(regions.REGIONS))), np.zeros((0, len(regions.REGIONS)))
    masks = regions.mask_stack(landmarks, crop_size, maps.shape[-1], margin)
    return regions.attention_shares(maps, masks)


class RegionAccumulator:
    """`report_with_figure` for one video of any length, fed chunk by chunk,
    in bounded memory (predict streams long videos and live input).

    Keeps each kept sample's region shares (a few floats), running sums of
    the kept faces and maps for the mean figure, and a histogram of the
    maps' values for `map_percentiles_x_uniform`: those percentiles are read
    from fine logarithmic bins (within about 0.2 % of the exact ones)
    instead of from every map value, which would grow with the video.
    """

    _BINS = 20000
    _LOWEST = 1e-6  # x uniform; smaller values land in the first bin

    def __init__(self, frames: int, margin: float = regions.DEFAULT_MARGIN):
        self.frames = frames
        self.margin = margin
        self._mass: list[np.ndarray] = []
        self._area: list[np.ndarray] = []
        self._face_sum: np.ndarray | None = None
        self._map_sum: np.ndarray | None = None
        self._edges: np.ndarray | None = None
        self._counts: np.ndarray | None = None
        self._no_face = 0
        self._first_frames = 0
        self._seen = 0

    def add(self, crops: np.ndarray, found: np.ndarray, landmarks: np.ndarray,
            attention: np.ndarray) -> None:
        """The next samples of the video, in order: (n, S, S, 3) crops, (n,)
        found, (n, 68, 2) landmarks and (n, M, M) attention maps."""
        keep, missing, first_frames = _kept_samples(found, landmarks, self._seen, self.frames)
        self._seen += len(found)
        self._no_face += missing
        self._first_frames += first_frames
        if not keep.any():
            return
        maps = np.asarray(attention[keep], np.float64)
        mass, area = _shares(maps, landmarks[keep], crops.shape[1], self.margin)
        self._mass.append(mass)
        self._area.append(area)
        face_sum = crops[keep].astype(np.float64).sum(0)
        map_sum = maps.sum(0)
        if self._face_sum is None:
            self._face_sum, self._map_sum = face_sum, map_sum
            top = float(maps.shape[-1] * maps.shape[-2])
            self._edges = np.geomspace(self._LOWEST, top, self._BINS + 1)
            self._counts = np.zeros(self._BINS, np.int64)
        else:
            self._face_sum += face_sum
            self._map_sum += map_sum
        relative = maps.reshape(-1) * maps.shape[-1] * maps.shape[-2]
        bins = np.clip(np.searchsorted(self._edges, relative, side="right") - 1,
                       0, self._BINS - 1)
        self._counts += np.bincount(bins, minlength=self._BINS)

    def _percentiles(self, qs: Sequence[float]) -> list[float]:
        cumulative = np.cumsum(self._counts)
        total = int(cumulative[-1])
        out = []
        for q in qs:
            rank = q / 100.0 * (total - 1)
            b = int(np.searchsorted(cumulative, rank + 1, side="left"))
            out.append(float(np.sqrt(self._edges[b] * self._edges[b + 1])))
        return out

    def report(self) -> dict[str, Any]:
        """`region_report`'s JSON for the video so far (no `per_recording`)."""
        percentiles = self._percentiles([1, 50, 99]) if self._mass else []
        return _report(self.frames, self.margin, self._mass, self._area, self._no_face,
                       self._first_frames, percentiles)

    def write_figure(self, figure: str | os.PathLike, title: str = "") -> bool:
        """Draws the mean attention over the mean face beside each region's
        ratio; False (nothing drawn) where no sample counted."""
        if self._face_sum is None:
            return False
        from recola_sta.analysis import plots

        count = sum(len(m) for m in self._mass)
        size = self._map_sum.shape[-1]
        face = (self._face_sum / count).astype(np.uint8)
        mean_map = self._map_sum / count * size * size
        plots.plot_attention_regions(figure, face, mean_map, self.report()["regions"],
                                     title=title)
        return True


def mean_face_and_map(
    recordings: Mapping[str, Any], attention: np.ndarray, frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """The mean aligned face and the mean attention map (x H*W, 1 = uniform)
    over the samples with a face, frames 2..T."""
    faces, maps, offset = [], [], 0
    for rec in recordings.values():
        n = len(rec.found)
        keep = rec.found & (np.arange(n) % frames != 0)
        faces.append(rec.crops[keep].astype(np.float64))
        maps.append(attention[offset : offset + n][keep])
        offset += n
    faces, maps = np.concatenate(faces), np.concatenate(maps)
    if not len(faces):
        raise ValueError("No sample with a face to average.")
    size = maps.shape[-1]
    return faces.mean(0).astype(np.uint8), maps.mean(0) * size * size


def report_with_figure(
    recordings: Mapping[str, Any],
    attention: np.ndarray,
    frames: int,
    figure: str | os.PathLike | None = None,
    title: str = "",
) -> dict[str, Any]:
    """`region_report`, and its figure when `figure` is given and landmarks
    exist: the mean attention over the aligned faces beside each region's
    mass/area ratio."""
    report = region_report(recordings, attention, frames)
    if figure is not None and report["available"] and report["samples"]:
        from recola_sta.analysis import plots

        face, mean_map = mean_face_and_map(recordings, attention, frames)
        plots.plot_attention_regions(figure, face, mean_map, report["regions"], title=title)
    return report


def analyze(
    model,
    recordings: Mapping[str, Any],
    *,
    batch_size: int = 16,
    figure: str | os.PathLike | None = None,
    title: str = "",
) -> dict[str, Any]:
    """Runs a Keras STA model over recordings; returns `report_with_figure`.

    Raises:
        NoAttentionError: the model has no attention layer.
    """
    check_attention_model(model)
    _, maps = predict_partition(model, recordings, batch_size)
    return report_with_figure(recordings, maps, int(model.input_shape[1]), figure, title)


def format_summary(report: Mapping[str, Any]) -> str:
    """One line: each region's attention share / area share (1 = uniform)."""
    if not report.get("available"):
        return f"attention regions unavailable: {report.get('reason', 'no landmarks')}"
    parts = [f"{name} {row['ratio']:.2f}" for name, row in report["regions"].items()]
    return ("attention mass / area (1 = uniform), frames 2.., "
            f"{report['samples']} faces: " + ", ".join(parts))


def score_gradient_stats(model, batches: Sequence[tuple], mouth_mask: np.ndarray | None = None
                         ) -> dict[str, float]:
    """How the training loss pulls on the attention scores (TensorFlow only).

    For each batch (x, y, w) the MSE loss of a training step is
    differentiated with respect to the attention maps A; the gradient with
    respect to the pre-softmax scores s follows from the softmax Jacobian,
    dL/ds_i = A_i (dL/dA_i - sum_j A_j dL/dA_j). A step down that gradient
    changes the mouth's share of attention M = sum_{i in mouth} A_i by
    dM = -sum_i A_i (m_i - M) dL/ds_i per unit step ("mouth drive"; m is the
    mouth mask). Its mean over batches and its t statistic (mean / standard
    error) say whether the loss consistently asks for more mouth attention.

    Args:
        model: a compiled-or-not STA Keras model (TensorFlow backend).
        batches: (clips, labels, weights) NumPy batches from the train pipeline.
        mouth_mask: (S, S) bool mouth region (e.g. `median_mouth_mask`);
            without it only the gradient's size is reported.

    Returns:
        mouth_drive_mean, mouth_drive_t, score_grad_rms.
    """
    import keras
    import tensorflow as tf

    check_attention_model(model)
    attention_out = model.get_layer(ATTENTION_LAYER).output
    features_out = model.get_layer("conv1").output
    head = keras.Model(model.input, [attention_out, features_out])
    tail = keras.Model([attention_out, features_out], model.output)
    drives, rms = [], []
    for x, y, w in batches:
        a, features = head(x, training=False)
        with tf.GradientTape() as tape:
            tape.watch(a)
            pred = tail([a, features], training=True)[..., 0]  # (B, T)
            target = tf.reshape(tf.cast(y, pred.dtype), tf.shape(pred))  # (B, T[, 1]) labels
            err = tf.square(pred - target)
            loss = tf.reduce_sum(err * w) / tf.maximum(tf.reduce_sum(w), 1.0)
        g = tape.gradient(loss, a).numpy()[:, 1:]  # frames 2..T
        a = a.numpy()[:, 1:]
        ds = a * (g - np.sum(a * g, axis=(2, 3), keepdims=True))
        rms.append(float(np.sqrt(np.mean(ds ** 2))))
        if mouth_mask is not None:
            m = mouth_mask.astype(np.float64)
            share = np.sum(a * m, axis=(2, 3), keepdims=True)
            drives.append(float(np.mean(-np.sum(a * (m - share) * ds, axis=(2, 3)))))
    out = {"score_grad_rms": float(np.mean(rms))}
    if drives:
        d = np.asarray(drives)
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
        out["mouth_drive_mean"] = float(d.mean())
        out["mouth_drive_t"] = float(d.mean() / se) if se and np.isfinite(se) and se > 0 else float("nan")
    return out


def median_mouth_mask(recordings: Mapping[str, Any], map_size: int,
                      margin: float = regions.DEFAULT_MARGIN) -> np.ndarray:
    """The mouth mask of the median landmarks over all faces of `recordings`."""
    points = np.concatenate([r.landmarks[r.found] for r in recordings.values()])
    crop = next(iter(recordings.values())).crops.shape[1]
    median = regions.scale_landmarks(np.median(points, axis=0), crop, map_size)
    return regions.region_masks(median, map_size, margin)[regions.REGIONS.index("mouth")]
