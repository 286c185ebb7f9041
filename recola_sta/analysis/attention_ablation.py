"""Does a trained STA network use its attention? Its predictions with the maps replaced.

The region shares of `recola_sta.attention_analysis` say where the maps put
their mass; they do not say whether the prediction depends on it. This
module runs a trained "3d_cnn_sta" model with its maps A (the "attention"
layer's output) replaced before eq. (3), X'' = A (.) X', and everything else
unchanged:

- `"learned"`: the maps as trained (the reference; equal to the model).
- `"uniform"`: every map 1 / (H W). With `attention_scale="hw"` the attended
  features are then X' itself: the model's own 3D-CNN without attention.
- `"clip_mean"`: frames 2..T of each clip get the mean of that clip's maps
  over frames 2..T: where the clip looks is kept, how the map changes from
  frame to frame is removed.
- `"partition_mean"`: frames 2..T of every clip get one map, the mean over
  the partition (a fixed spatial prior; nothing depends on the clip).

Frame 1 of each clip keeps its own map in every mode (with eq. 2's previous
state it is uniform by construction). Comparing the dev CCC of the modes
separates what the attention contributes: nothing (uniform = learned), a
fixed spatial weighting (partition_mean = learned), the clip's own spatial
pattern (clip_mean = learned, partition_mean lower), or its change over time
(only learned is high).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from recola_sta import clips

ABLATIONS = ("learned", "uniform", "clip_mean", "partition_mean")


def split_at_attention(model) -> tuple[Any, Any]:
    """Cuts a STA model where eq. (3) multiplies the maps into the features.

    Returns:
        `(front, back)`: `front` maps clips to `[A (B, T, H, W), X' (B, T,
        H, W, C)]` (the "attention" and "conv1" outputs); `back` maps
        `[A, X']` to the model's output through "attend" and every layer
        after it, sharing the model's weights.

    Raises:
        ValueError: the model has no "attention", "conv1" or "attend" layer.
    """
    import keras

    names = [layer.name for layer in model.layers]
    missing = [n for n in ("attention", "conv1", "attend") if n not in names]
    if missing:
        raise ValueError(f"Model {model.name!r} has no layer(s) {missing}: attention ablation "
                         "needs a '3d_cnn_sta' model.")
    maps, features = model.get_layer("attention").output, model.get_layer("conv1").output
    front = keras.Model(model.input, [maps, features], name=f"{model.name}_front")
    maps_in = keras.Input(tuple(maps.shape[1:]), name="maps")
    features_in = keras.Input(tuple(features.shape[1:]), name="features")
    x = model.get_layer("attend")([maps_in, features_in])
    # Layers are in topological order: every layer of the attention branch
    # comes before "attend", and what follows it is one chain to the output.
    for layer in model.layers[names.index("attend") + 1:]:
        x = layer(x)
    return front, keras.Model([maps_in, features_in], x, name=f"{model.name}_back")


def replace_maps(maps: np.ndarray, mode: str, fixed_map: np.ndarray | None = None) -> np.ndarray:
    """The maps `mode` uses instead of `maps` (B, T, H, W); frame 1 kept.

    Args:
        maps: the learned maps, each frame summing to 1.
        mode: one of `ABLATIONS`.
        fixed_map: (H, W) map for "partition_mean" (`mean_map`).
    """
    if mode not in ABLATIONS:
        raise ValueError(f"Unknown ablation {mode!r}; expected one of {ABLATIONS}.")
    out = np.array(maps, dtype=np.float32, copy=True)
    if mode == "learned":
        return out
    if mode == "uniform":
        out[:, 1:] = 1.0 / np.prod(maps.shape[2:])
    elif mode == "clip_mean":
        out[:, 1:] = out[:, 1:].mean(axis=1, keepdims=True)
    else:
        if fixed_map is None or tuple(fixed_map.shape) != tuple(maps.shape[2:]):
            raise ValueError(f"'partition_mean' needs a fixed_map of shape {maps.shape[2:]}.")
        out[:, 1:] = fixed_map
    return out


def mean_map(front, recordings: Mapping[str, Any], frames: int, batch_size: int = 16
             ) -> np.ndarray:
    """The mean of frames 2..T's maps over every clip of `recordings`
    (cache entries with `crops`; the padding of a last short clip left
    out), renormalised to sum to 1."""

    def maps_of(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {"maps": np.asarray(front.predict_on_batch(batch)[0])}

    total, count = None, 0
    for rec in recordings.values():
        maps = clips.predict_clips(maps_of, rec.crops, frames, batch_size)["maps"]
        later = maps[np.arange(len(maps)) % frames != 0]
        part = later.sum(axis=0)
        total = part if total is None else total + part
        count += len(later)
    if not count:
        raise ValueError("mean_map got no samples.")
    mean = total / count
    return (mean / mean.sum()).astype(np.float32)


def ablated_predict_fn(front, back, mode: str, fixed_map: np.ndarray | None = None
                       ) -> Callable[[np.ndarray], np.ndarray]:
    """clips (B, T, S, S, 3) in [0, 1] -> the model's output with the maps
    replaced as `mode` says."""
    if mode not in ABLATIONS:
        raise ValueError(f"Unknown ablation {mode!r}; expected one of {ABLATIONS}.")

    def predict(batch: np.ndarray) -> np.ndarray:
        maps, features = front.predict_on_batch(batch)
        maps = replace_maps(np.asarray(maps), mode, fixed_map)
        return np.asarray(back.predict_on_batch([maps, np.asarray(features)]))

    return predict
