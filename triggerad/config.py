"""Typed YAML configuration: one dataclass per YAML section, built as ``Cls(**section)``.

A config file is a mapping of sections; each section becomes a dataclass instance. Unknown or
misspelt keys, wrong types and missing required keys raise :class:`~triggerad.errors.ConfigError`
naming the file, the key path, what was expected and the nearest valid key.

Example
-------
>>> from dataclasses import dataclass
>>> @dataclass
... class Training:
...     epochs: int = 10
>>> build(Training, {"epochs": 3}, where="train.yaml:training").epochs
3
"""

from __future__ import annotations

import dataclasses
import types
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from triggerad.errors import ConfigError, did_you_mean

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, get_args(tp)))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is not None:
        return repr(tp).replace("typing.", "")
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", repr(tp))


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the type hint ``tp`` and convert it (nested dataclasses, lists)."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(
                f"{where}: expected {_type_name(tp)}, found {value!r}; "
                + did_you_mean(str(value), map(str, get_args(tp)))
            )
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for arg in get_args(tp):
            try:
                return _convert(arg, value, where)
            except ConfigError as err:
                errors.append(err)
        raise ConfigError(f"{where}: expected {_type_name(tp)}, found {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, found {value!r}")
        (item,) = get_args(tp)[:1] or (Any,)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, found {value!r}")
        _, val_tp = get_args(tp) or (str, Any)
        return {str(k): _convert(val_tp, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return build(tp, value, where=where)
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{where}: expected null, found {value!r}")
        return None
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, found {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, found {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, found {value!r}")
        return value
    return value


def build(cls: type[T], section: Any, where: str) -> T:
    """Build the dataclass ``cls`` from a YAML mapping, checking every key and type.

    Parameters
    ----------
    cls : dataclass type
        The typed config class of this section.
    section : mapping or None
        The section as read from YAML (None means all defaults).
    where : str
        ``file:key.path`` prefix used in error messages.

    Raises
    ------
    ConfigError
        On an unknown key (with the nearest valid key), a missing required key or a wrong type.
    """
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, found {section!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in section:
        if key not in fields:
            raise ConfigError(f"{where}: unknown key {key!r}; " + did_you_mean(str(key), fields))
    kwargs = {}
    for name, field in fields.items():
        if name in section:
            kwargs[name] = _convert(hints[name], section[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(
                f"{where}: missing required key {name!r} (expected {_type_name(hints[name])})"
            )
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{where}: {err}") from err


def resolve_config(name_or_path: str | Path) -> Path:
    """Resolve a config argument: an existing file, or the name of a packaged config.

    ``generate-fast``, ``generate-fast.yaml`` and ``configs/generate-fast.yaml`` all find the
    config shipped with trigger-ad when no such file exists in the working directory.

    Raises
    ------
    ConfigError
        If neither a file nor a packaged config of that name exists (listing the packaged ones).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = resources.files("triggerad.configs")
    names = sorted(p.name[:-5] for p in packaged.iterdir() if p.name.endswith(".yaml"))
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    if stem in names:
        return Path(str(packaged / f"{stem}.yaml"))
    raise ConfigError(
        f"{name_or_path}: no such config file and no packaged config {stem!r}; "
        + did_you_mean(stem, names)
    )


def read_yaml(path: str | Path) -> dict:
    """Read a YAML file into a mapping, with errors naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file ({err.strerror or err})") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at top level, found {data!r}")
    return data


def load(cls: type[T], path: str | Path, overrides: dict | None = None) -> T:
    """Load a YAML config file into the top-level config class ``cls``.

    Parameters
    ----------
    cls : dataclass type
        Top-level config class whose fields are the sections.
    path : str or Path
        The YAML file.
    overrides : dict, optional
        Section values applied on top of the file (e.g. from command-line flags), as
        ``{"section": {"key": value}}``.
    """
    data = read_yaml(path)
    for section, values in (overrides or {}).items():
        data.setdefault(section, {})
        if data[section] is None:
            data[section] = {}
        data[section].update(values)
    return build(cls, data, where=str(path))


def load_section(cls: type[T], path: str | Path, section: str) -> T:
    """Build one section of a YAML config file into ``cls`` (the other sections are not read).

    For a command that needs one section of a config shared with another command (e.g. the
    ``rates`` section of ``configs/evaluate.yaml`` for ``trigger-ad threshold``), without
    importing the other command's config classes. A missing section means all defaults.
    """
    return build(cls, read_yaml(path).get(section), where=f"{path}.{section}")


def to_dict(config: Any) -> Any:
    """Turn a (nested) config dataclass back into plain YAML-able data."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    return config


def dump(config: Any) -> str:
    """Serialise a config dataclass to YAML text."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


__all__ = ["build", "load", "load_section", "read_yaml", "resolve_config", "to_dict", "dump"]
