"""Argument checks and shape helpers shared by the layers of this package."""

from __future__ import annotations

from collections.abc import Sequence

from keras import ops

# `keras.saving.register_keras_serializable(package=PACKAGE)`: every layer is
# saved as "recola_sta>ClassName", whichever module of the package holds it.
PACKAGE = "recola_sta"


def positive_int(value, name: str) -> int:
    """`value` if it is a positive int (not a bool); else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return value


def choice(value, choices: Sequence[str], name: str) -> str:
    """`value` if it is one of `choices`; else a ValueError naming `name`."""
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {tuple(choices)}. "
            f"Received: {name}={value!r}"
        )
    return value


def kernel_size_pair(value) -> tuple[int, int]:
    """An int or a pair of positive ints as a (height, width) pair; else a ValueError."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(
        isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in pair
    ):
        raise ValueError(
            "`kernel_size` must be a positive integer or a pair of them. "
            f"Received: kernel_size={value!r}"
        )
    return pair


def sequence_shape(input_shape, layer: str):
    """Checks a (batch, time, height, width, channels) shape; returns it.

    Time must be static too: the layers fold it into the batch and back.
    """
    shape = tuple(input_shape)
    if len(shape) != 5:
        raise ValueError(
            f"{layer} expects inputs of shape (batch, time, height, width, "
            f"channels). Received: input_shape={shape}"
        )
    if any(d is None for d in shape[1:]):
        raise ValueError(
            f"{layer} needs static time, height, width and channels. "
            f"Received: input_shape={shape}"
        )
    return shape


def fold_time(x):
    """(B, T, H, W, C) -> (B*T, H, W, C), so per-frame ops run in one call."""
    _, _, h, w, c = x.shape
    return ops.reshape(x, (-1, h, w, c))


def unfold_time(x, frames: int):
    """(B*T, H, W, C) -> (B, T, H, W, C)."""
    _, h, w, c = x.shape
    return ops.reshape(x, (-1, frames, h, w, c))
