"""trigger-ad study: signal-contamination stages and the fair best single-variable cut."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy import stats

from anomaly.baselines import signal_halves
from anomaly.study import numbers
from anomaly.study.contamination import contaminate, contamination_steps, step_name
from anomaly.study.numbers import BEST_SINGLE, BEST_SINGLE_EVAL, HELDOUT, SELECTION, ScoreSet
from anomaly.study.steps import marker_path, run_steps
from triggerad.data import fingerprint, load_sample, load_split, split_indices
from triggerad.errors import StatisticsError
from triggerad.events import EventBatch

CL = 0.6827


def _cp(k, n):
    a = 1 - CL
    return [stats.beta.ppf(a / 2, k, n - k + 1) if k else 0.0,
            stats.beta.ppf(1 - a / 2, k + 1, n - k) if k < n else 1.0]


# ---------------------------------------------------------------- the injection itself

def _batches():
    rng = np.random.default_rng(5)
    n = 2000
    objects = np.zeros((n, 19, 4), np.float32)
    objects[:, 0, 0] = rng.exponential(30.0, n)
    bkg = EventBatch.empty(n, objects=objects, weight=rng.choice([1.0, 4.0], n),
                           process=np.full(n, "W", dtype=object))
    sig_obj = np.zeros((300, 19, 4), np.float32)
    sig_obj[:, 0, 0] = 500.0 + np.arange(300)  # signal event j has MET 500 + j
    sig = EventBatch.empty(300, objects=sig_obj, weight=np.full(300, 0.01),
                           process=np.full(300, "sig", dtype=object))
    return bkg, sig


@pytest.mark.parametrize("fraction, expected", [(0.0, 0), (0.001, 1), (0.0104, 10), (0.05, 50)])
def test_contaminate_replaces_exactly_round_f_n_training_events(fraction, expected):
    bkg, sig = _batches()
    idx = split_indices(len(bkg), [0.5, 0.1, 0.4], 3)  # 1000 training events
    batch, info = contaminate(bkg, sig, fraction=fraction, train_idx=idx["train"], seed=7)
    assert info["n_train"] == 1000 and info["n_replaced"] == expected == round(fraction * 1000)
    is_sig = batch.process == "sig"
    assert is_sig.sum() == expected and is_sig[idx["train"]].sum() == expected
    np.testing.assert_array_equal(np.flatnonzero(is_sig), info["replaced"])
    for part in ("val", "test"):  # the SM validation and evaluation splits are untouched
        assert fingerprint(batch.take(idx[part])) == fingerprint(bkg.take(idx[part]))
    keep = ~is_sig
    assert fingerprint(batch.take(keep)) == fingerprint(bkg.take(keep))
    pool, held_out = signal_halves(300, 7)
    assert set(info["injected"]) <= set(pool)  # never an event the efficiencies are measured on
    np.testing.assert_array_equal(info["held_out"], held_out)
    np.testing.assert_array_equal(batch.objects[info["replaced"], 0, 0],
                                  500.0 + info["injected"].astype(np.float32))
    mean_w = bkg.weight[idx["train"]].mean()
    np.testing.assert_allclose(batch.weight[is_sig], mean_w)
    again, _ = contaminate(bkg, sig, fraction=fraction, train_idx=idx["train"], seed=7)
    assert fingerprint(again) == fingerprint(batch)  # seeded


def test_contaminate_nested_fractions_and_too_little_signal():
    bkg, sig = _batches()
    idx = split_indices(len(bkg), [0.5, 0.1, 0.4], 3)
    small = contaminate(bkg, sig, fraction=0.01, train_idx=idx["train"], seed=7)[1]
    large = contaminate(bkg, sig, fraction=0.05, train_idx=idx["train"], seed=7)[1]
    assert set(small["replaced"]) < set(large["replaced"])
    assert set(small["injected"]) < set(large["injected"])
    with pytest.raises(StatisticsError, match="injection half has 150"):
        contaminate(bkg, sig, fraction=0.2, train_idx=idx["train"], seed=7)


# ---------------------------------------------------------------- the fair best single cut

def _single_sets():
    """1000 SM events 0..999 in each sample (unit weights), 100 signal events per half.

    HT really separates (40 of 100 selection-half signal events, 20 of 100 held-out ones above
    every SM value); MET looks better on the held-out half by luck (35 above) but not on the
    selection half (10 above). Choosing on the evaluation sample picks MET, on selection HT.
    """
    bkg = np.arange(1000.0)
    low = np.linspace(0.0, 800.0, 100)

    def sig(k):
        return np.concatenate([np.full(k, 5000.0), low[k:]])

    def score_set(ht, met):
        s = ScoreSet(bkg_weight=np.ones(1000))
        s.add("single_HT", bkg, {"x": sig(ht)})
        s.add("single_MET", bkg, {"x": sig(met)})
        s.add("hlf_vae:nll", bkg, {"x": sig(30)})
        return s

    evaluation = score_set(20, 35)
    evaluation.splits = {SELECTION: score_set(40, 10), HELDOUT: score_set(20, 35)}
    return evaluation


def test_best_single_chosen_on_validation_not_on_the_lucky_evaluation_split(tmp_path):
    scores = _single_sets()
    scores.save(tmp_path / "s.npz")
    back = ScoreSet.load(tmp_path / "s.npz")
    assert set(back.splits) == {SELECTION, HELDOUT}
    np.testing.assert_array_equal(back.splits[SELECTION].methods["single_HT"]["sig"]["x"],
                                  scores.splits[SELECTION].methods["single_HT"]["sig"]["x"])
    rows = numbers.study_table(back, [0.1], cl=CL, min_effective=50)["0.1"]["x"]
    assert rows[BEST_SINGLE_EVAL]["variable"] == "MET"  # the lucky one
    assert rows[BEST_SINGLE_EVAL]["efficiency"] == pytest.approx(0.35)
    fair = rows[BEST_SINGLE]
    assert (fair["variable"], fair["direction"]) == ("HT", ">")
    assert fair["selection_efficiency"] == pytest.approx(0.4)
    assert fair["efficiency"] == pytest.approx(0.2) and fair["n_selected"] == 20
    assert fair["efficiency_ci"] == pytest.approx(_cp(20, 100), rel=1e-9)
    assert fair["cut"] == pytest.approx(899.5) and fair["bkg_fraction"] == pytest.approx(0.1)
    # the VAE (0.30) beats the fairly chosen cut (0.20), not the lucky one (0.35)
    assert numbers.comparison({"0.1": {"x": rows}}, "hlf_vae:nll")["0.1"]["wins"] == 1
    rows.pop(BEST_SINGLE)
    assert numbers.comparison({"0.1": {"x": rows}}, "hlf_vae:nll")["0.1"]["wins"] == 0


def test_best_single_direction_below():
    bkg = np.arange(1000.0)
    sig = np.concatenate([np.full(30, -50.0), np.full(70, 500.0)])  # 30 below every SM value
    s = ScoreSet(bkg_weight=np.ones(1000))
    s.add("single_MET", bkg, {"x": sig})
    row = numbers.best_single_fair(s, s, "x", 0.1, cl=CL, min_effective=50)
    assert row["direction"] == "<" and row["efficiency"] == pytest.approx(0.3)
    assert row["cut"] == pytest.approx(99.5)  # keep MET < 99.5: 10 % of the SM


# ---------------------------------------------------------------- the stages, trained tiny

TRAIN_YAML = """\
data: {fractions: [0.5, 0.2, 0.3], seed: 11}
model: {kind: hlf_vae, encoder: [8], decoder: [8], latent_dim: 2}
training: {epochs: 2, batch_size: 500, patience: 5}
quantization: {weight_bits: [8, 8], weight_integer: [2, 2], activation_bits: [8],
               activation_integer: [3], qat_epochs: 1}
