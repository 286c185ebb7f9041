"""Tests of recola_sta.layers: eq. (1)-(3) against references, tiny shapes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from recola_sta.model import layers


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _conv_same(x, kernel):
    """NumPy 'same' 2D convolution (cross-correlation, as Keras): (B,H,W,C)."""
    kh, kw, _, _ = kernel.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    padded = np.pad(x, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
    height, width = x.shape[1:3]
    out = 0.0
    for a in range(kh):
        for b in range(kw):
            out = out + padded[:, a : a + height, b : b + width, :] @ kernel[a, b]
    return out


def _eq1_reference(layer, x, h, c):
    """NumPy transcription of the paper's eq. (1), frame by frame."""
    f = layer.filters
    w = {v.name: a for v, a in zip(layer.weights, layer.get_weights())}
    split = lambda a: [a[..., k * f : (k + 1) * f] for k in range(4)]  # noqa: E731
    w_xi, w_xf, w_xc, w_xo = split(w["kernel"])
    w_hi, w_hf, w_hc, w_ho = split(w["recurrent_kernel"])
    b_i, b_f, b_c, b_o = split(w["bias"])
    if layer.peephole_mode == "conv":
        w_ci, w_cf = w["peephole_kernel"][..., :f], w["peephole_kernel"][..., f:]
    outputs = []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        if layer.peephole_mode == "conv":
            peep_i, peep_f = _conv_same(c, w_ci), _conv_same(c, w_cf)
        else:
            peep_i, peep_f = w["peephole_if"][:f] * c, w["peephole_if"][f:] * c
        i = _sigmoid(_conv_same(x_t, w_xi) + _conv_same(h, w_hi) + peep_i + b_i)
        fg = _sigmoid(_conv_same(x_t, w_xf) + _conv_same(h, w_hf) + peep_f + b_f)
        c = fg * c + i * np.tanh(_conv_same(x_t, w_xc) + _conv_same(h, w_hc) + b_c)
        o = _sigmoid(
            _conv_same(x_t, w_xo) + _conv_same(h, w_ho) + w["peephole_o"] * c + b_o
        )
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


def test_convlstm_without_peepholes_equals_keras_convlstm2d():
    x = _rng().normal(size=(2, 3, 6, 5, 2)).astype("float32")
    ours = layers.PeepholeConvLSTM2D(4, peepholes=False)
    reference = keras.layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True)
    ours.build(x.shape)
    reference.build(x.shape)
    assert len(ours.weights) == len(reference.weights) == 3
    for w in ours.weights:
        w.assign(_rng(1).normal(size=w.shape, scale=0.3))
    reference.set_weights(ours.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x)),
        keras.ops.convert_to_numpy(reference(x)),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("peephole_mode", ["conv", "hadamard"])
def test_convlstm_with_peepholes_matches_numpy_eq1(peephole_mode):
    rng = _rng(2)
    x = rng.normal(size=(2, 2, 5, 4, 3)).astype("float32")
    h0 = rng.normal(size=(2, 5, 4, 3)).astype("float32")
    c0 = rng.normal(size=(2, 5, 4, 3)).astype("float32")
    layer = layers.PeepholeConvLSTM2D(3, peephole_mode=peephole_mode, return_state=True)
    layer.build(x.shape)
    for w in layer.weights:  # random biases too, so every term matters
        w.assign(rng.normal(size=w.shape, scale=0.5))
    sequence, h, c = layer(x, initial_state=[h0, c0])
    want_sequence, want_h, want_c = _eq1_reference(layer, x, h0, c0)
    for got, want in ((sequence, want_sequence), (h, want_h), (c, want_c)):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got), want, rtol=1e-4, atol=1e-5
        )
    # The peephole terms change the result (the test above would catch a
    # layer that ignores them only if they matter).
    plain = layers.PeepholeConvLSTM2D(3, peepholes=False)
    plain.build(x.shape)
    plain.set_weights(layer.get_weights()[:3])
    assert not np.allclose(
        keras.ops.convert_to_numpy(plain(x, initial_state=[h0, c0])),
        want_sequence,
        atol=1e-3,
    )


