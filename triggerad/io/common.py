"""Pieces shared by the readers: branch maps (packaged defaults + user overrides) and low-level errors.

A branch map is a YAML mapping that tells a reader which dataset / branch / column holds each input.
The defaults ship in ``configs/branch_maps/<kind>.yaml``; a user's ``--branch-map FILE`` overrides
only the keys it sets (nested sections are merged key by key).
"""

from __future__ import annotations

import functools
import struct
import zlib
from importlib import resources
from pathlib import Path
from typing import TypeVar

from triggerad.config import build, read_yaml

T = TypeVar("T")


@functools.cache
def low_level_errors() -> tuple[type[BaseException], ...]:
    """Exceptions low-level libraries (h5py, uproot, pyarrow) raise on truncated or corrupt files.

    Readers translate them into :class:`~triggerad.errors.InputFileError` at their boundary
    (uproot's ``DeserializationError`` subclasses no built-in; uproot is imported lazily).
    """
    from uproot import DeserializationError

    return (
        OSError, ValueError, KeyError, EOFError, IndexError, struct.error, zlib.error,
        DeserializationError,
    )


def default_branch_map_path(kind: str) -> Path:
    """Path of the packaged default branch map of reader ``kind``."""
    return Path(str(resources.files("triggerad.configs") / "branch_maps" / f"{kind}.yaml"))


def _merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merged key by key)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_branch_map(cls: type[T], kind: str, user: dict | str | Path | None = None) -> T:
    """Build the typed branch map of reader ``kind``: packaged defaults overridden by ``user``.

    Parameters
    ----------
    cls : dataclass type
        The reader's branch-map class.
    kind : str
        Reader name (``adc2021``, ``delphes``, ...), selecting the packaged default YAML.
    user : dict, str or Path, optional
        Overrides: a mapping, or the path of a YAML file holding one.

    Raises
    ------
    ConfigError
        On an unknown (misspelt) key, naming the file and the nearest valid key.
    """
    default_path = default_branch_map_path(kind)
    where = str(default_path) if not user else f"branch map of the {kind} reader"
    if isinstance(user, (str, Path)):
        where = str(user)
        user = read_yaml(user)
    return build(cls, _merge(read_yaml(default_path), user or {}), where=where)
