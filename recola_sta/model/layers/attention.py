"""The spatial attention of section 2.2: eq. (2) (`SpatialSoftmax`) and
eq. (3) (`AttentionMultiply`)."""

from __future__ import annotations

import keras
from keras import initializers, ops

from recola_sta.model.layers._shapes import PACKAGE, choice, sequence_shape
from recola_sta.model.layers.standardization import z_score

ATTENTION_SCALES = ("hw", "none")
ATTENTION_SCORES = ("linear", "standardized")
ATTENTION_WEIGHTS = ("shared", "per_location", "none")

# The error of a `.keras` archive whose SpatialSoftmax config predates
# `score_weights` (Keras quotes it inside its own message; `run_state.load_model`
# turns it into one line).
LEGACY_SCORE_WEIGHTS = ("the .keras archive was saved by an earlier recola_sta whose "
                        "attention layer did not record its score weights; this version "
                        "cannot load it, train the model again")


@keras.saving.register_keras_serializable(package=PACKAGE)
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
        score_weights: `"per_location"` (default, as the networks use),
            `"shared"` or `"none"`, see above. A config saved without it
            (saved before the option existed) is refused
            (`LEGACY_SCORE_WEIGHTS`).
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
        score_weights: str = "per_location",
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
        self.scores = choice(scores, ATTENTION_SCORES, "scores")
        self.score_weights = choice(score_weights, ATTENTION_WEIGHTS, "score_weights")
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
        # The optional standardisations (no weights): the state of every
        # location over its channels, each frame's scores over its locations.
        self.state_z_score = (z_score(-1, 1e-6, dtype=self.dtype_policy, name="state_z_score")
                              if self.normalize_state else None)
        self.score_z_score = (z_score(-1, 1e-8, dtype=self.dtype_policy, name="score_z_score")
                              if self.scores == "standardized" else None)

    def build(self, input_shape):
        batch, frames, height, width, channels = sequence_shape(input_shape,
                                                                type(self).__name__)
        if self.state_z_score is not None:
            self.state_z_score.build(input_shape)
        if self.score_z_score is not None:
            self.score_z_score.build((batch, frames, height * width))
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
            inputs = self.state_z_score(inputs)
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
            scores = self.temperature * self.score_z_score(scores)
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

    @classmethod
    def from_config(cls, config):
        # Configs saved before `score_weights` existed meant "shared", no
        # longer the default: refused rather than read as another network.
        if "score_weights" not in config:
            raise ValueError(LEGACY_SCORE_WEIGHTS)
        return super().from_config(config)

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


@keras.saving.register_keras_serializable(package=PACKAGE)
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
        self.scale = choice(scale, ATTENTION_SCALES, "scale")

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
