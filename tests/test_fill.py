"""The fill-like stream generator: pile-up schedule, per-block configs, unweighting, a tiny fill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triggerad.errors import ConfigError
from triggerad.events import EventBatch
from triggerad.generation.config import load_config
from triggerad.generation.fill import block_config, generate_fill, mu_schedule, unweight

FILL_CONFIG = Path(__file__).parents[1] / "configs" / "generate-fill.yaml"


def test_mu_schedule_shapes_and_errors():
    mu = mu_schedule(5, 60, 20)
    np.testing.assert_allclose(mu, 60 * (1 / 3) ** (np.arange(5) / 4))
    assert mu[0] == 60 and mu[-1] == pytest.approx(20) and np.all(np.diff(np.log(mu)) < 0)
    np.testing.assert_allclose(mu_schedule(3, 60, 20, shape="linear"), [60, 40, 20])
    np.testing.assert_allclose(mu_schedule(1, 30, 10), [30])
    with pytest.raises(ConfigError, match="unknown 'exponentail'.*did you mean 'exponential'"):
        mu_schedule(5, 60, 20, shape="exponentail")
    with pytest.raises(ConfigError, match="mu_end=0"):
        mu_schedule(5, 60, 0)


def test_block_config_renames_processes_and_sets_mu():
    base = load_config(FILL_CONFIG)
    cfg = block_config(base, 42.5, "b007", {"W": 1.0, "Z": 0.1}, job_size=300)
    assert list(cfg.processes) == ["W@b007", "Z@b007"]
    assert [p.group for p in cfg.processes.values()] == ["W", "Z"]
    assert cfg.processes["Z@b007"].events_fraction == 0.1
    assert cfg.pileup.mu == 42.5 and cfg.output.job_size == 300 and cfg.output.batch_size == 250
    assert base.pileup.mu == 20.0 and list(base.processes) == ["W", "Z"]  # base untouched
    with pytest.raises(ConfigError, match=r"processes \['ttbar'\] not in the generation config"):
        block_config(base, 40, "b000", {"ttbar": 1.0}, job_size=300)


def test_unweight_keeps_events_with_probability_w_over_wref():
    n = 20_000
    batch = EventBatch.empty(n, event=np.arange(n, dtype=np.int64),
                             weight=np.where(np.arange(n) % 2 == 0, 1.0, 0.25))
    out, over = unweight(batch, np.random.default_rng(3), 1.0)
    assert over == 0.0 and np.all(out.weight == 1.0)
    assert np.count_nonzero(out.event % 2 == 0) == n // 2  # weight = w_ref: always kept
    assert np.count_nonzero(out.event % 2 == 1) == pytest.approx(n / 2 * 0.25, rel=0.05)
    _, over = unweight(batch, np.random.default_rng(3), 0.5)
    assert over == 0.5


def test_tiny_fill_has_falling_pileup_unit_weights_and_lumi_blocks(tmp_path):
    base = load_config(FILL_CONFIG)
    base.pileup.pool_size, base.pileup.max_reuse = 200, 50.0
    base.pileup.cache_dir = str(tmp_path / "cache")
    fill = generate_fill(base, mu_schedule(2, 8, 2), 60, seed=4, job_size=60, fractions={"W": 1})
    assert [row["lumi"] for row in fill.table] == [1, 2]
    assert [row["mu"] for row in fill.table] == [8.0, 2.0]
    first, second = fill.blocks
    assert len(first) > 10 and len(second) > 10  # ~45 % of W -> e/mu nu pass the trigger
    assert first.pileup.mean() > second.pileup.mean() + 3
    for k, block in enumerate(fill.blocks):
        assert np.all(block.lumi == k + 1) and np.all(block.run == 1) and np.all(block.weight == 1)
    events = np.concatenate([b.event for b in fill.blocks])
    np.testing.assert_array_equal(events, np.arange(len(events)))
    assert fill.pileup["route"] == "library" and fill.pileup["reuse_factor"] > 0
    assert set(np.concatenate([b.process for b in fill.blocks])) == {"W"}
    paths = fill.write(tmp_path / "fill", blocks_per_file=2)
    assert [p.name for p in paths] == ["fill_00.h5"]
