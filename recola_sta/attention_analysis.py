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

from recola_sta import clips, regions

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
    from recola_sta import cache

    return {e.name: cache.load_entry(cache_dir, e) for e in manifest.partition(partition)}


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
        later = np.arange(n) % frames != 0
        has_face = rec.found & np.all(np.isfinite(rec.landmarks), axis=(1, 2))
        no_face += int(np.sum(later & ~has_face))
        first_frames += int(np.sum(~later))
        keep = later & has_face
        masks = regions.mask_stack(rec.landmarks[keep], rec.crops.shape[1], map_size, margin)
        mass, area = regions.attention_shares(maps[keep], masks) if keep.any() else (
            np.zeros((0, len(regions.REGIONS))), np.zeros((0, len(regions.REGIONS))))
        per_recording[name] = {"samples": int(keep.sum()),
                               "regions": regions.summarize_shares(mass, area)}
        all_mass.append(mass)
        all_area.append(area)
        kept_maps.append(maps[keep])
    mass, area = np.concatenate(all_mass), np.concatenate(all_area)
    kept = np.concatenate(kept_maps)
    relative = kept * map_size * map_size
    return {
        "available": True,
        "frames_used": f"2..{frames} of every clip",
        "margin": margin,
        "samples": int(len(mass)),
        "samples_without_face": no_face,
        "first_frames_excluded": first_frames,
        "regions": regions.summarize_shares(mass, area),
        "map_percentiles_x_uniform": (
            [round(float(v), 3) for v in np.percentile(relative, [1, 50, 99])]
            if len(relative) else []),
        "per_recording": per_recording,
    }


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
        from recola_sta import plots

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