def test_convlstm_chunks_with_carried_state_equal_whole_sequence():
    x = _rng(3).normal(size=(2, 5, 6, 6, 2)).astype("float32")
    layer = layers.PeepholeConvLSTM2D(3, return_state=True)
    whole, h_whole, c_whole = layer(x)
    first, h, c = layer(x[:, :2])
    second, h, c = layer(x[:, 2:], initial_state=[h, c])
    chunked = np.concatenate(
        [keras.ops.convert_to_numpy(first), keras.ops.convert_to_numpy(second)], axis=1
    )
    np.testing.assert_allclose(chunked, keras.ops.convert_to_numpy(whole), atol=1e-5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(c), keras.ops.convert_to_numpy(c_whole), atol=1e-5
    )


def test_convlstm_initialisation_and_training_step():
    layer = layers.PeepholeConvLSTM2D(2, peephole_initializer="zeros")
    layer.build((None, 3, 4, 4, 1))
    bias = layer.get_weights()[2]
    np.testing.assert_array_equal(bias, [0, 0, 1, 1, 0, 0, 0, 0])  # forget = 1
    assert isinstance(layer.recurrent_initializer, keras.initializers.GlorotUniform)
    model = keras.Sequential([keras.Input((3, 4, 4, 1)), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    rng = _rng(4)
    model.train_on_batch(
        rng.normal(size=(2, 3, 4, 4, 1)), rng.uniform(-1, 1, (2, 3, 4, 4, 2))
    )
    for name, old, new in zip(
        [w.name for w in model.weights], before, model.get_weights()
    ):
        assert not np.allclose(old, new), f"{name} did not train"


@pytest.mark.parametrize(
    "layer",
    [
        layers.ClipStandardization(epsilon=1e-3),
        layers.ClipStandardization(per_frame=True),
        layers.PeepholeConvLSTM2D(
            3, kernel_size=(3, 1), peephole_mode="hadamard", unit_forget_bias=False
        ),
        layers.FrameUpsampling2D(2, "bilinear"),
        layers.TemporalDecoder((3, 2), "nearest", peepholes=False),
        layers.SpatialSoftmax(use_previous_state=False, score_weights="shared"),
        layers.SpatialSoftmax(scores="standardized", initial_temperature=2.0,
                              score_weights="shared"),
        layers.SpatialSoftmax(score_weights="per_location", score_gain=10.0,
                              normalize_state=True),
        layers.SpatialSoftmax(location_bias=True, score_gain=5.0, score_weights="shared"),
        layers.SpatialSoftmax(),  # per_location
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_and_serialization_round_trip(layer):
    x = _rng(5).random((2, 3, 4, 4, 2)).astype("float32")
    want = keras.ops.convert_to_numpy(layer(x))
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is type(layer) and revived.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), want, atol=1e-6)


def test_attention_multiply_config_round_trip():
    layer = layers.AttentionMultiply(scale="none", name="attend")
    clone = layers.AttentionMultiply.from_config(layer.get_config())
    assert clone.scale == "none" and clone.name == "attend"


def test_clip_standardization_per_clip():
    rng = _rng(6)
    x = np.stack(
        [rng.random((3, 4, 4, 3)), 0.2 + 0.1 * rng.random((3, 4, 4, 3)),
         np.full((3, 4, 4, 3), 0.5)]
    ).astype("float32")
    y = keras.ops.convert_to_numpy(layers.ClipStandardization()(x))
    np.testing.assert_allclose(y[:2].mean(axis=(1, 2, 3, 4)), 0, atol=1e-5)
    np.testing.assert_allclose(y[:2].std(axis=(1, 2, 3, 4)), 1, atol=1e-3)
    np.testing.assert_array_equal(y[2], 0)  # constant (padding) clip


@pytest.mark.parametrize("mode", layers.UPSAMPLING_MODES)
def test_frame_upsampling_doubles_every_frame(mode):
    x = _rng(7).random((2, 3, 4, 5, 2)).astype("float32")
    layer = layers.FrameUpsampling2D(3, mode)
    y = keras.ops.convert_to_numpy(layer(x))
    assert y.shape == (2, 3, 8, 10, 3)
    # Per frame: frame t of the output depends only on frame t of the input.
    x2 = x.copy()
    x2[:, 1] = 0
    y2 = keras.ops.convert_to_numpy(layer(x2))
    np.testing.assert_allclose(y2[:, [0, 2]], y[:, [0, 2]], atol=1e-6)


def test_temporal_decoder_restores_input_size():
    x = _rng(8).random((2, 3, 4, 4, 5)).astype("float32")
    decoder = layers.TemporalDecoder((4, 3, 2))
    assert decoder(x).shape == (2, 3, 32, 32, 2)
    assert decoder.compute_output_shape((None, 3, 4, 4, 5)) == (None, 3, 32, 32, 2)
    names = {w.path.split("/")[1] for w in decoder.weights}  # temporal_decoder/<stage>/...
    assert names == {f"{kind}_{k}" for kind in ("convlstm", "upsampling") for k in (1, 2, 3)}


def test_spatial_softmax_sums_to_one_and_first_frame_is_uniform():
    x = _rng(9).normal(size=(2, 4, 3, 5, 6)).astype("float32")
    previous = layers.SpatialSoftmax(score_weights="shared")  # use_previous_state=True
    a = keras.ops.convert_to_numpy(previous(x))
    assert a.shape == (2, 4, 3, 5)
    assert (a >= 0).all()
    np.testing.assert_allclose(a.sum(axis=(2, 3)), 1, atol=1e-6)
    # Frame 1 has no previous state: a zero state, uniform 1 / (H * W).
    np.testing.assert_allclose(a[:, 0], 1 / 15, atol=1e-7)
    assert a[:, 1:].std(axis=(2, 3)).min() > 1e-3  # later frames are not
    # Frame t's map is what the own-state layer gives for frame t-1.
    current = layers.SpatialSoftmax(use_previous_state=False, score_weights="shared")
    current.build(x.shape)
    current.set_weights(previous.get_weights())
    a_current = keras.ops.convert_to_numpy(current(x))
    np.testing.assert_allclose(a[:, 1:], a_current[:, :-1], atol=1e-6)
    scores = np.einsum("bthwc,c->bthw", x, current.get_weights()[0][:, 0])
    e = np.exp(scores - scores.max(axis=(2, 3), keepdims=True))
    np.testing.assert_allclose(
        a_current, e / e.sum(axis=(2, 3), keepdims=True), rtol=1e-4, atol=1e-7
    )


def test_standardized_scores_are_temperature_times_z_scores():
    x = _rng(11).normal(size=(2, 4, 3, 5, 6)).astype("float32") * 0.01  # a small state
    layer = layers.SpatialSoftmax(scores="standardized", initial_temperature=1.5,
                                  score_weights="shared")
    a = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(a.sum(axis=(2, 3)), 1, atol=1e-6)
    np.testing.assert_allclose(a[:, 0], 1 / 15, atol=1e-7)  # frame 1: zero state
    kernel, temperature = layer.get_weights()
    assert temperature == pytest.approx(1.5)
    scores = np.einsum("bthwc,c->bthw", x, kernel[:, 0])
    z = (scores - scores.mean(axis=(2, 3), keepdims=True)) / scores.std(axis=(2, 3), keepdims=True)
    e = np.exp(1.5 * z)
    want = e / e.sum(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(a[:, 1:], want[:, :-1], rtol=1e-3, atol=1e-6)  # float32 z-scores
    # However small the state, the map is as sharp as the temperature says:
    # the linear scores of the same state leave it almost uniform.
    linear = layers.SpatialSoftmax(score_weights="shared")
    linear.build(x.shape)
    linear.set_weights([kernel])
    flat = keras.ops.convert_to_numpy(linear(x))
    assert a[:, 1:].max() * 15 > 2 * (flat[:, 1:].max() * 15)


def test_per_location_weights_match_eq2_in_numpy():
    # Eq. (2) as printed: A_{t,i} = softmax_i(W_i^T H_{t-1,i}), one W_i per location.
    x = _rng(12).normal(size=(2, 4, 3, 5, 6)).astype("float32")
    layer = layers.SpatialSoftmax(score_weights="per_location")
    a = keras.ops.convert_to_numpy(layer(x))
    (kernel,) = layer.get_weights()
    assert kernel.shape == (6, 15)  # C x (H * W): one C-vector per location
    w = kernel.T.reshape(3, 5, 6)  # W_i for location i = (row, column)
    scores = np.zeros((2, 4, 3, 5))
    for row in range(3):
        for col in range(5):
            scores[:, :, row, col] = x[:, :, row, col, :] @ w[row, col]
    previous = np.concatenate([np.zeros_like(scores[:, :1]), scores[:, :-1]], axis=1)
    e = np.exp(previous - previous.max(axis=(2, 3), keepdims=True))
    np.testing.assert_allclose(a, e / e.sum(axis=(2, 3), keepdims=True), rtol=1e-4, atol=1e-7)
    # Unlike the shared map, equal states at two locations get different scores.
    same = np.broadcast_to(x[:, :, :1, :1], x.shape).copy()
    b = keras.ops.convert_to_numpy(layer(same))
    assert b[:, 1:].std(axis=(2, 3)).min() > 1e-4
    shared = keras.ops.convert_to_numpy(layers.SpatialSoftmax(score_weights="shared")(same))
    np.testing.assert_allclose(shared, 1 / 15, atol=1e-6)


def test_normalized_state_is_z_scored_over_channels_before_eq2():
    x = 0.03 * _rng(14).normal(size=(2, 3, 4, 5, 6)).astype("float32")
    layer = layers.SpatialSoftmax(score_weights="per_location", normalize_state=True)
    a = keras.ops.convert_to_numpy(layer(x))
    (kernel,) = layer.get_weights()
    z = (x - x.mean(axis=-1, keepdims=True)) / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-6)
    scores = np.einsum("btlc,cl->btl", z.reshape(2, 3, 20, 6), kernel)
    previous = np.concatenate([np.zeros_like(scores[:, :1]), scores[:, :-1]], axis=1)
    e = np.exp(previous - previous.max(axis=-1, keepdims=True))
    want = (e / e.sum(axis=-1, keepdims=True)).reshape(2, 3, 4, 5)
    np.testing.assert_allclose(a, want, rtol=1e-4, atol=1e-7)
    # The map no longer depends on the state's scale (up to the epsilon).
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(100 * x)), a, rtol=1e-2, atol=1e-5)


