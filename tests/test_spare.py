"""Lent threads (triggerad.spare): the integer graph split across threads gives the same bits,
and the local executor lends them only for the last item (nothing left to read)."""

from __future__ import annotations

import numpy as np
from stream_samples import small_graph

from triggerad import spare
from triggerad.executor import LocalExecutor


def test_graph_split_across_lent_threads_is_bit_identical():
    graph = small_graph(block=64)
    x = np.random.default_rng(7).normal(0, 8, (1000, 9)).astype(np.float32)
    one = graph.run(x, keep=("d0",))
    for n in (2, 3, 4):
        with spare.lend(n) as lent:
            assert spare.threads() == lent == n
            split = graph.run(x, keep=("d0",))
        assert split.keys() == one.keys()
        for name in one:
            assert split[name].dtype == np.float64
            assert np.array_equal(split[name], one[name])
    assert spare.threads() == 1


class _Task:
    """A staged task recording the threads lent to each score."""

    def __init__(self):
        self.lent = []

    def read(self, item):
        return item * 10

    def score(self, item, data):
        self.lent.append(spare.threads())
        return item, data

    def __call__(self, item):
        return self.score(item, self.read(item))


def test_local_executor_lends_threads_only_for_the_last_item():
    for read_ahead in (1, 2):
        task = _Task()
        out = list(LocalExecutor(read_ahead).map(task, range(5)))
        assert out == [(i, 10 * i) for i in range(5)]
        assert task.lent[:-1] == [1] * 4
        assert task.lent[-1] == min(spare.cores(), 4)
    assert spare.threads() == 1
