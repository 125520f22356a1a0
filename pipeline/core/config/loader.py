"""Reading a config: YAML, `--set a.b=value` overrides, and the typed build of the dataclasses.

The build rejects unknown keys and values of the wrong type, naming the dotted field; the
semantic rules are the sections' own (`pipeline.core.config.root.validate`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from typing import Any

import yaml

from pipeline.core.config.root import Config, validate
from pipeline.core.errors import ConfigError

__all__ = ["apply_overrides", "config_from_dict", "load_config"]


def load_config(path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Reads a YAML config (or the defaults when `path` is None), applies overrides, validates."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                loaded = yaml.safe_load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path!r}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path!r} is not valid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {path!r} must hold a mapping (got {type(loaded).__name__})"
            )
        raw = loaded or {}
    raw = apply_overrides(raw, overrides)
    config = config_from_dict(raw)
    validate(config)
    return config


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Returns a copy of `raw` with each `a.b.c=value` set; values are parsed as YAML scalars."""
    result = _deep_copy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override must look like key.path=value (got {item!r})")
        parts = key.strip().split(".")
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:  # absent, or an empty YAML section
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: field {part!r} is not a section")
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            node[parts[-1]] = value
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Builds the dataclasses, rejecting unknown keys and values of the wrong type."""
    return _build(Config, raw, "")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "config"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"field {where!r} must be a mapping (got {raw!r})")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(
            f"unknown field {prefix + str(unknown[0])!r} (known fields of {where!r}: "
            f"{', '.join(sorted(names))})"
        )
    kwargs = {name: _coerce(hints[name], value, prefix + name) for name, value in raw.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, name)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, name + ".")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"field {name!r} must be a list (got {value!r})")
        return [_coerce(args[0], v, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"field {name!r} must be a mapping (got {value!r})")
        return {
            _coerce(args[0], k, f"{name} key"): _coerce(args[1], v, f"{name}.{k}")
            for k, v in value.items()
        }
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"field {name!r} must be true or false (got {value!r})")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"field {name!r} must be an integer (got {value!r})")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"field {name!r} must be a number (got {value!r})")
        return float(value)
    if hint is str:
        if isinstance(value, dt.date):  # YAML reads an unquoted ISO date or time as a date
            return value.isoformat()
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"field {name!r} must be a string (got {value!r})")
        return str(value)
    raise TypeError(f"unsupported config type {hint!r} for {name}")  # a bug in this module
