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


def clip_frame_index(num_frames: int, clip_length: int) -> np.ndarray:
    """The sample each frame of each clip shows: (ceil(N / T), T) int64.

    Clip `i`, frame `j` is sample `i * T + j`; the last clip is completed by
    repeating the last sample. The one padding rule of `split_into_clips`
    (NumPy) and `pipeline.eval_dataset` (tf.data gathers with it).

    Raises:
        ValueError: `num_frames` is 0 or `clip_length` is not positive.
    """
    if clip_length <= 0:
        raise ValueError(f"clip_length must be positive, got {clip_length}.")
    if num_frames == 0:
        raise ValueError("Cannot cut an empty recording into clips.")
    num_clips = -(-num_frames // clip_length)
    index = np.minimum(np.arange(num_clips * clip_length), num_frames - 1)
    return index.reshape(num_clips, clip_length)


def split_into_clips(frames: np.ndarray, clip_length: int) -> np.ndarray:
    """Splits (N, ...) samples into (ceil(N / T), T, ...) clips, edge-padded
    (`clip_frame_index`).

    Raises:
        ValueError: `frames` is empty or `clip_length` is not positive.
    """
    return frames[clip_frame_index(frames.shape[0], clip_length)]


def predict_clips(
    predict_fn: Callable[[np.ndarray], dict[str, np.ndarray]],
    crops: np.ndarray,
    clip_length: int,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """Runs a clip model with several per-frame outputs over a recording.

    Args:
        predict_fn: maps float32 clips (B, T, S, S, 3) in [0, 1] to a dict of
            per-frame outputs, each of shape (B, T, ...).
        crops: (N, S, S, 3) uint8 aligned faces, in time order.
        clip_length: frames per clip T.
        batch_size: clips per call of `predict_fn`.

    Returns:
        The same keys, each (N, ...): one entry per sample, padding dropped.
    """
    clips = split_into_clips(crops, clip_length)
    outputs: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(clips), batch_size):
        batch = clips[start : start + batch_size].astype(np.float32) / 255.0
        for name, values in predict_fn(batch).items():
            values = np.asarray(values)
            per_frame = values.reshape((len(batch) * clip_length,) + values.shape[2:])
            outputs.setdefault(name, []).append(per_frame)
    return {name: np.concatenate(parts)[: crops.shape[0]] for name, parts in outputs.items()}


def predict_samples(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    crops: np.ndarray,
    clip_length: int,
    batch_size: int = 16,
) -> np.ndarray:
    """Runs a single-output clip model over every sample of a recording.

    Args:
        predict_fn: maps float32 clips (B, T, S, S, 3) in [0, 1] to per-frame
            values of shape (B, T) or (B, T, 1).
        crops, clip_length, batch_size: as for `predict_clips`.

    Returns:
        (N,) float64 predictions, one per sample.
    """
    values = predict_clips(lambda batch: {"value": predict_fn(batch)}, crops, clip_length, batch_size)
    return values["value"].reshape(crops.shape[0]).astype(np.float64)


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
