"""The one codec of typed, frozen dataclass configs: to plain JSON-able dicts and back (with every
value checked and coerced to its declared type), and dotted ``key=value`` overrides.

``ier.config.ExperimentConfig`` and ``ier.models.config.ModelConfig`` both go through it, so a
config read from a checkpoint, a run's ``config.json``, a TOML file or ``--set`` is checked the
same way. Errors are ``ConfigError`` (a ``ValueError``).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, Literal, TypeVar

from ier.errors import ConfigError

T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    """Nested dataclasses, tuples and lists → plain JSON-able dicts and lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check/convert a parsed (JSON/TOML/override) value to the declared type ``hint``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return from_dict(hint, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    return _coerce_scalar(value, hint, where)


def _coerce_scalar(value: Any, hint: Any, where: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported config type {hint!r}")


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping, coercing each value to its declared type.

    Raises:
        ConfigError: an unknown key, a missing required key, or a value of the wrong type.
    """
    hints = _hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    prefix = f"{where}." if where else ""
    if unknown:
        raise ConfigError(f"unknown config key(s) {[prefix + k for k in unknown]}")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    missing = [
        name
        for name, f in known.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing config key(s) {[prefix + k for k in missing]}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where or cls.__name__}: {err}") from err


# --- overrides -----------------------------------------------------------------------------------


def _parse_literal(text: str) -> Any:
    """An override value: JSON (numbers, true/false, lists, quoted strings) or a bare string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _set_path(obj: Any, keys: Sequence[str], value: str, where: str) -> Any:
    key, rest = keys[0], keys[1:]
    path = f"{where}.{key}" if where else key
    if isinstance(obj, tuple):
        names = [getattr(item, "name", None) for item in obj]
        if key in names:  # an item with a ``name`` field may be addressed by it (stages.aii.lr)
            key = str(names.index(key))
            path = f"{where}.{key}" if where else key
        if not key.lstrip("-").isdigit():
            raise ConfigError(f"unknown config key {path!r}: expected a list index or a name")
        index = int(key)
        if not -len(obj) <= index < len(obj):
            raise ConfigError(f"unknown config key {path!r}: only {len(obj)} item(s)")
        if not rest:
            raise ConfigError(f"{path}: cannot replace a whole list item; set one of its fields")
        items = list(obj)
        items[index] = _set_path(items[index], rest, value, path)
        return tuple(items)
    if not dataclasses.is_dataclass(obj):
        raise ConfigError(f"unknown config key {path!r}")
    names = {f.name for f in fields(obj)}
    if key not in names:
        raise ConfigError(f"unknown config key {path!r}; known here: {sorted(names)}")
    if rest:
        new = _set_path(getattr(obj, key), rest, value, path)
    else:
        new = _coerce(_parse_literal(value), _hints(type(obj))[key], path)
    try:
        return dataclasses.replace(obj, **{key: new})
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}={value}: {err}") from err


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """Apply ``key=value`` overrides with dotted keys (``stages.0.epochs=2``, ``model.width=32``).

    Values are parsed as JSON when possible (else as a bare string) and coerced to the field's
    declared type. An item of a tuple of named configs may also be addressed by its ``name``:
    ``stages.cmr.lr=3e-4``.

    Raises:
        ConfigError: a malformed override, an unknown key, or a value of the wrong type.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"bad override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        keys = key.strip().split(".")
        if not all(keys):
            raise ConfigError(f"bad override {item!r}: empty key component")
        cfg = _set_path(cfg, keys, value.strip(), "")
    return cfg