def test_location_bias_is_a_prior_shared_by_every_frame_including_the_first():
    x = _rng(15).normal(size=(2, 3, 2, 2, 4)).astype("float32")
    layer = layers.SpatialSoftmax(location_bias=True, score_gain=2.0, score_weights="shared")
    plain = layers.SpatialSoftmax(score_gain=2.0, score_weights="shared")
    plain(x)
    layer(x)
    layer.set_weights([plain.get_weights()[0], np.zeros(4, "float32")])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)),
                               keras.ops.convert_to_numpy(plain(x)), atol=1e-7)
    bias = np.array([1.0, 0.0, 0.0, -1.0], "float32")
    layer.set_weights([plain.get_weights()[0], bias])
    a = keras.ops.convert_to_numpy(layer(x)).reshape(2, 3, 4)
    prior = np.exp(2.0 * bias) / np.exp(2.0 * bias).sum()
    np.testing.assert_allclose(a[:, 0], np.broadcast_to(prior, (2, 4)), rtol=1e-5)
    # Later frames: softmax of gain * (state scores + bias).
    base = np.log(keras.ops.convert_to_numpy(plain(x)).reshape(2, 3, 4)[:, 1:])
    want = np.exp(base + 2.0 * bias)
    np.testing.assert_allclose(a[:, 1:], want / want.sum(-1, keepdims=True), rtol=1e-4)
    with pytest.raises(ValueError, match="location_bias"):
        layers.SpatialSoftmax(location_bias=True, scores="standardized")


