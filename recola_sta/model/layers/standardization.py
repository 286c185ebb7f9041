"""Standardisation to zero mean and unit variance: `z_score` (Keras'
`LayerNormalization` without its learned scale and offset), and
`ClipStandardization`, the networks' first layer, per clip or per frame."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from recola_sta.model.layers._shapes import PACKAGE


def z_score(axis: int | Sequence[int], epsilon: float, *, dtype=None,
            name: str = "z_score") -> keras.layers.LayerNormalization:
    """A layer computing (x - mean) / sqrt(variance + epsilon) over `axis`.

    `keras.layers.LayerNormalization` with `center=False, scale=False` (no
    learned offset or scale, so no weights) is exactly this standardisation;
    it computes the moments in float32 whatever the dtype policy. It
    replaced a hand-written copy (tests/test_layer_replacements.py keeps it
    and checks the two agree to float32 rounding).
    """
    axis = list(axis) if isinstance(axis, Sequence) else axis
    return keras.layers.LayerNormalization(axis=axis, epsilon=epsilon, center=False,
                                           scale=False, dtype=dtype, name=name)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClipStandardization(keras.layers.Layer):
    """Standardises each clip (or each frame) to zero mean and unit variance.

    By default mean and variance are taken per sample over all of its frames,
    pixels and colour channels, so a clip's brightness and contrast (which
    vary with the recording, not with valence) are removed while the
    differences between its frames are kept. On a prototype this was what
    let the networks learn from [0, 1] frames (BUILD_NOTES.md, Model). A
    constant clip (e.g. padding) maps to 0. The standardisation is
    `z_score` (Keras' LayerNormalization without weights) over those axes.

    With `per_frame=True` every frame (axis 1) gets its own mean and
    variance over its pixels and channels, so a frame's output does not
    depend on the other frames of the clip: what a strictly per-frame
    network (the 2D-CNN, and the CNN trunk of the CNN+RNN rows) needs.

    Args:
        epsilon: added to the variance before the square root.
        per_frame: standardise each frame on its own instead of the clip.

    Input shape: `(batch, ...)`, e.g. `(batch, time, height, width, 3)`;
    at least `(batch, time, features)` with `per_frame=True`.
    Output shape: same as the input.
    """

    def __init__(self, epsilon: float = 1e-6, per_frame: bool = False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(
                f"`epsilon` must be a positive number. Received: epsilon={epsilon!r}"
            )
        if not isinstance(per_frame, bool):
            raise ValueError(
                f"`per_frame` must be True or False. Received: per_frame={per_frame!r}"
            )
        self.epsilon = float(epsilon)
        self.per_frame = per_frame

    def build(self, input_shape):
        if self.per_frame and len(input_shape) < 3:
            raise ValueError(
                "ClipStandardization(per_frame=True) expects inputs of shape "
                f"(batch, time, ...). Received: input_shape={tuple(input_shape)}"
            )
        # The axes depend on the input's rank: every axis but the batch (and time).
        axes = range(2 if self.per_frame else 1, len(input_shape))
        self.z_score = z_score(axes, self.epsilon, dtype=self.dtype_policy)
        self.z_score.build(input_shape)

    def call(self, inputs):
        return self.z_score(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "per_frame": self.per_frame}
