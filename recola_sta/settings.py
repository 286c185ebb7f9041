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

A field whose type is itself a settings dataclass (declared with
`nested`) is a group: its settings become flags of their own names (the
training config's `face` group gives `--size`, `--upsample`, ...), and
`from_flags` and `check` recurse into it. So a group is declared once, by the
subpackage that owns it (`faces.settings.FaceSettings`,
`model.networks.ModelOptions`), and every CLI that needs it nests it.
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
    "float | None": "DEFINE_float",
    "bool": "DEFINE_bool",
    "tuple[str, ...]": "DEFINE_list",
}


_NESTED_KEY = "recola_sta.settings_group"


@dataclasses.dataclass(frozen=True)
class _Setting:
    help: str
    choices: tuple[str, ...] | None
    check: Callable[[Any], bool] | None
    expected: str | None
    flag: bool
    lower_bound: float | None = None
    upper_bound: float | None = None


def setting(default: Any = dataclasses.MISSING, *, help: str,
            choices: Sequence[str] | None = None, check: Callable[[Any], bool] | None = None,
            expected: str | None = None, flag: bool = True,
            lower_bound: float | None = None, upper_bound: float | None = None) -> Any:
    """A dataclass field that is also a flag.

    Args:
        default: the default value; none makes the flag required.
        help: the flag's help text.
        choices: the allowed values (an enum flag).
        check: a predicate on the value, for other constraints.
        expected: what a good value is, for the error message (required
            with `check`; defaults to the choices).
        flag: False for a field that has no flag (set by code, or by a
            flag another function defines); it is still checked.
        lower_bound, upper_bound: inclusive bounds of a number, enforced by
            absl when the flag is parsed (and shown in its help) and by
            `check`; None is allowed where the default is None.
    """
    if check is not None and expected is None:
        raise ValueError("A setting with `check` needs `expected`.")
    meta = _Setting(help, tuple(choices) if choices is not None else None, check, expected, flag,
                    lower_bound, upper_bound)
    return dataclasses.field(default=default, metadata={_KEY: meta})


def nested(cls) -> Any:
    """A dataclass field holding a group of settings (a settings dataclass
    with its own defaults): its fields are flags of their own names."""
    return dataclasses.field(default_factory=cls, metadata={_NESTED_KEY: cls})


def _groups(cls) -> list[tuple[dataclasses.Field, type]]:
    return [(f, f.metadata[_NESTED_KEY]) for f in dataclasses.fields(cls)
            if _NESTED_KEY in f.metadata]


def _settings(cls) -> list[tuple[dataclasses.Field, _Setting]]:
    return [(f, f.metadata[_KEY]) for f in dataclasses.fields(cls) if _KEY in f.metadata]


def flag_names(cls) -> set[str]:
    """The names of the flags `define_flags(cls)` defines (nested groups included)."""
    names = {f.name for f, meta in _settings(cls) if meta.flag}
    for _, group in _groups(cls):
        names |= flag_names(group)
    return names


def define_flags(cls, defaults: dict[str, Any] | None = None,
                 skip: Sequence[str] = (), flag_values=None) -> None:
    """Defines an absl flag for every `setting` field of `cls` (flag=True),
    and of its nested groups.

    Args:
        cls: a settings dataclass.
        defaults: flag defaults that differ from the fields' (e.g. None for
            predict's face flags, where unset means "as the model was
            trained"); the fields keep theirs.
        skip: fields that get no flag here (another CLI input sets them).
        flag_values: the absl `FlagValues` to define them in (default: the
            global `flags.FLAGS`).
    """
    from absl import flags

    defaults = defaults or {}
    where = {"flag_values": flag_values} if flag_values is not None else {}
    for field, group in _groups(cls):
        define_flags(group, defaults, skip, flag_values)
    for field, meta in _settings(cls):
        if not meta.flag or field.name in skip:
            continue
        default = defaults.get(field.name, field.default)
        required = default is dataclasses.MISSING
        default = None if required else default
        if meta.choices is not None:
            flags.DEFINE_enum(field.name, default, list(meta.choices), meta.help, **where)
        else:
            kind = _FLAG_TYPES.get(str(field.type))
            if kind is None:
                raise TypeError(f"Setting {cls.__name__}.{field.name}: no flag type for "
                                f"annotation {field.type!r}.")
            if kind == "DEFINE_list" and default is not None:
                default = list(default)
            bounds = {k: v for k, v in (("lower_bound", meta.lower_bound),
                                        ("upper_bound", meta.upper_bound)) if v is not None}
            getattr(flags, kind)(field.name, default, meta.help, **bounds, **where)
        if required:
            flags.mark_flag_as_required(field.name, **where)


def from_flags(cls, flag_values, **overrides) -> Any:
    """`cls` built from parsed flags (list flags become tuples), its nested
    groups too; `overrides` replace fields (e.g. a group built otherwise)."""
    kwargs = {}
    groups = dict((f.name, group) for f, group in _groups(cls))
    for field in dataclasses.fields(cls):
        if field.name in overrides:
            kwargs[field.name] = overrides[field.name]
        elif field.name in groups:
            kwargs[field.name] = from_flags(groups[field.name], flag_values)
        elif field.name in flag_values:
            value = getattr(flag_values, field.name)
            kwargs[field.name] = tuple(value) if str(field.type) == "tuple[str, ...]" else value
    return cls(**kwargs)


def check(instance) -> None:
    """Raises ValueError naming the flag of the first `setting` field whose
    value is not among its choices, outside its bounds or fails its check
    (nested groups too). A float setting must also be finite: NaN fails no
    comparison-based check, and infinity passes a "positive" one
    (`--learning_rate=inf` would train a NaN model)."""
    for field, _ in _groups(type(instance)):
        check(getattr(instance, field.name))
    for field, meta in _settings(type(instance)):
        value = getattr(instance, field.name)
        if (str(field.type) == "float" and isinstance(value, (int, float))
                and not math.isfinite(value)):
            expected = f" ({meta.expected})" if meta.expected else ""
            raise ValueError(f"--{field.name}={value!r} is invalid: expected a finite "
                             f"number{expected}.")
        if not _ok(meta, value, field.default):
            raise ValueError(f"--{field.name}={value!r} is invalid: expected "
                             f"{_expected(meta)}.")


def _ok(meta: _Setting, value: Any, default: Any) -> bool:
    """Whether `value` passes the setting's choices, bounds and check."""
    if value is None and default is None:
        return True
    in_bounds = True
    if meta.lower_bound is not None or meta.upper_bound is not None:
        in_bounds = (isinstance(value, (int, float)) and not isinstance(value, bool)
                     and (meta.lower_bound is None or value >= meta.lower_bound)
                     and (meta.upper_bound is None or value <= meta.upper_bound))
    return (in_bounds and (meta.choices is None or value in meta.choices)
            and (meta.check is None or meta.check(value)))


def _expected(meta: _Setting) -> str:
    """What a good value is, for the error message."""
    if meta.expected:
        return meta.expected
    if meta.choices is not None:
        return " or ".join(meta.choices)
    low, high = meta.lower_bound, meta.upper_bound
    if low is not None and high is not None:
        return f"a number from {low:g} to {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"
