"""`CausalWindowLSTM`: the recurrent layer of the CNN+RNN rows."""

from __future__ import annotations

import keras
from keras import initializers, ops

from recola_sta.model.layers._shapes import PACKAGE, positive_int


@keras.saving.register_keras_serializable(package=PACKAGE)
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
        self.units = positive_int(units, "units")
        self.window = positive_int(window, "window")
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
