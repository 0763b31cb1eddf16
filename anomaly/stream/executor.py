"""Executors: run the unit task over work units and yield the results in plan order.

``LocalExecutor`` runs in the calling process. ``DaskExecutor`` submits tasks to a Dask
cluster - an existing one (``scheduler="tcp://host:8786"``) or a ``LocalCluster`` of ``workers``
processes - keeping at most ``window`` tasks in flight, and yields results in submission order so
that the driver can apply the rate controller and write the manifest sequentially. Outputs are
therefore identical to a local run.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator

log = logging.getLogger(__name__)


class LocalExecutor:
    """Sequential execution in the driver process."""

    name = "local"

    def map(self, fn: Callable, items: Iterable, *args) -> Iterator:
        """``fn(item, *args)`` for each item, lazily and in order."""
        for item in items:
            yield fn(item, *args)

    def close(self) -> None:
        """Nothing to release."""


class DaskExecutor:
    """Execution on a Dask cluster with ordered, bounded-memory result delivery.

    Parameters
    ----------
    scheduler : str, optional
        Address of an existing scheduler (``tcp://host:8786``); if None a local cluster is started.
    workers : int
        Workers of the local cluster.
    processes : bool
        Local cluster with worker processes (True) or threads in this process (False).
    window : int, optional
        Tasks in flight at most (default: 2 x number of workers).
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int = 2, processes: bool = True,
                 window: int | None = None):
        from dask.distributed import Client, LocalCluster

        logging.getLogger("distributed").setLevel(max(log.getEffectiveLevel(), logging.WARNING))
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                        processes=processes, dashboard_address=":0")
            self.client = Client(self.cluster)
        n_workers = max(1, len(self.client.scheduler_info()["workers"]))
        self.window = window or 2 * n_workers
        log.info("dask: %d workers at %s", n_workers, self.client.scheduler.address)

    def map(self, fn: Callable, items: Iterable, *args) -> Iterator:
        """Submit ``fn(item, *args)`` for each item; yield results in item order."""
        pending: deque = deque()
        for item in items:
            pending.append(self.client.submit(fn, item, *args, pure=False))
            if len(pending) >= self.window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        """Close the client and any local cluster started here."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(kind: str, scheduler: str | None = None, workers: int = 2,
                  processes: bool = True) -> LocalExecutor | DaskExecutor:
    """``LocalExecutor()`` for ``local``; ``DaskExecutor(...)`` for ``dask``."""
    if kind == "dask":
        return DaskExecutor(scheduler, workers, processes)
    return LocalExecutor()
