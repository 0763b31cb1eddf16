"""Typed YAML configuration: one dataclass per YAML section, built as ``Cls(**section)``.

A config file is a mapping of sections; each section becomes a dataclass instance. Unknown or
misspelt keys, wrong types and missing required keys raise :class:`~triggerad.errors.ConfigError`
naming the file, the key path, what was expected and what was found (``{value!r}``), and the
nearest valid key. Field types are checked from the annotations: ``int``, ``float`` (integers
accepted), ``str``, ``bool``, ``Literal[...]``, ``X | None`` and other unions (every branch's
error is reported when none fits), ``list[X]``, ``tuple[X, Y]`` (length and each position),
``tuple[X, ...]``, ``dict[K, V]`` and nested dataclasses.

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
        args = ", ".join("..." if a is Ellipsis else _type_name(a) for a in get_args(tp))
        return f"{getattr(origin, '__name__', repr(origin))}[{args}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", repr(tp))


def _reason(err: ConfigError, where: str) -> str:
    """The message of ``err`` relative to ``where`` (``[1]: expected ...`` for an item)."""
    text = str(err)
    return text.removeprefix(where).removeprefix(": ") if text.startswith(where) else text


def _convert_union(tp: Any, value: Any, where: str) -> Any:
    """The first branch of a Union that accepts ``value``; else an error listing every branch's."""
    reasons = []
    for arg in get_args(tp):
        try:
            return _convert(arg, value, where)
        except ConfigError as err:
            reasons.append(f"as {_type_name(arg)}: {_reason(err, where)}")
    raise ConfigError(f"{where}: expected {_type_name(tp)}, found {value!r} ({'; '.join(reasons)})")


def _convert_sequence(tp: Any, value: Any, where: str) -> list | tuple:
    """A list (``list[X]``) or a tuple (``tuple[X, ...]`` or fixed ``tuple[X, Y]``), item by item."""
    origin = get_origin(tp) or tp
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list ({_type_name(tp)}), found {value!r}")
    args = get_args(tp)
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            raise ConfigError(
                f"{where}: expected {len(args)} items ({_type_name(tp)}), found {len(value)}: "
                f"{value!r}"
            )
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    item = args[0] if args else Any
    items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _convert_mapping(tp: Any, value: Any, where: str) -> dict:
    """A ``dict[K, V]``: keys as K (YAML numbers become text for ``str`` keys), values as V."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping ({_type_name(tp)}), found {value!r}")
    key_tp, val_tp = get_args(tp) or (Any, Any)
    out = {}
    for key, item in value.items():
        if key_tp is str:
            if not isinstance(key, (str, int, float)) or isinstance(key, bool):
                raise ConfigError(f"{where}: expected text keys, found key {key!r}")
            key = str(key)
        else:
            key = _convert(key_tp, key, f"{where} (key {key!r})")
        out[key] = _convert(val_tp, item, f"{where}.{key}")
    return out


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the type hint ``tp`` and convert it.

    Handles ``Any``, ``Literal``, unions (``X | None`` included), ``list``, ``tuple`` (fixed
    length or ``tuple[X, ...]``), ``dict``, nested dataclasses, ``None``, ``float`` (integers
    accepted), ``int``, ``str`` and ``bool``; other types are passed through unchecked.
    """
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
        return _convert_union(tp, value, where)
    if origin in (list, tuple) or tp in (list, tuple):
        return _convert_sequence(tp, value, where)
    if origin is dict or tp is dict:
        return _convert_mapping(tp, value, where)
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
