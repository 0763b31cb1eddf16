"""The threads that inflate compressed chunks beside the caller (one pool per process)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

_POOLS: dict[int, ThreadPoolExecutor] = {}


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
