"""Threads a computation may use beside the caller's: lent by whoever knows a core is free.

The integer graph (:meth:`triggerad.fixedpoint.graph.FixedGraph.run`) evaluates its blocks in
one thread by default: while a stream is scored the other core reads and inflates the next
unit. When nothing else runs - the last unit of a run, its reads done - the local executor
lends the spare cores (:func:`lend`) and the graph splits its blocks between that many threads
(numpy releases the GIL in the products and element-wise passes; the results are exact
integers, the same for any split). :func:`background` runs one-off work (the git lookup, the
anomalies file's encoding) in a thread of its own and hands back a future.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

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


def background(fn: Callable[[], object], *, name: str) -> Future:
    """Run ``fn()`` in a new daemon thread called ``name``; its result (or exception) arrives in
    the returned future. For one-off work that waits without the GIL (a subprocess, an encoder)
    and must not queue behind :func:`pool`'s jobs."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as err:  # handed to the caller of future.result()
            future.set_exception(err)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
