"""The executor interface (:class:`Executor`, :class:`StagedTask`, retries) and the in-process
:class:`LocalExecutor`; the pools of worker processes are in :mod:`triggerad.executor.pools`."""

from __future__ import annotations

import contextlib
import logging
import reprlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

from triggerad import spare
from triggerad.errors import ConfigError, TriggerADError

log = logging.getLogger("triggerad.executor")

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
        items, done = iter(items), object()  # done: no items left
        with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
            pending: deque = deque()

            def read_next() -> None:
                item = next(items, done)
                if item is not done:
                    pending.append((item, pool.submit(task.read, item)))

            for _ in range(self.read_ahead + 1):
                read_next()
            while pending:
                item, data = pending.popleft()
                # nothing left to read: the computation may use the reading thread's core
                with contextlib.nullcontext() if pending else spare.lend():
                    result = self._call(task, item,
                                        lambda i=item, d=data: task.score(i, d.result()))
                del data  # this item's data is no longer held: the next read may start
                read_next()  # before the caller handles the result: the reads stay back to back
                yield result


# Worker side of the process executor: the task arrives once per worker, pickled.
