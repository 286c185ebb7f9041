"""The Keras library layers the custom layers are made of, each tested equal
to the hand-written code it replaced (kept here): LayerNormalization for the
z-scores, Conv3DTranspose / Conv3D for the decoder's x2 enlargement (and the
refusal of archives with the former weight layout)."""

from __future__ import annotations

import io
import zipfile

import h5py
import keras
import numpy as np
import pytest

from recola_sta.model import layers


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _hand_written_z_score(x, axis, epsilon):
    """The standardisation the layers computed before they used Keras'
    LayerNormalization (kept here to check the replacement)."""
    mean = keras.ops.mean(x, axis=axis, keepdims=True)
    variance = keras.ops.var(x, axis=axis, keepdims=True)
    return (x - mean) * keras.ops.rsqrt(variance + epsilon)


@pytest.mark.parametrize("axis, epsilon, shape", [
    ((1, 2, 3, 4), 1e-6, (3, 16, 32, 32, 3)),  # ClipStandardization, per clip
    ((2, 3, 4), 1e-6, (3, 16, 32, 32, 3)),  # ClipStandardization, per frame
    (-1, 1e-6, (2, 16, 12, 12, 8)),  # SpatialSoftmax(normalize_state=True)
    (-1, 1e-8, (2, 16, 144)),  # SpatialSoftmax(scores="standardized")
], ids=["per_clip", "per_frame", "state", "scores"])
def test_layer_normalization_without_offset_and_scale_is_the_hand_written_z_score(
        axis, epsilon, shape):
    x = _rng(16).random(shape).astype("float32") * 0.5 + 0.2
    x[0] = 0.25  # a constant sample (padding) maps to 0 either way
    library = keras.layers.LayerNormalization(axis=list(axis) if isinstance(axis, tuple) else axis,
                                              epsilon=epsilon, center=False, scale=False)
    got = keras.ops.convert_to_numpy(library(x))
    assert library.weights == []
    want = keras.ops.convert_to_numpy(_hand_written_z_score(x, axis, epsilon))
    # Equal up to float32 rounding of the moments (measured: 6e-6 at most on
    # 16 x 96 x 96 x 3 clips, whose standardised values reach 1.7).
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[0], 0)
    if len(shape) == 5 and axis != -1:  # the layer uses exactly that
        layer = layers.ClipStandardization(per_frame=axis == (2, 3, 4))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), got)


class _HandWrittenFrameUpsampling2D(keras.layers.Layer):
    """FrameUpsampling2D as it was before its convolution became a Keras
    Conv3DTranspose / Conv3D layer (kernel and bias of its own, the frames
    folded into the batch), kept here to check the replacement."""

    def __init__(self, filters, mode):
        super().__init__()
        self.filters, self.mode = filters, mode

    def build(self, input_shape):
        channels = input_shape[-1]
        shape = ((4, 4, self.filters, channels) if self.mode == "transposed"
                 else (3, 3, channels, self.filters))
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs):
        frames, height, width, channels = inputs.shape[1:]
        x = keras.ops.reshape(inputs, (-1, height, width, channels))
        if self.mode == "transposed":
            x = keras.ops.conv_transpose(x, self.kernel, strides=2, padding="same")
        else:
            x = keras.ops.image.resize(x, (2 * height, 2 * width), interpolation=self.mode)
            x = keras.ops.conv(x, self.kernel, padding="same")
        return keras.ops.reshape(x + self.bias, (-1, frames) + tuple(x.shape[1:]))


@pytest.mark.parametrize("mode", layers.UPSAMPLING_MODES)
def test_frame_upsampling_is_the_hand_written_one_with_a_keras_convolution(mode):
    # Conv3DTranspose((1, 4, 4), strides=(1, 2, 2)) / Conv3D((1, 3, 3)): the
    # same kernel with a leading frame axis of 1, the same initial values.
    x = _rng(17).normal(size=(2, 3, 5, 4, 6)).astype("float32")
    keras.utils.set_random_seed(5)
    old = _HandWrittenFrameUpsampling2D(4, mode)
    old.build(x.shape)
    keras.utils.set_random_seed(5)
    new = layers.FrameUpsampling2D(4, mode)
    new.build(x.shape)
    kernel, bias = new.get_weights()
    assert kernel.shape == (1,) + old.kernel.shape and bias.shape == (4,)
    np.testing.assert_array_equal(kernel[0], old.get_weights()[0])
    new.set_weights([_rng(18).normal(size=kernel.shape), _rng(19).normal(size=bias.shape)])
    old.set_weights([new.get_weights()[0][0], new.get_weights()[1]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(x)),
                               keras.ops.convert_to_numpy(old(x)), rtol=1e-5, atol=1e-5)


def test_archive_with_the_hand_written_upsampling_weights_is_refused(tmp_path):
    x = keras.Input((2, 4, 4, 3))
    model = keras.Model(x, layers.TemporalDecoder((3,), name="temporal_decoder")(x))
    model.save(tmp_path / "new.keras")
    np.testing.assert_array_equal(  # the current layout loads
        keras.models.load_model(tmp_path / "new.keras").get_weights()[-2], model.get_weights()[-2])
    # The same archive with the layout of before: kernel (4, 4, 3, 3) and bias
    # of upsampling_1 itself.
    with zipfile.ZipFile(tmp_path / "new.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    weights = io.BytesIO(members["model.weights.h5"])
    with h5py.File(weights, "r+") as h5:
        stage = h5["layers/temporal_decoder/upsamplings/frame_upsampling2d"]
        conv = stage["conv/vars"]  # the attribute, FrameUpsampling2D.conv
        kernel, bias = conv["0"][()], conv["1"][()]
        del stage["conv"]
        own = stage.require_group("vars")
        own.create_dataset("0", data=kernel[0])
        own.create_dataset("1", data=bias)
    members["model.weights.h5"] = weights.getvalue()
    with zipfile.ZipFile(tmp_path / "old.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match="upsampling_1': " + layers.LEGACY_UPSAMPLING):
        keras.models.load_model(tmp_path / "old.keras")
    with pytest.raises(ValueError, match=layers.LEGACY_UPSAMPLING):
        layers.FrameUpsampling2D(3).load_own_variables({"0": kernel[0], "1": bias})
