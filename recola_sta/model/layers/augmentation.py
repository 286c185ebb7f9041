"""`ClipAugmentation`: the training pipeline's per-clip augmentation, inside
the model."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from recola_sta.model.layers._shapes import PACKAGE


# RGB -> YIQ. Saturation scales the chroma (I, Q) and hue rotates it, both
# about the luma axis (Y), so a colour change is one 3x3 matrix per clip
# (`ClipAugmentation` here, `pipeline.augment_clip` in tf.data).
RGB_TO_YIQ = (
    (0.299, 0.587, 0.114),
    (0.595716, -0.274453, -0.321263),
    (0.211456, -0.522591, 0.311135),
)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClipAugmentation(keras.layers.Layer):
    """The training pipeline's per-clip augmentation, inside the model.

    The paper augments with "flips, contrast, and color changes". The
    tf.data pipeline does it per clip on the CPU (`pipeline.augment_clip`),
    at a few hundred clips/s on 2 cores: enough for a CPU, far too slow to
    feed a GPU that trains thousands of clips/s. This layer draws the same
    parameters per clip and applies the same mapping (tested against
    `pipeline.apply_augmentation`) on the device that runs the model, for a
    whole batch in one pass: a left-right flip, then the brightness offset,
    the contrast about the clip's mean colour, the saturation and the hue
    rotation composed into one 3x3 colour matrix, clipped to [0, 1]. One
    draw per clip, the same for all its frames, so it never creates motion.
    Active only in training; at inference it returns its input.

    Args:
        flip_probability: chance of mirroring a clip left-right.
        max_brightness: brightness offset drawn in [-max, max].
        contrast: (lo, hi) range of the contrast factor.
        saturation: (lo, hi) range of the chroma factor.
        max_hue: hue rotation in [-max, max] of a full turn.
        seed: seed of the layer's random draws (None: unseeded).
        (`pipeline.Augmentation` holds the defaults the training uses.)

    Input and output: float clips `(batch, time, height, width, 3)` in [0, 1].
    """

    def __init__(self, flip_probability: float, max_brightness: float,
                 contrast: Sequence[float], saturation: Sequence[float], max_hue: float,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        contrast, saturation = tuple(contrast), tuple(saturation)
        if not (0.0 <= flip_probability <= 1.0 and max_brightness >= 0.0
                and 0.0 <= max_hue <= 0.5
                and all(len(r) == 2 and 0.0 <= r[0] <= r[1] for r in (contrast, saturation))):
            raise ValueError(
                "ClipAugmentation needs flip_probability in [0, 1], max_brightness >= 0, "
                "max_hue in [0, 0.5] and contrast/saturation ranges 0 <= lo <= hi. Received: "
                f"{flip_probability}, {max_brightness}, {max_hue}, {contrast}, {saturation}")
        self.flip_probability = float(flip_probability)
        self.max_brightness = float(max_brightness)
        self.contrast = contrast
        self.saturation = saturation
        self.max_hue = float(max_hue)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def draw(self, batch):
        """Per-clip parameters (flip, brightness, contrast, saturation, angle), each (batch,)."""
        u = keras.random.uniform((batch, 5), seed=self.seed_generator)

        def between(k, lo, hi):
            return lo + (hi - lo) * u[:, k]

        return (u[:, 0] < self.flip_probability,
                between(1, -self.max_brightness, self.max_brightness),
                between(2, *self.contrast), between(3, *self.saturation),
                2.0 * 3.141592653589793 * between(4, -self.max_hue, self.max_hue))

    @staticmethod
    def apply(clips, flip, brightness, contrast, saturation, angle):
        """The mapping for given per-clip parameters (each `(batch,)`)."""
        x = ops.cast(clips, "float32")
        flip = ops.reshape(flip, (-1, 1, 1, 1, 1))
        x = ops.where(flip, ops.flip(x, axis=3), x)
        cos, sin = saturation * ops.cos(angle), saturation * ops.sin(angle)
        one, zero = ops.ones_like(cos), ops.zeros_like(cos)
        chroma = ops.stack([ops.stack([one, zero, zero], axis=-1),
                            ops.stack([zero, cos, -sin], axis=-1),
                            ops.stack([zero, sin, cos], axis=-1)], axis=1)  # (B, 3, 3)
        yiq = ops.convert_to_tensor(RGB_TO_YIQ, "float32")
        color = ops.matmul(ops.matmul(ops.inv(yiq), chroma), yiq)  # acts on column vectors
        mean = ops.mean(x, axis=(1, 2, 3)) + brightness[:, None]  # (B, 3)
        shift = (1.0 - contrast)[:, None] * mean + (contrast * brightness)[:, None]
        offset = ops.einsum("bdc,bc->bd", color, shift)
        x = ops.einsum("bthwc,bdc->bthwd", x, contrast[:, None, None] * color)
        return ops.clip(x + offset[:, None, None, None, :], 0.0, 1.0)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        out = self.apply(inputs, *self.draw(ops.shape(inputs)[0]))
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "flip_probability": self.flip_probability,
            "max_brightness": self.max_brightness,
            "contrast": list(self.contrast),
            "saturation": list(self.saturation),
            "max_hue": self.max_hue,
            "seed": self.seed,
        }
