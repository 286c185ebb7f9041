"""Custom Keras layers of the spatiotemporal attention (STA) network.

Lee, Kim, Kim and Sohn, "Spatiotemporal attention based deep neural networks
for emotion recognition", ICASSP 2018, sections 2.2-2.3:

- `ClipStandardization`: per-clip (or per-frame) zero mean, unit variance
  (the models' first layer, so exported models take plain [0, 1] RGB frames).
- `PeepholeConvLSTM2D`: the ConvLSTM of eq. (1), peephole terms included.
- `FrameUpsampling2D`: the x2 enlargement ("deconvolution") of one decoder
  stage, applied to every frame.
- `TemporalDecoder`: ConvLSTM stages, each followed by a x2 enlargement.
- `SpatialSoftmax`: eq. (2), one attention map per frame summing to 1.
- `AttentionMultiply`: eq. (3), X'' = A (.) X', rescaled (see the class).
- `CausalWindowLSTM`: the recurrent layer of the CNN+RNN rows (Khorrami et
  al.), an LSTM over the last W frames of every frame.

Every layer uses `keras.ops` only, so it runs on the TensorFlow and JAX
backends, and is registered for `.keras` saving under the package name
"recola_sta". Sequences are channels-last, `(batch, time, height, width,
channels)`; time, height and width must be static (the ConvLSTM unrolls a
Python loop over time).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import initializers, ops

_PACKAGE = "recola_sta"

PEEPHOLE_MODES = ("conv", "hadamard")
UPSAMPLING_MODES = ("transposed", "bilinear", "nearest")
ATTENTION_SCALES = ("hw", "none")
ATTENTION_SCORES = ("linear", "standardized")
ATTENTION_WEIGHTS = ("shared", "per_location", "none")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return value


def _choice(value, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {tuple(choices)}. "
            f"Received: {name}={value!r}"
        )
    return value


def _kernel_size(value) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(
        isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in pair
    ):
        raise ValueError(
            "`kernel_size` must be a positive integer or a pair of them. "
            f"Received: kernel_size={value!r}"
        )
    return pair


def _sequence_shape(input_shape, layer: str):
    """Checks a (batch, time, height, width, channels) shape; returns it.

    Time must be static too: the layers fold it into the batch and back.
    """
    shape = tuple(input_shape)
    if len(shape) != 5:
        raise ValueError(
            f"{layer} expects inputs of shape (batch, time, height, width, "
            f"channels). Received: input_shape={shape}"
        )
    if any(d is None for d in shape[1:]):
        raise ValueError(
            f"{layer} needs static time, height, width and channels. "
            f"Received: input_shape={shape}"
        )
    return shape


def _fold_time(x):
    """(B, T, H, W, C) -> (B*T, H, W, C), so per-frame ops run in one call."""
    _, _, h, w, c = x.shape
    return ops.reshape(x, (-1, h, w, c))


def _unfold_time(x, frames: int):
    """(B*T, H, W, C) -> (B, T, H, W, C)."""
    _, h, w, c = x.shape
    return ops.reshape(x, (-1, frames, h, w, c))


def _z_score(x, axis, epsilon: float):
    """(x - mean) / sqrt(variance + epsilon) over `axis` (kept for broadcasting)."""
    mean = ops.mean(x, axis=axis, keepdims=True)
    variance = ops.var(x, axis=axis, keepdims=True)
    return (x - mean) * ops.rsqrt(variance + epsilon)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClipStandardization(keras.layers.Layer):
    """Standardises each clip (or each frame) to zero mean and unit variance.

    By default mean and variance are taken per sample over all of its frames,
    pixels and colour channels, so a clip's brightness and contrast (which
    vary with the recording, not with valence) are removed while the
    differences between its frames are kept. On a prototype this was what
    let the networks learn from [0, 1] frames (BUILD_NOTES.md, Model). A
    constant clip (e.g. padding) maps to 0.

    With `per_frame=True` every frame (axis 1) gets its own mean and
    variance over its pixels and channels, so a frame's output does not
    depend on the other frames of the clip: what a strictly per-frame
    network (the 2D-CNN, and the CNN trunk of the CNN+RNN rows) needs.
    Configs saved before the option existed load as per clip.

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

    def call(self, inputs):
        axes = tuple(range(2 if self.per_frame else 1, len(inputs.shape)))
        return _z_score(inputs, axes, self.epsilon)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "per_frame": self.per_frame}


