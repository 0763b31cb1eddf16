"""Evaluation report: metrics on toys, baselines at the same rate, report.json, end-to-end CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from anomaly import baselines as bl
from anomaly import evaluate as ev
from anomaly import markdown, report
from triggerad import metrics, rates, schema
from triggerad.events import EventBatch

SIGNAL_SHIFTS = {"hard": 3.0, "soft": 1.0}


def toy_batch(n: int, rng: np.random.Generator, shift: float = 0.0, processes=("W", "QCD")):
    """Single-lepton events with MET and jets; ``shift`` hardens every spectrum (a toy signal)."""
    objects = np.zeros((n, schema.N_SLOTS, 4), dtype=np.float32)
    objects[:, 0, 0] = rng.exponential(30.0, n) * (1 + shift)
    objects[:, 0, 2] = rng.uniform(-np.pi, np.pi, n)
    is_ele = rng.random(n) < 0.5
    slot = np.where(is_ele, 1, 5)
    rows = np.arange(n)
    objects[rows, slot, 0] = 23.0 + rng.exponential(20.0, n) * (1 + shift)
    objects[rows, slot, 1] = rng.normal(0.0, 1.0, n)
    objects[rows, slot, 2] = rng.uniform(-np.pi, np.pi, n)
    objects[rows, slot, 3] = np.where(is_ele, schema.CLASS_ELE, schema.CLASS_MU)
    n_jets = np.minimum(rng.poisson(1.5 + shift, n), schema.N_JET)
    jet_pt = -np.sort(-(20.0 + rng.exponential(40.0 * (1 + shift), (n, schema.N_JET))), axis=1)
    occupied = np.arange(schema.N_JET)[None, :] < n_jets[:, None]
    objects[:, schema.JET_SLOTS, 0] = np.where(occupied, jet_pt, 0.0)
    objects[:, schema.JET_SLOTS, 1] = np.where(occupied, rng.normal(0.0, 2.0, (n, schema.N_JET)), 0.0)
    objects[:, schema.JET_SLOTS, 2] = np.where(occupied, rng.uniform(-3, 3, (n, schema.N_JET)), 0.0)
    objects[:, schema.JET_SLOTS, 3] = np.where(occupied, schema.CLASS_JET, 0)
    objects[:, 0, 3] = schema.CLASS_MET
    charge = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
    ele_charge = np.zeros((n, 4), np.int8)
    mu_charge = np.zeros((n, 4), np.int8)
    ele_charge[is_ele, 0] = charge[is_ele]
    mu_charge[~is_ele, 0] = charge[~is_ele]
    iso = np.zeros((n, 4, 3), np.float32)
    iso[:, 0, :] = rng.exponential(0.03, (n, 3))
    process = rng.choice(np.array(processes, dtype=object), n)
    weight = np.where(process == "QCD", 3.0, 1.0) if len(processes) > 1 else np.full(n, 0.01)
    return EventBatch.empty(
        n, objects=objects, ele_charge=ele_charge, mu_charge=mu_charge, ele_iso=iso,
        mu_iso=iso.copy(), jet_mass=(objects[:, schema.JET_SLOTS, 0] * 0.1).astype(np.float32),
        jet_btag=occupied & (rng.random((n, schema.N_JET)) < 0.2),
        n_ch_had=rng.poisson(20 * (1 + shift), n).astype(np.int32),
        n_neu_had=rng.poisson(10, n).astype(np.int32), process=process, weight=weight,
    )


def test_auc_perfect_separation_and_roc():
    rng = np.random.default_rng(0)
    bkg, sig = rng.uniform(0, 1, 1000), rng.uniform(2, 3, 200)
    w = rng.uniform(0.5, 2.0, 1000)
    assert metrics.auc(bkg, w, sig) == 1.0
    assert metrics.auc(bkg, w, bkg[:200] * 0.0 - 1.0) == 0.0
    fpr, tpr = metrics.roc(bkg, w, sig, n_points=20)
    assert fpr.shape == tpr.shape == (20,)
    np.testing.assert_allclose(tpr, 1.0)
    # identical distributions: AUC 0.5 up to fluctuations
    assert metrics.auc(bkg, np.ones(1000), rng.uniform(0, 1, 5000)) == pytest.approx(0.5, abs=0.03)


def test_single_variable_baselines_hit_the_same_rate():
    rng = np.random.default_rng(1)
    bkg, sig = toy_batch(4000, rng), toy_batch(500, rng, shift=1.0, processes=("sig",))
    from anomaly.features import compute_features

    fb, fs = compute_features(bkg), compute_features(sig)
    met = bl.single_variable(bkg, fb, "MET")
    np.testing.assert_array_equal(met, bkg.objects[:, 0, 0])
    # MET from the features alone (feature-only sources) agrees
    feature_only = dataclasses.replace(bkg, has_objects=False, hlf=fb)
    np.testing.assert_allclose(bl.single_variable(feature_only, fb, "MET"), met, rtol=1e-5)
    cfg = ev.EvaluateConfig()
    cfg.autoencoder.enabled = cfg.isolation_forest.enabled = cfg.classifier.enabled = False
    b_bkg, b_sig = bl.baseline_scores(fb, bkg.weight, bkg, fb, {"sig": sig}, {"sig": fs}, cfg)
    assert sorted(b_bkg) == ["single_HT", "single_LepPt", "single_MET"]
    fraction = 0.02
    table, cuts = report.baselines_report(b_bkg, bkg.weight, b_sig, fraction)
    one_event = bkg.weight.max() / bkg.weight.sum()
    for name in b_bkg:
        achieved = rates.fraction_above(b_bkg[name], bkg.weight, cuts[name])
        assert fraction - one_event < achieved <= fraction
        assert table[name]["sig"]["efficiency"] == np.mean(b_sig[name]["sig"] > cuts[name])
    best = table["best_single_variable"]["sig"]
    assert best["efficiency"] == max(table[f"single_{v}"]["sig"]["efficiency"] for v in bl.SINGLE_VARIABLES)
    assert table[f"single_{best['variable']}"]["sig"]["efficiency"] == best["efficiency"]
    with pytest.raises(ValueError, match="did you mean 'MET'"):
        bl.SingleVariableConfig(variables=["MEt"])


def test_trained_baselines_separate_a_hard_signal():
    rng = np.random.default_rng(2)
    bkg, sig = toy_batch(3000, rng), toy_batch(600, rng, shift=2.0, processes=("sig",))
    train = toy_batch(3000, rng)
    from anomaly.features import compute_features

    cfg = ev.EvaluateConfig()
    cfg.single_variable.enabled = cfg.autoencoder.enabled = False
    cfg.classifier.max_iter = 30
    b_bkg, b_sig = bl.baseline_scores(
        compute_features(train), train.weight, bkg, compute_features(bkg), {"sig": sig},
        {"sig": compute_features(sig)}, cfg,
    )
    assert b_sig["classifier"]["sig"].shape == (300,)  # evaluated on the held-out half
    table, cuts = report.baselines_report(b_bkg, bkg.weight, b_sig, 0.01)
    assert table["classifier"]["sig"]["auc"] > 0.95
    assert table["isolation_forest"]["sig"]["auc"] > 0.8
    assert table["classifier"]["sig"]["efficiency"] > table["isolation_forest"]["sig"]["efficiency"]
    assert rates.fraction_above(b_bkg["classifier"]["sig"], bkg.weight, cuts["classifier"]["sig"]) <= 0.01


def toy_report_inputs():
    """Model-like scores: background N(0,1), signals shifted; quantized twin = rounded float."""
    rng = np.random.default_rng(3)
    n = 20_000
    base = rng.normal(size=n)
    process = np.where(rng.random(n) < 0.7, "W", "QCD").astype(object)
    weights = np.where(process == "W", 1.0, 2.0)
    bkg = {"nll": base, "kl": base**2, "mu2": base + 5, "mu2_q": np.round(base + 5, 2)}
    sig = {}
    for name, shift in SIGNAL_SHIFTS.items():
        s = rng.normal(shift, 1.0, 4000)
        sig[name] = {"nll": s, "kl": s**2, "mu2": s + 5, "mu2_q": np.round(s + 5, 2)}
    cut = rates.threshold_at_rate(base, weights, 1e-2)
    threshold = {"score": "nll", "value": cut, "fpr": 1e-2, "input_rate_hz": 1e5,
                 "target_rate_hz": 1e3, "achieved_rate_hz": 1e3, "rate_ci_low_hz": 950.0,
                 "rate_ci_high_hz": 1050.0, "n_background_above": 150, "dataset_fingerprint": "x"}
    return bkg, weights, process, sig, threshold


def test_model_report_values(tmp_path):
    bkg, w, process, sig, threshold = toy_report_inputs()
    cfg = ev.EvaluateConfig()
    rep = report.model_report(bkg, w, process, sig, threshold, cfg)
    assert set(rep) >= {"threshold", "signals", "scores_at_same_rate", "float_vs_quantized",
                        "background_processes", "rate_curve", "roc", "evaluation_sample"}
    for name in SIGNAL_SHIFTS:
        row = rep["signals"][name]
        eff = np.mean(sig[name]["nll"] > threshold["value"])
        assert row["efficiency"] == eff
        np.testing.assert_allclose(row["xsec_100_per_month_pb"], 100 / (eff * 5000.0))
        assert row["efficiency_ci"][0] < eff < row["efficiency_ci"][1]
        np.testing.assert_allclose(row["auc"], metrics.auc(bkg["nll"], w, sig[name]["nll"]))
    assert rep["signals"]["hard"]["efficiency"] > rep["signals"]["soft"]["efficiency"]
    ev_sample = rep["evaluation_sample"]
    np.testing.assert_allclose(ev_sample["achieved_fraction"], rates.fraction_above(bkg["nll"], w, threshold["value"]))
    assert ev_sample["achieved_rate_hz"] == pytest.approx(1e3, abs=2.0 / w.sum() * 1e5)
    # mu2 is a monotonic function of nll here: same cut position, same efficiencies
    same = rep["scores_at_same_rate"]
    assert same["mu2"]["signals"]["hard"]["efficiency"] == same["nll"]["signals"]["hard"]["efficiency"]
    assert same["kl"]["signals"]["hard"]["efficiency"] != same["nll"]["signals"]["hard"]["efficiency"]
    fvq = rep["float_vs_quantized"]["mu2_vs_mu2_q"]
    assert fvq["pearson"] > 0.9999 and fvq["spearman"] > 0.999
    assert 0.99 < fvq["decision_agreement_background"] <= 1.0
    assert "kl_vs_kl_q" not in rep["float_vs_quantized"]  # no kl_q score in this toy
    procs = rep["background_processes"]
    assert procs["W"]["n_events"] + procs["QCD"]["n_events"] == len(w)
    np.testing.assert_allclose(procs["W"]["rate_above_hz"] + procs["QCD"]["rate_above_hz"],
                               ev_sample["achieved_rate_hz"])
    assert np.all(np.diff(rep["rate_curve"]["rate_hz"]) <= 0)

    # the report folder pieces: figures and markdown
    names = ev.make_figures(tmp_path, rep, bkg, w, process, sig)
    assert names == ["scores.png", "rate_vs_threshold.png", "roc.png", "float_vs_quantized_mu2.png",
                     "efficiencies.png"]
    # every method's curve: the model's equals the report's ROC; a per-signal method (the
    # classifier's layout) is cut on its own background scores
    # the classifier scores only the half of each signal it did not train on
    perfect = {n: np.full(len(s["nll"]) // 2, 10.0) for n, s in sig.items()}
    curves = report.method_curves(
        {"model nll": bkg["nll"], "classifier": {n: np.zeros(len(w)) for n in sig}},
        w, {"model nll": {n: s["nll"] for n, s in sig.items()}, "classifier": perfect},
        n_points=cfg.report.n_roc_points,
        sig_weights={n: np.ones(len(s["nll"])) for n, s in sig.items()})
    assert set(curves) == set(sig) and list(curves["hard"]) == ["model nll", "classifier"]
    for name in sig:
        np.testing.assert_allclose(curves[name]["model nll"][1], rep["roc"][name]["tpr"])
        np.testing.assert_allclose(curves[name]["model nll"][0], rep["roc"][name]["fpr"])
        assert np.all(curves[name]["classifier"][1] == 1.0)  # separates perfectly at any rate
    with_curves = ev.make_figures(tmp_path, rep, bkg, w, process, sig, curves)
    assert with_curves == [*names, "efficiency_vs_fpr.png"]
    for name in names:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rep["figures"] = names
    md = markdown.render_markdown(rep)
    assert "| hard |" in md and "![roc.png](roc.png)" in md


@pytest.mark.slow
def test_threshold_then_evaluate_end_to_end(tmp_path, capsys):
    from anomaly.model import ModelConfig, QuantizationConfig
    from anomaly.train import TrainConfig, TrainingConfig, train
    from triggerad.cli import main
    from triggerad.data import DataConfig
    from triggerad.io.adc2021 import write_h5

    rng = np.random.default_rng(4)
    data = tmp_path / "data"
    data.mkdir()
    write_h5(data / "background.h5", toy_batch(6000, rng))
    for name, shift in SIGNAL_SHIFTS.items():
        write_h5(data / f"signal_{name}.h5", toy_batch(400, rng, shift=shift, processes=(name,)))
    model = tmp_path / "model"
    train(TrainConfig(
        data=DataConfig(background=[str(data / "background.h5")]),
        model=ModelConfig(encoder=[8], decoder=[8], latent_dim=2),
        training=TrainingConfig(epochs=2, batch_size=500),
        quantization=QuantizationConfig(weight_bits=[8, 8], weight_integer=[2, 2],
                                        activation_bits=[8], activation_integer=[3], qat_epochs=1),
    ), model)

    # no threshold yet: evaluate refuses and says what to run
    assert main(["evaluate", str(model), "--data", str(data), "--out", str(tmp_path / "r")]) == 2
    assert "trigger-ad threshold" in capsys.readouterr().err

    # too few validation events for 10 Hz of 100 kHz (1e-4 of 1200 events)
    assert main(["threshold", str(model), "--rate", "10Hz", "--input-rate", "100kHz"]) == 2
    assert "about 100000 background events in total" in capsys.readouterr().err

    assert main(["threshold", str(model), "--rate", "2kHz", "--input-rate", "100 kHz"]) == 0
    thr = json.loads((model / "threshold.json").read_text())
    assert set(rates_keys := [
        "score", "value", "target_rate_hz", "input_rate_hz", "achieved_rate_hz", "rate_ci_low_hz",
        "rate_ci_high_hz", "n_background_above", "dataset_fingerprint", "fpr", "score_definition",
        "n_background_total", "n_eff", "created_utc", "data"]) <= set(thr), rates_keys
    assert thr["score"] == "nll" and thr["fpr"] == pytest.approx(0.02)
    assert thr["n_background_total"] == 1200 and thr["n_background_above"] >= 10
    from anomaly.artifact import load_artifact
    from triggerad.data import load_split

    art = load_artifact(model)
    val = load_split(art.data_info, "val")
    one_event_hz = 1e5 * val.weight.max() / val.weight.sum()
    assert 2000.0 - one_event_hz < thr["achieved_rate_hz"] <= 2000.0
    np.testing.assert_allclose(
        thr["achieved_rate_hz"], 1e5 * rates.fraction_above(art.score(val)["nll"], val.weight, thr["value"])
    )
    assert thr["rate_ci_low_hz"] < thr["achieved_rate_hz"] < thr["rate_ci_high_hz"]

    # --events-per-day with the input rate from sigma x luminosity
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(
        "rates: {luminosity_fb_per_month: 5.0}\n"
        "autoencoder: {epochs: 2, max_train_events: 2000}\n"
        "isolation_forest: {n_estimators: 20, max_train_events: 2000}\n"
        "flow: {enabled: true, couplings: 2, hidden: [8], epochs: 2, max_train_events: 2000}\n"
        "classifier: {max_iter: 10, max_train_events: 2000}\n"
    )
    # sigma_total = sum of weights: W 1 pb, QCD 3 pb per event here
    assert main(["threshold", str(model), "--events-per-day", "1e6", "--score", "mu2_q",
                 "--config", str(cfg)]) == 0
    thr2 = json.loads((model / "threshold.json").read_text())
    from triggerad.data import load_sample

    sigma = load_sample(str(data / "background.h5")).weight.sum()
    np.testing.assert_allclose(thr2["input_rate_hz"], sigma * 1e-36 * rates.mean_luminosity_cm2s(5.0))
    np.testing.assert_allclose(thr2["target_rate_hz"], 1e6 / 86400)
    assert thr2["score"] == "mu2_q" and thr2["sigma_total_pb"] == pytest.approx(sigma)
    from anomaly.artifact import load_artifact

    art = load_artifact(model)  # the cut belongs to this integer graph, and lies on its grid
    assert thr2["fixed_point_digest"] == art.fixed_graph().digest()
    lsb = art.fixed_graph().layer("score").result.lsb
    assert (thr2["value"] / lsb) % 1 in (0.0, 0.5)  # a grid score or half-way between two

    assert main(["threshold", str(model), "--rate", "2kHz", "--input-rate", "100kHz"]) == 0
    out = tmp_path / "report"
    assert main(["evaluate", str(model), "--data", str(data), "--out", str(out),
                 "--config", str(cfg)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["threshold"] == json.loads((model / "threshold.json").read_text())
    assert set(rep["signals"]) == set(SIGNAL_SHIFTS)
    for row in rep["signals"].values():
        assert {"efficiency", "auc", "xsec_100_per_month_pb"} <= set(row)
        assert 0 <= row["efficiency"] <= 1 and 0 <= row["auc"] <= 1
    assert set(rep["baselines"]) == {"autoencoder", "isolation_forest", "flow", "classifier",
                                     "single_LepPt", "single_HT", "single_MET",
                                     "best_single_variable"}
    assert {r["chosen_on"] for r in rep["baselines"]["best_single_variable"].values()} == {
        "validation"}
    assert "chosen on the validation split and half of each signal" in (out / "report.md").read_text()
    for table in rep["baselines"].values():
        assert set(table) == set(SIGNAL_SHIFTS)
    assert rep["evaluation_sample"]["n_events"] == 1200
    assert {"mu2_vs_mu2_q", "kl_vs_kl_q"} == set(rep["float_vs_quantized"])
    assert (out / "report.md").is_file() and (out / "provenance.json").is_file()
    assert all((out / f).is_file() for f in rep["figures"])


def test_efficiency_bars_carry_no_cms_label_and_draw_zero_as_markers(tmp_path, monkeypatch):
    from anomaly import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path.name)
    plots.efficiency_bars(tmp_path / "e.png", {"vae": {"A": 0.5, "B": 0.0, "C": 0.01},
                                                "HT cut": {"A": 0.02, "B": 0.001, "C": 0.0}})
    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.texts] == ["trigger-ad simulation"]
    assert sorted(p.get_height() for p in ax.patches) == [0.001, 0.01, 0.02, 0.5]
    floor = 0.5 * 0.001  # half the smallest non-zero efficiency: the axis follows the data
    zeros = [y for line in ax.lines for y in line.get_ydata()]
    assert zeros == [floor, floor]
    assert ax.get_ylim()[0] == pytest.approx(0.7 * floor)


def test_roc_refuses_weights_of_another_length():
    with pytest.raises(ValueError, match="3 scores but weights of shape"):
        metrics.roc(np.arange(5.0), None, np.arange(3.0), sig_weights=np.ones(4))
