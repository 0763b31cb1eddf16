"""Sample lists, generator-weight normalisation and negative weights in rates, ROC and training."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from cms_samples import ERAS, event_branches, random_run3, write_events

from anomaly.train import sample_weights
from triggerad import metrics as roc
from triggerad import rates
from triggerad.cli import main
from triggerad.errors import ConfigError, InputFileError, StatisticsError
from triggerad.samples import SampleSet, load_sample_list, resolve_inputs


def write_list(path, text: str):
    path.write_text(text)
    return path


def two_file_sample(tmp_path, runs: bool):
    """Sample 'tt' in two Run-3 files with genWeight +-1.5 (20 % negative), optionally with a Runs
    tree per file (genEventSumw 400 + 100 in file a, 500 in file b: 1000 in total)."""
    for name, seed, sumw in (("a", 1, [400.0, 100.0]), ("b", 2, [500.0])):
        write_events(tmp_path / f"tt_{name}.root", random_run3(300, seed),
                     runs={"run": np.ones(len(sumw), np.uint32), "genEventSumw": sumw}
                     if runs else None)
    return write_list(tmp_path / "samples.yaml", """
tt:
  files: [tt_*.root]
  xsec_pb: 800.0
  process: ttbar
""")


@pytest.mark.parametrize("runs", [True, False])
def test_gen_weight_normalisation_equals_the_hand_sum(tmp_path, runs, caplog):
    listing = two_file_sample(tmp_path, runs)
    sset = SampleSet(listing)
    inputs = sset.inputs()
    assert [i.path for i in inputs] == [str(tmp_path / "tt_a.root"), str(tmp_path / "tt_b.root")]
    gen = np.concatenate([random_run3(300, s)["genWeight"] for s in (1, 2)]).astype(np.float64)
    hand_sum = 1000.0 if runs else gen.sum()  # Runs/genEventSumw over both files, else genWeight
    norm = sset.norms["tt"]
    assert norm.sum_w == pytest.approx(hand_sum, rel=1e-12)
    assert norm.source.startswith("Runs/genEventSumw" if runs else "event weights (genWeight)")
    batch = np.concatenate([i.reader.read(i.path).weight for i in inputs])
    np.testing.assert_allclose(batch, 800.0 * gen / hand_sum, rtol=1e-12)
    assert (batch < 0).mean() == pytest.approx(0.2, abs=0.05)
    if not runs:  # without a skim the weights add up to the cross-section
        assert batch.sum() == pytest.approx(800.0, rel=1e-9)
    labels = {p for i in inputs for p in i.reader.read(i.path).process}
    assert labels == {"ttbar"}
    assert "no input for process" not in caplog.text  # the sample names it: no default note


def test_files_mixing_runs_and_no_runs_are_refused(tmp_path):
    write_events(tmp_path / "a.root", random_run3(10, 1), runs={"genEventSumw": [5.0]})
    write_events(tmp_path / "b.root", random_run3(10, 2))
    listing = write_list(tmp_path / "s.yaml", "x:\n  files: [a.root, b.root]\n  xsec_pb: 1.0\n")
    with pytest.raises(InputFileError, match=r"sample 'x': 1 files have the sum of generator "
                       r"weights \(Runs tree\) and 1 do not \(e.g. .*b.root\)"):
        SampleSet(listing).inputs()


def test_sample_list_typo_key_is_named(tmp_path):
    write_events(tmp_path / "a.root", random_run3(5, 1))
    listing = write_list(tmp_path / "s.yaml", "tt:\n  files: a.root\n  xsec_bp: 800\n")
    with pytest.raises(ConfigError, match=r"s.yaml:tt: unknown key 'xsec_bp'; did you mean "
                       r"'xsec_pb'"):
        load_sample_list(listing)
    bad = write_list(tmp_path / "t.yaml", "tt:\n  files: nothere_*.root\n")
    with pytest.raises(InputFileError, match=r"t.yaml:tt: .*nothere_\*.root: the pattern matches "
                       r"no file"):
        load_sample_list(bad)
    neg = write_list(tmp_path / "u.yaml", "tt:\n  files: a.root\n  xsec_pb: -3\n")
    with pytest.raises(ConfigError, match=r"u.yaml:tt: xsec_pb: expected a positive"):
        load_sample_list(neg)


def test_roles_and_duplicate_files(tmp_path):
    write_events(tmp_path / "a.root", random_run3(5, 1))
    write_events(tmp_path / "s.root", random_run3(5, 2))
    listing = write_list(tmp_path / "s.yaml", """
