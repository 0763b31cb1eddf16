"""``trigger-ad tagger generate``: reproducibility, sample content, summary, config errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import uproot
import yaml

from tagger.generate import generate
from tagger.samples import load_config
from triggerad.cli import main
from triggerad.io.registry import make_reader
from triggerad.jets import LABELS, JetBatch

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

TINY = {
    "beam": {"settings": ["PartonLevel:MPI = off", "Next:numberCount = 0"]},
    "signals": {
        "HSS_m40_bb": {"mass": 40.0, "quarks": [5]},
        "gluino_1200": {"model": "gluino_rhadron", "mass": 1200.0, "lsp_mass": 100.0,
                        "quarks": [1, 2, 3], "events_fraction": 0.25},
    },
    "processes": {"QCD": {"settings": ["HardQCD:all = on", "PhaseSpace:pTHatMin = 20."]}},
    "ctau": {"mode": "grid", "values": [0.1, 3.0, 30.0], "batch_events": 10},
    "domain": {"events_fraction": 0.5, "tracking": {"ip_smear_scale": 1.5}, "jes": 1.05},
    "output": {"job_size": 40, "batch_size": 20, "formats": ["h5", "root"]},
}
N_EVENTS = 80


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def run_w1(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("llp") / "w1"
    assert main(["-q", "tagger", "generate", str(tiny_config), "--events", str(N_EVENTS),
                 "--out", str(out), "--seed", "5", "--workers", "1"]) == 0
    return out


def _h5(path) -> dict:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f} | {f"attr:{k}": v for k, v in f.attrs.items()}


def _root(path) -> dict:
    with uproot.open(path) as f:
        return {k: v for k, v in f["Events"].arrays(library="np").items()}


@pytest.mark.slow
def test_same_seed_gives_identical_files_for_one_and_two_workers(tiny_config, run_w1, tmp_path):
    generate(load_config(tiny_config), N_EVENTS, tmp_path, seed=5, workers=2, progress=False)
    for stem in ("signal", "background", "shifted_sim"):
        ref, again = _h5(run_w1 / f"{stem}.h5"), _h5(tmp_path / f"{stem}.h5")
        assert ref.keys() == again.keys()
        for k in ref:
            np.testing.assert_array_equal(ref[k], again[k], err_msg=f"{stem}.h5:{k}")
        ref, again = _root(run_w1 / f"{stem}.root"), _root(tmp_path / f"{stem}.root")
        assert ref.keys() == again.keys()
        for k in ref:
            assert len(ref[k]) == len(again[k])
            for a, b in zip(ref[k], again[k], strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"{stem}.root:{k}")


def _jets(path) -> JetBatch:
    kind = "jets" if str(path).endswith(".h5") else "pfnano"
    return JetBatch.concatenate(list(make_reader(kind, record="jets").iter_chunks(path)))


def test_samples_labels_ctau_weights_and_summary(run_w1):
    summary = json.loads((run_w1 / "summary.json").read_text())
    signal, background, shifted = (_jets(run_w1 / f"{s}.h5")
                                   for s in ("signal", "background", "shifted_sim"))
    for name, batch in (("signal", signal), ("background", background), ("shifted", shifted)):
        assert summary["outputs"][name]["jets"] == len(batch) > 0
        assert summary["outputs"][name]["class_counts"] == batch.class_counts()
    # LLP jets only in the signal, from both models; c-tau from the grid, SM jets 0
    llp = signal.label == LABELS.index("LLP")
    assert {p for p in signal.process[llp]} == {"HSS_m40_bb", "gluino_1200"}
    assert set(np.round(signal.ctau.astype(np.float64), 4).tolist()) == {0.1, 3.0, 30.0}
    assert not np.any(background.label == 0) and np.all(background.ctau == 0)
    assert np.all(background.label >= 0) or np.mean(background.label < 0) < 0.1
    # LLP jets are associated with a displaced vertex carrying most of their momentum
    assert np.all(np.linalg.norm(signal.vertex[llp], axis=1) > 0)
    assert np.all(signal.vertex_fraction[llp] > 0.5)
    # the shifted simulation is unlabelled, flagged and named after its SM process
    assert np.all(shifted.label == -1) and np.all(shifted.domain == 1)
    assert np.all(shifted.gen_dr == -1) and set(shifted.process) == {"QCD"}
    assert np.all(signal.domain == 0) and np.all(background.domain == 0)
    # weights: sigma / N_generated per event of each sample
    samples = summary["samples"]
    for name, entry in samples.items():
        batch = {"signal": signal, "background": background, "shifted": shifted}[entry["kind"]]
        mine = batch.process == entry["process"]
        np.testing.assert_allclose(batch.weight[mine], entry["sigma_pb"] / entry["generated"])
        assert entry["generated"] == round(N_EVENTS * {"gluino_1200": 0.25, "shifted:QCD": 0.5}
                                           .get(name, 1.0))
    # the ROOT (PFNano) files hold the same jets
    root = _jets(run_w1 / "signal.root")
    order = lambda b: np.lexsort((b.jet_index, b.event, b.process.astype(str)))  # noqa: E731
    np.testing.assert_array_equal(root.take(order(root)).charged,
                                  signal.take(order(signal)).charged)
    # checked distributions are present; prompt tracks of light jets centred at 0
    d0 = summary["checks"]["d0_significance"]
    assert abs(d0["g"]["core_mean"]) < 0.3 and 0.8 < d0["g"]["core_std"] < 1.3
    assert d0["LLP"]["median"] > d0["g"]["median"] + 0.5
    assert (run_w1 / "provenance.json").is_file() and (run_w1 / "config.resolved.yaml").is_file()


def test_out_folder_not_written_by_the_command_is_refused(tiny_config, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["tagger", "generate", str(tiny_config), "--out", str(out)]) == 2
    assert "exists, is not empty and was not written by 'trigger-ad tagger generate'" in (
        capsys.readouterr().err)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("change, message", [
    ({"signals": {"S": {"mas": 40.0}}},
     r"signals.S: unknown key 'mas'; did you mean 'mass'\?"),
    ({"ctau": {"mode": "grid", "values": [0.001, 1.0]}},
     r"ctau: values must be non-empty and within \[0.01, 10000.0\] mm, found \[0.001\]"),
    ({"domain": {"tracking": {"ip_smear": 1.2}}},
     r"domain.tracking: unknown key 'ip_smear'; did you mean 'ip_smear_scale'\?"),
    ({"processes": {"QCD": {"kind": "signal"}}},
     r"processes.QCD: background processes must be kind sm"),
])
def test_config_errors_name_the_key_and_leave_no_output(change, message, tmp_path, capsys):
    cfg = {**TINY, **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    assert main(["tagger", "generate", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trigger-ad tagger: error: ") and "bad.yaml" in err
    import re

    assert re.search(message, err), err
    assert not out.exists()


def test_tagger_help_shows_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["tagger", "generate", "--help"])
    text = capsys.readouterr().out
    assert "example:" in text and "trigger-ad tagger generate tagger-generate-fast" in text
