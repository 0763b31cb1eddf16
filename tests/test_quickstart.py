"""`trigger-ad quickstart` end to end on a reduced size (the same chain a user runs)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from triggerad.cli import main


@pytest.mark.slow
def test_quickstart_reduced(tmp_path, capsys):
    out = tmp_path / "qs"
    code = main(["-q", "quickstart", "--out", str(out), "--events", "600", "--epochs", "2",
                 "--rate", "10kHz", "--input-rate", "100kHz", "--workers", "2"])
    assert code == 0
    printed = capsys.readouterr().out

    gen = json.loads((out / "data" / "summary.json").read_text())
    with h5py.File(out / "data" / "background.h5") as f:
        n_background = len(f["Particles"])
    sm = [p for p, v in gen["processes"].items() if p not in
          ("LQ_btau", "A_4l", "h0_tautau", "hplus_taunu")]
    assert n_background == sum(gen["processes"][p]["selected"] for p in sm) > 0
    n_signal = 0
    for name in ("LQ_btau", "A_4l", "h0_tautau", "hplus_taunu"):
        with h5py.File(out / "data" / f"signal_{name}.h5") as f:
            n_signal += len(f["Particles"])
            assert len(f["Particles"]) == gen["processes"][name]["selected"]

    for kind in ("hlf_vae", "l1_vae"):
        thr = json.loads((out / "models" / kind / "threshold.json").read_text())
        assert thr["target_rate_hz"] == pytest.approx(1e4)
        assert thr["achieved_rate_hz"] <= thr["target_rate_hz"] + 1e-6
        assert thr["n_background_above"] >= 10
        report = json.loads((out / "reports" / kind / "report.json").read_text())
        assert set(report["signals"]) == {"LQ_btau", "A_4l", "h0_tautau", "hplus_taunu"}
        for sig in report["signals"].values():
            assert 0.0 <= sig["efficiency"] <= 1.0 and 0.0 <= sig["auc"] <= 1.0

    fw = json.loads((out / "hls_l1_vae" / "firmware_report.json").read_text())
    assert fw["n_events"] == n_background + n_signal
    assert fw["decision_agreement"] >= 0.999 and fw["synthesis_run"] is False

    stream = json.loads((out / "stream" / "summary.json").read_text())
    assert stream["events"] == n_background and stream["files_failed"] == []
    scores = pd.concat(pd.read_parquet(p) for p in sorted((out / "stream" / "scores").glob("*")))
    thr = json.loads((out / "models" / "l1_vae" / "threshold.json").read_text())
    assert stream["accepted"] == int((scores[thr["score"]] > thr["value"]).sum())
    w = scores["weight"].to_numpy()
    np.testing.assert_allclose(
        stream["accepted_rate_hz"], 1e5 * w[scores["accepted"].to_numpy()].sum() / w.sum())
    assert "quickstart finished" in printed and f"{stream['accepted']} accepted" in printed
