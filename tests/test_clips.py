"""Clip cutting with edge padding, and mapping clip outputs back to samples."""

from __future__ import annotations

import numpy as np
import pytest

from recola_sta import clips


def _frames(n: int) -> np.ndarray:
    """(n, 2, 2, 3) uint8 frames whose pixels all equal the frame index."""
    return np.repeat(np.arange(n, dtype=np.uint8), 12).reshape(n, 2, 2, 3)


def test_split_pads_by_repeating_the_last_frame():
    out = clips.split_into_clips(_frames(10), 4)
    assert out.shape == (3, 4, 2, 2, 3)
    assert out[:, :, 0, 0, 0].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 9, 9]]
    with pytest.raises(ValueError, match="empty"):
        clips.split_into_clips(_frames(0), 4)
    with pytest.raises(ValueError, match="clip_length"):
        clips.split_into_clips(_frames(3), 0)


def test_predict_clips_maps_every_output_back_to_its_sample():
    calls = []

    def fn(batch):
        calls.append(batch.shape)
        index = batch[:, :, 0, 0, 0] * 255.0  # back to the frame index
        return {"value": index[..., None], "map": np.broadcast_to(index[..., None, None], batch.shape[:2] + (2, 2))}

    out = clips.predict_clips(fn, _frames(10), clip_length=4, batch_size=2)
    assert calls == [(2, 4, 2, 2, 3), (1, 4, 2, 2, 3)]
    np.testing.assert_allclose(out["value"][:, 0], np.arange(10), atol=1e-4)
    assert out["map"].shape == (10, 2, 2)
    np.testing.assert_allclose(out["map"][:, 1, 1], np.arange(10), atol=1e-4)
    single = clips.predict_samples(lambda b: fn(b)["value"], _frames(10), 4, 2)
    assert single.shape == (10,) and single.dtype == np.float64
    np.testing.assert_allclose(single, np.arange(10), atol=1e-4)


def test_samples_to_grid_interpolates_missed_faces_and_flags_the_nearest_sample():
    times = np.arange(5) * 0.25
    values = np.array([0.0, 99.0, 2.0, 3.0, 4.0])
    found = np.array([True, False, True, True, True])
    grid = np.array([0.0, 0.1, 0.25, 0.4, 1.0])
    out, grid_found = clips.samples_to_grid(times, values, found, grid)
    np.testing.assert_allclose(out, [0.0, 0.4, 1.0, 1.6, 4.0])
    assert grid_found.tolist() == [True, True, False, True, True]


def _split_before(frames, clip_length):
    """split_into_clips as it was before it gathered with clip_frame_index."""
    n = frames.shape[0]
    num_clips = -(-n // clip_length)
    pad = num_clips * clip_length - n
    if pad:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
    return frames.reshape((num_clips, clip_length) + frames.shape[1:])


@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 17])
@pytest.mark.parametrize("clip_length", [1, 4, 16])
def test_split_equals_the_concatenating_one(n, clip_length):
    frames = np.random.default_rng(n).integers(0, 256, (n, 3, 2, 3), dtype=np.uint8)
    out = clips.split_into_clips(frames, clip_length)
    np.testing.assert_array_equal(out, _split_before(frames, clip_length))
    assert out.dtype == frames.dtype
    index = clips.clip_frame_index(n, clip_length)
    assert index.shape == out.shape[:2]
    np.testing.assert_array_equal(index.reshape(-1)[:n], np.arange(n))
    assert (index.reshape(-1)[n:] == n - 1).all()
