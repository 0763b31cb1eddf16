"""Threads a computation may use beside the caller's: lent by whoever knows a core is free.

The integer graph (:meth:`triggerad.fixedpoint.graph.FixedGraph.run`) evaluates its blocks in
one thread by default: while a stream is scored the other core reads and inflates the next
unit. When nothing else runs - the last unit of a run, its reads done - the local executor
lends the spare cores (:func:`lend`) and the graph splits its blocks between that many threads
(numpy releases the GIL in the products and element-wise passes; the results are exact
integers, the same for any split).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

_THREADS: contextvars.ContextVar[int] = contextvars.ContextVar("spare_threads", default=1)


def threads() -> int:
    """Threads the current computation may use (1 unless a caller lent more)."""
    return _THREADS.get()


def cores() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def lend(n: int | None = None) -> Iterator[int]:
    """Let computations in this context use ``n`` threads (default: every CPU of the process,
    at most 4)."""
    n = max(1, min(cores(), 4) if n is None else int(n))
    token = _THREADS.set(n)
    try:
        yield n
    finally:
        _THREADS.reset(token)


@functools.cache
def pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``workers`` helper threads (created on first use)."""
    return ThreadPoolExecutor(workers, thread_name_prefix="spare")
