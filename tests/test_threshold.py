"""Target-rate thresholds: rate parsing, the weighted cut, Clopper-Pearson, low-statistics refusal."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from triggerad import rates
from triggerad.errors import ConfigError, StatisticsError
from triggerad.threshold import Target, input_rate_from_luminosity, threshold_record


@pytest.mark.parametrize(
    ("text", "hz"),
    [
        ("1kHz", 1e3), ("100 kHz", 1e5), ("5Hz", 5.0), ("30/day", 30 / 86400), ("250", 250.0),
        ("1e3", 1e3), ("40MHz", 4e7), ("2/h", 2 / 3600), ("1000/month", 1000 / (30 * 86400)),
        ("3 / days", 3 / 86400), (12.5, 12.5), ("1khz", 1e3),
    ],
)
def test_parse_rate(text, hz):
    np.testing.assert_allclose(rates.parse_rate(text), hz, rtol=1e-15)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("fast", "cannot parse 'fast'; expected a number in Hz"),
        ("5 parsecs", "unknown unit in '5 parsecs'.*'30/day'"),
        ("1mHz", "unknown unit"),  # millihertz is refused as ambiguous with MHz
        ("1/week", "unknown unit"),
        ("0Hz", "positive finite rate"),
        ("-5Hz", "cannot parse"),
    ],
)
def test_parse_rate_rejects_bad_strings(text, match):
    with pytest.raises(ConfigError, match=match):
        rates.parse_rate(text, "--rate")


def test_threshold_hits_weighted_target_exactly():
    # 90 events of weight 1 and, at the top of the score range, 10 of weight 0.5: total 95
    scores = np.arange(100.0)
    weights = np.where(scores >= 90, 0.5, 1.0)
    perm = np.random.default_rng(3).permutation(100)
    scores, weights = scores[perm], weights[perm]
    cut = rates.threshold_at_rate(scores, weights, 2.5 / 95)  # exactly the top 5 events
    assert cut == 94.5
    assert rates.fraction_above(scores, weights, cut) == pytest.approx(2.5 / 95, rel=1e-14)
    # a target between two achievable fractions: never above it, below by less than one weight
    cut = rates.threshold_at_rate(scores, weights, 2.7 / 95)
    assert cut == 94.5
    # crossing into the weight-1 events: top 10 (5.0) + 3 more (3.0) = 8 / 95
    cut = rates.threshold_at_rate(scores, weights, 8.0 / 95)
    assert cut == 86.5
    assert rates.fraction_above(scores, weights, cut) == pytest.approx(8.0 / 95, rel=1e-14)
    # everything / nothing
    assert rates.fraction_above(scores, weights, rates.threshold_at_rate(scores, weights, 1.0)) == 1.0
    assert rates.fraction_above(scores, weights, rates.threshold_at_rate(scores, weights, 1e-4)) == 0.0


def test_threshold_within_one_event_weight_on_random_sample():
    rng = np.random.default_rng(7)
    scores = rng.normal(size=20_000)
    weights = rng.choice([0.01, 1.0, 5.0], size=scores.size)
    for target in (1e-3, 1e-2, 0.1, 0.5):
        cut = rates.threshold_at_rate(scores, weights, target)
        achieved = rates.fraction_above(scores, weights, cut)
        assert achieved <= target
        assert target - achieved < weights.max() / weights.sum()
        # the next event below the cut would overshoot the target
        below = scores <= cut
        nxt = np.argmax(np.where(below, scores, -np.inf))
        assert achieved + weights[nxt] / weights.sum() > target


def test_threshold_never_splits_tied_scores():
    scores = np.array([5.0, 4.0, 4.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    # the target would select 2 events but events 2-4 share a score: only the top one is taken
    cut = rates.threshold_at_rate(scores, None, 2 / 8)
    assert 4.0 <= cut < 5.0
    assert rates.fraction_above(scores, None, cut) == 1 / 8
    assert rates.fraction_above(scores, None, rates.threshold_at_rate(scores, None, 4 / 8)) == 4 / 8


@pytest.mark.parametrize(("k", "n", "cl"), [(3, 10, 0.95), (0, 10, 0.95), (10, 10, 0.6827),
                                             (2.5, 7.3, 0.6827), (40, 1000, 0.9)])
def test_clopper_pearson_matches_beta_quantiles(k, n, cl):
    low, high = rates.clopper_pearson(k, n, cl)
    alpha = 1 - cl
    exp_low = 0.0 if k == 0 else stats.beta.ppf(alpha / 2, k, n - k + 1)
    exp_high = 1.0 if k == n else stats.beta.ppf(1 - alpha / 2, k + 1, n - k)
    np.testing.assert_allclose([low, high], [exp_low, exp_high], rtol=1e-12)


def test_clopper_pearson_known_values():
    # textbook: 0 of 10 at 95 % -> [0, 0.3085]; 3 of 10 -> [0.0667, 0.6525]
    np.testing.assert_allclose(rates.clopper_pearson(0, 10, 0.95), [0.0, 0.30850], atol=1e-5)
    np.testing.assert_allclose(rates.clopper_pearson(3, 10, 0.95), [0.06674, 0.65245], atol=1e-5)


def test_rate_at_cut_uses_kish_effective_counts():
    weights = np.array([1.0, 1.0, 2.0, 2.0])
    scores = np.array([0.0, 1.0, 2.0, 3.0])
    res = rates.rate_at_cut(scores, weights, 2.5, cl=0.6827)
    assert res.n_above == 1 and res.n_total == 4
    assert res.fraction == pytest.approx(2 / 6)
    assert res.n_eff == pytest.approx(36 / 10)
    assert res.k_eff == pytest.approx(36 / 10 / 3)
    np.testing.assert_allclose([res.ci_low, res.ci_high], rates.clopper_pearson(1.2, 3.6, 0.6827))


def test_threshold_record_rate_and_interval():
    rng = np.random.default_rng(11)
    scores = rng.exponential(size=5000)
    weights = np.ones(5000)
    rec = threshold_record(scores, weights, Target(rate=1e3), input_rate_hz=1e5)
    assert rec["fpr"] == pytest.approx(0.01)
    assert rec["n_background_above"] == 50
    assert rec["achieved_rate_hz"] == pytest.approx(1e3)
    low, high = rates.clopper_pearson(50, 5000)
    np.testing.assert_allclose([rec["rate_ci_low_hz"], rec["rate_ci_high_hz"]], [low * 1e5, high * 1e5])
    assert rec["n_eff"] == pytest.approx(5000)
    assert np.sum(scores > rec["value"]) == 50


def test_refuses_low_statistics_with_needed_count():
    scores = np.random.default_rng(2).normal(size=500)
    # 1 % of 500 events = 5 events above the cut, 10 needed -> 10 / 0.01 = 1000 events needed
    with pytest.raises(StatisticsError, match=r"only 5 background events .* about 1000 background"):
        threshold_record(scores, np.ones(500), Target(rate=1e3), input_rate_hz=1e5)
    # the same sample is fine at 4 %
    rec = threshold_record(scores, np.ones(500), Target(fpr=0.04), input_rate_hz=1e5)
    assert rec["n_background_above"] == 20


def test_few_effective_events_warn(caplog):
    # 200 events pass, but one of them carries most of their weight: ~13 effective events
    scores = np.random.default_rng(5).normal(size=10_000)
    weights = np.ones(10_000)
    weights[np.argmax(scores)] = 1000.0
    fpr = 1199.5 / weights.sum()  # the top 200 events: weight 1000 + 199
    rec = threshold_record(scores, weights, Target(fpr=fpr), input_rate_hz=1.0, min_events=10)
    assert rec["n_background_above"] == 200
    np.testing.assert_allclose(rec["k_eff"], 1199 / 10999 * 10999**2 / (9999 + 1e6))
    assert not caplog.records
    with caplog.at_level("WARNING", logger="triggerad.rates"):
        threshold_record(scores, weights, Target(fpr=fpr), input_rate_hz=1.0, min_events=50)
    assert "200 background events pass the cut but only 13.1 effective" in caplog.text
    with pytest.raises(StatisticsError, match="only 200 background events"):
        threshold_record(scores, weights, Target(fpr=fpr), input_rate_hz=1.0, min_events=201)


def test_targets_and_units():
    assert Target(events_per_day=33).rate_hz(70.0) == pytest.approx(33 / 86400)
    assert Target(fpr=1e-3).rate_hz(2e3) == pytest.approx(2.0)
    assert Target(rate=1e3).fraction(1e5) == pytest.approx(1e-2)
    with pytest.raises(ConfigError, match="exceeds the input rate"):
        Target(rate=2e5).fraction(1e5)
    with pytest.raises(ConfigError, match="exactly one of"):
        Target(rate=1.0, fpr=0.1)
    with pytest.raises(ConfigError, match="must be > 0"):
        Target(fpr=1.5)
    # Cerri et al.: 5 fb^-1 per 30-day month, ~37 nb after the trigger -> ~71 Hz; 33/day -> 5.4e-6
    lumi = rates.mean_luminosity_cm2s(5.0)
    np.testing.assert_allclose(lumi, 5e39 / (30 * 86400))
    input_rate = input_rate_from_luminosity(3.7e4, lumi)
    np.testing.assert_allclose(input_rate, 71.37, rtol=1e-3)
    np.testing.assert_allclose(Target(events_per_day=33).fraction(input_rate), 5.35e-6, rtol=1e-3)


def test_xsec_for_100_events_per_month():
    # Cerri et al.: A -> 4l efficiency 2.8e-3 at 5 fb^-1/month -> 7.2 pb
    np.testing.assert_allclose(rates.xsec_for_events(2.8e-3, 5000.0), 100 / 14.0)
    assert rates.xsec_for_events(0.0, 5000.0) is None


def test_rate_curve_values():
    scores = np.arange(10.0)
    cuts, fractions = rates.rate_curve(scores, np.ones(10), n_points=50)
    assert np.all(np.diff(cuts) > 0) and np.all(np.diff(fractions) <= 0)
    np.testing.assert_allclose(fractions, [(scores > c).mean() for c in cuts])


def test_cli_refuses_bad_rate_before_loading_the_model(tmp_path, capsys):
    from triggerad.cli import main

    assert main(["threshold", str(tmp_path / "no_model"), "--rate", "fast"]) == 2
    err = capsys.readouterr().err
    assert "--rate: cannot parse 'fast'; expected a number in Hz" in err
    assert main(["threshold", str(tmp_path / "no_model"), "--fpr", "2"]) == 2
    assert "fpr must be > 0 (fpr <= 1), found 2.0" in capsys.readouterr().err
