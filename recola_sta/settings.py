"""Typed settings declared once: the dataclass field, its flag and its check.

A CLI's settings are one dataclass whose fields are declared with `setting`:
the default, the help text, and where a value can be wrong, the choices
(taken from the module that owns them) or a check with the text saying what
is expected. From that one declaration:

* `define_flags(cls)` defines one absl flag per field, its type read from the
  field's annotation (a field with choices becomes an enum flag, refused at
  parse time with the choices listed);
* `from_flags(cls, flag_values)` builds the dataclass from parsed flags
  (only a CLI's `main()` calls it);
* `check(instance)` raises a ValueError naming the flag of the first bad
  value, for library callers that build the dataclass themselves.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

_KEY = "recola_sta.setting"
_FLAG_TYPES = {  # annotation (a string under `from __future__ import annotations`) -> DEFINE_*
    "str": "DEFINE_string",
    "str | None": "DEFINE_string",
    "int": "DEFINE_integer",
    "float": "DEFINE_float",
    "bool": "DEFINE_bool",
    "tuple[str, ...]": "DEFINE_list",
}


@dataclasses.dataclass(frozen=True)
class _Setting:
    help: str
    choices: tuple[str, ...] | None
    check: Callable[[Any], bool] | None
    expected: str | None
    flag: bool


def setting(default: Any = dataclasses.MISSING, *, help: str,
            choices: Sequence[str] | None = None, check: Callable[[Any], bool] | None = None,
            expected: str | None = None, flag: bool = True) -> Any:
    """A dataclass field that is also a flag.

    Args:
        default: the default value; none makes the flag required.
        help: the flag's help text.
        choices: the allowed values (an enum flag).
        check: a predicate on the value, for other constraints.
        expected: what a good value is, for the error message (required
            with `check`; defaults to the choices).
        flag: False for a field whose flag another function defines (one
            shared by several CLIs); it is still checked.
    """
    if check is not None and expected is None:
        raise ValueError("A setting with `check` needs `expected`.")
    meta = _Setting(help, tuple(choices) if choices is not None else None, check, expected, flag)
    return dataclasses.field(default=default, metadata={_KEY: meta})


def _settings(cls) -> list[tuple[dataclasses.Field, _Setting]]:
    return [(f, f.metadata[_KEY]) for f in dataclasses.fields(cls) if _KEY in f.metadata]


def define_flags(cls) -> None:
    """Defines an absl flag for every `setting` field of `cls` (flag=True)."""
    from absl import flags

    for field, meta in _settings(cls):
        if not meta.flag:
            continue
        required = field.default is dataclasses.MISSING
        default = None if required else field.default
        if meta.choices is not None:
            flags.DEFINE_enum(field.name, default, list(meta.choices), meta.help)
        else:
            kind = _FLAG_TYPES.get(str(field.type))
            if kind is None:
                raise TypeError(f"Setting {cls.__name__}.{field.name}: no flag type for "
                                f"annotation {field.type!r}.")
            if kind == "DEFINE_list" and default is not None:
                default = list(default)
            getattr(flags, kind)(field.name, default, meta.help)
        if required:
            flags.mark_flag_as_required(field.name)


def from_flags(cls, flag_values) -> Any:
    """`cls` built from parsed flags (list flags become tuples)."""
    kwargs = {}
    for field in dataclasses.fields(cls):
        value = getattr(flag_values, field.name)
        kwargs[field.name] = tuple(value) if str(field.type) == "tuple[str, ...]" else value
    return cls(**kwargs)


def check(instance) -> None:
    """Raises ValueError naming the flag of the first `setting` field whose
    value is not among its choices or fails its check. A float setting must
    also be finite: NaN fails no comparison-based check, and infinity passes
    a "positive" one (`--learning_rate=inf` would train a NaN model)."""
    for field, meta in _settings(type(instance)):
        value = getattr(instance, field.name)
        if (str(field.type) == "float" and isinstance(value, (int, float))
                and not math.isfinite(value)):
            expected = f" ({meta.expected})" if meta.expected else ""
            raise ValueError(f"--{field.name}={value!r} is invalid: expected a finite "
                             f"number{expected}.")
        ok = ((meta.choices is None or value in meta.choices)
              and (meta.check is None or meta.check(value)))
        if not ok:
            expected = meta.expected or " or ".join(meta.choices)
            raise ValueError(f"--{field.name}={value!r} is invalid: expected {expected}.")
