"""LLP tagger metrics on hand-made arrays: ROC/AUC, efficiency at mistag, c-tau scan, P_max, JSD."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tagger import metrics as tm
from triggerad import metrics
from triggerad.errors import StatisticsError


def separable(n: int = 2000, seed: int = 1):
    """P(LLP) in (0.6, 1) for LLP jets, in (0, 0.4) for every other class."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 5, n).astype(np.int8)
    p = np.where(label == 0, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.4, n))
    return p, label, rng.uniform(0.5, 2.0, n)


@pytest.mark.parametrize("against", ["udsg", "b", "c"])
def test_separable_sample_has_auc_one_and_full_efficiency_at_any_mistag(against):
    p, label, w = separable()
    result = tm.roc_against(p, label, w, against, mistags=(1e-6, 1e-4, 1e-3, 0.1, 0.5))
    assert result["auc"] == 1.0
    for mistag, row in result["at_mistag"].items():
        assert row["efficiency"] == 1.0
        assert row["mistag"] <= float(mistag) * (1 + 1e-12)
    assert result["n_signal"] == int((label == 0).sum())
    assert result["n_background"] == int(np.isin(label, tm.BACKGROUNDS[against]).sum())


def test_efficiency_at_mistag_hand_computed():
    # background 0.1 ... 1.0 (10 jets, unit weights): mistag 0.2 -> the 2 highest pass (0.9, 1.0),
    # the cut lies half-way between 0.8 and 0.9; signal 0.5, 0.85, 0.95, 1.5 -> 2 of 4 pass.
    bkg = np.arange(1, 11) / 10.0
    sig = np.array([0.5, 0.85, 0.95, 1.5])
    row = tm.efficiency_at_mistag(sig, bkg, 0.2)
    assert row["cut"] == pytest.approx(0.85)
    assert row["mistag"] == pytest.approx(0.2)
    assert row["efficiency"] == pytest.approx(0.5)
    assert row["n_background_above"] == 2 and not row["limited"]
    # weights: the jet at 1.0 carries 3 of 12 -> mistag 0.25 lets only it through
    w = np.ones(10)
    w[-1] = 3.0
    row = tm.efficiency_at_mistag(sig, bkg, 0.25, bkg_weights=w, sig_weights=np.array([1, 1, 1, 5.0]))
    assert row["cut"] == pytest.approx(0.95)
    assert row["mistag"] == pytest.approx(0.25)
    assert row["efficiency"] == pytest.approx(5 / 8)
    # 1e-4 with 10 background jets: statistically limited, cut above every background jet
    row = tm.efficiency_at_mistag(sig, bkg, 1e-4)
    assert row["limited"] and row["mistag"] == 0.0 and row["efficiency"] == pytest.approx(0.25)


def test_efficiency_needs_both_classes():
    with pytest.raises(StatisticsError, match="0 signal and 3 background"):
        tm.efficiency_at_mistag(np.array([]), np.ones(3), 1e-3)
    with pytest.raises(StatisticsError, match="LLP vs b: 2 LLP and 0 b jets"):
        tm.roc_against(np.ones(3), np.array([0, 0, 3]), None, "b")


def test_jensen_shannon_identical_zero_disjoint_one_bit():
    h = np.array([1.0, 4.0, 2.0, 0.0])
    assert metrics.jensen_shannon(h, 3 * h) == 0.0
    assert metrics.jensen_shannon([1, 2, 0, 0], [0, 0, 5, 1]) == pytest.approx(1.0, abs=1e-15)
    # half overlap: p = (1, 1, 0)/2, q = (0, 1, 1)/2 -> JSD = 0.5 bit (= 0.5 ln2 nats)
    assert metrics.jensen_shannon([1, 1, 0], [0, 1, 1]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="different shapes"):
        metrics.jensen_shannon([1, 2], [1, 2, 3])


def test_domain_check_histograms_and_jsd():
    sim = np.array([0.01, 0.02, 0.03, 0.97])
    data = np.array([0.99, 0.98])
    out = tm.domain_check(sim, data, bins=10)
    assert out["simulation"][0] == pytest.approx(0.75) and out["simulation"][-1] == pytest.approx(0.25)
    assert out["data_like"][-1] == 1.0
    # p = (.75, .25), q = (0, 1), m = (.375, .625)
    expected = 0.5 * (0.75 * math.log2(2) + 0.25 * math.log2(0.25 / 0.625)
                      + math.log2(1 / 0.625))
    assert out["jsd_bits"] == pytest.approx(expected)
    assert tm.domain_check(sim, sim)["jsd_bits"] == 0.0


def test_per_event_max_groups_by_every_key():
    values = np.array([0.1, 0.7, 0.3, 0.9, 0.2, 0.4])
    event = np.array([1, 1, 2, 1, 2, 1])
    files = np.array(["a", "a", "a", "a", "a", "b"], dtype=object)
    maxima, first = tm.per_event_max(values, files, event)
    np.testing.assert_array_equal(maxima, [0.9, 0.3, 0.4])
    np.testing.assert_array_equal(first, [0, 2, 5])


def test_wrong_ctau_scan_peaks_at_true_value():
    """A toy parametrised discriminant: LLP jets of true c-tau 1 mm score high only when the
    hypothesis is near 1 mm; background jets do not depend on the hypothesis."""
    rng = np.random.default_rng(3)
    hyps = np.logspace(-2, 4, 13)
    base_sig = rng.normal(0, 1, 4000)
    bkg0 = rng.normal(0, 1, 20000)
    true = 1.0
    sig = [base_sig + 3.0 * np.exp(-0.5 * np.log10(h / true) ** 2) for h in hyps]
    bkg = [bkg0 for _ in hyps]
    scan = tm.hypothesis_scan(hyps, sig, bkg, 1e-3)
    assert scan["peak_ctau_mm"] == pytest.approx(true)
    eff = np.array(scan["efficiency"])
    peak = int(np.argmax(eff))
    assert hyps[peak] == pytest.approx(1.0) and eff[peak] > 0.3
    assert np.all(np.diff(eff[: peak + 1]) > 0) and np.all(np.diff(eff[peak:]) <= 0)


def test_ctau_bins_decades():
    edges = tm.ctau_bins()
    np.testing.assert_allclose(edges, [0.01, 0.1, 1, 10, 100, 1000, 10000])
    assert len(tm.ctau_bins(per_decade=2)) == 13