@pytest.mark.parametrize("score_weights", ["shared", "per_location"])
def test_score_gain_keeps_the_initial_map_and_scales_the_weight_steps(score_weights):
    x = _rng(13).normal(size=(2, 3, 4, 4, 5)).astype("float32")
    plain = layers.SpatialSoftmax(score_weights=score_weights,
                                  kernel_initializer=keras.initializers.GlorotUniform(seed=3))
    fast = layers.SpatialSoftmax(score_weights=score_weights, score_gain=50.0,
                                 kernel_initializer=keras.initializers.GlorotUniform(seed=3))
    a_plain = keras.ops.convert_to_numpy(plain(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fast(x)), a_plain, atol=1e-6)
    np.testing.assert_allclose(fast.get_weights()[0] * 50.0, plain.get_weights()[0], rtol=1e-6)
    # The same change of the stored weight moves the scores 50x further.
    delta = 1e-3 * np.ones_like(plain.get_weights()[0])
    moved = []
    for layer in (plain, fast):
        layer.set_weights([layer.get_weights()[0] + delta])
        moved.append(np.abs(keras.ops.convert_to_numpy(layer(x)) - a_plain).max())
    assert moved[1] > 10 * moved[0]


def test_spatial_softmax_rejects_bad_settings():
    with pytest.raises(ValueError, match="score_weights"):
        layers.SpatialSoftmax(score_weights="dense")
    with pytest.raises(ValueError, match="score_gain"):
        layers.SpatialSoftmax(score_gain=0)
    with pytest.raises(ValueError, match="scores"):
        layers.SpatialSoftmax(scores="cubic")
    with pytest.raises(ValueError, match="initial_temperature"):
        layers.SpatialSoftmax(scores="standardized", initial_temperature=0.0)


