"""LLP tagger evaluation and scoring: report numbers, c-tau scan, CLI errors, score vs predict, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tagger_samples import SIZES, jets, write_sample

from tagger import artifact, evaldata
from tagger import evaluate as tev
from tagger import inputs as tin
from tagger.model import ModelConfig, build_tagger
from triggerad import metrics
from triggerad.cli import main
from triggerad.config import to_dict
from triggerad.errors import StatisticsError
from triggerad.io.jeth5 import write_jets_h5
from triggerad.jets import JetBatch


class FakeTagger:
    """A stand-in tagger: P(LLP) 0.9 for LLP jets at their true c-tau, falling by 0.5 per decade
    of |log10(hypothesis / true c-tau)| (a perfectly parametrised tagger); SM jets spread over
    [0, 0.8) (deterministic in the entry)."""

    kind = "llp_tagger"
    domain_adaptation = True
    ctau_range_mm = (0.01, 1e4)
    data_info: dict = {}
    class_names = ["LLP", "b", "c", "uds", "g"]

    def __init__(self, path="fake"):
        self.path = Path(path)

    def check_ctau(self, ctau, *, policy="error", where=""):
        pass

    def predict(self, batch: JetBatch, *, ctau_mm=None, batch_size=8192):
        llp = batch.label == 0
        p = np.where(llp, 0.9, 0.8 * np.modf(batch.entry * 0.6180339887)[0])
        if ctau_mm is not None:
            true = np.where(batch.ctau > 0, batch.ctau, 1.0)
            p = np.where(llp, np.clip(0.9 - 0.5 * np.abs(np.log10(ctau_mm / true)), 0, 1), p)
        probs = np.zeros((len(batch), 5), np.float32)
        probs[:, 0] = p
        probs[:, 3] = 1 - p
        return probs


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("llp"), 500, 500, 400, seed=3)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An (untrained) tiny tagger folder: valid probabilities, fixed weights."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(7)
    cfg = ModelConfig(charged=[8], neutral=[4], sv=[4], dense=8, class_layers=[8],
                      domain_layers=[4])
    path = tmp_path_factory.mktemp("models") / "llp"
    artifact.save(path, net=build_tagger(cfg, SIZES), sizes=SIZES,
                  normalisation=tin.fit_normalisation(jets(300, seed=5)),
                  ctau_range_mm=(0.01, 1e4), config={"model": to_dict(cfg)},
                  data_info={"fingerprint": "test"}, domain_adaptation=True)
    return path


def test_separable_sample_auc_one_efficiency_one_and_scan_peaks(sample, tmp_path):
    cfg = tev.EvaluateConfig(mistags=[1e-4, 1e-3, 0.05])
    report = tev.evaluate(FakeTagger(), sample, tmp_path / "rep", cfg, progress=False)
    for key in ("1mm", "1m"):
        for against in ("udsg", "b", "c"):
            row = report["roc"][key][against]
            assert row["auc"] == 1.0
            assert all(r["efficiency"] == 1.0 for r in row["at_mistag"].values())
    for m in ("0.0001", "0.001", "0.05"):
        assert all(e == 1.0 for e, n in zip(report["efficiency_vs_ctau"]["efficiency"][m],
                                            report["efficiency_vs_ctau"]["n_llp"], strict=True) if n)
    # a sample of fixed true c-tau: the efficiency peaks at the true value
    for key, true in (("1mm", 1.0), ("1m", 1000.0)):
        scan = report["ctau_scan"][key]
        assert scan["peak_ctau_mm"] == pytest.approx(true)
    assert scan["efficiency"][scan["ctau_mm"].index(pytest.approx(1e4))] == 0.0
    written = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert written["roc"]["1mm"]["udsg"]["auc"] == 1.0
    assert sorted(written["figures"]) == sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
    assert "| 1mm | udsg |" in (tmp_path / "rep" / "report.md").read_text()


def test_report_numbers_equal_metrics_on_predictions(sample, model_dir, tmp_path):
    model = artifact.load(model_dir)
    report = tev.evaluate(model, sample, tmp_path / "rep", compare=model_dir, progress=False)
    jets_, _ = evaldata.load_jets(sample)
    llp, sm = jets_["llp"], jets_["sm"]
    sel = np.abs(np.log10(llp.ctau) - 0.0) <= 0.5
    p_sig = model.predict(llp, batch_size=97)[sel, 0]
    p_sm = model.predict(sm, ctau_mm=1.0)[:, 0]
    udsg = np.isin(sm.label, (3, 4))
    expected = metrics.auc(p_sm[udsg], sm.weight[udsg], p_sig, llp.weight[sel])
    assert report["roc"]["1mm"]["udsg"]["auc"] == pytest.approx(expected, abs=1e-6)
    assert report["roc"]["1mm"]["udsg"]["n_signal"] == int(sel.sum())
    unweighted = tev.evaluate(model, sample, tmp_path / "rep_u",
                              tev.EvaluateConfig(weighted=False, roc_ctau_mm=[1.0],
                                                 domain_ctau_mm=[1.0]), progress=False)
    assert unweighted["roc"]["1mm"]["udsg"]["auc"] == pytest.approx(
        metrics.auc(p_sm[udsg], None, p_sig), abs=1e-6)
    # the same model as its own comparison: no AUC cost, JSD ratio 1
    da = report["domain_adaptation"]
    assert da["auc_cost"]["1mm"]["udsg"] == pytest.approx(0.0, abs=1e-12)
    assert da["jsd"]["1m"]["ratio"] == pytest.approx(1.0)


def test_cli_evaluate_and_score_errors_exit_2(sample, model_dir, tmp_path, capsys):
    assert main(["tagger", "evaluate", str(tmp_path / "nope"), "--data", str(sample),
                 "--out", str(tmp_path / "r")]) == 2
    assert "not a model folder (no artifact.json)" in capsys.readouterr().err
    assert main(["tagger", "evaluate", str(model_dir), "--data", str(tmp_path),
                 "--out", str(tmp_path / "r")]) == 2
    assert "no signal.h5 or signal.root" in capsys.readouterr().err
    assert main(["tagger", "score", str(model_dir), str(sample / "background.h5"),
                 "--ctau", "5e4", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "c-tau 50000.0 mm" in err and "[0.01, 1e+04] mm" in err and "--ctau-policy warn" in err
    assert not (tmp_path / "s").exists()
    # another block size than the model's: schema mismatch, named
    other = tmp_path / "other.h5"
    write_jets_h5(other, jets(20, sizes={"charged": 4, "neutral": 5, "sv": 2}))
    assert main(["tagger", "score", str(model_dir), str(other), "--ctau", "1",
                 "--out", str(tmp_path / "s2"), "--on-error", "fail", "--no-progress"]) == 2
    assert "other.h5" in capsys.readouterr().err
    assert main(["tagger", "score", str(model_dir), str(other), "--ctau", "-1",
                 "--out", str(tmp_path / "s3")]) == 2
    assert "expected a positive c-tau in mm, found -1.0" in capsys.readouterr().err
    # quickstart: too few epochs for domain adaptation, refused before anything is generated
    assert main(["tagger", "quickstart", "--out", str(tmp_path / "qs"), "--epochs", "3"]) == 2
    assert "--epochs 3: tagger-train-fast trains the class branch alone for 3 epochs; use at " \
           "least 4" in capsys.readouterr().err
    assert not (tmp_path / "qs").exists()


def _table(out: Path) -> pd.DataFrame:
    parts = sorted((out / "scores").glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def test_cli_score_equals_predict_and_resumes(sample, model_dir, tmp_path, capsys):
    files = [str(sample / "background.h5"), str(sample / "signal.h5")]
    out = tmp_path / "s"
    argv = ["tagger", "score", str(model_dir), *files, "--ctau", "3", "--out", str(out),
            "--chunk-size", "128", "--no-progress"]
    assert main(argv) == 0
    table = _table(out)
    probs = table[[f"prob_{c}" for c in ("LLP", "b", "c", "uds", "g")]].to_numpy(np.float64)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    model = artifact.load(model_dir)
    jets_ = JetBatch.concatenate([evaldata.read_jets(Path(f)) for f in files])
    np.testing.assert_allclose(probs, model.predict(jets_, ctau_mm=3.0), atol=1e-6)
    np.testing.assert_array_equal(table["entry"], jets_.entry)
    np.testing.assert_array_equal(table["label"], jets_.label)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] == len(jets_) == 1000 and summary["units"] == 8
    # kill after 3 units: drop the later manifest lines and parts, re-run -> same rows
    lines = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text("\n".join(lines[:3]) + "\n")
    for part in sorted((out / "scores").glob("part-*.parquet"))[3:]:
        part.unlink()
    assert main(argv) == 0
    assert json.loads((out / "summary.json").read_text())["resumed_units"] == 3
    pd.testing.assert_frame_equal(_table(out), table)
    # another hypothesis in the same folder is refused
    capsys.readouterr()
    assert main([a if a != "3" else "4" for a in argv]) == 2
    assert "different 'scorer_settings'" in capsys.readouterr().err
    # warn policy: scores outside the range with a warning naming it
    assert main(["tagger", "score", str(model_dir), files[0], "--ctau", "2e4", "--ctau-policy",
                 "warn", "--out", str(tmp_path / "w"), "--no-progress"]) == 0
    assert "c-tau 20000.0 mm" in capsys.readouterr().err


def test_files_a_model_trained_on_contribute_their_validation_split(sample, tmp_path):
    from tagger.pipeline import validation_mask

    fake = FakeTagger()
    fake.data_info = {"simulation": {"files": [str((sample / "background.h5").resolve())]},
                      "validation_fraction": 0.3}
    jets_, info = evaldata.load_jets(sample, models=[fake])
    assert info["split"] == {"signal": "all", "background": "validation (0.3)",
                             "data_like": "all"}
    bkg = evaldata.read_jets(sample / "background.h5")
    assert len(jets_["sim_sm"]) == int(validation_mask(bkg, 0.3).sum()) < 0.4 * len(bkg)
    # the PFNano twin of a training file holds the same jets: the same split
    fake.data_info = {"simulation": {"files": [str((sample / "background.root").resolve())]},
                      "validation_fraction": 0.3}
    assert evaldata.load_jets(sample, models=[fake])[1]["split"]["background"] == "validation (0.3)"
    fake.data_info = {"simulation": {"files": [str((sample / "signal.h5").resolve())]}}
    with pytest.raises(StatisticsError, match="trained on every jet of this file"):
        evaldata.load_jets(sample, models=[fake])


@pytest.mark.slow
def test_end_to_end_train_evaluate_score(tmp_path, capsys):
    """Train tiny taggers with and without DA (CLI, 2 epochs), evaluate one against the other on
    an independent sample and score it: numbers equal those recomputed from predict."""
    import yaml

    from triggerad.config import read_yaml, resolve_config

    train_data = write_sample(tmp_path / "train", 1500, 1500, 1000, seed=0)
    test_data = write_sample(tmp_path / "test", 800, 800, 600, seed=10)
    raw = read_yaml(resolve_config("tagger-train-fast"))
    raw["data"].update(chunk_entries=512, shuffle_buffer=2000)
    raw["training"].update(batch_size=1000, domain_batch_size=500, class_only_epochs=1,
                           steps_per_epoch=8, learning_rate=0.003)
    raw["model"].update(charged=[16, 8], neutral=[8, 4], sv=[8, 4], dense=32,
                        class_layers=[32, 32], domain_layers=[16])
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    models = {}
    for name, flags in (("da", []), ("no_da", ["--no-da"])):
        models[name] = tmp_path / name
        assert main(["-q", "tagger", "train", str(cfg), "--data", str(train_data), "--out",
                     str(models[name]), "--epochs", "2", *flags]) == 0
    rep = tmp_path / "report"
    assert main(["-q", "tagger", "evaluate", str(models["da"]), "--data", str(test_data),
                 "--out", str(rep), "--compare", str(models["no_da"]), "--no-progress"]) == 0
    assert "model (with DA) c-tau 1mm: AUC(LLP vs udsg)" in capsys.readouterr().out
    report = json.loads((rep / "report.json").read_text())
    assert report["data"]["split"] == {"signal": "all", "background": "all", "data_like": "all"}
    model = artifact.load(models["da"])
    jets_, _ = evaldata.load_jets(test_data)
    llp, sm = jets_["llp"], jets_["sm"]
    sel = np.abs(np.log10(llp.ctau / 1000.0)) <= 0.5
    udsg = np.isin(sm.label, (3, 4))
    p_sig = model.predict(llp)[sel, 0]
    p_bkg = model.predict(sm, ctau_mm=1000.0)[udsg, 0]
    auc = metrics.auc(p_bkg, sm.weight[udsg], p_sig, llp.weight[sel])
    assert report["roc"]["1m"]["udsg"]["auc"] == pytest.approx(auc, abs=1e-6)
    assert auc > 0.75  # learned (0.5: random); 2 tiny epochs
    cost = report["compare"]["roc"]["1m"]["udsg"]["auc"] - auc
    assert report["domain_adaptation"]["auc_cost"]["1m"]["udsg"] == pytest.approx(cost, abs=1e-9)
    assert 0 <= report["domain"]["1mm"]["jsd_bits"] <= 1
    # scoring the same jets at 1 m gives the same probabilities as predict
    out = tmp_path / "scores"
    assert main(["-q", "tagger", "score", str(models["da"]), str(test_data / "background.h5"),
                 "--ctau", "1000", "--out", str(out), "--chunk-size", "300", "--no-progress"]) == 0
    table = _table(out)
    probs = table[[f"prob_{c}" for c in model.class_names]].to_numpy(np.float64)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    bkg = evaldata.read_jets(test_data / "background.h5")
    np.testing.assert_allclose(probs, model.predict(bkg, ctau_mm=1000.0), atol=1e-5)