bkg: {files: a.root, xsec_pb: 10}
sig: {files: s.root, is_signal: true, process: LQ}
""")
    inputs, sets = resolve_inputs([str(listing)], role="background")
    assert [i.sample for i in inputs] == ["bkg"]
    inputs, _ = resolve_inputs([str(listing)], role="signal")
    assert [i.sample for i in inputs] == ["sig"]
    assert inputs[0].reader.read(inputs[0].path).process[0] == "LQ"
    assert sets[0].describe()["samples"]["bkg"]["xsec_pb"] == 10
    twice = write_list(tmp_path / "t.yaml", "x: {files: a.root}\ny: {files: a.root}\n")
    with pytest.raises(InputFileError, match=r"a.root: listed twice \(samples 'x' and 'y'\)"):
        resolve_inputs([str(twice)])


# Negative weights --------------------------------------------------------------------------
def nlo_sample(n=20_000, seed=5):
    """Scores and weights of a sample with 20 % negative weights of unequal size."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=n)
    weights = rng.uniform(0.5, 2.0, n) * np.where(rng.random(n) < 0.2, -1.0, 1.0)
    return scores, weights


def test_threshold_with_20_percent_negative_weights():
    scores, weights = nlo_sample()
    assert (weights < 0).mean() == pytest.approx(0.2, abs=0.01)
    target = 2e-3
    cut = rates.threshold_at_rate(scores, weights, target)
    achieved = rates.fraction_above(scores, weights, cut)
    one_event = np.abs(weights).max() / weights.sum()
    assert target - one_event <= achieved <= target  # within one event weight of the target
    # the tightest crossing: every tighter cut selects no more than the target
    above = np.sort(scores[scores > cut])
    for tighter in above[:-1]:
        assert rates.fraction_above(scores, weights, tighter) <= target * (1 + 1e-12)
    result = rates.rate_at_cut(scores, weights, cut)
    n_eff = weights.sum() ** 2 / np.sum(weights**2)  # Kish, signed sum
    assert result.n_eff == pytest.approx(n_eff, rel=1e-12)
    assert n_eff < 0.5 * len(weights)  # ~ (1 - 2 r)^2 n: negative weights cost statistics
    assert result.k_eff == pytest.approx(achieved * n_eff, rel=1e-12)
    assert (result.ci_low, result.ci_high) == rates.clopper_pearson(achieved * n_eff, n_eff)
    assert result.n_negative == int((weights < 0).sum())


def test_negative_total_weight_is_a_clear_error():
    with pytest.raises(StatisticsError, match=r"weights: the sum of the 3 event weights is -1 "
                       r"\(2 negative\); a rate is a fraction of a positive total"):
        rates.threshold_at_rate(np.array([1.0, 2.0, 3.0]), np.array([1.0, -1.0, -1.0]), 0.5)


def test_signed_auc_roc_and_efficiency_match_brute_force():
    rng = np.random.default_rng(2)
    bkg, wb = rng.normal(size=400), rng.uniform(0.5, 1.5, 400) * np.where(rng.random(400) < 0.2, -1, 1)
    sig, ws = rng.normal(1, 1, 300), rng.uniform(0.5, 1.5, 300) * np.where(rng.random(300) < 0.2, -1, 1)
    sig[:5] = bkg[:5]  # ties count one half
    pairs = (sig[:, None] > bkg[None, :]) + 0.5 * (sig[:, None] == bkg[None, :])
    brute = float((ws[:, None] * wb[None, :] * pairs).sum() / (ws.sum() * wb.sum()))
    assert roc.auc(bkg, wb, sig, ws) == pytest.approx(brute, rel=1e-12)
    fpr, tpr = roc.roc_points(bkg, wb, sig, ws)
    cuts = np.unique(np.concatenate([bkg, sig]))[::-1]
    for i in (0, 49, 350, len(cuts) - 1):  # point i + 1: events with score >= cuts[i]
        assert fpr[i + 1] == pytest.approx(wb[bkg >= cuts[i]].sum() / wb.sum(), abs=1e-12)
        assert tpr[i + 1] == pytest.approx(ws[sig >= cuts[i]].sum() / ws.sum(), abs=1e-12)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == pytest.approx(1) and tpr[-1] == pytest.approx(1)
    assert np.any(np.diff(fpr) < 0)  # signed weights: the curve steps back
    grid, curve = roc.roc(bkg, wb, sig, n_points=30, sig_weights=ws)
    assert grid.shape == curve.shape == (30,) and np.all(np.diff(grid) > 0)
    eff = roc.signal_efficiency(sig, 0.5, rates.ONE_SIGMA_CL, ws)
    assert eff["efficiency"] == pytest.approx(ws[sig > 0.5].sum() / ws.sum(), rel=1e-12)
    assert eff["n_negative"] == int((ws < 0).sum())
    # unit weights: the plain AUC (equal to scikit-learn's)
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(400), np.ones(300)]
    assert roc.auc(bkg, np.ones(400), sig) == pytest.approx(roc_auc_score(y, np.r_[bkg, sig]))


