"""Reading side of the tagger pipeline: prepared rows, the chunk cache and its budget, and the
batches of a seed with and without the cache."""

from __future__ import annotations

import numpy as np
import pytest
from tagger_samples import jets, write_sample

from tagger import inputs as tin
from tagger import pipeline, reading
from tagger.train import load_config, prepare, streams


def _cfg(folder, cache_mb):
    return load_config("tagger-train-fast", {
        "data": {"dir": str(folder), "chunk_entries": 128, "shuffle_buffer": 600,
                 "cache_mb": cache_mb},
        "training": {"batch_size": 300, "domain_batch_size": 100}})


def _take(gen, n):
    return [next(gen) for _ in range(n)]


def test_prepared_rows_equal_the_model_inputs():
    b = jets(500, seed=3)
    norm = tin.fit_normalisation(b)
    rows = reading.prepare_rows(b, norm)
    x = tin.arrays(b, norm, np.zeros(500, np.float32))
    for f in ("charged", "neutral", "sv", "globals"):
        assert rows[f].dtype == np.float32
        np.testing.assert_array_equal(rows[f], x[f])
    np.testing.assert_array_equal(rows["pt"], b.globals[:, reading.PT])
    np.testing.assert_array_equal(rows["eta"], b.globals[:, reading.ETA])
    np.testing.assert_array_equal(rows["ctau"], b.ctau)
    np.testing.assert_array_equal(rows["label"], b.label)
    assert (rows["charged"][~b.charged.any(axis=-1)] == 0).all()   # padding stays 0


def test_merge_is_concatenation_then_permutation():
    group = [{"label": np.arange(5) + 10 * i, "x": np.arange(10.0).reshape(5, 2) + 10 * i}
             for i in range(3)]
    got = reading.merge(group, np.random.default_rng(7))
    perm = np.random.default_rng(7).permutation(15)
    for f in ("label", "x"):
        np.testing.assert_array_equal(got[f], np.concatenate([g[f] for g in group])[perm])


def test_cache_keeps_chunks_within_budget_only():
    cache = reading.ChunkCache(2500)
    calls = []

    def load(k):
        def f():
            calls.append(k)
            return {"label": np.zeros(1000, np.int8)}   # 1000 bytes
        return f

    for k in (1, 2, 3, 1, 2, 3):
        assert len(cache.get((k,), load(k))["label"]) == 1000
    assert calls == [1, 2, 3, 3] and cache.used == 2000 and sorted(cache.store) == [(1,), (2,)]


@pytest.mark.parametrize("cache_mb", [0.5, 1024.0])
def test_cached_and_streamed_pipelines_give_identical_batches(tmp_path, cache_mb):
    """Three passes of the training split and the domain stream, a validation pass: the same
    batches (bit for bit) with the whole sample cached, a partial cache (0.5 MiB: some chunks
    are read on every pass) and no cache."""
    write_sample(tmp_path, 700, 600, 300)
    streamed = _cfg(tmp_path, 0)
    prep = prepare(streamed)
    ref = streams(streamed, prep)
    assert ref.cache is None
    cached = streams(_cfg(tmp_path, cache_mb), prep)
    a = _take(pipeline.batches(ref, split="train", seed=5, domain=True), 12)
    b = _take(pipeline.batches(cached, split="train", seed=5, domain=True), 12)
    va = list(pipeline.batches(ref, split="val", seed=6, domain=True))
    vb = list(pipeline.batches(cached, split="val", seed=6, domain=True))
    assert len(va) == len(vb) >= 1
    for (xa, ta), (xb, tb) in zip(a + va, b + vb, strict=True):
        for k in xa:
            np.testing.assert_array_equal(xa[k], xb[k])
        for k in ta:
            np.testing.assert_array_equal(ta[k], tb[k])
    rows = sum(len(v["label"]) for v in cached.cache.store.values())
    per_row = (6 * 17 + 5 * 6 + 2 * 12 + 14 + 3) * 4 + 1   # float32 inputs, pt, eta, ctau; label
    assert cached.cache.used == rows * per_row <= cache_mb * 2**20
    if cache_mb > 1:   # every chunk of both samples, per split: 1300 + 300 jets, once each
        assert rows == 1600 and {k[3] for k in cached.cache.store} == {"train", "val"}
    else:
        assert 0 < rows < 1600