@keras.saving.register_keras_serializable(package=_PACKAGE)
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
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = _kernel_size(kernel_size)
        self.peepholes = bool(peepholes)
        self.peephole_mode = _choice(peephole_mode, PEEPHOLE_MODES, "peephole_mode")
        self.unit_forget_bias = bool(unit_forget_bias)
        self.return_state = bool(return_state)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.peephole_initializer = initializers.get(peephole_initializer)

    def build(self, input_shape):
        channels = _sequence_shape(input_shape, type(self).__name__)[-1]
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
        x = ops.conv(_fold_time(inputs), self.kernel, padding="same")
        x = _unfold_time(x + self.bias, frames)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrameUpsampling2D(keras.layers.Layer):
    """Enlarges every frame of a sequence x2 in height and width (linear).

    Modes:
        `"transposed"`: a stride-2 transposed convolution ("deconvolution", as
            the paper calls it) with a 4x4 kernel; a kernel divisible by the
            stride overlaps evenly, avoiding checkerboard artefacts (Odena et
            al., 2016).
        `"bilinear"` / `"nearest"`: resize x2, then a 3x3 convolution.

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
        self.filters = _positive_int(filters, "filters")
        self.mode = _choice(mode, UPSAMPLING_MODES, "mode")
        self.kernel_initializer = initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = _sequence_shape(input_shape, type(self).__name__)[-1]
        if self.mode == "transposed":
            shape = (4, 4, self.filters, channels)
        else:
            shape = (3, 3, channels, self.filters)
        self.kernel = self.add_weight(
            name="kernel", shape=shape, initializer=self.kernel_initializer
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.filters,), initializer="zeros"
        )

    def call(self, inputs):
        frames, height, width = inputs.shape[1:4]
        x = _fold_time(inputs)
        if self.mode == "transposed":
            x = ops.conv_transpose(x, self.kernel, strides=2, padding="same")
        else:
            x = ops.image.resize(
                x, (2 * height, 2 * width), interpolation=self.mode
            )
            x = ops.conv(x, self.kernel, padding="same")
        return _unfold_time(x + self.bias, frames)

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


@keras.saving.register_keras_serializable(package=_PACKAGE)
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
        self.filters = tuple(_positive_int(f, "filters") for f in filters)
        self.upsampling = _choice(upsampling, UPSAMPLING_MODES, "upsampling")
        self.peepholes = bool(peepholes)
        self.peephole_mode = _choice(peephole_mode, PEEPHOLE_MODES, "peephole_mode")
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
        shape = _sequence_shape(input_shape, type(self).__name__)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpatialSoftmax(keras.layers.Layer):
    """Spatial softmax attention, eq. (2) of the paper.

    `A_{t,i} = exp(W_i^T H_{t-1,i}) / sum_j exp(W_j^T H_{t-1,j})` over the
    H x W locations i of frame t: a learned linear map of the decoder's
    hidden state (no bias, which softmax would ignore) gives one score per
    location, and a softmax over each frame's locations turns the scores
    into a map that is non-negative and sums to 1.

    `score_weights="per_location"` is eq. (2) as printed: "W_i are the
    weights mapping to the i-th element of the location softmax", one
    C-vector per location (an unshared 1x1 map, as the per-location softmax
    weights of Sharma et al., the paper's ref. [18]). `"shared"` uses one
    C-vector for every location (a 1x1 convolution), so the scores depend on
    what the state holds, not on where. `"none"` (an ablation, not the
    paper) has no W: the scores are the learned `location_bias` alone, one
    fixed map for every frame of every clip whatever the state, i.e. a
    learned per-location gain on X' (needs `location_bias=True`).

    With `use_previous_state=True` (eq. 2 as written) frame t's map comes from
    the decoder state of frame t-1: the scores are shifted one frame later,
    and frame 1, which has no previous state, gets the scores of a zero state,
    i.e. 0 everywhere, i.e. the uniform map 1 / (H * W). The shift restarts at
    every clip. With `use_previous_state=False` frame t uses its own state.

    `scores="linear"` is eq. (2) as printed. `scores="standardized"`
    standardises each frame's scores over its H x W locations (zero mean,
    unit variance) and multiplies them by a learned temperature (initialised
    to `initial_temperature`) before the softmax, so the map's sharpness is
    one learned number. Frame 1's zero state still gives the uniform map.

    `score_gain` g multiplies the scores by a constant and divides the
    initial W by it, so the layer computes the same function at
    initialisation; Adam moves each weight by about its learning rate per
    step whatever the gradient's scale, so the scores then move g times
    faster: a learning-rate multiplier for W (and the temperature) that
    needs no optimizer support.

    `normalize_state=True` normalises the state of every location over its
    C channels (zero mean, unit variance, no learned scale) before eq. (2):
    the decoder's hidden state is small (std ~0.03 at initialisation), so
    without it a weight step moves the scores by ~0.03 of the step.

    `location_bias=True` adds a learned score b_i per location (initialised
    to 0, also multiplied by the gain): a spatial prior that is not in eq.
    (2). A zero state (frame 1) then gets the map softmax(g b) instead of the
    uniform one. Only with `scores="linear"`.

    Args:
        use_previous_state: see above.
        scores: `"linear"` or `"standardized"`, see above.
        initial_temperature: start value of the temperature (standardized).
        score_weights: `"shared"` or `"per_location"`, see above.
        score_gain: positive constant g, see above (1: plain eq. 2).
        normalize_state: normalise H over channels first, see above.
        location_bias: learned per-location prior score, see above.
        kernel_initializer: initialiser of W (paper: Xavier). Per location,
            W is initialised as the kernel of a dense map from the C state
            channels to the H * W scores.

    Input shape: `(batch, time, height, width, channels)`, the hidden state.
    Output shape: `(batch, time, height, width)`.
    """

    def __init__(
        self,
        use_previous_state: bool = True,
        *,
        scores: str = "linear",
        initial_temperature: float = 1.0,
        score_weights: str = "shared",
        score_gain: float = 1.0,
        normalize_state: bool = False,
        location_bias: bool = False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.normalize_state = bool(normalize_state)
        self.location_bias = bool(location_bias)
        self.use_previous_state = bool(use_previous_state)
        self.scores = _choice(scores, ATTENTION_SCORES, "scores")
        self.score_weights = _choice(score_weights, ATTENTION_WEIGHTS, "score_weights")
        for name, value in (("initial_temperature", initial_temperature),
                            ("score_gain", score_gain)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"`{name}` must be positive. Received: {name}={value!r}")
        if self.location_bias and self.scores != "linear":
            raise ValueError("`location_bias` needs scores='linear'. "
                             f"Received: scores={scores!r}")
        if self.score_weights == "none" and not self.location_bias:
            raise ValueError("score_weights='none' needs location_bias=True (its scores are "
                             "the location bias alone).")
        self.initial_temperature = float(initial_temperature)
        self.score_gain = float(score_gain)
        self.kernel_initializer = initializers.get(kernel_initializer)

    def build(self, input_shape):
        _, _, height, width, channels = _sequence_shape(input_shape, type(self).__name__)
        gain = self.score_gain
        initializer = self.kernel_initializer

        def scaled(shape, dtype=None):
            return initializer(shape, dtype=dtype) / gain

        if self.score_weights != "none":
            shape = (channels, 1) if self.score_weights == "shared" else (channels, height * width)
            self.kernel = self.add_weight(name="kernel", shape=shape, initializer=scaled)
        if self.location_bias:
            self.bias = self.add_weight(name="location_bias", shape=(height * width,),
                                        initializer="zeros")
        if self.scores == "standardized":
            self.temperature = self.add_weight(
                name="temperature", shape=(),
                initializer=initializers.Constant(self.initial_temperature / gain),
            )

    def call(self, inputs):
        frames, height, width, channels = inputs.shape[1:5]
        if self.normalize_state:
            inputs = _z_score(inputs, -1, 1e-6)
        if self.score_weights == "none":
            scores = ops.zeros_like(ops.reshape(inputs[..., 0], (-1, frames, height * width)))
        elif self.score_weights == "shared":
            scores = ops.matmul(inputs, self.kernel)[..., 0]  # (B, T, H, W)
            scores = ops.reshape(scores, (-1, frames, height * width))
        else:
            state = ops.reshape(inputs, (-1, frames, height * width, channels))
            # (HW, C) weights: location i's score is W_i . H_i.
            scores = ops.sum(state * ops.transpose(self.kernel), axis=-1)
        if self.scores == "standardized":
            scores = self.temperature * _z_score(scores, -1, 1e-8)
        zero_state = ops.zeros_like(scores[:, :1])
        if self.location_bias:
            scores = scores + self.bias
            zero_state = zero_state + self.bias
        scores = scores * self.score_gain
        if self.use_previous_state:
            scores = ops.concatenate(
                [zero_state * self.score_gain, scores[:, :-1]], axis=1
            )
        attention = ops.softmax(scores, axis=-1)
        return ops.reshape(attention, (-1, frames, height, width))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:4]

    def get_config(self):
        return {
            **super().get_config(),
            "use_previous_state": self.use_previous_state,
            "scores": self.scores,
            "initial_temperature": self.initial_temperature,
            "score_weights": self.score_weights,
            "score_gain": self.score_gain,
            "normalize_state": self.normalize_state,
            "location_bias": self.location_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AttentionMultiply(keras.layers.Layer):
    """Attention-boosted features, eq. (3) of the paper: X'' = A (.) X'.

    The map A of each frame is broadcast over the channels of X'. A spatial
    softmax sums to 1 over H x W locations, so multiplying by it unscaled
    shrinks the features by about 1 / (H * W) (~4000x at 64x64, and a
    prototype then never left the label mean, BUILD_NOTES.md). `scale="hw"`
    (default) multiplies by H * W, so a uniform map leaves X' unchanged and
    attention only redistributes activation between locations;
    `scale="none"` is eq. (3) literally.

    Args:
        scale: `"hw"` or `"none"`.

    Call arguments:
        inputs: `[attention, features]`, attention `(batch, time, H, W)`,
            features `(batch, time, H, W, channels)`.

    Output shape: that of `features`.
    """

    def __init__(self, scale: str = "hw", **kwargs):
        super().__init__(**kwargs)
        self.scale = _choice(scale, ATTENTION_SCALES, "scale")

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(
                "AttentionMultiply expects inputs [attention, features]. "
                f"Received: input_shape={input_shape}"
            )
        attention, features = (tuple(s) for s in input_shape)
        if len(attention) != 4 or len(features) != 5 or attention[1:] != features[1:4]:
            raise ValueError(
                "AttentionMultiply expects attention (batch, time, H, W) and "
                "features (batch, time, H, W, channels) with equal time, H and "
                f"W. Received: attention shape={attention}, features "
                f"shape={features}"
            )

    def call(self, inputs):
        attention, features = inputs
        if self.scale == "hw":
            height, width = features.shape[2:4]
            attention = attention * float(height * width)
        return features * attention[..., None]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CausalWindowLSTM(keras.layers.Layer):
    """An LSTM over a sliding window: frame t sees frames t-W+1 .. t only.

    The recurrent layer of the CNN+RNN rows (Khorrami et al., ICIP 2016,
    "CNN + RNN (~1 s)" and "(~4 s)" in the paper's tables). Each frame's
    output is the last hidden state of an LSTM (zero initial state) run over
    the `window` frames that end at it, so every frame gets the same
    amount of past context, its prediction never depends on later frames
    (padding appended at a recording's end changes no real frame), and a
    frame more than `window - 1` frames before t has no influence on t.
    The window never reaches before the clip: the first `window - 1` frames
    of a clip see the clip's start only (clips are independent, as in the
    other networks).

    The prefix windows (frames 0 .. W-1) are all prefixes of one run, so
    they come from a single LSTM call over the first W frames; the frames
    after it each run one full window, all windows batched in a second call
    of the same LSTM (shared weights). This is exact (no masking, so the
    cuDNN kernel stays usable) and costs about W times a plain LSTM over the
    clip, small beside the CNN trunk.

    Args:
        units: LSTM hidden units.
        window: frames per window W (4 = ~1 s, 16 = ~4 s at 4 fps).
        unit_forget_bias: initialise the forget-gate bias to 1 (Keras'
            default, Jozefowicz et al., 2015).
        kernel_initializer, recurrent_initializer: paper: Xavier
            (`"glorot_uniform"`) for both (Keras' default recurrent
            initialiser is orthogonal).

    Input shape: `(batch, time, features)`, time and features static.
    Output shape: `(batch, time, units)`.
    """

    def __init__(
        self,
        units: int,
        window: int,
        *,
        unit_forget_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "units")
        self.window = _positive_int(window, "window")
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.lstm = keras.layers.LSTM(
            self.units,
            return_sequences=True,
            unit_forget_bias=self.unit_forget_bias,
            kernel_initializer=self.kernel_initializer,
            recurrent_initializer=self.recurrent_initializer,
            name="lstm",
            dtype=self.dtype_policy,
        )

    def _check_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != 3 or shape[1] is None or shape[2] is None:
            raise ValueError(
                "CausalWindowLSTM expects inputs of shape (batch, time, "
                f"features) with static time and features. Received: input_shape={shape}"
            )
        return shape

    def build(self, input_shape):
        _, frames, features = self._check_shape(input_shape)
        self.lstm.build((None, min(self.window, frames), features))

    def call(self, inputs, training=None):
        frames, features = inputs.shape[1:3]
        w = min(self.window, frames)
        head = self.lstm(inputs[:, :w], training=training)  # frames 0 .. w-1
        if frames == w:
            return head
        count = frames - w
        # Window of frame t (t = w .. T-1): frames t-w+1 .. t.
        index = [[t - w + 1 + j for j in range(w)] for t in range(w, frames)]
        windows = ops.take(inputs, ops.convert_to_tensor(index, dtype="int32"), axis=1)
        windows = ops.reshape(windows, (-1, w, features))  # (B * count, w, F)
        tail = self.lstm(windows, training=training)[:, -1]
        tail = ops.reshape(tail, (-1, count, self.units))
        return ops.concatenate([head, tail], axis=1)

    def compute_output_shape(self, input_shape):
        batch, frames, _ = self._check_shape(input_shape)
        return (batch, frames, self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "window": self.window,
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
        }


# RGB -> YIQ. Saturation scales the chroma (I, Q) and hue rotates it, both
# about the luma axis (Y), so a colour change is one 3x3 matrix per clip
# (`ClipAugmentation` here, `pipeline.augment_clip` in tf.data).
RGB_TO_YIQ = (
    (0.299, 0.587, 0.114),
    (0.595716, -0.274453, -0.321263),
    (0.211456, -0.522591, 0.311135),
)


@keras.saving.register_keras_serializable(package=_PACKAGE)
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
