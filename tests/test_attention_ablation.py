"""The attention ablation: the model cut at eq. (3) and its maps replaced."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from recola_sta.analysis import attention_ablation
from recola_sta.model import networks

FRAMES, SIZE = 4, 16


def _tiny(variant="3d_cnn_sta", **options):
    keras.utils.set_random_seed(0)
    return networks.build_model(variant, frames=FRAMES, size=SIZE, conv_filters=(4, 4, 4, 4),
                              encoder_filters=(4, 4), decoder_filters=(4, 4), fc_units=8,
                              dropout=0.0, **options)


@pytest.fixture(scope="module")
def sta():
    # Gain 1 with a large kernel makes the initial maps clearly non-uniform.
    model = _tiny(attention_weights="per_location")
    kernel = model.get_layer("attention").kernel
    kernel.assign(np.random.default_rng(0).normal(0, 3, kernel.shape).astype("float32"))
    clips = np.random.default_rng(1).random((3, FRAMES, SIZE, SIZE, 3)).astype("float32")
    return model, clips


def test_learned_reproduces_the_model(sta):
    model, clips = sta
    front, back = attention_ablation.split_at_attention(model)
    predict = attention_ablation.ablated_predict_fn(front, back, "learned")
    np.testing.assert_allclose(predict(clips), model.predict_on_batch(clips), atol=1e-5)


def test_uniform_equals_the_model_with_zero_scores(sta):
    model, clips = sta
    front, back = attention_ablation.split_at_attention(model)
    uniform = attention_ablation.ablated_predict_fn(front, back, "uniform")(clips)
    learned = attention_ablation.ablated_predict_fn(front, back, "learned")(clips)
    assert np.abs(uniform - learned).max() > 1e-3  # the maps were not uniform
    zero = keras.models.clone_model(model)
    zero.set_weights(model.get_weights())
    layer = zero.get_layer("attention")
    layer.kernel.assign(np.zeros(layer.kernel.shape, "float32"))
    np.testing.assert_allclose(uniform, zero.predict_on_batch(clips), atol=1e-5)


def test_replace_maps_keeps_frame_one_and_each_mode_means_what_it_says():
    rng = np.random.default_rng(2)
    maps = rng.random((2, FRAMES, 3, 3)).astype("float32")
    maps /= maps.sum(axis=(2, 3), keepdims=True)
    fixed = np.full((3, 3), 1 / 9, "float32")
    fixed[0, 0] += 0.1
    for mode in attention_ablation.ABLATIONS:
        out = attention_ablation.replace_maps(maps, mode, fixed)
        np.testing.assert_array_equal(out[:, 0], maps[:, 0])
        np.testing.assert_allclose(out.sum(axis=(2, 3))[:, 1:], 1.0 + (mode == "partition_mean") * 0.1,
                                   rtol=1e-5)
    np.testing.assert_array_equal(attention_ablation.replace_maps(maps, "learned"), maps)
    np.testing.assert_allclose(attention_ablation.replace_maps(maps, "uniform")[:, 1:], 1 / 9)
    clip_mean = attention_ablation.replace_maps(maps, "clip_mean")
    np.testing.assert_allclose(clip_mean[1, 2], maps[1, 1:].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(clip_mean[1, 1], clip_mean[1, 3])
    np.testing.assert_array_equal(
        attention_ablation.replace_maps(maps, "partition_mean", fixed)[0, 3], fixed)
    with pytest.raises(ValueError, match="fixed_map"):
        attention_ablation.replace_maps(maps, "partition_mean")
    with pytest.raises(ValueError, match="Unknown ablation"):
        attention_ablation.replace_maps(maps, "shuffled")


def test_mean_map_is_the_mean_of_frames_two_on(sta):
    model, _ = sta
    front, _ = attention_ablation.split_at_attention(model)
    crops = np.random.default_rng(3).integers(0, 256, (2 * FRAMES, SIZE, SIZE, 3), np.uint8)
    fixed = attention_ablation.mean_map(front, {"a": SimpleNamespace(crops=crops)}, FRAMES)
    maps = np.asarray(front.predict_on_batch(
        crops.reshape(2, FRAMES, SIZE, SIZE, 3).astype("float32") / 255.0)[0])
    np.testing.assert_allclose(fixed, maps[:, 1:].mean(axis=(0, 1)), rtol=1e-4, atol=1e-7)


def test_a_model_without_attention_is_refused():
    with pytest.raises(ValueError, match="'3d_cnn_sta'"):
        attention_ablation.split_at_attention(_tiny("3d_cnn"))


def test_location_bias_alone_is_one_learned_map_for_every_frame():
    """attention_weights='none': the ablation that trains a fixed spatial gain."""
    model = _tiny(attention_weights="none", attention_location_bias=True,
                  attention_score_gain=10.0)
    layer = model.get_layer("attention")
    bias = np.random.default_rng(4).normal(0, 0.2, layer.bias.shape).astype("float32")
    layer.bias.assign(bias)
    clips = np.random.default_rng(5).random((2, FRAMES, SIZE, SIZE, 3)).astype("float32")
    maps = keras.ops.convert_to_numpy(networks.attention_model(model)(clips))
    expected = np.exp(10.0 * bias) / np.exp(10.0 * bias).sum()
    np.testing.assert_allclose(maps, np.broadcast_to(expected.reshape(maps.shape[2:]),
                                                     maps.shape), rtol=1e-4)
    x, y = clips, np.zeros((2, FRAMES, 1), "float32")
    with tf.GradientTape() as tape:
        loss = keras.ops.mean((model(x, training=True) - y) ** 2)
    assert np.abs(tape.gradient(loss, layer.bias).numpy()).max() > 0
    with pytest.raises(ValueError, match="needs attention_location_bias=True"):
        _tiny(attention_weights="none")