def test_attention_multiply_scales():
    features = _rng(10).normal(size=(2, 3, 4, 5, 6)).astype("float32")
    uniform = np.full((2, 3, 4, 5), 1 / 20, dtype="float32")
    scaled = layers.AttentionMultiply()([uniform, features])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scaled), features, rtol=1e-6)
    raw = layers.AttentionMultiply(scale="none")([uniform, features])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(raw), features / 20, rtol=1e-6)
    peak = np.zeros_like(uniform)
    peak[:, :, 1, 2] = 1
    y = keras.ops.convert_to_numpy(layers.AttentionMultiply()([peak, features]))
    np.testing.assert_allclose(y[:, :, 1, 2], 20 * features[:, :, 1, 2], rtol=1e-6)
    y[:, :, 1, 2] = 0
    np.testing.assert_array_equal(y, 0)


def test_layer_errors():
    with pytest.raises(ValueError, match="filters=0"):
        layers.PeepholeConvLSTM2D(0)
    with pytest.raises(ValueError, match="peephole_mode='diagonal'"):
        layers.PeepholeConvLSTM2D(2, peephole_mode="diagonal")
    with pytest.raises(ValueError, match=r"kernel_size=\(3, 0\)"):
        layers.PeepholeConvLSTM2D(2, kernel_size=(3, 0))
    with pytest.raises(ValueError, match=r"input_shape=\(None, 4, 4, 2\)"):
        layers.PeepholeConvLSTM2D(2).build((None, 4, 4, 2))
    with pytest.raises(ValueError, match=r"static time.*input_shape=\(None, None, 4, 4, 2\)"):
        layers.PeepholeConvLSTM2D(2).build((None, None, 4, 4, 2))
    with pytest.raises(ValueError, match="initial_state"):
        layers.PeepholeConvLSTM2D(2)(
            np.zeros((1, 2, 4, 4, 1)), initial_state=[np.zeros((1, 4, 4, 2))]
        )
    with pytest.raises(ValueError, match="epsilon=0"):
        layers.ClipStandardization(epsilon=0)
    with pytest.raises(ValueError, match="mode='bicubic'"):
        layers.FrameUpsampling2D(2, "bicubic")
    with pytest.raises(ValueError, match=r"filters=\[\]"):
        layers.TemporalDecoder([])
    with pytest.raises(ValueError, match="upsampling='pixelshuffle'"):
        layers.TemporalDecoder((2,), "pixelshuffle")
    with pytest.raises(ValueError, match="scale='sum'"):
        layers.AttentionMultiply(scale="sum")
    with pytest.raises(ValueError, match=r"attention shape=\(2, 3, 4, 4\)"):
        layers.AttentionMultiply()([np.ones((2, 3, 4, 4)), np.ones((2, 3, 8, 8, 2))])


def test_clip_standardization_per_frame():
    rng = _rng(7)
    # Frames of one clip at different brightness and contrast, one constant.
    x = np.stack([rng.random((4, 4, 3)), 0.6 + 0.3 * rng.random((4, 4, 3)),
                  np.full((4, 4, 3), 0.2)])[None].astype("float32")
    layer = layers.ClipStandardization(per_frame=True)
    y = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(y[0, :2].mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y[0, :2].std(axis=(1, 2, 3)), 1, atol=1e-3)
    np.testing.assert_array_equal(y[0, 2], 0)  # constant frame
    # A frame's output does not depend on the other frames ...
    other = x.copy()
    other[0, 0] = rng.random((4, 4, 3)) * 0.2
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(other))[0, 1:], y[0, 1:])
    # ... while per clip it does.
    per_clip = layers.ClipStandardization()
    assert not np.allclose(keras.ops.convert_to_numpy(per_clip(other))[0, 1:],
                           keras.ops.convert_to_numpy(per_clip(x))[0, 1:], atol=1e-3)


