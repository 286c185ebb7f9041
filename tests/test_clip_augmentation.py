"""The augmentation inside the model (`layers.ClipAugmentation`, train --augment_on=model)."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from recola_sta.model import layers, networks
from recola_sta.training import pipeline, train
from recola_sta.faces.settings import FaceSettings

FRAMES, SIZE = 4, 16
DEFAULTS = dataclasses.asdict(pipeline.Augmentation())


def _clips(n=3, seed=0):
    return np.random.default_rng(seed).uniform(0.1, 0.9, (n, FRAMES, 6, 6, 3)).astype("float32")


def _tf_data_mapping_before(clip, *, flip, brightness, contrast, saturation, angle):
    """The tf.data pipeline's own copy of the mapping (`pipeline.apply_augmentation`)
    before the pipeline and the layer shared `layers.apply_augmentation`,
    kept here as the reference: one clip, float32 or uint8 (T, H, W, 3)."""
    scale = 1.0 / 255.0 if clip.dtype == tf.uint8 else 1.0
    clip = tf.cast(clip, tf.float32)
    clip = tf.cond(flip, lambda: tf.reverse(clip, axis=[2]), lambda: clip)
    yiq = tf.constant(layers.RGB_TO_YIQ, tf.float32)
    cos, sin = saturation * tf.cos(angle), saturation * tf.sin(angle)
    chroma = tf.stack([tf.stack([1.0, 0.0, 0.0]), tf.stack([0.0, cos, -sin]),
                       tf.stack([0.0, sin, cos])])
    color = tf.linalg.inv(yiq) @ chroma @ yiq
    mean = tf.reduce_mean(clip, axis=[0, 1, 2]) * scale + brightness
    offset = tf.linalg.matvec(color, (1.0 - contrast) * mean + contrast * brightness)
    clip = tf.einsum("thwc,dc->thwd", clip, (contrast * scale) * color) + offset
    return tf.clip_by_value(clip, 0.0, 1.0)


DRAWS = dict(flip=np.array([True, False, True]),
             brightness=np.array([0.05, -0.08, 0.0], "float32"),
             contrast=np.array([0.85, 1.2, 1.0], "float32"),
             saturation=np.array([1.1, 0.0, 0.9], "float32"),
             angle=np.array([0.1, -0.15, 0.0], "float32"))


def _draw(k):
    return {name: tf.constant(values[k]) for name, values in DRAWS.items()}


def test_batch_and_single_clips_map_as_the_tf_data_mapping_did():
    clips = _clips()
    batch = keras.ops.convert_to_numpy(layers.apply_augmentation(clips, **DRAWS))
    for k in range(len(clips)):
        want = _tf_data_mapping_before(tf.constant(clips[k]), **_draw(k)).numpy()
        np.testing.assert_allclose(batch[k], want, atol=2e-5)  # the layer's batched path
        one = layers.apply_augmentation(tf.constant(clips[k]), **_draw(k))  # tf.data's path
        np.testing.assert_allclose(one.numpy(), want, atol=2e-5)
    assert not np.allclose(batch[0], clips[0], atol=1e-2)  # the draws do change the clips
    np.testing.assert_allclose(batch[1], np.broadcast_to(batch[1][..., :1], batch[1].shape),
                               atol=1e-6)  # saturation 0: grey


def test_uint8_clips_fold_the_conversion_into_the_colour_matrix():
    clip = (_clips(1)[0] * 255).round().astype("uint8")
    for k in range(len(DRAWS["flip"])):
        got = layers.apply_augmentation(tf.constant(clip), **_draw(k)).numpy()
        want = _tf_data_mapping_before(tf.constant(clip), **_draw(k)).numpy()
        np.testing.assert_allclose(got, want, atol=2e-5)
        as_float = layers.apply_augmentation(tf.constant(clip / np.float32(255)), **_draw(k))
        np.testing.assert_allclose(got, as_float.numpy(), atol=2e-5)


def test_flip_mirrors_only_the_drawn_clips():
    clips = _clips()
    identity = dict(brightness=np.zeros(3, "float32"), contrast=np.ones(3, "float32"),
                    saturation=np.ones(3, "float32"), angle=np.zeros(3, "float32"))
    out = keras.ops.convert_to_numpy(
        layers.apply_augmentation(clips, flip=DRAWS["flip"], **identity))
    np.testing.assert_allclose(out[0], clips[0][:, :, ::-1], atol=1e-5)
    np.testing.assert_allclose(out[1], clips[1], atol=1e-5)
    np.testing.assert_allclose(out[2], clips[2][:, :, ::-1], atol=1e-5)


def test_one_draw_per_clip_in_training_and_identity_at_inference():
    layer = layers.ClipAugmentation(**DEFAULTS, seed=3)
    still = np.repeat(_clips(8)[:, :1], FRAMES, axis=1)  # every frame of a clip the same
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(still)), still)
    out = keras.ops.convert_to_numpy(layer(still, training=True))
    assert out.shape == still.shape and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out, np.repeat(out[:, :1], FRAMES, axis=1), atol=1e-6)
    change = np.abs(out - still).mean(axis=(1, 2, 3, 4))
    assert (change > 1e-3).all()  # every clip changed, each by its own draw
    assert len(np.unique(np.round(change, 5))) == len(change)
    again = keras.ops.convert_to_numpy(layer(still, training=True))
    assert not np.allclose(again, out)  # new draws on the next batch


def test_draws_cover_the_ranges():
    layer = layers.ClipAugmentation(**DEFAULTS, seed=0)
    flip, brightness, contrast, saturation, angle = (
        keras.ops.convert_to_numpy(v) for v in layer.draw(4000))
    assert 0.45 < flip.mean() < 0.55
    assert -0.1 <= brightness.min() < -0.09 and 0.09 < brightness.max() <= 0.1
    assert 0.8 <= contrast.min() < 0.81 and 1.24 < contrast.max() <= 1.25
    assert 0.8 <= saturation.min() and saturation.max() <= 1.25
    assert np.abs(angle).max() <= 2 * np.pi * 0.03 + 1e-6


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="ClipAugmentation needs"):
        layers.ClipAugmentation(**{**DEFAULTS, "contrast": (1.2, 0.8)})


def test_model_option_adds_an_inference_identity_layer_that_saves(tmp_path):
    tiny = dict(frames=FRAMES, size=SIZE, conv_filters=(2, 2, 2, 2), fc_units=4)
    augmented = networks.build_model("3d_cnn", augmentation={**DEFAULTS, "seed": 1}, **tiny)
    plain = networks.build_model("3d_cnn", **tiny)
    assert augmented.layers[1].name == "augment"
    for layer in plain.layers:
        layer.set_weights(augmented.get_layer(layer.name).get_weights())
    x = np.random.default_rng(0).random((2, FRAMES, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(augmented.predict_on_batch(x), plain.predict_on_batch(x),
                               atol=1e-6)
    augmented.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("augment").get_config()["contrast"] == [0.8, 1.25]
    np.testing.assert_allclose(loaded.predict_on_batch(x), plain.predict_on_batch(x), atol=1e-6)
    with pytest.raises(ValueError, match="Option `augmentation`"):
        networks.build_model("3d_cnn", augmentation="on", **tiny)


@pytest.mark.parametrize("augment_on, in_model", [("pipeline", False), ("model", True)])
def test_train_puts_the_augmentation_where_asked(augment_on, in_model, tmp_path):
    config = train.TrainConfig(corpus_dir=str(tmp_path), corpus_kind="synthetic",
                               run_dir=str(tmp_path / "run"), face=FaceSettings(size=SIZE), frames=FRAMES,
                               variant="3d_cnn", augment_on=augment_on)
    names = [layer.name for layer in train._build_model(config).layers]
    assert ("augment" in names) == in_model