"""


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """A study folder with toy data and its clean HLF VAE (2 epochs), and its config."""
    from test_evaluate import toy_batch

    from anomaly.study.config import load_study
    from anomaly.study.run import step_train
    from triggerad.io.adc2021 import write_h5

    root = tmp_path_factory.mktemp("contam")
    rng = np.random.default_rng(4)
    data = root / "data"
    data.mkdir()
    write_h5(data / "background.h5", toy_batch(3000, rng))
    write_h5(data / "signal_hard.h5", toy_batch(400, rng, shift=3.0, processes=("hard",)))
    (root / "train.yaml").write_text(TRAIN_YAML)
    (root / "study.yaml").write_text(
        f"generation: {{data: {data}}}\n"
        f"training: {{hlf: {root / 'train.yaml'}, l1: {root / 'train.yaml'}}}\n"
        "contamination: {fractions: [0.0, 0.02], signals: [hard], fprs: [0.05, 0.1]}\n")
    cfg = load_study(root / "study.yaml")
    clean = root / "clean"
    step_train(cfg, clean, "hlf_vae")
    return cfg, clean


def _copy(clean, dest):
    shutil.copytree(clean / "models", dest / "models")
    return dest


@pytest.mark.slow
def test_contamination_stages_resume_after_a_kill_with_identical_results(tiny_study, tmp_path,
                                                                         monkeypatch):
    import anomaly.train

    cfg, clean = tiny_study
    steps = contamination_steps(cfg)
    assert [s.name for s in steps] == [
        "contaminate_hlf_vae_hard_0", "contaminate_hlf_vae_hard_0.02", "contamination"]
    a = _copy(clean, tmp_path / "a")
    rec = run_steps(a, steps, echo=lambda _: None)

    hard = rec[step_name("hlf_vae", "hard", 0.02)]
    assert hard["n_train"] == 1500 and hard["n_replaced"] == 30 == round(0.02 * 1500)
    injected = load_sample(hard["data"])
    idx = split_indices(len(injected), [0.5, 0.2, 0.3], 11)
    assert (injected.process == "hard").sum() == 30
    assert (injected.process[idx["train"]] == "hard").sum() == 30
    from triggerad.models import load_model

    info = load_model(a / "models" / "hlf_vae").data_info
    test_fp = fingerprint(load_split(info, "test"))
    assert {r["evaluation_fingerprint"] for n, r in rec.items() if n != "contamination"} == {
        test_fp}
    assert fingerprint(injected.take(idx["test"])) == test_fp
    assert rec[step_name("hlf_vae", "hard", 0)]["n_replaced"] == 0
    assert rec[step_name("hlf_vae", "hard", 0)]["n_signal_held_out"] == 200
    report = json.loads((a / "contamination" / "report" / "contamination.json").read_text())
    row = report["table"]["hlf_vae:nll"]["0.1"]["hard"]["0.02"]
    assert row["n_replaced"] == 30 and 0 <= row["efficiency"] <= 1
    assert row["bkg_fraction"] == pytest.approx(0.1, abs=0.002)  # cut on the clean SM split
    assert set(report["table"]["hlf_vae:nll"]) == {"0.05", "0.1"}
    md = (a / "contamination" / "report" / "contamination.md").read_text()
    assert "| hard |" in md and "(30)" in md
    assert (a / "contamination" / "report" / "efficiency_vs_contamination.png").stat().st_size > 5000

    b = _copy(clean, tmp_path / "b")
    real, calls = anomaly.train.train, []

    def killed(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt  # killed during the contaminated training

    monkeypatch.setattr(anomaly.train, "train", killed)
    with pytest.raises(KeyboardInterrupt):
        run_steps(b, contamination_steps(cfg), echo=lambda _: None)
    assert calls == [1] and marker_path(b, step_name("hlf_vae", "hard", 0)).is_file()
    assert not marker_path(b, step_name("hlf_vae", "hard", 0.02)).exists()
    assert (b / "contamination" / "data" / "hard_0.02.h5").is_file()  # written before the kill
    monkeypatch.setattr(anomaly.train, "train", real)
    resumed = run_steps(b, contamination_steps(cfg), echo=lambda _: None)
    assert [n for n, r in resumed.items() if not r["skipped"]] == [
        step_name("hlf_vae", "hard", 0.02), "contamination"]
    again = json.loads((b / "contamination" / "report" / "contamination.json").read_text())
    for method, per in report["table"].items():
        for fpr, per_signal in per.items():
            for signal, rows in per_signal.items():
                for f, r in rows.items():
                    other = again["table"][method][fpr][signal][f]
                    assert other["efficiency"] == pytest.approx(r["efficiency"], abs=1e-12)
                    assert other["cut"] == pytest.approx(r["cut"], rel=1e-6)
    x, y = (ScoreSet.load(d / "contamination" / "scores" / "hlf_vae_hard_0.02.npz") for d in (a, b))
    for method, rec in x.methods.items():
        for part in ("bkg", "sig"):
            np.testing.assert_allclose(y.methods[method][part]["hard"], rec[part]["hard"], rtol=1e-6)
