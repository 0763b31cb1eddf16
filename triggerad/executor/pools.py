"""Executors over worker processes: this machine's (``process``) or a Dask cluster's (``dask``),
with a bounded window of items in flight."""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from triggerad.errors import ConfigError
from triggerad.executor.base import DEFAULT_RETRIES, Executor, log

_WORKER_TASKS: dict[int, Any] = {}

def _run_in_worker(key: int, payload: bytes, item: Any) -> Any:
    """Run the task ``key`` (unpickled once per worker process) on ``item``."""
    task = _WORKER_TASKS.get(key)
    if task is None:
        import cloudpickle

        _WORKER_TASKS.clear()  # one task at a time: drop the previous map's
        task = _WORKER_TASKS[key] = cloudpickle.loads(payload)
    return task(item)


class _Windowed(Executor):
    """Executors with futures: submit up to ``window`` items, yield results in order."""

    window: int

    def _submit(self, task_ref: Any, item: Any):
        raise NotImplementedError

    def _prepare(self, task) -> Any:
        """What is sent with every item to run ``task`` (the task itself by default)."""
        return task

    def _recover(self, err: BaseException, pending: deque, task_ref: Any) -> bool:
        """Repair the back end after ``err``; True if the failed pending items were resubmitted
        (each of them then counts an attempt)."""
        return False

    def map(self, task, items: Iterable) -> Iterator:
        """Submit ``task(item)`` with at most ``window`` items in flight; yield in item order."""
        task_ref = self._prepare(task)
        pending: deque = deque()  # [item, future, attempts]
        iterator = iter(items)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.window:
                    try:
                        item = next(iterator)
                    except StopIteration:
                        exhausted = True
                        break
                    pending.append([item, self._submit(task_ref, item), 1])
                if not pending:
                    return
                entry = pending[0]
                try:
                    result = entry[1].result()
                except Exception as err:  # noqa: BLE001 - retried or re-raised
                    self._retry_or_raise(entry[0], entry[2], err)
                    if not self._recover(err, pending, task_ref):
                        entry[1] = self._submit(task_ref, entry[0])
                        entry[2] += 1
                    continue
                pending.popleft()
                yield result
        finally:
            for _, future, _ in pending:
                future.cancel()


class ProcessExecutor(_Windowed):
    """``workers`` processes of this machine (spawn start method: safe with threads and TF).

    Parameters
    ----------
    workers : int
        Worker processes.
    window : int, optional
        Items in flight at most (default ``2 * workers``).
    retries : int
        See :class:`Executor`. A worker that dies (out of memory, killed) breaks the pool: it is
        restarted and the items in flight are submitted again; as the culprit is unknown, this
        costs each of them an attempt.
    """

    name = "process"

    def __init__(self, workers: int = 2, *, window: int | None = None,
                 retries: int = DEFAULT_RETRIES):
        super().__init__(retries=retries)
        if workers < 1:
            raise ConfigError(f"process executor: workers must be >= 1, found {workers!r}")
        self.workers = workers
        self.window = window or 2 * workers
        self._pool: ProcessPoolExecutor | None = None
        self._key = 0

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def _prepare(self, task) -> tuple[int, bytes]:
        import cloudpickle

        self._key += 1
        if self._pool is None:
            self._pool = self._new_pool()
        return self._key, cloudpickle.dumps(task)

    def _submit(self, task_ref, item):
        key, payload = task_ref
        try:
            return self._pool.submit(_run_in_worker, key, payload, item)
        except BrokenProcessPool as err:  # a worker died since the last result: fail this item
            failed: Future = Future()     # like the ones in flight, so that _recover restarts
            failed.set_exception(err)     # the pool when it reaches the front
            return failed

    def _recover(self, err, pending, task_ref) -> bool:
        if not isinstance(err, BrokenProcessPool):
            return False
        log.warning("process executor: a worker died; restarting the pool")
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()
        for entry in pending:
            future = entry[1]
            if not future.done() or future.cancelled() or future.exception() is not None:
                entry[1] = self._submit(task_ref, entry[0])
                entry[2] += 1
        return True

    def close(self) -> None:
        """Shut the worker processes down."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(_Windowed):
    """A Dask cluster: an existing scheduler, or a ``LocalCluster`` started (and closed) here.

    Parameters
    ----------
    scheduler : str, optional
        Address of an existing scheduler (``tcp://host:8786``); None starts a local cluster.
    workers : int
        Workers of the local cluster (one thread each).
    processes : bool
        Local cluster of worker processes (True) or of threads in this process (False).
    window : int, optional
        Items in flight at most (default ``2 *`` the cluster's workers).
    retries : int
        See :class:`Executor`.
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int = 2, processes: bool = True,
                 *, window: int | None = None, retries: int = DEFAULT_RETRIES):
        super().__init__(retries=retries)
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as err:
            raise ConfigError(
                "executor 'dask' needs dask.distributed: pip install 'trigger-ad[dask]'"
            ) from err
        logging.getLogger("distributed").setLevel(max(log.getEffectiveLevel(), logging.WARNING))
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="30s")
            except (OSError, ValueError, TypeError) as err:  # unreachable / malformed address
                raise ConfigError(
                    f"--scheduler {scheduler!r}: cannot connect ({err}); expected the address of "
                    "a running Dask scheduler, e.g. tcp://host:8786"
                ) from err
        else:
            if workers < 1:
                raise ConfigError(f"dask executor: workers must be >= 1, found {workers!r}")
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                        processes=processes, dashboard_address=":0")
            self.client = Client(self.cluster)
        n_workers = max(1, len(self.client.scheduler_info()["workers"]))
        self.window = window or 2 * n_workers
        log.info("dask: %d workers at %s", n_workers, self.client.scheduler.address)

    def _prepare(self, task):
        # scattered once: workers fetch the task once and keep it, instead of once per item
        return self.client.scatter(task, broadcast=True, hash=False)

    def _submit(self, task_ref, item):
        return self.client.submit(_call, task_ref, item, pure=False)

    def close(self) -> None:
        """Close the client and any local cluster started here."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _call(task, item):
    """``task(item)`` (a module-level function, so that Dask can ship it by reference)."""
    return task(item)
