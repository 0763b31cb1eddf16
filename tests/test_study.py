"""trigger-ad study: config errors, resumable stages, the report's numbers on constructed scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from anomaly.study import numbers
from anomaly.study.config import EvaluationSection, StudyConfig, load_study
from anomaly.study.numbers import BEST_SINGLE, BEST_SINGLE_EVAL, ScoreSet
from anomaly.study.report import NOT_MEASURABLE, write_report
from anomaly.study.steps import Step, marker_path, run_steps
from triggerad.cli import main
from triggerad.errors import ConfigError

CL = 0.6827


def write(path, text):
    path.write_text(text)
    return path


# ---------------------------------------------------------------- config errors

@pytest.mark.parametrize("text, expected", [
    ("evaluation:\n  fprz: [0.01]\n", "unknown key 'fprz'"),
    ("generation:\n  event: 10\n", "'events'"),
    ("generation:\n  config: generate-fast\n  events_fraction: {Wboson: 2.0}\n",
     "unknown process 'Wboson'"),
    ("evaluation:\n  fprs: [0.0]\n", "(0, 1)"),
    ("training:\n  hlf: train-hlf-fsat\n", "train-hlf-fast"),
    ("training:\n  fractions: [0.5, 0.5, 0.5]\n", "summing to 1"),
    ("contamination:\n  fraction: [0.01]\n", "did you mean 'fractions'"),
    ("contamination:\n  models: [hlf]\n", "did you mean 'hlf_vae'"),
    ("generation:\n  config: generate-fast\ncontamination:\n  signals: [A4l]\n",
     "did you mean 'A_4l'"),
    ("contamination:\n  fractions: [0.6]\n", "[0, 0.5)"),
    ("contamination:\n  signals: alll\n", "'all' or a list"),
])
def test_config_errors_name_key_and_nearest(tmp_path, text, expected):
    path = write(tmp_path / "study.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_study(path)
    assert expected in str(err.value)
    assert "study.yaml" in str(err.value)


def test_config_contamination_signal_of_a_data_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("A_4l", "LQ_btau"):
        (data / f"signal_{name}.h5").write_bytes(b"")
    path = write(tmp_path / "s.yaml", f"generation: {{data: {data}}}\n"
                 "contamination: {signals: [LQ_btua]}\n")
    with pytest.raises(ConfigError, match="unknown signal 'LQ_btua'.*did you mean 'LQ_btau'"):
        load_study(path)


def test_config_nearest_process(tmp_path):
    path = write(tmp_path / "s.yaml",
                 "generation:\n  config: generate-fast\n  events_fraction: {QCD_fak: 1.0}\n")
    with pytest.raises(ConfigError, match="QCD_fake"):
        load_study(path)


# ---------------------------------------------------------------- resumable stages

def _steps(calls, *, fail_at=None):
    def make(name, value):
        def run(out):
            calls.append(name)
            if name == fail_at:
                raise KeyboardInterrupt  # a kill in the middle of the stage
            (out / f"{name}.txt").write_text(value)
            return {"value": value}
        return Step(name, run)

    return [make("generate", "g"), make("train", "t"), make("report", "r")]


def test_killed_study_resumes_without_redoing_finished_stages(tmp_path):
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_steps(tmp_path, _steps(calls, fail_at="train"), echo=lambda _: None)
    assert calls == ["generate", "train"]
    assert marker_path(tmp_path, "generate").is_file()
    assert not marker_path(tmp_path, "train").exists()
    mtime = (tmp_path / "generate.txt").stat().st_mtime_ns
    marker = marker_path(tmp_path, "generate").read_text()

    calls.clear()
    records = run_steps(tmp_path, _steps(calls), echo=lambda _: None)
    assert calls == ["train", "report"]  # generate skipped
    assert (tmp_path / "generate.txt").stat().st_mtime_ns == mtime
    assert marker_path(tmp_path, "generate").read_text() == marker
    assert records["generate"]["skipped"] and not records["report"]["skipped"]
    assert [records[k]["value"] for k in ("generate", "train", "report")] == ["g", "t", "r"]

    marker_path(tmp_path, "train").unlink()  # a redone stage redoes every later one
    calls.clear()
    run_steps(tmp_path, _steps(calls), echo=lambda _: None)
    assert calls == ["train", "report"]

    fresh = tmp_path / "fresh"
    run_steps(fresh, _steps([]), echo=lambda _: None)  # identical outputs to an unbroken run
    for name in ("generate", "train", "report"):
        assert (fresh / f"{name}.txt").read_text() == (tmp_path / f"{name}.txt").read_text()


def test_stage_redone_in_a_killed_run_makes_its_dependents_stale(tmp_path):
    calls: list[str] = []

    def steps(fail_at=None):
        def make(name, needs=None):
            def run(out):
                calls.append(name)
                if name == fail_at:
                    raise KeyboardInterrupt
                return {}
            return Step(name, run, needs=needs)
        return [make("a"), make("b"), make("c"), make("d", needs=("b",)), make("e", needs=("a",))]

    run_steps(tmp_path, steps(), echo=lambda _: None)
    marker_path(tmp_path, "b").unlink()
    calls.clear()
    with pytest.raises(KeyboardInterrupt):  # b redone, killed in c: d's marker is now stale
        run_steps(tmp_path, steps(fail_at="c"), echo=lambda _: None)
    assert calls == ["b", "c"]
    calls.clear()
    records = run_steps(tmp_path, steps(), echo=lambda _: None)
    assert calls == ["c", "d"]  # e needs only a: kept
    assert records["e"]["skipped"] and not records["d"]["skipped"]
    calls.clear()
    run_steps(tmp_path, steps(), echo=lambda _: None)
    assert calls == []


def test_cli_resumes_refuses_another_config_and_restarts(tmp_path, monkeypatch, capsys):
    import anomaly.study.run as study_run

    calls: list[str] = []
    headline = {"hlf_vae:nll": {"0.01": {"wins": 1, "signals": 2,
                                         "mean_ratio_to_supervised": 0.5, "measurable": True}}}

    def fake_steps(cfg, config_path):
        steps = _steps(calls)[:2]
        return steps + [Step("report", lambda out: {"headline": headline})]

    monkeypatch.setattr(study_run, "study_steps", fake_steps)
    cfg = write(tmp_path / "study.yaml", "generation:\n  config: generate-fast\n  events: 100\n")
    out = tmp_path / "study"
    assert main(["study", str(cfg), "--out", str(out)]) == 0
    assert "wins 1 of 2" in capsys.readouterr().out
    assert main(["study", str(cfg), "--out", str(out)]) == 0
    assert calls == ["generate", "train"]  # second run: everything skipped

    write(cfg, "generation:\n  config: generate-fast\n  events: 200\n")
    assert main(["study", str(cfg), "--out", str(out)]) == 2
    assert "another config" in capsys.readouterr().err
    assert main(["study", str(cfg), "--out", str(out), "--restart"]) == 0
    assert calls == ["generate", "train"] * 2

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("keep")
    assert main(["study", str(cfg), "--out", str(foreign)]) == 2
    assert "not written by 'trigger-ad study'" in capsys.readouterr().err


# ---------------------------------------------------------------- numbers

def _score_set():
    """1000 background events scored 0..999 (unit weights); two signals of 200 events.

    ``single_HT`` separates: 50 of signal "bump"'s HT values lie above every background value;
    ``single_MET`` is identical for signal and background (no separation).
    """
    bkg = np.arange(1000.0)
    rng = np.random.default_rng(3)
    bump = np.concatenate([np.full(50, 2000.0), rng.uniform(0, 800, 150)])
    flat = rng.permutation(np.arange(0.0, 1000.0, 5.0))
    s = ScoreSet(bkg_weight=np.ones(1000))
    s.add("hlf_vae:nll", bkg, {"bump": bump, "flat": flat})
    s.add("single_HT", bkg, {"bump": bump, "flat": flat})
    s.add("single_MET", bkg[::-1].copy(), {"bump": np.arange(0.0, 200.0), "flat": flat[::-1].copy()})
    s.add("classifier", {"bump": bkg, "flat": bkg}, {"bump": bump, "flat": flat})
    return s


def _cp(k, n):
    a = 1 - CL
    return [stats.beta.ppf(a / 2, k, n - k + 1) if k else 0.0,
            stats.beta.ppf(1 - a / 2, k + 1, n - k) if k < n else 1.0]


def test_efficiencies_and_intervals_exact():
    table = numbers.study_table(_score_set(), [0.1, 0.01], cl=CL, min_effective=50)
    row = table["0.1"]["bump"]["hlf_vae:nll"]
    assert row["cut"] == pytest.approx(899.5)
    assert row["n_above"] == 100 and row["k_eff"] == pytest.approx(100.0)
    assert row["bkg_fraction"] == pytest.approx(0.1)
    assert row["bkg_ci"] == pytest.approx(_cp(100, 1000), rel=1e-9)
    assert row["measurable"]
    assert row["n_selected"] == 50 and row["efficiency"] == pytest.approx(0.25)
    assert row["efficiency_ci"] == pytest.approx(_cp(50, 200), rel=1e-9)
    flat = table["0.1"]["flat"]["hlf_vae:nll"]  # 0, 5, ..., 995: 20 of 200 above 899.5
    assert flat["efficiency"] == pytest.approx(0.1)
    assert flat["efficiency_ci"] == pytest.approx(_cp(20, 200), rel=1e-9)
    tight = table["0.01"]["bump"]["hlf_vae:nll"]  # 10 background events above: too few
    assert tight["n_above"] == 10 and not tight["measurable"]
    assert tight["efficiency"] == pytest.approx(0.25)


def test_single_variable_finds_the_one_separating_feature():
    table = numbers.study_table(_score_set(), [0.1], cl=CL, min_effective=50)["0.1"]["bump"]
    assert table["single_HT"]["efficiency"] == pytest.approx(0.25)
    assert table["single_MET"]["efficiency"] == pytest.approx(0.0)
    assert table["single_MET"]["efficiency_ci"] == pytest.approx(_cp(0, 200), rel=1e-9)
    assert table[BEST_SINGLE_EVAL]["variable"] == "HT" and BEST_SINGLE not in table
    assert table[BEST_SINGLE_EVAL]["efficiency"] == pytest.approx(0.25)


def test_weighted_background_effective_counts():
    w = np.where(np.arange(1000) % 2 == 0, 1.0, 3.0)
    n_eff = w.sum() ** 2 / np.square(w).sum()
    row = numbers.operating_point(np.arange(1000.0), w, np.array([5000.0, 0.0]), None, 0.1,
                                  cl=CL, min_effective=50)
    assert row["bkg_fraction"] <= 0.1
    assert row["k_eff"] == pytest.approx(row["bkg_fraction"] * n_eff)
    assert row["efficiency"] == pytest.approx(0.5)


def test_comparison_and_score_file_roundtrip(tmp_path):
    scores = _score_set()
    scores.save(tmp_path / "scores.npz")
    back = ScoreSet.load(tmp_path / "scores.npz")
    assert sorted(back.methods) == sorted(scores.methods)
    np.testing.assert_array_equal(back.methods["classifier"]["sig"]["bump"],
                                  scores.methods["classifier"]["sig"]["bump"])
    table = numbers.study_table(back, [0.1, 0.01], cl=CL, min_effective=50)
    summary = numbers.comparison(table, "hlf_vae:nll")
    # nll = HT here: no win; ratio to the classifier (same scores) is 1 for both signals
    assert summary["0.1"] == {"wins": 0, "signals": 2, "mean_ratio_to_supervised": 1.0,
                              "measurable": True}
    assert not summary["0.01"]["measurable"]


def test_report_writes_numbers_and_not_measurable(tmp_path):
    cfg = StudyConfig(evaluation=EvaluationSection(fprs=[0.1, 0.01]))
    report = write_report(tmp_path / "report", _score_set(), cfg, {}, config_path="s.yaml")
    md = (tmp_path / "report" / "report.md").read_text()
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    low, high = _cp(50, 200)
    assert f"0.25 [{low:.3g}, {high:.3g}]" in md
    assert f"{NOT_MEASURABLE.capitalize()} at this size for every method" in md
    assert "9.26e+06 effective SM events" in md  # Cerri et al.'s 5.4e-6 needs 50 / 5.4e-6
    assert saved["table"]["0.1"]["bump"]["hlf_vae:nll"]["efficiency"] == pytest.approx(0.25)
    assert report["statistics"]["0.01"]["measurable"] is False
    assert report["best_unsupervised"]["0.1"]["method"] == "hlf_vae:nll"
    assert (tmp_path / "report" / "efficiency_vs_fpr.png").stat().st_size > 10_000
    assert "CMS" not in md


def test_reference_study_without_ue_differs_only_in_the_generator():
    from triggerad.config import to_dict

    configs = Path(__file__).resolve().parents[1] / "configs"
    ref, noue = (to_dict(load_study(configs / f"{n}.yaml")) for n in ("study", "study-noue"))
    assert (ref["generation"]["config"], noue["generation"]["config"]) == ("generate",
                                                                           "generate-fast")
    ref["generation"]["config"] = noue["generation"]["config"]
    assert ref == noue
