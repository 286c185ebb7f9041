"""Tests of recola_sta.models: shapes, saving, export, training, JAX."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from recola_sta.model import layers, networks

FRAMES, SIZE = 4, 16
TINY = {"fc_units": 16}


def _clips(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, FRAMES, SIZE, SIZE, 3), dtype=np.float32)


def _predict(model, x) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.fixture(scope="module", params=networks.VARIANTS)
def built(request):
    keras.utils.set_random_seed(0)
    return networks.build_model(request.param, frames=FRAMES, size=SIZE, **TINY)


def test_default_models_build_with_per_frame_output():
    for variant in networks.VARIANTS:
        model = networks.build_model(variant)
        assert model.name == variant
        assert model.input.shape == (None, 16, 96, 96, 3)
        assert model.output.shape == (None, 16, 1)
        assert model.get_layer("flatten_frames").output.shape == (None, 16, 12 * 12 * 256)
        names = {layer.name for layer in model.layers}
        assert ("attention" in names) == (variant == "3d_cnn_sta")
        assert ("rnn" in names) == (variant in networks.RNN_WINDOWS)
        assert model.get_layer("standardize").per_frame == (variant in networks.PER_FRAME_VARIANTS)
        kernel = model.get_layer("conv2").kernel_size
        assert kernel == ((1, 3, 3) if variant in networks.PER_FRAME_VARIANTS else (3, 3, 3))


def test_output_shape_and_dtype(built):
    y = _predict(built, _clips(2))
    assert y.shape == (2, FRAMES, 1) and y.dtype == np.float32
    assert np.isfinite(y).all()


def test_only_2d_cnn_treats_frames_independently(built):
    x = _clips(1)
    changed = x.copy()
    # A new, darker frame 0: it changes the clip's mean and variance, so a
    # per-clip standardisation would pass it on to every other frame.
    changed[:, 0] = 0.3 * np.random.default_rng(9).random(x.shape[2:], dtype=np.float32)
    y, y_changed = _predict(built, x), _predict(built, changed)
    assert not np.allclose(y[:, 0], y_changed[:, 0], atol=1e-6)
    independent = np.allclose(y[:, 1:], y_changed[:, 1:], atol=1e-6)
    # The CNN+RNN's windows (>= 4 frames) all reach back to frame 0 here.
    assert independent == (built.name == "2d_cnn")


@pytest.mark.parametrize("variant", sorted(networks.RNN_WINDOWS))
def test_cnn_rnn_frame_sees_the_last_window_of_frames(variant):
    frames, window = 8, networks.RNN_WINDOWS[variant]
    keras.utils.set_random_seed(4)
    model = networks.build_model(variant, frames=frames, size=SIZE, **TINY)
    assert model.get_layer("rnn").window == window and model.get_layer("rnn").units == 100
    x = np.random.default_rng(5).random((1, frames, SIZE, SIZE, 3), dtype=np.float32)
    changed = x.copy()
    changed[:, 2] = np.random.default_rng(6).random(x.shape[2:], dtype=np.float32)
    moved = np.abs(_predict(model, changed) - _predict(model, x))[0, :, 0] > 1e-7
    # Frame t's output comes from frames t-W+1 .. t: causal, ~1 s / ~4 s back.
    np.testing.assert_array_equal(moved, [2 <= t < 2 + window for t in range(frames)])


def test_config_round_trip(built):
    x = _clips(2)
    want = _predict(built, x)
    for clone in (
        keras.Model.from_config(built.get_config()),
        keras.models.clone_model(built),
    ):
        assert [layer.name for layer in clone.layers] == [layer.name for layer in built.layers]
        clone.set_weights(built.get_weights())
        np.testing.assert_allclose(_predict(clone, x), want, atol=1e-6)


def test_keras_save_and_reload(built, tmp_path):
    x = _clips(2)
    path = tmp_path / "model.keras"
    built.save(path)
    reloaded = keras.models.load_model(path)
    assert reloaded.name == built.name
    np.testing.assert_allclose(_predict(reloaded, x), _predict(built, x), atol=1e-6)


def test_export_saved_model_any_batch(built, tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("SavedModel export is checked on the TensorFlow backend")
    import tensorflow as tf

    path = str(tmp_path / "saved_model")
    built.export(path, verbose=False)
    loaded = tf.saved_model.load(path)
    for batch in (2, 3):
        x = _clips(batch, seed=batch)
        np.testing.assert_allclose(
            loaded.serve(tf.constant(x)).numpy(), _predict(built, x), atol=1e-5
        )


@pytest.mark.slow
@pytest.mark.parametrize("variant", networks.VARIANTS)
def test_training_lowers_the_loss_on_a_fixed_batch(variant):
    keras.utils.set_random_seed(1)
    model = networks.build_model(variant, frames=FRAMES, size=SIZE, **TINY)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")  # paper's rate
    x = _clips(4, seed=7)
    y = np.random.default_rng(8).uniform(0.2, 0.8, (4, FRAMES, 1)).astype("float32")
    before = model.evaluate(x, y, verbose=0)
    # The CNN+RNN's output comes through the LSTM's bounded, near-zero hidden
    # state, so at lr 1e-4 its loss falls steadily but slower (0.25 -> 0.16 in
    # 10 steps here, vs. halved in 3 for the CNNs).
    steps, factor = (10, 0.7) if variant in networks.RNN_WINDOWS else (3, 0.5)
    for _ in range(steps):
        model.train_on_batch(x, y)
    after = model.evaluate(x, y, verbose=0)
    assert after < factor * before, (before, after)


def test_attention_model_maps_sum_to_one():
    keras.utils.set_random_seed(2)
    model = networks.build_model("3d_cnn_sta", frames=FRAMES, size=SIZE, **TINY)
    maps = _predict(networks.attention_model(model), _clips(2))
    assert maps.shape == (2, FRAMES, SIZE, SIZE)
    assert (maps >= 0).all()
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1, atol=1e-5)
    np.testing.assert_allclose(maps[:, 0], 1 / SIZE**2, atol=1e-7)  # frame 1 uniform
    assert maps[:, 1:].std(axis=(2, 3)).min() > 0


def test_uniform_attention_turns_sta_into_the_3d_cnn():
    sta = networks.build_model("3d_cnn_sta", frames=FRAMES, size=SIZE, **TINY)
    cnn = networks.build_model("3d_cnn", frames=FRAMES, size=SIZE, **TINY)
    for layer in cnn.layers:
        layer.set_weights(sta.get_layer(layer.name).get_weights())
    x = _clips(2)
    assert not np.allclose(_predict(sta, x), _predict(cnn, x), atol=1e-4)
    # A zero map W gives every location the same score: uniform attention,
    # which the "hw" scale turns into X'' = X'.
    attention = sta.get_layer("attention")
    attention.set_weights([np.zeros_like(w) for w in attention.get_weights()])
    np.testing.assert_allclose(_predict(sta, x), _predict(cnn, x), rtol=1e-4, atol=1e-5)


def test_attention_model_rejects_models_without_attention():
    model = networks.build_model("3d_cnn", frames=FRAMES, size=SIZE, **TINY)
    with pytest.raises(ValueError, match="model '3d_cnn' has no layer named 'attention'"):
        networks.attention_model(model)


@pytest.mark.parametrize(
    "options",
    [
        {"upsampling": "bilinear", "peephole_mode": "hadamard"},
        {"upsampling": "nearest", "peepholes": False, "use_previous_state": False},
        {"attention_scale": "none", "encoder_filters": (4, 4, 4), "decoder_filters": (4, 4, 2)},
        {"attention_weights": "shared", "attention_score_gain": 30.0,
         "attention_scores": "standardized", "attention_temperature": 0.5},
        {"attention_normalize_state": True, "attention_location_bias": True,
         "attention_score_gain": 100.0},
    ],
)
def test_sta_options(options):
    model = networks.build_model("3d_cnn_sta", frames=FRAMES, size=SIZE, **TINY, **options)
    assert _predict(model, _clips(1)).shape == (1, FRAMES, 1)
    decoder = model.get_layer("temporal_decoder")
    config = decoder.get_config()
    for name in ("upsampling", "peepholes", "peephole_mode"):
        if name in options:
            assert config[name] == options[name]
    attention = model.get_layer("attention")
    assert attention.use_previous_state == options.get("use_previous_state", True)
    assert model.get_layer("attend").scale == options.get("attention_scale", "hw")
    assert attention.score_weights == options.get("attention_weights", "per_location")
    assert attention.normalize_state == options.get("attention_normalize_state", False)
    assert attention.location_bias == options.get("attention_location_bias", False)
    assert attention.score_gain == options.get("attention_score_gain", 1.0)
    assert attention.initial_temperature == options.get("attention_temperature", 1.0)


def test_model_options_declare_build_models_defaults():
    """`ModelOptions` holds build_model's defaults: a model built from them
    is the default model. --peephole_mode=none builds the ConvLSTM without
    peepholes, as train built it before (peepholes=False, the mode left at
    conv)."""
    defaults = dataclasses.asdict(networks.ModelOptions())
    assert {k: networks.DEFAULT_OPTIONS[k] for k in defaults} == defaults
    explicit = networks.build_model("3d_cnn_sta", frames=FRAMES, size=SIZE, **defaults)
    implicit = networks.build_model("3d_cnn_sta", frames=FRAMES, size=SIZE)
    assert ([layer.get_config() for layer in explicit.layers]
            == [layer.get_config() for layer in implicit.layers])
    configs = [networks.build_model("3d_cnn_sta", frames=FRAMES, size=SIZE, **TINY, **options)
               .get_layer("temporal_decoder").get_config()
               for options in ({"peephole_mode": "none"}, {"peepholes": False}, {})]
    assert configs[0] == configs[1] != configs[2]
    assert (configs[0]["peepholes"], configs[0]["peephole_mode"]) == (False, "conv")
    with pytest.raises(ValueError, match="peephole_mode='diagonal'"):
        networks.build_model("3d_cnn_sta", peephole_mode="diagonal")


@pytest.mark.parametrize("readout", ["average", "max"])
def test_pooled_readouts_see_what_fired_not_where(readout):
    model = networks.build_model("3d_cnn", frames=FRAMES, size=SIZE, readout=readout, **TINY)
    assert model.get_layer("pool_frames").output.shape == (None, FRAMES, 256)
    assert "flatten_frames" not in {layer.name for layer in model.layers}
    # fc1 sees one 256-vector per frame: conv4's map pooled over space.
    assert model.get_layer("fc1").kernel.shape == (256, TINY["fc_units"])
    x = _clips(2)
    conv4 = _predict(keras.Model(model.input, model.get_layer("conv4").output), x)
    pooled = _predict(keras.Model(model.input, model.get_layer("pool_frames").output), x)
    want = conv4.mean(axis=(2, 3)) if readout == "average" else conv4.max(axis=(2, 3))
    np.testing.assert_allclose(pooled, want, rtol=1e-5, atol=1e-6)


def test_build_model_errors():
    with pytest.raises(ValueError, match="Unknown variant '4d_cnn'"):
        networks.build_model("4d_cnn")
    with pytest.raises(ValueError, match=r"Unknown model option\(s\) \['fc_size'\]"):
        networks.build_model("3d_cnn", fc_size=10)
    with pytest.raises(ValueError, match="size=100"):
        networks.build_model("3d_cnn", size=100)
    with pytest.raises(ValueError, match="size=24"):
        networks.build_model("3d_cnn_sta", size=24, encoder_filters=(4, 4, 4, 4),
                           decoder_filters=(4, 4, 4, 4))
    with pytest.raises(ValueError, match="frames=0"):
        networks.build_model("2d_cnn", frames=0)
    with pytest.raises(ValueError, match=r"decoder_filters=\(8,\)"):
        networks.build_model("3d_cnn_sta", decoder_filters=(8,))
    with pytest.raises(ValueError, match="conv_filters"):
        networks.build_model("3d_cnn", conv_filters=(32, 64, 128))
    with pytest.raises(ValueError, match="upsampling='deconv'"):
        networks.build_model("3d_cnn_sta", upsampling="deconv")
    with pytest.raises(ValueError, match="dropout=1.0"):
        networks.build_model("3d_cnn", dropout=1.0)
    with pytest.raises(ValueError, match="readout='mean'"):
        networks.build_model("3d_cnn", readout="mean")
    with pytest.raises(ValueError, match="attention_weights='dense'"):
        networks.build_model("3d_cnn_sta", attention_weights="dense")
    with pytest.raises(ValueError, match="attention_score_gain=0"):
        networks.build_model("3d_cnn_sta", attention_score_gain=0)
    with pytest.raises(ValueError, match="rnn_units=0"):
        networks.build_model("cnn_rnn_1s", rnn_units=0)


_JAX_SCRIPT = textwrap.dedent(
    """
    import sys
    import keras, numpy as np
    from recola_sta.model import networks
    assert keras.backend.backend() == "jax", keras.backend.backend()
    model = keras.models.load_model(sys.argv[1])
    x = np.load(sys.argv[2])
    np.save(sys.argv[3], model.predict(x, verbose=0))
    maps = networks.attention_model(model).predict(x, verbose=0)
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1, atol=1e-5)
    fresh = networks.build_model("3d_cnn_sta", frames=x.shape[1], size=x.shape[2], fc_units=16)
    fresh.compile(optimizer="adam", loss="mse")
    fresh.train_on_batch(x, np.zeros((x.shape[0], x.shape[1], 1), "float32"))
    """
)


@pytest.mark.slow
def test_sta_runs_under_jax_backend_with_the_same_outputs(tmp_path):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed")
    keras.utils.set_random_seed(3)
    model = networks.build_model("3d_cnn_sta", frames=FRAMES, size=SIZE, **TINY)
    x = _clips(2)
    model.save(tmp_path / "sta.keras")
    np.save(tmp_path / "x.npy", x)
    # XLA's LLVM optimisations cost ~0.7 s per compiled op here (each weight
    # initialiser is one); level 0 keeps the test fast without changing results.
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_backend_optimization_level=0",
    }
    result = subprocess.run(
        [sys.executable, "-c", _JAX_SCRIPT, str(tmp_path / "sta.keras"),
         str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), _predict(model, x), atol=1e-4)


def _network_default(option: str):
    """The value `build_model` uses for `option` when it is not given."""
    return networks.DEFAULT_OPTIONS[option]


# (layer, its argument, the network option that sets it)
LAYER_DEFAULTS = [
    ("SpatialSoftmax", "use_previous_state", "use_previous_state"),
    ("SpatialSoftmax", "scores", "attention_scores"),
    ("SpatialSoftmax", "initial_temperature", "attention_temperature"),
    ("SpatialSoftmax", "score_weights", "attention_weights"),
    ("SpatialSoftmax", "score_gain", "attention_score_gain"),
    ("SpatialSoftmax", "normalize_state", "attention_normalize_state"),
    ("SpatialSoftmax", "location_bias", "attention_location_bias"),
    ("AttentionMultiply", "scale", "attention_scale"),
    ("TemporalDecoder", "filters", "decoder_filters"),
    ("TemporalDecoder", "upsampling", "upsampling"),
    ("TemporalDecoder", "peepholes", "peepholes"),
    ("TemporalDecoder", "peephole_mode", "peephole_mode"),
    ("TemporalDecoder", "unit_forget_bias", "unit_forget_bias"),
    ("PeepholeConvLSTM2D", "peepholes", "peepholes"),
    ("PeepholeConvLSTM2D", "peephole_mode", "peephole_mode"),
    ("PeepholeConvLSTM2D", "unit_forget_bias", "unit_forget_bias"),
    ("FrameUpsampling2D", "mode", "upsampling"),
]


@pytest.mark.parametrize("layer, argument, option", LAYER_DEFAULTS,
                         ids=[f"{layer}.{argument}" for layer, argument, _ in LAYER_DEFAULTS])
def test_layer_defaults_are_the_network_defaults(layer, argument, option):
    default = inspect.signature(getattr(layers, layer)).parameters[argument].default
    assert default == _network_default(option)
