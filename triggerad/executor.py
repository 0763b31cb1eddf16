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

import logging
import multiprocessing
import os
import reprlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, runtime_checkable

from triggerad.errors import ConfigError, TriggerADError, did_you_mean

log = logging.getLogger(__name__)

#: Attempts after the first one for an item whose task fails (worker lost, transient I/O).
DEFAULT_RETRIES = 2

_REPR = reprlib.Repr()
_REPR.maxother = _REPR.maxstring = 160


class ExecutorError(TriggerADError, RuntimeError):
    """A task failed on an item on every attempt."""


@runtime_checkable
class StagedTask(Protocol):
    """A task in two stages: ``read(item)`` (I/O) then ``score(item, data)`` (computation).

    Calling the task runs both. The local executor overlaps the reading of the next items with
    the computation of the current one; the others simply call the task.
    """

    def read(self, item: Any) -> Any: ...

    def score(self, item: Any, data: Any) -> Any: ...


def _retriable(err: BaseException) -> bool:
    """Worth another attempt: not one of trigger-ad's own (deterministic) errors."""
    return isinstance(err, Exception) and not isinstance(err, TriggerADError)


class Executor:
    """Base of the executors: ordered ``map`` with bounded work in flight and retries.

    Parameters
    ----------
    retries : int
        Further attempts for an item whose task raised (see the module docstring).
    """

    name = "base"

    def __init__(self, *, retries: int = DEFAULT_RETRIES):
        if retries < 0:
            raise ConfigError(f"executor retries must be >= 0, found {retries!r}")
        self.retries = retries

    def map(self, task: Callable[[Any], Any], items: Iterable) -> Iterator:
        """``task(item)`` for each item, lazily, in item order."""
        raise NotImplementedError

    def close(self) -> None:
        """Release workers and clusters started by this executor."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _failed(self, item: Any, attempts: int, err: BaseException) -> ExecutorError:
        return ExecutorError(
            f"{self.name} executor: the task failed on {_REPR.repr(item)} {attempts} time(s), "
            f"last with {type(err).__name__}: {err}"
        )

    def _retry_or_raise(self, item: Any, attempts: int, err: BaseException) -> None:
        """Return if ``item`` gets another attempt; otherwise raise the final error."""
        if not _retriable(err):
            raise err
        if attempts > self.retries:
            raise self._failed(item, attempts, err) from err
        log.warning("%s executor: attempt %d on %s failed (%s: %s); retrying", self.name,
                    attempts, _REPR.repr(item), type(err).__name__, err)


class LocalExecutor(Executor):
    """In the calling process; staged tasks read ``read_ahead`` items ahead in a thread.

    Parameters
    ----------
    read_ahead : int
        Items a staged task reads in advance in one background thread (0: read and compute one
        after the other). Memory holds at most ``read_ahead + 1`` items' data.
    retries : int
        See :class:`Executor`.
    """

    name = "local"

    def __init__(self, read_ahead: int = 1, *, retries: int = DEFAULT_RETRIES):
        super().__init__(retries=retries)
        if read_ahead < 0:
            raise ValueError(f"read_ahead must be >= 0, found {read_ahead!r}")
        self.read_ahead = read_ahead

    def _call(self, task, item, first: Callable[[], Any] | None = None) -> Any:
        """``task(item)`` with retries; ``first`` is the first attempt when it differs."""
        attempts = 0
        while True:
            attempts += 1
            try:
                return first() if first is not None and attempts == 1 else task(item)
            except Exception as err:  # noqa: BLE001 - retried or re-raised
                self._retry_or_raise(item, attempts, err)

    def map(self, task, items: Iterable) -> Iterator:
        """``task(item)`` for each item, lazily and in order (staged tasks read ahead)."""
        if not self.read_ahead or not isinstance(task, StagedTask):
            for item in items:
                yield self._call(task, item)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
            pending: deque = deque()

            def finish() -> Any:
                item, data = pending.popleft()
                return self._call(task, item, lambda: task.score(item, data.result()))

            for item in items:
                pending.append((item, pool.submit(task.read, item)))
                if len(pending) > self.read_ahead:
                    yield finish()
            while pending:
                yield finish()


# Worker side of the process executor: the task arrives once per worker, pickled.
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
        return self._pool.submit(_run_in_worker, key, payload, item)

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
