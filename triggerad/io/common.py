"""Pieces shared by the readers: branch maps (packaged defaults + user overrides) and low-level errors.

A branch map is a YAML mapping that tells a reader which dataset / branch / column holds each input.
The defaults ship in ``configs/branch_maps/<kind>.yaml``; a user's ``--branch-map FILE`` overrides
only the keys it sets (nested sections are merged key by key).
"""

from __future__ import annotations

import copy
import functools
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TypeVar

from triggerad.config import build, read_yaml
from triggerad.errors import InputFileError, TriggerADError

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


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Turn a low-level library error inside the block into :class:`InputFileError`.

    Wrap only the library calls that read the file (opening it, reading a dataset or a branch),
    never our own processing: a ``ValueError`` or ``KeyError`` raised by a bug in trigger-ad must
    surface as itself, not as "truncated or corrupt".

    Parameters
    ----------
    what : str
        The start of the message: the file (and tree / dataset) and what was being read, e.g.
        ``"f.root:Events: cannot read branch 'Jet_pt' entries [0, 100)"``.

    Example
    -------
    >>> with reading("f.h5: cannot read dataset 'Particles'"):   # doctest: +SKIP
    ...     values = dataset[0:100]
    """
    try:
        yield
    except TriggerADError:
        raise
    except low_level_errors() as err:
        raise InputFileError(f"{what} (truncated or corrupt?): {err}") from err


def default_branch_map_path(kind: str) -> Path:
    """Path of the packaged default branch map of reader ``kind``."""
    return Path(str(resources.files("triggerad.configs") / "branch_maps" / f"{kind}.yaml"))


def merge_maps(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merged key by key)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_maps(out[key], value)
        else:
            out[key] = value
    return out


def read_overrides(kind: str, user: dict | str | Path | None) -> tuple[dict, str]:
    """A user's branch-map overrides as a mapping, and where they come from (for messages)."""
    if isinstance(user, (str, Path)):
        data = read_yaml(user)
        return data, str(user)
    return dict(user or {}), f"branch map of the {kind} reader"


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
    overrides, where = read_overrides(kind, user)
    if not user:
        where = str(default_path)
    return build(cls, merge_maps(read_default_map(default_path), overrides), where=where)


#: Parsed packaged branch maps by (path, modification time, size): a run makes its readers anew.
_DEFAULT_MAPS: dict[tuple, dict] = {}


def read_default_map(path: Path) -> dict:
    """``read_yaml(path)`` of a packaged branch map, parsed once per process while the file is
    unchanged (~0.3 ms to parse; a fresh copy is returned each time)."""
    try:
        stat = path.stat()
    except OSError:
        return read_yaml(path)  # its error names the file
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _DEFAULT_MAPS:
        _DEFAULT_MAPS[key] = read_yaml(path)
    return copy.deepcopy(_DEFAULT_MAPS[key])