def test_clip_standardization_config_without_per_frame_loads_per_clip():
    config = layers.ClipStandardization(per_frame=True, name="standardize").get_config()
    assert config["per_frame"] is True
    del config["per_frame"]  # a config that leaves it out: the default, per clip
    assert layers.ClipStandardization.from_config(config).per_frame is False
    serialized = keras.saving.serialize_keras_object(layers.ClipStandardization(per_frame=True))
    del serialized["config"]["per_frame"]
    revived = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(revived, layers.ClipStandardization) and revived.per_frame is False


def _window_reference(layer, x):
    """Frame t: the layer's LSTM run alone over frames t-W+1 .. t (clipped at 0)."""
    outputs = []
    for t in range(x.shape[1]):
        window = x[:, max(0, t - layer.window + 1) : t + 1]
        outputs.append(keras.ops.convert_to_numpy(layer.lstm(window))[:, -1])
    return np.stack(outputs, axis=1)


@pytest.mark.parametrize("window", [1, 3, 9])
def test_causal_window_lstm_runs_one_lstm_per_window(window):
    keras.utils.set_random_seed(8)
    x = _rng(8).normal(size=(2, 7, 5)).astype("float32")
    layer = layers.CausalWindowLSTM(4, window)
    y = keras.ops.convert_to_numpy(layer(x))
    assert y.shape == (2, 7, 4)
    np.testing.assert_allclose(y, _window_reference(layer, x), atol=1e-5)
    if window >= 7:  # one window covers the clip: a plain LSTM over it
        np.testing.assert_allclose(y, keras.ops.convert_to_numpy(layer.lstm(x)), atol=1e-6)
    # Receptive field: changing frame 2 changes frames 2 .. 2+W-1 only.
    changed = x.copy()
    changed[:, 2] += 1.0
    moved = np.abs(keras.ops.convert_to_numpy(layer(changed)) - y).max(axis=(0, 2)) > 1e-6
    np.testing.assert_array_equal(moved, [2 <= t < 2 + window for t in range(7)])


def test_causal_window_lstm_initialisation_and_config_round_trip():
    layer = layers.CausalWindowLSTM(3, 2, name="rnn")
    x = _rng(9).normal(size=(2, 5, 4)).astype("float32")
    want = keras.ops.convert_to_numpy(layer(x))
    cell = layer.lstm.cell
    # Xavier for both kernels (Keras' recurrent default would be orthogonal).
    assert isinstance(cell.kernel_initializer, keras.initializers.GlorotUniform)
    assert isinstance(cell.recurrent_initializer, keras.initializers.GlorotUniform)
    np.testing.assert_array_equal(layer.lstm.get_weights()[2][3:6], 1)  # forget gate
    config = layer.get_config()
    assert config["units"] == 3 and config["window"] == 2
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(revived, layers.CausalWindowLSTM) and revived.get_config() == config
    revived.build(x.shape)
    revived.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(revived(x)), want, atol=1e-6)


def test_new_layer_errors():
    with pytest.raises(ValueError, match="per_frame='yes'"):
        layers.ClipStandardization(per_frame="yes")
    with pytest.raises(ValueError, match=r"per_frame=True.*input_shape=\(2, 5\)"):
        layers.ClipStandardization(per_frame=True)(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match="window=0"):
        layers.CausalWindowLSTM(3, 0)
    with pytest.raises(ValueError, match="units=0"):
        layers.CausalWindowLSTM(0, 4)
    with pytest.raises(ValueError, match=r"input_shape=\(None, 4, 4, 2\)"):
        layers.CausalWindowLSTM(3, 2).build((None, 4, 4, 2))
    with pytest.raises(ValueError, match=r"static time.*input_shape=\(None, None, 2\)"):
        layers.CausalWindowLSTM(3, 2).build((None, None, 2))


def test_a_spatial_softmax_config_without_its_score_weights_is_refused():
    """Saved before `score_weights` existed, such a config meant "shared",
    no longer the default: refused, never read as another network."""
    assert layers.SpatialSoftmax().score_weights == "per_location"  # the networks' default
    config = layers.SpatialSoftmax(score_weights="shared").get_config()
    assert layers.SpatialSoftmax.from_config(config).score_weights == "shared"
    del config["score_weights"]
    with pytest.raises(ValueError, match="earlier recola_sta.*train the model again"):
        layers.SpatialSoftmax.from_config(config)
