"""Does the loss pull attention towards the region that carries the target?

A tiny STA network learns a per-frame target that is the brightness of one
box of otherwise random frames. After a short training, the gradient that
reaches the attention scores must ask for more attention inside the box
(`attention_analysis.score_gradient_stats`), and with the attention settings
the experiments use, the maps must have moved into the box.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from recola_sta.analysis import attention_analysis
from recola_sta.model import networks

FRAMES, SIZE, BATCH = 4, 16, 8
BOX = (slice(10, 14), slice(4, 12))  # rows, columns: 32 of 256 pixels


def _batch(rng: np.random.Generator):
    """Random frames whose box shows a per-frame grey level: the target."""
    x = rng.random((BATCH, FRAMES, SIZE, SIZE, 3)).astype("float32")
    level = rng.random((BATCH, FRAMES)).astype("float32")
    x[:, :, BOX[0], BOX[1], :] = 0.5 * x[:, :, BOX[0], BOX[1], :] + 0.5 * level[..., None, None, None]
    y = 2.0 * level - 1.0
    return x, y[..., None], np.ones_like(y)


def _box_mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[BOX] = True
    return mask


def _box_ratio(model, batches) -> float:
    maps = keras.ops.convert_to_numpy(networks.attention_model(model)(batches[0][0]))[:, 1:]
    return float(maps[..., _box_mask()].sum(-1).mean() / _box_mask().mean())


def _tiny_sta(**attention):
    return networks.build_model(
        "3d_cnn_sta", frames=FRAMES, size=SIZE, conv_filters=(4, 4, 4, 4),
        encoder_filters=(4, 4), decoder_filters=(4, 4), fc_units=8, dropout=0.0, **attention)


FOCUSING = dict(attention_weights="per_location", attention_normalize_state=True,
                attention_location_bias=True, attention_score_gain=100.0)
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def runs():
    """Per seed: box ratio and score gradient at initialisation, box ratio after 40 steps.

    The experiments' attention settings (FOCUSING); lr 1e-3 instead of the
    paper's 1e-4 so that 40 steps of 8 clips suffice. One seed alone is not
    reliable at this scale (measured box ratios after 40 steps, seeds 0-3:
    4.3, 2.1, 3.5, 0.75), so the tests look at the mean over three seeds.

    One compiled model serves the three seeds, so its training step is
    traced once: per seed it takes the weights that seed initialises and a
    zeroed optimizer state (Adam's step count and moments), which trains as
    a model built and compiled for that seed does (the same numbers).
    """
    held_out = [_batch(np.random.default_rng(100 + k)) for k in range(6)]
    model = _tiny_sta(**FOCUSING)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mean_squared_error")
    out = []
    for seed in SEEDS:
        keras.utils.set_random_seed(seed)
        model.set_weights(_tiny_sta(**FOCUSING).get_weights())
        for variable in model.optimizer.variables:  # built by the first step; kept: the rate
            if "learning_rate" not in variable.path:
                variable.assign(np.zeros(variable.shape, variable.dtype))
        row = {"before": _box_ratio(model, held_out),
               "gradient": attention_analysis.score_gradient_stats(model, held_out, _box_mask())}
        rng = np.random.default_rng(seed)
        for _ in range(40):
            model.train_on_batch(*_batch(rng))
        row["after"] = _box_ratio(model, held_out)
        out.append(row)
    return out


@pytest.mark.slow
def test_loss_gradient_asks_for_more_attention_in_the_signal_box(runs):
    drives = np.array([row["gradient"]["mouth_drive_mean"] for row in runs])
    assert all(row["gradient"]["score_grad_rms"] > 0 for row in runs)
    # A step on the scores would raise the box's share, on average over the seeds.
    assert drives.mean() > 0, runs


@pytest.mark.slow
def test_short_training_moves_attention_into_the_signal_box(runs):
    for row in runs:
        assert row["before"] == pytest.approx(1.0, abs=0.1)  # near uniform at initialisation
    assert np.mean([row["after"] for row in runs]) > 1.5, runs


def test_analysis_of_a_model_without_attention_is_one_clear_line():
    model = networks.build_model("3d_cnn", frames=FRAMES, size=SIZE, conv_filters=(2, 2, 2, 2),
                               fc_units=4)
    with pytest.raises(attention_analysis.NoAttentionError, match="3d_cnn_sta") as info:
        attention_analysis.check_attention_model(model)
    assert "\n" not in str(info.value)
