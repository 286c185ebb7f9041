"""Cutting a recording's 4 fps samples into model clips and back.

Training uses non-overlapping 16-frame clips (paper, section 3.1); evaluation
and prediction must cover every sample, so the last clip is padded by
repeating the last frame (not with black frames, which would change the
per-clip standardisation of the real frames in that clip) and the padded
predictions are dropped again.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from recola_sta import resample


def split_into_clips(frames: np.ndarray, clip_length: int) -> np.ndarray:
    """Splits (N, ...) samples into (ceil(N / T), T, ...) clips, edge-padded.

    Raises:
        ValueError: `frames` is empty or `clip_length` is not positive.
    """
    if clip_length <= 0:
        raise ValueError(f"clip_length must be positive, got {clip_length}.")
    n = frames.shape[0]
    if n == 0:
        raise ValueError("Cannot cut an empty recording into clips.")
    num_clips = -(-n // clip_length)
    pad = num_clips * clip_length - n
    if pad:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
    return frames.reshape((num_clips, clip_length) + frames.shape[1:])


def predict_samples(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    crops: np.ndarray,
    clip_length: int,
    batch_size: int = 16,
) -> np.ndarray:
    """Runs a clip model over every sample of a recording.

    Args:
        predict_fn: maps float32 clips (B, T, S, S, 3) in [0, 1] to per-frame
            values of shape (B, T) or (B, T, 1).
        crops: (N, S, S, 3) uint8 aligned faces, in time order.
        clip_length: frames per clip T.
        batch_size: clips per call of `predict_fn`.

    Returns:
        (N,) float64 predictions, one per sample.
    """
    clips = split_into_clips(crops, clip_length)
    outputs = []
    for start in range(0, len(clips), batch_size):
        batch = clips[start : start + batch_size].astype(np.float32) / 255.0
        values = np.asarray(predict_fn(batch), np.float64)
        outputs.append(values.reshape(len(batch), clip_length))
    return np.concatenate(outputs).reshape(-1)[: crops.shape[0]]


def samples_to_grid(
    sample_times: np.ndarray,
    sample_values: np.ndarray,
    found: np.ndarray,
    grid_times: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Fills missed faces, then resamples 4 fps predictions onto another grid.

    Samples whose face was not found are replaced by linear interpolation
    between their found neighbours (edges held), as the paper does for
    frames the detector missed; the result is linearly resampled onto
    `grid_times` (a corpus label grid, or a video's frame times).

    Returns:
        (values on the grid, bool flag: the nearest 4 fps sample had a face).
    """
    filled = resample.interpolate_missing(sample_values, found)
    values = resample.resample(sample_times, filled, grid_times)
    right = np.clip(np.searchsorted(sample_times, grid_times), 0, len(sample_times) - 1)
    left = np.clip(right - 1, 0, len(sample_times) - 1)
    use_left = np.abs(sample_times[left] - grid_times) < np.abs(sample_times[right] - grid_times)
    nearest = np.where(use_left, left, right)
    return values, np.asarray(found, bool)[nearest]
