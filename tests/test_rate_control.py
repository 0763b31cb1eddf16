"""Rate control: the ``quantile`` rule (drift, step response, feed-forward, payback, warm-up,
config), the PID rule on a drifting stream (rate held, causal, chunking-invariant) and the
monitor's Garwood intervals.

Synthetic streams with fixed seeds: exponential scores whose scale grows with the events'
pile-up, so the threshold that gives the target fraction is known in closed form.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from triggerad.errors import ConfigError
from triggerad.stream.calibration import fit_feedforward
from triggerad.stream.config import ControlConfig, control_from_file
from triggerad.stream.control import ControllerState, RateController, block_keys
from triggerad.stream.monitor import garwood

TARGET = 0.1
T0 = -np.log(TARGET)  # accepts exactly TARGET of unit-scale exponential scores
#: d ln(score scale) / d pile-up of the synthetic streams
SLOPE = 0.015


def fill_stream(*, blocks=20, block=2000, mu=(60.0, 20.0), seed=5, step=None):
    """Scores, per-event pile-up and block keys of a fill whose mu falls exponentially.

    The score scale is ``exp(SLOPE (pileup - 20))`` (x ``step[1]`` from block ``step[0]`` on), so
    the ideal output at pile-up p is ``SLOPE (p - 20)`` (+ ln step).
    """
    rng = np.random.default_rng(seed)
    mus = mu[0] * (mu[1] / mu[0]) ** (np.arange(blocks) / max(blocks - 1, 1))
    pileup = rng.poisson(np.repeat(mus, block)).astype(np.float64)
    scale = np.exp(SLOPE * (pileup - 20))
    if step is not None:
        scale[step[0] * block:] *= step[1]
    scores = rng.exponential(1.0, len(pileup)) * scale
    lumi = np.repeat(np.arange(1, blocks + 1), block)
    keys = block_keys(np.ones(len(lumi), np.int64), lumi, np.arange(len(lumi)), 10_000)
    return scores, pileup, keys


def run(config, scores, pileup, keys, *, chunk=3000, state=None):
    """Apply a controller in chunks not aligned with the blocks (as the stream driver does)."""
    ctl = RateController(config, T0, TARGET, state)
    parts = [ctl.apply(scores[i:i + chunk], keys[0][i:i + chunk], keys[1][i:i + chunk],
                       pileup=pileup[i:i + chunk]) for i in range(0, len(scores), chunk)]
    return ctl, [np.concatenate([p[k] for p in parts]) for k in range(3)]


def block_ratios(accepted, blocks):
    return accepted.reshape(blocks, -1).mean(axis=1) / TARGET


def quantile(**overrides):
    return ControlConfig(enabled=True, method="quantile", **overrides)


def calibration():
    """Feed-forward fitted on an independent, smaller fill (another seed)."""
    scores, pileup, _ = fill_stream(block=500, seed=99)
    return fit_feedforward(scores, pileup, threshold=T0, target_fraction=TARGET)


def test_fit_feedforward_recovers_the_known_threshold_model():
    ff = calibration()
    # ideal output SLOPE (p - 20): slope SLOPE, intercept -20 SLOPE
    assert ff["feedforward_slope"] == pytest.approx(SLOPE, abs=0.002)
    assert ff["feedforward_intercept"] == pytest.approx(-20 * SLOPE, abs=0.08)
    assert len(ff["bins"]) == 5 and sum(b["events"] for b in ff["bins"]) == 10_000


def test_first_block_starts_at_the_feed_forward_prediction():
    ff = calibration()
    cfg = quantile(**{k: v for k, v in ff.items() if k != "bins"})
    scores, pileup, keys = fill_stream()
    ctl, (threshold, accepted, _) = run(cfg, scores, pileup, keys)
    predicted = T0 * np.exp(ff["feedforward_intercept"] + ff["feedforward_slope"] * pileup[0])
    assert threshold[0] == pytest.approx(predicted, rel=1e-12)
    assert block_ratios(accepted, 20)[0] == pytest.approx(1.0, abs=0.1)
    # the stored threshold (right at pile-up 20) gives 0.1 ** exp(-0.6) = 2.8x the target at 60
    assert np.mean(scores[:2000] > T0) / TARGET == pytest.approx(2.82, abs=0.15)


def test_quantile_rule_holds_the_rate_under_the_drift_where_fixed_and_pid_do_not():
    ff = calibration()
    scores, pileup, keys = fill_stream()
    results = {}
    for name, cfg in {
        "fixed": ControlConfig(enabled=False),
        "pid": ControlConfig(enabled=True),
        "quantile": quantile(payback_blocks=3, warmup_events=200,
                             **{k: v for k, v in ff.items() if k != "bins"}),
    }.items():
        _, (_, accepted, _) = run(cfg, scores, pileup, keys)
        ratio = block_ratios(accepted, 20)
        results[name] = (np.mean((ratio >= 0.8) & (ratio <= 1.2)), accepted.mean() / TARGET)
    assert results["fixed"][0] <= 0.5 and results["fixed"][1] > 1.3
    assert results["pid"][0] <= 0.8
    in_band, overall = results["quantile"]
    assert in_band >= 0.95
    assert overall == pytest.approx(1.0, abs=0.03)


def test_step_response_settles_within_three_blocks():
    """Scores x 2 from block 10: the output error left after k blocks is (1 - gain)^k ln 2, so
    with gain 0.7 and an elasticity ln(1 / target) = 2.3 the rate is 1.6x, 1.15x, 1.04x the
    target 1, 2, 3 blocks after the step: inside +-10 % from the third block on."""
    scores, pileup, keys = fill_stream(blocks=16, block=20_000, mu=(40.0, 40.0), step=(10, 2.0))
    _, (_, accepted, _) = run(quantile(), scores, pileup, keys, chunk=7000)
    ratio = block_ratios(accepted, 16)
    assert ratio[10] > 3.0  # the step hits the block it starts in: 0.1 ** 0.5 = 3.2x
    assert ratio[11] == pytest.approx(1.6, abs=0.1)
    assert ratio[12] == pytest.approx(1.15, abs=0.05)
    assert np.all(np.abs(ratio[13:] - 1) < 0.1)
    assert np.all(np.abs(ratio[1:10] - 1) < 0.1)


def test_payback_integrates_the_rate_to_the_target():
    """A first block 3x off the target (no feed-forward) is paid back by the later blocks."""
    scores, pileup, keys = fill_stream(mu=(60.0, 60.0))
    totals = {}
    for blocks in (0, 3):
        ctl, (_, accepted, _) = run(quantile(payback_blocks=blocks, payback_max=0.3),
                                    scores, pileup, keys)
        totals[blocks] = accepted.mean() / TARGET
        ratio = block_ratios(accepted, 20)
        assert ratio[0] > 2.7  # the stored threshold at pile-up 60
        assert ratio[10:].mean() == pytest.approx(1.0, abs=0.05)  # paid back by then
    assert totals[0] > 1.06  # the first block's excess stays in the integral ...
    assert totals[3] == pytest.approx(1.0, abs=0.015)  # ... unless it is paid back
    assert ctl.state.accepted_total == pytest.approx(TARGET * ctl.state.events_total, rel=0.02)


def test_warm_up_resets_the_first_block_from_its_first_events():
    scores, pileup, keys = fill_stream(mu=(60.0, 60.0), block=4000)
    _, (threshold, accepted, _) = run(quantile(warmup_events=400), scores, pileup, keys)
    assert np.all(threshold[:400] == T0) and np.all(threshold[400:4000] == threshold[400])
    assert threshold[400] > 1.4 * T0
    # 400 events at ~1.8x the target, then the warm-up quantile
    assert block_ratios(accepted, 20)[0] == pytest.approx(1.08, abs=0.1)


def quantile_ff():
    ff = calibration()
    return quantile(payback_blocks=3, warmup_events=200,
                    **{k: v for k, v in ff.items() if k != "bins"})


@pytest.mark.parametrize("chunk", [1, 199, 200, 2000, 4001])
def test_quantile_rule_is_chunking_invariant(chunk):
    scores, pileup, keys = fill_stream(blocks=4, block=1000)
    n = 2500 if chunk == 1 else len(scores)  # one-event chunks: the first 2500 events
    _, whole = run(quantile_ff(), scores, pileup, keys, chunk=len(scores))
    _, chunked = run(quantile_ff(), scores[:n], pileup[:n], [k[:n] for k in keys], chunk=chunk)
    for k in range(3):
        np.testing.assert_array_equal(chunked[k], whole[k][:n])


@pytest.mark.parametrize("cut", [150, 2150])
def test_quantile_rule_resumes_from_its_json_state(cut):
    scores, pileup, keys = fill_stream(blocks=4, block=1000)
    _, whole = run(quantile_ff(), scores, pileup, keys)
    ctl, _ = run(quantile_ff(), scores[:cut], pileup[:cut], [k[:cut] for k in keys])
    state = ControllerState.from_json(json.loads(json.dumps(ctl.state.to_json())))
    _, tail = run(quantile_ff(), scores[cut:], pileup[cut:], [k[cut:] for k in keys], state=state)
    for k in range(3):
        np.testing.assert_array_equal(tail[k], whole[k][cut:])


def test_quantile_rule_is_causal():
    scores, pileup, keys = fill_stream(blocks=8, block=1000)
    _, whole = run(quantile(payback_blocks=3), scores, pileup, keys)
    changed = scores.copy()
    changed[5000:] *= 3
    _, other = run(quantile(payback_blocks=3), changed, pileup, keys)
    np.testing.assert_array_equal(other[0][:6000], whole[0][:6000])
    assert not np.array_equal(other[0][6000:], whole[0][6000:])


def test_packaged_pileup_config_and_config_errors(tmp_path):
    # the packaged file (by path: the installed package may be another checkout)
    cfg = control_from_file(Path(__file__).parents[1] / "configs" / "rate-control-pileup.yaml")
    assert cfg.enabled and cfg.method == "quantile" and cfg.payback_blocks == 3
    assert cfg.warmup_events == 50 and cfg.feedforward_intercept is None
    for text, match in [
        ("method: quantil", r"control.method: expected one of 'pid', 'quantile', found 'quantil'"),
        ("gain: 0.0", r"gain must be in \(0, 1\], found 0.0"),
        ("payback_max: 1.5", r"payback_max must be in \[0, 1\), found 1.5"),
        ("payback_block: 3", r"did you mean 'payback_blocks'"),
        ("warmup_events: -1", r"warmup_events must be >= 0, found -1"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"control:\n  {text}\n")
        with pytest.raises(ConfigError, match=match):
            control_from_file(bad)


def test_score_command_with_the_quantile_rule_logs_the_warm_up_change(tmp_path):
    """End to end: pile-up reaches the controller, the warm-up change is logged with block 0."""
    import pandas as pd
    import stream_samples as ss

    from triggerad.cli import main

    model = ss.make_model(tmp_path / "l1_vae")
    stream = ss.write_stream(tmp_path / "stream", 2, 1500, pileup=(60, 20), lumi_size=500)
    config = tmp_path / "rc.yaml"
    config.write_text("control:\n  method: quantile\n  warmup_events: 150\n  payback_blocks: 3\n")
    out = tmp_path / "out"
    assert main(["score", str(model), *map(str, stream), "--out", str(out), "--chunk-size", "400",
                 "--no-progress", "--score", "mu2_q", "--rate-control", str(config)]) == 0
    table = pd.concat(pd.read_parquet(p) for p in sorted((out / "scores").glob("part-*")))
    blocks = pd.read_csv(out / "blocks.csv")
    log = [json.loads(x) for x in (out / "threshold_log.jsonl").read_text().splitlines()]
    assert table.groupby("block")["threshold"].nunique().tolist() == [2] + [1] * 5
    assert np.all(table["threshold"].to_numpy()[:150] == blocks["threshold"][0])
    assert blocks["threshold_end"][0] == table["threshold"].iloc[150] != blocks["threshold"][0]
    assert log[0] == {"block": 0, "run": 1, "lumi": 1, "threshold": blocks["threshold_end"][0],
                      "previous_threshold": blocks["threshold"][0], "within_block": True}
    assert [e["block"] for e in log[1:]] == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(table["accepted"], table["mu2_q"] > table["threshold"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["controller"]["method"] == "quantile"
    assert summary["controller"]["threshold_changes"] == len(log) == 6


# Rate monitor and controller -------------------------------------------------------------------
def test_garwood_intervals():
    low, high = garwood(np.array([0, 1, 10]))
    np.testing.assert_allclose(low, [0.0, 0.1727, 6.8913], atol=2e-4)
    np.testing.assert_allclose(high, [1.8411, 3.2996, 14.2670], atol=2e-4)


def drifting_scores(n_blocks=40, block=4000, seed=5):
    """Exponential scores whose scale falls with pile-up (60 -> 20) over the fill."""
    rng = np.random.default_rng(seed)
    n = n_blocks * block
    pileup = np.linspace(60, 20, n)
    scores = rng.exponential(1.0, n) * (1 + 0.02 * (pileup - 40))
    keys = block_keys(np.zeros(n, np.int64), np.zeros(n, np.int64), np.arange(n), block)
    return scores, keys


def test_controller_holds_rate_where_fixed_threshold_does_not():
    scores, keys = drifting_scores()
    target, band = 0.05, (0.8, 1.2)
    threshold0 = -np.log(target)  # exactly 5 % at pile-up 40
    results = {}
    for enabled in (False, True):
        ctl = RateController(ControlConfig(enabled=enabled), threshold0, target)
        # fed in chunks that do not align with blocks, as the stream driver does
        accepted = np.concatenate([
            ctl.apply(scores[i:i + 3000], keys[0][i:i + 3000], keys[1][i:i + 3000])[1]
            for i in range(0, len(scores), 3000)
        ])
        ratio = accepted.reshape(40, -1).mean(axis=1) / target
        results[enabled] = (np.mean((ratio >= band[0]) & (ratio <= band[1])), accepted.mean())
    in_band_fixed, in_band_controlled = results[False][0], results[True][0]
    assert in_band_fixed <= 0.25
    assert in_band_controlled >= 0.75
    assert abs(results[True][1] / target - 1) < 0.12  # overall rate close to target
    # the measured plant gain -d ln(fraction)/d ln(threshold) of an exponential tail at the
    # target is ln(1 / target) = 3.0, whatever the (drifting) scale
    assert 2.4 < ctl.state.elasticity < 3.6


def test_controller_is_causal_and_chunking_invariant():
    scores, keys = drifting_scores(n_blocks=10, block=1000)
    whole = RateController(ControlConfig(enabled=True), 3.0, 0.05).apply(scores, *keys)
    ctl = RateController(ControlConfig(enabled=True), 3.0, 0.05)
    parts = [ctl.apply(scores[i:i + 777], keys[0][i:i + 777], keys[1][i:i + 777])
             for i in range(0, len(scores), 777)]
    for k in range(3):
        np.testing.assert_array_equal(whole[k], np.concatenate([p[k] for p in parts]))
    # changing the scores of block 6 onwards leaves the thresholds of blocks 0-6 unchanged
    changed = scores.copy()
    changed[6000:] *= 3
    other = RateController(ControlConfig(enabled=True), 3.0, 0.05).apply(changed, *keys)
    np.testing.assert_array_equal(other[0][:7000], whole[0][:7000])
    assert not np.array_equal(other[0][7000:], whole[0][7000:])