def test_training_weights_abs_or_drop_with_counts():
    w = np.array([2.0, -1.0, 1.0, -2.0])
    absw, info = sample_weights(w, True, "abs")
    np.testing.assert_allclose(absw, [4 / 3, 2 / 3, 2 / 3, 4 / 3])
    assert info == {"treatment": "abs", "n_negative": 2, "sum_negative": -3.0}
    dropped, info = sample_weights(w, True, "drop")
    np.testing.assert_allclose(dropped, [8 / 3, 0, 4 / 3, 0])
    assert info["treatment"] == "drop" and info["n_negative"] == 2
    with pytest.raises(StatisticsError, match="every event weight is zero"):
        sample_weights(np.array([-1.0, -2.0]), True, "drop")


# Commands with a sample list ---------------------------------------------------------------
@pytest.mark.slow
def test_commands_accept_a_sample_list(tmp_path):
    from stream_samples import make_model

    listing = two_file_sample(tmp_path, runs=True)
    write_events(tmp_path / "lq.root", random_run3(200, 9, negative_fraction=0.0))
    listing.write_text(listing.read_text() + "lq:\n  files: lq.root\n  xsec_pb: 0.5\n"
                       "  is_signal: true\n  process: LQ\n")
    # features: labels and normalised weights, provenance with the sample list and preset
    out = tmp_path / "f.parquet"
    assert main(["-q", "features", str(listing), "--out", str(out)]) == 0
    frame = pd.read_parquet(out)
    assert frame["process"].value_counts().to_dict() == {"ttbar": 600, "LQ": 200}
    tt = frame[frame.process == "ttbar"]
    gen = np.concatenate([random_run3(300, s)["genWeight"] for s in (1, 2)]).astype(np.float64)
    np.testing.assert_allclose(tt["weight"], 800.0 * gen / 1000.0, rtol=1e-12)
    prov = json.loads((tmp_path / "f.provenance.json").read_text())
    assert prov["inputs"][0]["preset"] == "run3" and prov["inputs"][0]["sample"] == "tt"
    assert prov["sample_lists"][0]["samples"]["tt"]["normalisation"]["sum_w"] == 1000.0
    # threshold on the background samples only (negative weights included)
    model = make_model(tmp_path / "model")
    assert main(["-q", "threshold", str(model), "--fpr", "0.05", "--input-rate", "100kHz",
                 "--data", str(listing)]) == 0
    thr = json.loads((model / "threshold.json").read_text())
    w = tt["weight"].to_numpy()
    assert thr["n_background_total"] == 600 and thr["n_background_negative_weight"] == (w < 0).sum()
    assert 0.05 - np.abs(w).max() / w.sum() <= thr["achieved_fraction"] <= 0.05
    assert thr["n_eff"] == pytest.approx(w.sum() ** 2 / np.sum(w**2), rel=1e-9)
    # score: every sample's events, labelled
    assert main(["-q", "score", str(model), str(listing), "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 0
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["events"] == 800
    # evaluate's signals: the is_signal samples with their weights
    from triggerad.data import load_signals

    signals, sources = load_signals(listing)
    assert list(signals) == ["lq"] and sources["lq"].endswith("lq.root")
    assert signals["lq"].weight.sum() == pytest.approx(0.5)


def test_sample_list_without_role_is_refused(tmp_path):
    from triggerad.data import load_sample, load_signals

    write_events(tmp_path / "a.root", random_run3(5, 1))
    listing = write_list(tmp_path / "s.yaml", "bkg: {files: a.root}\n")
    with pytest.raises(InputFileError, match=r"no sample with is_signal: true"):
        load_signals(listing)
    only_signal = write_list(tmp_path / "t.yaml", "sig: {files: a.root, is_signal: true}\n")
    with pytest.raises(InputFileError, match=r"no background sample in the sample list"):
        load_sample(str(only_signal))
    assert len(load_sample(str(listing))) == 5


def test_cms_file_without_gen_weight_counts_events(tmp_path):
    """Data-like files (no genWeight) with a cross-section: each event counts 1 in sum_w."""
    write_events(tmp_path / "d.root", {**ERAS["run3"](), **event_branches()})
    listing = write_list(tmp_path / "s.yaml", "d: {files: d.root, xsec_pb: 4.0}\n")
    sset = SampleSet(listing)
    (item,) = sset.inputs()
    np.testing.assert_allclose(item.reader.read(item.path).weight, [2.0, 2.0])
    assert sset.norms["d"].sum_w == 2.0
