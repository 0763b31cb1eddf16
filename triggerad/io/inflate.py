"""Inflation of compressed chunks beside the caller: the inflater and the thread pool.

The inflater is ISA-L's (:mod:`isal.isal_zlib`, the ``isal`` package): the same deflate
streams as :mod:`zlib`, the same bytes out, about half the CPU on the event files' chunks
(``Particles``: 0.42 vs 0.82 us/event, see docs/stream.md), and it releases the GIL while it
inflates as :mod:`zlib` does. Where the package cannot be imported (a platform without a
wheel) the standard :mod:`zlib` is used.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

_POOLS: dict[int, ThreadPoolExecutor] = {}

#: The chunk a read ended inside, per (file, dataset): ``(chunk start, compressed bytes,
#: inflated bytes)``. The next unit of the same file starts inside that chunk and takes it from
#: here instead of inflating it again; used only if the compressed bytes read again are equal.
_BOUNDARY: dict[tuple[str, str], tuple[int, bytes, bytes]] = {}

#: Entries kept in :data:`_BOUNDARY` (one per dataset of the files being read).
BOUNDARY_ENTRIES = 16


class Inflater(NamedTuple):
    """A zlib-compatible ``decompress(data, bufsize=...)`` and the exception it raises."""

    name: str
    decompress: Callable[..., bytes]
    error: type[Exception]


def choose() -> Inflater:
    """ISA-L's inflater if the ``isal`` package imports, else the standard :mod:`zlib`."""
    try:
        from isal import isal_zlib
    except ImportError:
        return Inflater("zlib", zlib.decompress, zlib.error)
    return Inflater("isal", isal_zlib.decompress, isal_zlib.error)


#: The inflater of this process (:func:`choose`).
INFLATER = choose()


def boundary_get(key: tuple[str, str], lo: int, data: bytes) -> bytes | None:
    """The inflated bytes of the chunk at ``lo`` of ``key`` kept by :func:`boundary_put`, if
    its compressed bytes were ``data``; else None."""
    kept = _BOUNDARY.get(key)
    if kept is not None and kept[0] == lo and kept[1] == data:
        return kept[2]
    return None


def boundary_put(key: tuple[str, str], lo: int, data: bytes, inflated: bytes) -> None:
    """Keep the chunk at ``lo`` of ``key`` (compressed ``data``, ``inflated``) for the next read."""
    if len(_BOUNDARY) >= BOUNDARY_ENTRIES and key not in _BOUNDARY:
        _BOUNDARY.clear()
    _BOUNDARY[key] = (lo, data, inflated)


def threads() -> int:
    """Threads of the pool: the CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def pool() -> ThreadPoolExecutor:
    """This process's pool (a forked worker gets its own: threads do not survive a fork)."""
    pid = os.getpid()
    if pid not in _POOLS:
        _POOLS[pid] = ThreadPoolExecutor(threads(), thread_name_prefix="inflate")
    return _POOLS[pid]
