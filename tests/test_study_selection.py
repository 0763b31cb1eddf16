"""The best unsupervised method and the best single cut are chosen on a sample they are not
reported on (anomaly.study.numbers.best_unsupervised_fair, anomaly.report.baselines_report)."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly.report import baselines_report
from anomaly.study import numbers
from anomaly.study.config import EvaluationSection, StudyConfig
from anomaly.study.numbers import HELDOUT, SELECTION, SUPERVISED, ScoreSet
from anomaly.study.report import best_unsupervised_choices, build_report, render_markdown
from anomaly.study.run import selection_splits

CL = 0.6827
BKG = np.arange(1000.0)  # SM scores 0..999, unit weights: a 10 % cut keeps > 899.5


def _sig(k: int) -> np.ndarray:
    """100 signal events, ``k`` of them above every SM value."""
    return np.concatenate([np.full(k, 5000.0), np.linspace(0.0, 800.0, 100)[k:]])


def _sets(a: int, b: int, ht: int, supervised: int | None = None) -> ScoreSet:
    s = ScoreSet(bkg_weight=np.ones(1000))
    s.add("method_a", BKG, {"x": _sig(a)})
    s.add("method_b", BKG, {"x": _sig(b)})
    s.add("single_HT", BKG, {"x": _sig(ht)})
    if supervised is not None:
        s.add(SUPERVISED, {"x": BKG}, {"x": _sig(supervised)})
    return s


def _scores() -> ScoreSet:
    """Method a is better on the selection sample (40 vs 10 of 100 signal events kept); b is
    better on the held-out one by luck (35 vs 20). HT keeps 15 in both; the bound keeps 50."""
    evaluation = _sets(20, 35, 15, supervised=50)
    evaluation.splits = {SELECTION: _sets(40, 10, 15), HELDOUT: _sets(20, 35, 15, supervised=50)}
    return evaluation


def test_best_unsupervised_is_chosen_on_selection_and_reported_held_out():
    scores = _scores()
    table = numbers.study_table(scores, [0.1], cl=CL, min_effective=50)
    fair, optimistic = best_unsupervised_choices(scores, table, [0.1], cl=CL, min_effective=50)
    assert optimistic["0.1"]["method"] == "method_b"  # the lucky one on the evaluation sample
    assert optimistic["0.1"]["chosen_on"] == "evaluation"
    assert optimistic["0.1"]["mean_ratio_to_supervised"] == pytest.approx(0.35 / 0.5)
    best = fair["0.1"]
    assert best["method"] == "method_a" and best["chosen_on"] == "selection"
    assert best["selection_wins"] == 1  # 0.40 > HT 0.15 on selection (b: 0.10, no win)
    assert best["selection_mean_ratio"] == pytest.approx(0.40 / 0.5)
    assert best["wins"] == 1  # held out: 0.20 > HT 0.15
    assert best["mean_ratio_to_supervised"] == pytest.approx(0.20 / 0.5)
    assert best["measurable"] and best["signals"] == 1

    report = build_report(scores, StudyConfig(evaluation=EvaluationSection(fprs=[0.1])), {})
    assert report["best_unsupervised"]["0.1"]["method"] == "method_a"
    md = render_markdown({**report, "figures": []})
    assert ("chosen on the validation split + selection half of the signals; numbers on the "
            "evaluation split + the other half): method_a | 0.1 | 1 of 1 | 0.40 |") in md
    assert "chosen on the evaluation split itself (optimistic): method_b | 0.1 | 1 of 1 | 0.70 |" in md


def test_without_selection_scores_the_choice_is_labelled_optimistic():
    scores = _scores()
    scores.splits = {}
    table = numbers.study_table(scores, [0.1], cl=CL, min_effective=50)
    best, _ = best_unsupervised_choices(scores, table, [0.1], cl=CL, min_effective=50)
    assert best["0.1"]["method"] == "method_b" and best["0.1"]["chosen_on"] == "evaluation"


def test_selection_splits_take_the_signal_halves():
    scores = _sets(20, 35, 15, supervised=50)
    halves = {"x": (np.arange(0, 100, 2), np.arange(1, 100, 2))}
    val = {"method_a": np.arange(10.0), "single_HT": np.arange(10.0) + 1}
    splits = selection_splits(scores, val, np.full(10, 2.0), halves)
    sel, held = splits[SELECTION], splits[HELDOUT]
    assert sorted(sel.methods) == ["method_a", "single_HT"]
    assert sorted(held.methods) == ["classifier", "method_a", "single_HT"]
    np.testing.assert_array_equal(sel.methods["method_a"]["sig"]["x"], _sig(20)[::2])
    np.testing.assert_array_equal(held.methods["method_a"]["sig"]["x"], _sig(20)[1::2])
    np.testing.assert_array_equal(sel.methods["single_HT"]["bkg"]["x"], np.arange(10.0) + 1)
    np.testing.assert_array_equal(held.methods["method_a"]["bkg"]["x"], BKG)
    assert sel.bkg_weight.tolist() == [2.0] * 10


def test_evaluate_best_single_chosen_on_validation():
    """HT separates on the validation split's selection half (40 kept) but MET looks better on
    the whole test sample (65 vs 60 of 200; 55 of them in the other half, by luck): the fair
    choice is HT, measured on the other half."""
    halves = (np.arange(100), np.arange(100, 200))
    sig = {"single_HT": {"x": np.concatenate([_sig(40), _sig(20)])},
           "single_MET": {"x": np.concatenate([_sig(10), _sig(55)])}}
    bkg = {"single_HT": BKG, "single_MET": BKG}
    optimistic, _ = baselines_report(bkg, np.ones(1000), sig, 0.1)
    assert optimistic["best_single_variable"]["x"]["variable"] == "MET"
    assert optimistic["best_single_variable"]["x"]["chosen_on"] == "evaluation"
    selection = {"bkg": {"single_HT": BKG, "single_MET": BKG}, "weights": np.ones(1000),
                 "halves": {"x": halves}}
    table, _ = baselines_report(bkg, np.ones(1000), sig, 0.1, selection=selection)
    best = table["best_single_variable"]["x"]
    assert (best["variable"], best["chosen_on"]) == ("HT", "validation")
    assert best["selection_efficiency"] == pytest.approx(0.4)
    assert best["efficiency"] == pytest.approx(0.2)  # held-out half of HT
    assert table["single_MET"]["x"]["efficiency"] == pytest.approx(0.325)  # all 200 events
