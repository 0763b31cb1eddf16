"""Executors: run one task over many items, in this process, in worker processes or on Dask.

Every step that fans work out (event generation jobs, the entry counts of a stream's files, the
scoring of its work units) hands a *task* and its *items* to an executor and gets the results
back **in item order**, whatever the back end, so outputs do not depend on where the work ran:

======== ======================================================================================
name     where the task runs
======== ======================================================================================
local    in the calling process; a staged task (``read`` + ``score``) reads ``read_ahead``
         items ahead in a background thread while the current one is computed
process  ``workers`` processes of this machine (``ProcessPoolExecutor``, spawn start method)
dask     an existing Dask scheduler (``scheduler="tcp://host:8786"``) or a ``LocalCluster`` of
         ``workers`` processes (``pip install trigger-ad[dask]``)
======== ======================================================================================

All of them keep at most ``window`` items in flight (default: twice the workers), so memory
stays bounded on long streams, and retry a failed item up to ``retries`` times before raising
:class:`ExecutorError` naming the item and the last error. Errors of trigger-ad's own
(:class:`~triggerad.errors.TriggerADError`: bad input, bad config) are deterministic and are
raised at once, unchanged. A task sent to workers must be picklable (``cloudpickle``: closures
and lambdas are fine); it is sent once per worker, not once per item.

Example
-------
>>> with make_executor("local") as executor:
...     list(executor.map(abs, [-2, 1, -3]))
[2, 1, 3]
"""

from __future__ import annotations

import os

from triggerad.errors import ConfigError, did_you_mean
from triggerad.executor.base import (
    DEFAULT_RETRIES,
    Executor,
    ExecutorError,
    LocalExecutor,
    StagedTask,
)
from triggerad.executor.pools import DaskExecutor, ProcessExecutor

#: The executors by name (``--executor`` values).
EXECUTORS: dict[str, type[Executor]] = {
    "local": LocalExecutor,
    "process": ProcessExecutor,
    "dask": DaskExecutor,
}


def make_executor(
    kind: str,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    processes: bool = True,
    read_ahead: int = 1,
    window: int | None = None,
    retries: int = DEFAULT_RETRIES,
) -> Executor:
    """The executor ``kind`` (a name of :data:`EXECUTORS`) with its options.

    Parameters
    ----------
    kind : {"local", "process", "dask"}
        Where the tasks run.
    workers : int, optional
        Worker processes (``process``) or workers of a local Dask cluster (``dask``); default
        the number of CPUs (at least 2 for ``dask``). Ignored by ``local``.
    scheduler : str, optional
        Address of an existing Dask scheduler (``dask`` only).
    processes : bool
        Local Dask cluster of processes (True) or threads (False).
    read_ahead : int
        Items read ahead by the local executor.
    window : int, optional
        Items in flight at most (``process`` and ``dask``).
    retries : int
        Further attempts for a failed item.

    Raises
    ------
    ConfigError
        For an unknown name (listing the valid ones) or options that do not apply to ``kind``.
    """
    if kind not in EXECUTORS:
        raise ConfigError(f"unknown executor {kind!r}; " + did_you_mean(kind, EXECUTORS))
    if scheduler and kind != "dask":
        raise ConfigError(f"--scheduler {scheduler!r} needs the dask executor, found {kind!r}")
    if kind == "local":
        return LocalExecutor(read_ahead, retries=retries)
    n = workers if workers is not None else max(os.cpu_count() or 1, 2 if kind == "dask" else 1)
    if kind == "process":
        return ProcessExecutor(n, window=window, retries=retries)
    return DaskExecutor(scheduler, n, processes, window=window, retries=retries)


__all__ = ["EXECUTORS", "DaskExecutor", "Executor", "ExecutorError", "LocalExecutor",
           "ProcessExecutor", "StagedTask", "make_executor"]
