"""Executors: interchangeable back ends, results in item order, bounded work in flight, retries."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from triggerad.errors import ConfigError
from triggerad.executor import ExecutorError, LocalExecutor, ProcessExecutor, make_executor


def square_after_a_nap(x: int) -> int:
    time.sleep(random.Random(x).uniform(0, 0.02))
    return x * x


class FlakyTask:
    """Fails the first ``failures`` attempts on each item (counted in marker files)."""

    def __init__(self, folder: Path, failures: int, error: type = RuntimeError,
                 crash_on: int | None = None):
        self.folder, self.failures, self.error, self.crash_on = folder, failures, error, crash_on

    def __call__(self, item: int) -> int:
        marker = self.folder / f"item{item}"
        attempts = int(marker.read_text()) if marker.exists() else 0
        tmp = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
        tmp.write_text(str(attempts + 1))
        tmp.replace(marker)  # atomic: a worker killed mid-write leaves no empty marker
        if item == self.crash_on and attempts < self.failures:
            os._exit(3)  # the worker process dies
        if self.crash_on is None and attempts < self.failures:
            raise self.error(f"attempt {attempts + 1} on {item} failed")
        return 10 * item


class Items:
    """Iterable counting how many items were taken, to bound the work in flight."""

    def __init__(self, n: int):
        self.n, self.taken = n, 0

    def __iter__(self):
        for i in range(self.n):
            self.taken += 1
            yield i


@pytest.fixture(scope="module")
def pool():
    with ProcessExecutor(2) as executor:
        yield executor


def test_results_in_item_order_with_bounded_work_in_flight(pool):
    for executor, window in ((LocalExecutor(), 1), (pool, pool.window)):
        items = Items(40)
        for k, result in enumerate(executor.map(square_after_a_nap, items)):
            assert result == k * k
            assert items.taken <= k + 1 + window
        assert items.taken == 40
    assert pool.window == 4


def test_a_task_with_closures_runs_in_worker_processes(pool):
    offset = 7
    assert list(pool.map(lambda x: x + offset, range(5))) == [7, 8, 9, 10, 11]


def test_failed_items_are_retried_then_reported(tmp_path, pool):
    for executor in (LocalExecutor(retries=2), pool):
        folder = tmp_path / executor.name
        folder.mkdir()
        assert list(executor.map(FlakyTask(folder, failures=2), range(3))) == [0, 10, 20]
        assert [int((folder / f"item{i}").read_text()) for i in range(3)] == [3, 3, 3]
    folder = tmp_path / "no-retry"
    folder.mkdir()
    with pytest.raises(ExecutorError, match=r"local executor: the task failed on 0 1 time\(s\), "
                       r"last with RuntimeError: attempt 1 on 0 failed"):
        list(LocalExecutor(retries=0).map(FlakyTask(folder, failures=1), range(3)))


def test_own_errors_are_not_retried(tmp_path):
    with pytest.raises(ConfigError, match="attempt 1 on 0 failed"):
        list(LocalExecutor(retries=3).map(FlakyTask(tmp_path, 5, ConfigError), range(2)))
    assert (tmp_path / "item0").read_text() == "1"


@pytest.mark.slow
def test_a_dead_worker_is_replaced(tmp_path):
    # the crash breaks the pool: it is restarted and the items in flight are submitted again
    with ProcessExecutor(2, retries=1) as executor:
        assert list(executor.map(FlakyTask(tmp_path, 1, crash_on=2), range(6))) == [
            0, 10, 20, 30, 40, 50]
    assert (tmp_path / "item2").read_text() == "2"


def test_dask_executor_runs_in_order():
    pytest.importorskip("dask.distributed")
    with make_executor("dask", workers=2, processes=False) as executor:
        assert executor.name == "dask"
        assert list(executor.map(square_after_a_nap, range(12))) == [i * i for i in range(12)]


def test_unknown_executor_and_misplaced_scheduler():
    with pytest.raises(ConfigError, match=r"unknown executor 'dsak'; did you mean 'dask'\? "
                       r"Valid: 'dask', "):
        make_executor("dsak")
    with pytest.raises(ConfigError, match="--scheduler 'tcp://h:1' needs the dask executor"):
        make_executor("process", scheduler="tcp://h:1")
    assert make_executor("local").name == "local"
