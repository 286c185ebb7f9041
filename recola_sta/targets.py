"""Target names: one label dimension (`valence`) or several (`valence,arousal`).

Every stage takes a tuple of names, one target being a tuple of one; these two
functions turn a flag value or an argument into that tuple and refuse what
cannot name a target.
"""

from __future__ import annotations

from typing import Sequence

# A serving output of the SavedModel beside the targets' (inference/export.py).
RESERVED = ("attention",)


def parse_targets(text: str) -> tuple[str, ...]:
    """The names of a --target value: one name or a comma-separated list
    (`valence,arousal`), spaces around names ignored.

    Raises:
        ValueError: naming --target, for an empty or malformed name (letters,
            digits and underscores, not starting with a digit), a name given
            twice, or a reserved name.
    """
    names = tuple(name.strip() for name in str(text).split(","))
    bad = [n for n in names if not n.isidentifier() or n in RESERVED]
    if bad:
        raise ValueError(
            f"--target={text!r} is invalid: expected one label name or a comma-separated list "
            f"of distinct names such as valence,arousal (bad: {bad}; names are letters, "
            f"digits and underscores; {', '.join(RESERVED)} is reserved)."
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"--target={text!r} is invalid: {repeated} given twice.")
    return names


def as_targets(target: str | Sequence[str]) -> tuple[str, ...]:
    """One target name, or a sequence of distinct names, as a tuple.

    Raises:
        ValueError: no name, an empty name, or a name given twice.
    """
    names = (target,) if isinstance(target, str) else tuple(target)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"target must be a name or a non-empty sequence of names. "
                         f"Received: {target!r}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"Targets repeat: {repeated} in {list(names)}.")
    return names
