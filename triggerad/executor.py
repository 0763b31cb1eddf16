"""Executors: run a :class:`~anomaly.stream.scoring.UnitTask` over work units, results in order.

``LocalExecutor`` runs in the calling process and reads ahead: a background thread reads the next
unit(s) (h5py, uproot and pyarrow release the GIL while decompressing) while the calling thread
scores the current one and the driver writes it. ``DaskExecutor`` submits whole tasks (read and
score) to a Dask cluster - an existing one (``scheduler="tcp://host:8786"``) or a
``LocalCluster`` of ``workers`` processes. Both keep a bounded number of units in flight and yield
results in plan order, so that the driver can apply the rate controller and write the manifest
sequentially. Outputs are therefore identical to a sequential run.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


class LocalExecutor:
    """Execution in the driver process, reading ``read_ahead`` units ahead in a thread.

    Parameters
    ----------
    read_ahead : int
        Units read in advance by one background thread (0: read and score sequentially in the
        calling thread). Memory holds at most ``read_ahead + 1`` units of events.
    """

    name = "local"

    def __init__(self, read_ahead: int = 1):
        if read_ahead < 0:
            raise ValueError(f"read_ahead must be >= 0, found {read_ahead!r}")
        self.read_ahead = read_ahead

    def map(self, task, units: Iterable) -> Iterator:
        """``task.score(unit, task.read(unit))`` for each unit, lazily and in order."""
        if not self.read_ahead:
            for unit in units:
                yield task(unit)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
            pending: deque = deque()
            for unit in units:
                pending.append((unit, pool.submit(task.read, unit)))
                if len(pending) > self.read_ahead:
                    ready, batch = pending.popleft()
                    yield task.score(ready, batch.result())
            while pending:
                ready, batch = pending.popleft()
                yield task.score(ready, batch.result())

    def close(self) -> None:
        """Nothing to release (the reading thread ends with each :meth:`map`)."""


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

    def map(self, task, units: Iterable) -> Iterator:
        """Submit ``task(unit)`` for each unit (at most ``window`` in flight); yield in order."""
        pending: deque = deque()
        for unit in units:
            pending.append(self.client.submit(task, unit, pure=False))
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
