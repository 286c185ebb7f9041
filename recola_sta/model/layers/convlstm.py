"""The temporal decoder of section 2.2.2: the peephole ConvLSTM of eq. (1)
(`PeepholeConvLSTM2D`), the x2 enlargement of every frame
(`FrameUpsampling2D`) and the stages of both (`TemporalDecoder`)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import initializers, ops

from recola_sta.model.layers._shapes import (
    PACKAGE, choice, fold_time, kernel_size_pair, positive_int, sequence_shape, unfold_time,
)

PEEPHOLE_MODES = ("conv", "hadamard")
UPSAMPLING_MODES = ("transposed", "bilinear", "nearest")
# The error of a `.keras` archive saved before FrameUpsampling2D's weights
# moved into a Keras convolution layer (Keras quotes it inside its own
# "could not be loaded" message, so a caller can look for it).
LEGACY_UPSAMPLING = ("the .keras archive was saved by an earlier recola_sta whose decoder "
                     "enlargement kept its own kernel; this version cannot load it, "
                     "train the model again")


@keras.saving.register_keras_serializable(package=PACKAGE)
class PeepholeConvLSTM2D(keras.layers.Layer):
    """Convolutional LSTM with peephole connections, eq. (1) of the paper.

    ```
    i_t = sigmoid(W_xi * X_t + W_hi * H_{t-1} + W_ci (*) c_{t-1} + b_i)
    f_t = sigmoid(W_xf * X_t + W_hf * H_{t-1} + W_cf (*) c_{t-1} + b_f)
    c_t = f_t . c_{t-1} + i_t . tanh(W_xc * X_t + W_hc * H_{t-1} + b_c)
    o_t = sigmoid(W_xo * X_t + W_ho * H_{t-1} + W_co . c_t + b_o)
    h_t = o_t . tanh(c_t)
    ```

    `*` is a "same"-padded convolution, `.` the Hadamard product. The paper
    writes the input and forget peepholes `(*)` as convolutions and the output
    peephole as a Hadamard product; Shi et al. (2015), which it cites, use
    Hadamard products for all three. `peephole_mode="conv"` (default) follows
    the paper as written: 3x3 convolutions of c_{t-1} for i and f, a
    per-channel Hadamard weight for o. `peephole_mode="hadamard"` is Shi et
    al.'s form with per-channel weights (shared over locations, so the layer
    stays translation-equivariant and independent of the frame size).

    The four input-to-state convolutions do not depend on the state, so they
    run once for all frames (time folded into the batch) before the loop;
    only the state-to-state (and peephole) convolutions run per step.

    With `peepholes=False` the layer computes exactly what
    `keras.layers.ConvLSTM2D(filters, kernel_size, padding="same",
    return_sequences=True)` computes, with the same weight layout (gate order
    i, f, c, o).

    Args:
        filters: number of hidden/cell channels.
        kernel_size: size of every convolution kernel (paper: 3).
        peepholes: whether to add the peephole terms.
        peephole_mode: `"conv"` or `"hadamard"`, see above.
        unit_forget_bias: initialise the forget-gate bias to 1 (Jozefowicz et
            al., 2015; Keras' default) so early training does not erase the
            cell state; other biases start at 0.
        return_state: also return the last `[h, c]`.
        kernel_initializer, recurrent_initializer, peephole_initializer:
            initialisers of the input, recurrent and peephole weights (paper:
            Xavier, i.e. `"glorot_uniform"`, for all).

    Call arguments:
        inputs: `(batch, time, height, width, channels)`.
        initial_state: optional `[h, c]`, each `(batch, height, width,
            filters)`; zeros by default. Carrying the returned state into the
            next chunk of a sequence gives the same outputs as one call on the
            whole sequence.

    Output: the hidden sequence `(batch, time, height, width, filters)`; with
    `return_state=True`, `[sequence, h_T, c_T]`.

    References:
        Shi et al., "Convolutional LSTM network: a machine learning approach
        for precipitation nowcasting", NeurIPS 2015.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int] = 3,
        *,
        peepholes: bool = True,
        peephole_mode: str = "conv",
        unit_forget_bias: bool = True,
        return_state: bool = False,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="glorot_uniform",
        peephole_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = kernel_size_pair(kernel_size)
        self.peepholes = bool(peepholes)
        self.peephole_mode = choice(peephole_mode, PEEPHOLE_MODES, "peephole_mode")
        self.unit_forget_bias = bool(unit_forget_bias)
        self.return_state = bool(return_state)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.peephole_initializer = initializers.get(peephole_initializer)

    def build(self, input_shape):
        channels = sequence_shape(input_shape, type(self).__name__)[-1]
        f = self.filters
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (channels, 4 * f),
            initializer=self.kernel_initializer,
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=self.kernel_size + (f, 4 * f),
            initializer=self.recurrent_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(4 * f,), initializer=self._bias_initializer
        )
        if self.peepholes:
            if self.peephole_mode == "conv":
                # W_ci, W_cf as one convolution of c_{t-1} with 2f outputs.
                self.peephole_kernel = self.add_weight(
                    name="peephole_kernel",
                    shape=self.kernel_size + (f, 2 * f),
                    initializer=self.peephole_initializer,
                )
            else:
                self.peephole_if = self.add_weight(
                    name="peephole_if",
                    shape=(2 * f,),
                    initializer=self.peephole_initializer,
                )
            self.peephole_o = self.add_weight(
                name="peephole_o", shape=(f,), initializer=self.peephole_initializer
            )

    def _bias_initializer(self, shape, dtype=None):
        f = self.filters
        if not self.unit_forget_bias:
            return ops.zeros(shape, dtype=dtype)
        return ops.concatenate(
            [
                ops.zeros((f,), dtype=dtype),
                ops.ones((f,), dtype=dtype),
                ops.zeros((2 * f,), dtype=dtype),
            ]
        )

    def call(self, inputs, initial_state=None):
        frames = inputs.shape[1]
        f = self.filters
        # Input-to-state convolutions for all frames at once.
        x = ops.conv(fold_time(inputs), self.kernel, padding="same")
        x = unfold_time(x + self.bias, frames)
        if initial_state is None:
            h = ops.zeros_like(x[:, 0, :, :, :f])
            c = h
        else:
            if len(initial_state) != 2:
                raise ValueError(
                    "`initial_state` must be [h, c]. Received "
                    f"{len(initial_state)} tensors."
                )
            h, c = initial_state
        outputs = []
        for t in range(frames):
            z = x[:, t] + ops.conv(h, self.recurrent_kernel, padding="same")
            z_if, z_c, z_o = z[..., : 2 * f], z[..., 2 * f : 3 * f], z[..., 3 * f :]
            if self.peepholes:
                if self.peephole_mode == "conv":
                    z_if = z_if + ops.conv(c, self.peephole_kernel, padding="same")
                else:
                    z_if = z_if + ops.concatenate([c, c], axis=-1) * self.peephole_if
            gates = ops.sigmoid(z_if)
            c = gates[..., f:] * c + gates[..., :f] * ops.tanh(z_c)
            if self.peepholes:
                z_o = z_o + self.peephole_o * c
            h = ops.sigmoid(z_o) * ops.tanh(c)
            outputs.append(h)
        sequence = ops.stack(outputs, axis=1)
        if self.return_state:
            return [sequence, h, c]
        return sequence

    def compute_output_shape(self, input_shape):
        batch, frames, height, width, _ = tuple(input_shape)
        sequence = (batch, frames, height, width, self.filters)
        if self.return_state:
            state = (batch, height, width, self.filters)
            return [sequence, state, state]
        return sequence

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "peepholes": self.peepholes,
            "peephole_mode": self.peephole_mode,
            "unit_forget_bias": self.unit_forget_bias,
            "return_state": self.return_state,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(
                self.recurrent_initializer
            ),
            "peephole_initializer": initializers.serialize(
                self.peephole_initializer
            ),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class FrameUpsampling2D(keras.layers.Layer):
    """Enlarges every frame of a sequence x2 in height and width (linear).

    Modes:
        `"transposed"`: a stride-2 transposed convolution ("deconvolution", as
            the paper calls it) with a 4x4 kernel; a kernel divisible by the
            stride overlaps evenly, avoiding checkerboard artefacts (Odena et
            al., 2016).
        `"bilinear"` / `"nearest"`: resize x2, then a 3x3 convolution.

    The convolution is a Keras layer (`conv`) whose kernel is 1 frame deep,
    so every frame is enlarged on its own: `Conv3DTranspose` with kernel
    (1, 4, 4) and strides (1, 2, 2), or `Conv3D` with kernel (1, 3, 3).
    Weights: its kernel, (1, 4, 4, filters, channels) or (1, 3, 3,
    channels, filters), and bias. `.keras` archives saved before (kernel
    and bias of this layer itself) are refused (`LEGACY_UPSAMPLING`).

    No activation: the enlargement stays a linear map of the ConvLSTM hidden
    state, so that the attention scores computed from it are still a learned
    linear map of the hidden state, as eq. (2) asks.

    Args:
        filters: output channels.
        mode: one of `"transposed"`, `"bilinear"`, `"nearest"`.
        kernel_initializer: paper: Xavier (`"glorot_uniform"`).

    Input shape: `(batch, time, height, width, channels)`.
    Output shape: `(batch, time, 2 * height, 2 * width, filters)`.
    """

    def __init__(
        self,
        filters: int,
        mode: str = "transposed",
        *,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters")
        self.mode = choice(mode, UPSAMPLING_MODES, "mode")
        self.kernel_initializer = initializers.get(kernel_initializer)
        common = dict(padding="same", kernel_initializer=self.kernel_initializer,
                      dtype=self.dtype_policy)
        if self.mode == "transposed":
            self.conv = keras.layers.Conv3DTranspose(
                self.filters, (1, 4, 4), strides=(1, 2, 2), name="conv_transpose", **common)
        else:
            self.conv = keras.layers.Conv3D(self.filters, (1, 3, 3), name="conv", **common)

    def build(self, input_shape):
        batch, frames, height, width, channels = sequence_shape(input_shape,
                                                                type(self).__name__)
        if self.mode == "transposed":
            self.conv.build((batch, frames, height, width, channels))
        else:
            self.conv.build((batch, frames, 2 * height, 2 * width, channels))

    def call(self, inputs):
        x = inputs
        if self.mode != "transposed":
            frames, height, width = inputs.shape[1:4]
            x = ops.image.resize(fold_time(x), (2 * height, 2 * width), interpolation=self.mode)
            x = unfold_time(x, frames)
        return self.conv(x)

    def load_own_variables(self, store):
        """Refuses an archive whose weights are this layer's own (saved before
        they moved to `conv`) with `LEGACY_UPSAMPLING`, not Keras' count."""
        if len(store.keys()):
            raise ValueError(f"FrameUpsampling2D {self.name!r}: {LEGACY_UPSAMPLING}")
        super().load_own_variables(store)

    def compute_output_shape(self, input_shape):
        batch, frames, height, width, _ = tuple(input_shape)
        return (batch, frames, 2 * height, 2 * width, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "mode": self.mode,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class TemporalDecoder(keras.layers.Layer):
    """The temporal decoder of section 2.2.2: ConvLSTM stages, each x2 up.

    Stage k runs a `PeepholeConvLSTM2D(filters[k])` over the sequence and then
    enlarges every frame of its hidden sequence x2 with
    `FrameUpsampling2D(filters[k], upsampling)`. With as many stages as the
    spatial encoder has 2x2 poolings, the output has the input frames' size.
    The last ConvLSTM therefore runs at half the frame size, the costliest
    part of the network; there is no ConvLSTM at full resolution.

    Args:
        filters: ConvLSTM (and enlargement) channels of each stage.
        upsampling: `FrameUpsampling2D` mode.
        peepholes, peephole_mode, unit_forget_bias: passed to every ConvLSTM.

    Input shape: `(batch, time, height, width, channels)`.
    Output shape: `(batch, time, height * 2**len(filters),
    width * 2**len(filters), filters[-1])`.
    """

    def __init__(
        self,
        filters: Sequence[int] = (16, 8),
        upsampling: str = "transposed",
        *,
        peepholes: bool = True,
        peephole_mode: str = "conv",
        unit_forget_bias: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(filters, int) or not filters:
            raise ValueError(
                "`filters` must be a non-empty list of positive integers. "
                f"Received: filters={filters!r}"
            )
        self.filters = tuple(positive_int(f, "filters") for f in filters)
        self.upsampling = choice(upsampling, UPSAMPLING_MODES, "upsampling")
        self.peepholes = bool(peepholes)
        self.peephole_mode = choice(peephole_mode, PEEPHOLE_MODES, "peephole_mode")
        self.unit_forget_bias = bool(unit_forget_bias)
        self.convlstms = [
            PeepholeConvLSTM2D(
                f,
                peepholes=self.peepholes,
                peephole_mode=self.peephole_mode,
                unit_forget_bias=self.unit_forget_bias,
                name=f"convlstm_{k + 1}",
                dtype=self.dtype_policy,
            )
            for k, f in enumerate(self.filters)
        ]
        self.upsamplings = [
            FrameUpsampling2D(
                f, self.upsampling, name=f"upsampling_{k + 1}", dtype=self.dtype_policy
            )
            for k, f in enumerate(self.filters)
        ]

    def build(self, input_shape):
        shape = sequence_shape(input_shape, type(self).__name__)
        for convlstm, upsampling in zip(self.convlstms, self.upsamplings):
            convlstm.build(shape)
            shape = convlstm.compute_output_shape(shape)
            upsampling.build(shape)
            shape = upsampling.compute_output_shape(shape)

    def call(self, inputs):
        x = inputs
        for convlstm, upsampling in zip(self.convlstms, self.upsamplings):
            x = upsampling(convlstm(x))
        return x

    def compute_output_shape(self, input_shape):
        batch, frames, height, width, _ = tuple(input_shape)
        scale = 2 ** len(self.filters)
        return (batch, frames, height * scale, width * scale, self.filters[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "filters": list(self.filters),
            "upsampling": self.upsampling,
            "peepholes": self.peepholes,
            "peephole_mode": self.peephole_mode,
            "unit_forget_bias": self.unit_forget_bias,
        }
