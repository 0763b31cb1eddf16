"""Track-level LLP event classification (tagger.tracks, issue 20): sample selection, masking and
permutation invariance of both networks, CWoLa labels, training, evaluation, config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagger.tracks import cwola, synthetic
from tagger.tracks import features as feat
from tagger.tracks.config import ModelsConfig, load_config
from tagger.tracks.features import TRACK_FIELDS
from tagger.tracks.generate import select_tracks
from tagger.tracks.pairs import PAIR_FEATURES
from triggerad.cli import main
from triggerad.errors import ConfigError

FAST = Path(__file__).resolve().parents[1] / "configs" / "tracks-fast.yaml"
TINY = {"models": {"mlp": {"track_layers": [16, 16], "event_layers": [16]},
                   "transformer": {"dim": 16, "heads": 2, "layers": 2, "ff_dim": 16,
                                   "event_layers": [16]}},
        "selection": {"n_tracks": 12},
        "training": {"epochs": 6, "batch_size": 64, "learning_rate": 0.005, "patience": 6}}


def tiny_config(transformer=None, **training):
    over = {k: dict(v) for k, v in TINY.items()}
    over["training"].update(training)
    over["models"] = {**over["models"],
                      "transformer": {**over["models"]["transformer"], **(transformer or {})}}
    return load_config(FAST, over)


# Sample selection ---------------------------------------------------------------------------
def test_select_tracks_keeps_highest_pt_tracks_per_event_zero_padded():
    from triggerad.generation.tracking import Candidates

    event = np.array([0, 0, 0, 0, 1, 2, 2])
    pt = np.array([1.0, 5.0, 0.3, 3.0, 2.0, 0.9, 4.0])
    charge = np.array([1, -1, 1, 0, 1, 1, 1])  # the 3 GeV candidate is neutral
    eta = np.array([0.1, 0.2, 0.3, 0.4, 3.0, 0.5, 0.6])
    z = np.zeros(7)
    cands = Candidates(3, event, np.arange(7), charge, z, pt, eta, z + 0.5, z,
                       d0=np.arange(7) * 0.1, d0_err=z + 0.01, dz=z, dz_err=z + 0.02,
                       trk_chi2=z, n_hits=z, lost_inner_hits=z, trk_quality=z,
                       pv_assoc_quality=z, from_pv=z, hcal_fraction=z, puppi_weight=z)
    pile = np.array([0, 1, 0, 0, 0, 1, 0], bool)
    cfg = load_config(FAST).selection
    cfg.n_tracks, cfg.eta_max = 2, 2.5
    tracks, flags, count = select_tracks(cands, pile, cfg)
    assert tracks.shape == (3, 2, len(TRACK_FIELDS))
    np.testing.assert_array_equal(count, [2, 0, 2])  # event 1: its track is outside |eta|
    np.testing.assert_allclose(tracks[0, :, 0], [5.0, 1.0])  # 0.3 GeV below pt_min, neutral out
    np.testing.assert_allclose(tracks[0, :, 3], [0.1, 0.0])  # d0 follows its track
    np.testing.assert_allclose(tracks[2, :, 0], [4.0, 0.9])
    np.testing.assert_array_equal(flags, [[1, 0], [0, 0], [0, 1]])
    assert np.all(tracks[1] == 0)


def test_features_are_zero_and_masked_for_padding():
    s = synthetic.make(50, n_tracks=12, seed=3)
    x, mask = feat.track_features(s.tracks, s.n_tracks)
    assert x.shape == (50, 12, len(feat.INPUT_FEATURES))
    np.testing.assert_array_equal(mask.sum(axis=1), s.n_tracks)
    assert np.all(x[mask == 0] == 0) and np.all(np.isfinite(x))
    norm = feat.fit_normalisation(x, mask)
    z = feat.normalise(x, mask, norm)
    np.testing.assert_allclose(z[mask > 0].mean(axis=0), 0.0, atol=1e-5)
    # the toy's resolutions are constant: their std stays 0 (no division by 0)
    np.testing.assert_allclose(z[mask > 0].std(axis=0), [1.0] * 8 + [0.0] * 2, atol=1e-4)


# Networks: masking and permutation invariance -----------------------------------------------
@pytest.fixture(scope="module")
def nets():
    import tensorflow as tf

    from tagger.tracks.models import build

    tf.keras.utils.set_random_seed(5)
    cfg = tiny_config().models
    out = {a: (build(a, cfg, 12, 10), build(a, cfg, 20, 10)) for a in ("mlp", "transformer")}
    pairs = tiny_config(transformer={"pair_features": list(PAIR_FEATURES),
                                     "pair_layers": [8]}).models
    norm = {"mean": np.linspace(-0.5, 0.5, 10).tolist(), "std": np.linspace(0.5, 2, 10).tolist()}
    out["pairs"] = tuple(build("transformer", pairs, n, 10, norm=norm) for n in (12, 20))
    return out


ARCHS = ["mlp", "transformer", "pairs"]


@pytest.mark.parametrize("arch", ARCHS)
def test_padding_does_not_change_the_output(nets, arch):
    small, large = nets[arch]
    large.set_weights(small.get_weights())  # per-track weights: independent of N
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 12, 10)).astype(np.float32)
    mask = (np.arange(12)[None, :] < np.array([[12], [7], [1], [4]])).astype(np.float32)
    ref = small.predict([x * mask[..., None], mask], verbose=0)
    # garbage in the padded slots is ignored
    junk = np.where(mask[..., None] > 0, x, rng.normal(size=x.shape) * 100).astype(np.float32)
    np.testing.assert_allclose(small.predict([junk, mask], verbose=0), ref, rtol=1e-5, atol=1e-5)
    # 8 more padded tracks give the same output
    x20 = np.concatenate([x * mask[..., None], rng.normal(size=(4, 8, 10))], axis=1)
    mask20 = np.concatenate([mask, np.zeros((4, 8))], axis=1).astype(np.float32)
    np.testing.assert_allclose(large.predict([x20.astype(np.float32), mask20], verbose=0), ref,
                               rtol=1e-5, atol=1e-5)
    assert np.std(ref) > 1e-4  # the events really differ


@pytest.mark.parametrize("arch", ARCHS)
def test_permuting_the_tracks_does_not_change_the_output(nets, arch):
    net = nets[arch][0]
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 12, 10)).astype(np.float32)
    mask = (np.arange(12)[None, :] < np.array([[12], [9], [5]])).astype(np.float32)
    ref = net.predict([x, mask], verbose=0)
    perm = rng.permutation(12)
    out = net.predict([x[:, perm], mask[:, perm]], verbose=0)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_unknown_architecture_is_a_config_error():
    from tagger.tracks.models import build

    with pytest.raises(ConfigError, match="unknown architecture 'transfomer'.*'transformer'"):
        build("transfomer", ModelsConfig(), 10, 10)


# CWoLa ---------------------------------------------------------------------------------------
def test_cwola_targets_are_mixture_membership_not_truth():
    truth = (np.random.default_rng(0).random(4000) < 0.5).astype(np.int8)
    index, target = cwola.mixtures(truth, 0.3, 0.0, np.random.default_rng(1))
    assert len(np.unique(index)) == len(index)  # an event enters one mixture at most
    t = truth[index]
    # mixture 1 holds 30 % signal, mixture 2 none
    assert t[target == 1].mean() == pytest.approx(0.3, abs=0.002)
    assert t[target == 0].mean() == 0.0
    # QCD events of mixture 1 carry target 1: the targets are not the truth labels
    assert target[(t == 0)].mean() == 0.5
    assert np.mean(target == t) < 0.7
    # equal numbers of QCD events in both mixtures: a truth-blind classifier sees 50/50 QCD
    assert np.sum((t == 0) & (target == 1)) == np.sum((t == 0) & (target == 0)) == 984


def test_cwola_with_a_reference_fraction_and_little_signal():
    truth = np.r_[np.ones(100), np.zeros(2000)].astype(np.int8)
    index, target = cwola.mixtures(truth, 0.3, 0.1, np.random.default_rng(1))
    t = truth[index]
    assert t[target == 1].mean() == pytest.approx(0.3, abs=0.01)
    assert t[target == 0].mean() == pytest.approx(0.1, abs=0.01)
    assert t.sum() <= 100


def test_cwola_training_sees_membership_only(tmp_path):
    """The training targets of a CWoLa model differ from the truth exactly where membership
    says so: its training summary records 30 % and 0 % signal per target class."""
    from tagger.tracks.train import targets

    cfg = tiny_config()
    s = synthetic.make(1000, n_tracks=12, seed=4)
    idx, y = targets(s, np.arange(1000), "cwola", cfg, 0.3, np.random.default_rng(0))
    assert s.label[idx][y == 1].mean() == pytest.approx(0.3, abs=0.005)
    assert s.label[idx][y == 0].mean() == 0.0
    idx_s, y_s = targets(s, np.arange(1000), "supervised", cfg, 0.3, np.random.default_rng(0))
    np.testing.assert_array_equal(y_s, s.label)


def test_max_train_events_takes_the_first_n_of_the_shuffled_training_split():
    """The cap keeps the first N events of the shuffled training split (nested subsets for a
    learning curve); validation and test events do not change."""
    from tagger.tracks.data import split

    full = split(1000, seed=3, val_fraction=0.2, test_fraction=0.3)
    order = np.random.default_rng([3, 20]).permutation(1000)
    np.testing.assert_array_equal(full["train"], np.sort(order[500:]))
    subsets = {}
    for n in (50, 200, 500, 800):
        part = split(1000, seed=3, val_fraction=0.2, test_fraction=0.3, max_train=n)
        np.testing.assert_array_equal(part["val"], full["val"])
        np.testing.assert_array_equal(part["test"], full["test"])
        subsets[n] = part["train"]
    np.testing.assert_array_equal(subsets[50], np.sort(order[500:550]))
    assert len(subsets[200]) == 200 and set(subsets[50]) <= set(subsets[200])
    assert set(subsets[200]) < set(full["train"])
    np.testing.assert_array_equal(subsets[500], full["train"])  # the cap is the whole split
    np.testing.assert_array_equal(subsets[800], full["train"])
    with pytest.raises(ConfigError, match=r"training: max_train_events must be positive"):
        load_config(FAST, {"training": {"max_train_events": 0}})


def test_max_train_events_in_training_and_on_the_command_line(tmp_path, capsys):
    from tagger.tracks.train import train

    s = synthetic.make(400, n_tracks=12, seed=5)
    summary = train(tiny_config(epochs=1, max_train_events=60), s, tmp_path / "m",
                    architecture="mlp", progress=False)
    assert summary["train_events"] == 60 and summary["val_events"] == 80
    import json

    art = json.loads((tmp_path / "m" / "artifact.json").read_text())
    assert art["data_info"]["split"]["max_train_events"] == 60
    with pytest.raises(ConfigError, match=r"training.max_train_events: .* has 200 training "
                                          r"events, found a cap of 201"):
        train(tiny_config(epochs=1, max_train_events=201), s, tmp_path / "m2",
              architecture="mlp", progress=False)
    assert not (tmp_path / "m2").exists()
    synthetic.write(s, tmp_path / "tracks_mu60.npz")
    import yaml

    raw = yaml.safe_load(FAST.read_text())
    for k, v in TINY.items():
        raw[k].update(v)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["tagger", "tracks-train", str(cfg), "--data", str(tmp_path), "--model", "mlp",
                 "--epochs", "1", "--max-train-events", "120", "--schedule", "cosine",
                 "--out", str(tmp_path / "m3"), "--quiet"]) == 0
    assert "on 120 events, 1 epochs" in capsys.readouterr().out
    art = json.loads((tmp_path / "m3" / "artifact.json").read_text())
    assert art["training"]["config"]["schedule"] == "cosine"
    assert art["training"]["config"]["max_train_events"] == 120
    # capped models are named by their cap; a repeated name gets the folder's
    from tagger.tracks.evaluate import evaluate
    from tagger.tracks.kinds import load

    rep = evaluate([load(tmp_path / "m"), load(tmp_path / "m3"), load(tmp_path / "m3")],
                   tmp_path, tmp_path / "rep", importance_events=0)
    assert list(rep["models"]) == ["mlp_supervised_mu60_n60", "mlp_supervised_mu60_n120",
                                   "mlp_supervised_mu60_n120_m3"]
    assert {e["test_events"] for e in rep["models"].values()} == {
        "test split of the training file"}
    assert rep["models"]["mlp_supervised_mu60_n60"]["train_events"] == 60
    # tracks-generate's overrides reach the config (a bad mu is refused before generating)
    assert main(["tagger", "tracks-generate", str(cfg), "--mu", "-1", "--out",
                 str(tmp_path / "g")]) == 2
    assert "selection: mu must be a non-empty list of values >= 0, found [-1.0]" in \
        capsys.readouterr().err
    assert not (tmp_path / "g").exists()


# Training and evaluation ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tagger.tracks.kinds import load
    from tagger.tracks.train import train

    root = tmp_path_factory.mktemp("tracks")
    sample = synthetic.make(2000, n_tracks=12, seed=11, displaced_fraction=0.5,
                            path=root / "tracks_mu60.npz")
    synthetic.write(sample, root / "tracks_mu60.npz")
    out = {}
    for arch, lab, epochs in (("mlp", "supervised", 8), ("mlp", "cwola", 8),
                              ("transformer", "supervised", 3)):
        cfg = tiny_config(epochs=epochs)
        summary = train(cfg, sample, root / f"{arch}_{lab}", architecture=arch, labelling=lab,
                        progress=False)
        out[arch, lab] = (load(root / f"{arch}_{lab}"), summary)
    return root, sample, out


def test_pair_transformer_trains_and_reloads(tmp_path):
    """Pairwise attention bias and a cosine learning-rate schedule: the loss falls and the
    reloaded model (pair features un-normalised with the stored normalisation) scores alike."""
    import tensorflow as tf

    from tagger.tracks.kinds import load
    from tagger.tracks.train import train

    sample = synthetic.make(800, n_tracks=12, seed=12, displaced_fraction=0.5)
    cfg = tiny_config(transformer={"pair_features": ["log_dr", "vertex_dca_sig", "vertex_r"],
                                   "pair_layers": [8], "layers": 1}, epochs=3,
                      schedule="cosine")
    summary = train(cfg, sample, tmp_path / "pairs", architecture="transformer", progress=False)
    assert summary["loss"][-1] < summary["loss"][0]
    model = load(tmp_path / "pairs")
    assert model.meta["models"]["transformer"]["pair_features"][1] == "vertex_dca_sig"
    x, mask = feat.inputs(sample.tracks[:20], sample.n_tracks[:20],
                          model.meta["normalisation"])
    tf.keras.utils.set_random_seed(1)
    again = load(tmp_path / "pairs")
    np.testing.assert_allclose(again.logits(sample.tracks[:20], sample.n_tracks[:20]),
                               model.net.predict([x, mask], verbose=0)[:, 0], rtol=1e-5,
                               atol=1e-5)
    with pytest.raises(ConfigError, match=r"pair_features need the inputs \['log_d0_err'\]"):
        load_config(FAST, {"models": {"transformer": {"pair_features": ["vertex_r"]},
                                      "inputs": ["log_pt", "eta", "cos_phi", "sin_phi",
                                                 "d0_mm", "dz_mm"]}})
    with pytest.raises(ConfigError, match=r"unknown pair feature 'log_dR'.*'log_dr'"):
        load_config(FAST, {"models": {"transformer": {"pair_features": ["log_dR"]}}})


def test_pair_features_find_a_common_displaced_vertex():
    """Three tracks of one decay at (5, 3, 2) mm meet there; a prompt track meets them
    nowhere near (the vertex features of :mod:`tagger.tracks.pairs`)."""
    from tagger.tracks.pairs import layers
    from triggerad.generation.geometry import impact_parameters

    mom = np.array([[10.0, 2.0, 1.0], [8.0, -1.0, 3.0], [12.0, 4.0, -2.0], [-3.0, 6.0, 1.0]])
    vtx = np.array([[5.0, 3.0, 2.0]] * 3 + [[0.0, 0.0, 0.0]])
    d0, dz = impact_parameters(*vtx.T, *mom.T)
    pt = np.hypot(mom[:, 0], mom[:, 1])
    raw = np.stack([pt, np.arcsinh(mom[:, 2] / pt), np.arctan2(mom[:, 1], mom[:, 0]), d0, dz,
                    np.full(4, 0.02), np.full(4, 0.05)], axis=-1)[None]
    x, mask = feat.track_features(raw, np.array([4]))
    names = ["log_dr", "vertex_dca", "vertex_dca_sig", "vertex_r", "vertex_s"]
    PairFeatures = layers()[0]
    norm = {"mean": [0.3] * 10, "std": [2.0] * 10}  # un-normalised inside the layer
    z = feat.normalise(x, mask, norm)
    out = PairFeatures(names, list(feat.INPUT_FEATURES), norm["mean"], norm["std"])(
        z, mask).numpy()[0]
    dca, radius, flight = (np.sinh(out[..., k]) for k in (1, 3, 4))
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert dca[i, j] * 0.1 == pytest.approx(0.0, abs=1e-4)  # mm
        assert radius[i, j] == pytest.approx(np.hypot(5.0, 3.0), rel=1e-4)
        assert flight[i, j] > 0  # the vertex lies ahead of both tracks
    assert dca[0, 3] * 0.1 > 0.5 and np.sinh(out[0, 3, 2]) > 20  # > 20 sigma apart
    np.testing.assert_allclose(out, out.transpose(1, 0, 2), atol=1e-4)  # symmetric
    dr = np.exp(out[0, 1, 0])
    dphi = np.arctan2(2, 10) - np.arctan2(-1, 8)
    deta = raw[0, 0, 1] - raw[0, 1, 1]
    assert dr == pytest.approx(np.hypot(deta, dphi), rel=1e-4)


def test_tiny_models_train_and_their_loss_falls(trained):
    _, _, models = trained
    for (arch, lab), (model, s) in models.items():
        assert s["loss"][-1] < s["loss"][0], (arch, lab, s["loss"])
        assert model.meta["kind"] == "track_classifier" and model.meta["architecture"] == arch
    assert models["mlp", "supervised"][1]["loss"][-1] < 0.6 * models["mlp", "supervised"][1][
        "loss"][0]
    cw = models["mlp", "cwola"][1]
    assert cw["signal_fraction_train"]["target_1"] == pytest.approx(0.3, abs=0.01)
    assert cw["signal_fraction_train"]["target_0"] == 0.0


def test_evaluation_on_synthetic_reaches_known_auc(trained, tmp_path):
    from tagger.tracks.evaluate import evaluate

    root, sample, models = trained
    report = evaluate([m for m, _ in models.values()], root, tmp_path / "rep",
                      importance_events=5)
    r = report["models"]
    # the known answer: the number of displaced tracks (|d0| > 5 sigma), the ideal discriminant
    # of the toy up to ties (events with few tracks may have no displaced one)
    from tagger.tracks.data import split
    from triggerad.metrics import auc

    test = sample.take(split(2000, seed=1, val_fraction=0.2, test_fraction=0.3)["test"])
    assert len(test) == r["mlp_supervised_mu60"]["signal_events"] + r["mlp_supervised_mu60"][
        "qcd_events"]
    n_disp = (np.abs(test.tracks[..., 3] / np.maximum(test.tracks[..., 5], 1e-9)) > 5).sum(1)
    oracle = auc(n_disp[test.label == 0], None, n_disp[test.label == 1])
    print({k: round(v["auc"], 4) for k, v in r.items()}, "oracle", oracle)
    assert oracle == pytest.approx(0.90, abs=0.01)
    assert r["mlp_supervised_mu60"]["auc"] == pytest.approx(oracle + 0.02, abs=0.03)
    # CWoLa with 30 % vs 0 % signal learns nearly the same from mixture labels only
    assert r["mlp_cwola_f0.3_mu60"]["auc"] == pytest.approx(oracle, abs=0.06)
    assert r["transformer_supervised_mu60"]["auc"] > 0.8  # 3 epochs
    assert r["mlp_supervised_mu60"]["test_events"] == "test split of the training file"
    assert r["mlp_supervised_mu60"]["signal_events"] + r["mlp_supervised_mu60"]["qcd_events"] \
        == 600
    # pT is not informative in the toy: the baseline is near 0.5
    assert abs(report["baseline"]["mu60"]["sum_pt"]["auc"] - 0.5) < 0.06
    imp = r["mlp_supervised_mu60"]["track_importance"]
    assert imp["hard_process"] > imp["pileup"] > 0
    assert (tmp_path / "rep" / imp["figure"]).stat().st_size > 1000
    assert "| mlp_supervised_mu60 | 60 | mlp | supervised |" in (tmp_path / "rep" /
                                                                "report.md").read_text()


def test_scores_do_not_depend_on_the_batch(trained):
    _, sample, models = trained
    model = models["transformer", "supervised"][0]
    full = model.score(sample.tracks[:64], sample.n_tracks[:64])
    part = model.score(sample.tracks[10:20], sample.n_tracks[10:20], batch_size=3)
    np.testing.assert_allclose(part, full[10:20], rtol=1e-5, atol=1e-6)


# Command line and config errors ---------------------------------------------------------------
def test_cli_train_evaluate_and_errors(trained, tmp_path, capsys):
    root, _, _ = trained
    cfg = tmp_path / "tiny.yaml"
    import yaml

    raw = yaml.safe_load(FAST.read_text())
    for k, v in TINY.items():
        raw[k].update(v)
    raw["training"]["epochs"] = 2
    cfg.write_text(yaml.safe_dump(raw))
    model = tmp_path / "m"
    assert main(["tagger", "tracks-train", str(cfg), "--data", str(root), "--mu", "60",
                 "--model", "mlp", "--out", str(model), "--quiet"]) == 0
    assert "trained mlp (supervised) at mu 60" in capsys.readouterr().out
    assert main(["tagger", "tracks-evaluate", str(model), "--data", str(root), "--out",
                 str(tmp_path / "rep"), "--importance-events", "0"]) == 0
    assert "mlp_supervised_mu60" in capsys.readouterr().out
    # no sample at mu 0 in the folder: one line naming the file and what is there
    assert main(["tagger", "tracks-train", str(cfg), "--data", str(root), "--mu", "0",
                 "--model", "mlp", "--out", str(tmp_path / "m0")]) == 2
    err = capsys.readouterr().err
    assert "tracks_mu0.npz: no such track sample; found ['tracks_mu60.npz']" in err
    assert "Traceback" not in err
    assert main(["tagger", "tracks-train", str(cfg), "--data", str(root), "--model", "mlp",
                 "--fraction", "0.2", "--out", str(tmp_path / "m1")]) == 2
    assert "--fraction 0.2 applies to --labels cwola only" in capsys.readouterr().err
    # the shared --out guard: a folder another command wrote is refused
    assert main(["tagger", "tracks-train", str(cfg), "--data", str(root), "--model", "mlp",
                 "--out", str(tmp_path / "rep")]) == 2
    assert not (tmp_path / "m0").exists() and not (tmp_path / "m1").exists()


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"models.transformer: unknown key 'head'.*'heads'"):
        load_config(FAST, {"models": {"transformer": {"head": 2}}})
    with pytest.raises(ConfigError, match=r"dim must be a multiple of heads"):
        load_config(FAST, {"models": {"transformer": {"dim": 30, "heads": 4}}})
    with pytest.raises(ConfigError, match=r"cwola: expected 0 <= reference_fraction < fraction"):
        load_config(FAST, {"cwola": {"fraction": 0.1, "reference_fraction": 0.2}})
    with pytest.raises(ConfigError, match=r"selection: mu must be a non-empty list"):
        load_config(FAST, {"selection": {"mu": []}})
    with pytest.raises(ConfigError, match=r"inputs: unknown track feature 'd0_sigma'.*'d0_sig'"):
        load_config(FAST, {"models": {"inputs": ["log_pt", "d0_sigma"]}})


def test_hgmm_config_differs_from_tracks_only_in_the_pileup_route():
    from triggerad.config import to_dict

    configs = FAST.parent
    ref, hgmm = (to_dict(load_config(configs / f"{n}.yaml")) for n in ("tracks", "tracks-hgmm"))
    assert (ref["pileup"]["route"], hgmm["pileup"]["route"]) == ("library", "hgmm")
    assert hgmm["pileup"]["hgmm"] == {"events": 500, "max_components": 4, "cov_floor": 0.05}
    ref["pileup"]["route"] = "hgmm"
    assert ref == hgmm


def test_input_subset_keeps_the_named_columns():
    s = synthetic.make(20, n_tracks=12, seed=3)
    full, mask = feat.track_features(s.tracks, s.n_tracks)
    part, mask2 = feat.track_features(s.tracks, s.n_tracks, ["dz_mm", "log_pt"])
    np.testing.assert_array_equal(part, full[..., [7, 0]])
    np.testing.assert_array_equal(mask, mask2)


def test_raw_inputs_are_the_stored_quantities():
    s = synthetic.make(20, n_tracks=12, seed=3)
    raw, mask = feat.track_features(s.tracks, s.n_tracks, list(feat.RAW_FEATURES))
    valid = mask > 0
    assert 0 < valid.sum() < valid.size                     # some padding in the sample
    cols = [TRACK_FIELDS.index(n) for n in feat.RAW_FEATURES]
    np.testing.assert_array_equal(raw[valid], s.tracks[valid][:, cols].astype(np.float32))
    assert not raw[~valid].any()
    cfg = load_config(FAST, {"models": {"inputs": ["pt", "eta", "phi", "d0", "dz"]}})
    assert cfg.models.inputs == ["pt", "eta", "phi", "d0", "dz"]
    with pytest.raises(ConfigError, match=r"inputs: unknown track feature 'pT'.*'pt'"):
        load_config(FAST, {"models": {"inputs": ["pT", "eta"]}})


# Generation ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_generated_samples_with_pileup(tmp_path):
    from tagger.tracks.data import read
    from tagger.tracks.generate import generate

    cfg = load_config(FAST, {"selection": {"mu": [0.0, 10.0], "n_tracks": 30},
                             "pileup": {"pool_size": 200, "cache_dir": str(tmp_path / "cache")},
                             "output": {"job_size": 40, "batch_size": 40}})
    summary = generate(cfg, 40, tmp_path / "out", seed=3, progress=False)
    s0, s10 = read(tmp_path / "out" / "tracks_mu0.npz"), read(tmp_path / "out" /
                                                              "tracks_mu10.npz")
    for s in (s0, s10):
        assert s.tracks.shape == (80, 30, 7)
        assert s.label.sum() == 40  # 2 signals x 20 events, 40 QCD events
        mask = feat.mask_of(s.n_tracks, 30) > 0
        # pT cut on the measured pT; the tracker acceptance |eta| < 2.5 on the true eta
        assert np.all(s.tracks[mask][:, 0] > 0.5) and np.all(np.abs(s.tracks[mask][:, 1]) < 2.55)
        assert np.all(s.tracks[~mask] == 0)
        # falling pT within every event
        assert np.all(np.diff(np.where(mask, s.tracks[..., 0], 0), axis=1) <= 0)
    assert s0.from_pileup.sum() == 0 and s0.n_pileup.sum() == 0
    assert s10.n_pileup.mean() == pytest.approx(10, rel=0.3)
    assert 0.3 < summary["samples"]["QCD@mu10"]["pileup_track_fraction"] < 0.95
    assert s10.n_tracks.mean() > s0.n_tracks.mean()
    # same seed, same file
    generate(cfg, 40, tmp_path / "again", seed=3, progress=False)
    assert read(tmp_path / "again" / "tracks_mu10.npz").fingerprint() == s10.fingerprint()


@pytest.mark.slow
def test_generated_samples_with_hgmm_pileup(tmp_path):
    """The ``hgmm`` pile-up route (configs/tracks-hgmm.yaml) through the track generator."""
    from tagger.tracks.data import read
    from tagger.tracks.generate import generate

    cfg = load_config(FAST, {"selection": {"mu": [10.0], "n_tracks": 30},
                             "pileup": {"route": "hgmm", "pool_size": 100,
                                        "cache_dir": str(tmp_path / "cache"),
                                        "hgmm": {"events": 40, "max_components": 2}},
                             "output": {"job_size": 20, "batch_size": 20}})
    summary = generate(cfg, 20, tmp_path / "out", seed=3, progress=False)
    assert summary["pileup"]["route"] == "hgmm"
    assert len(list((tmp_path / "cache").glob("hgmm-*.npz"))) == 1
    s = read(tmp_path / "out" / "tracks_mu10.npz")
    assert s.tracks.shape == (40, 30, 7) and s.label.sum() == 20
    assert s.n_pileup.mean() == pytest.approx(10, rel=0.3)
    pile = s.from_pileup.astype(bool)
    assert pile.sum() > 0.3 * s.n_tracks.sum()
    # synthetic pile-up tracks: spread in z by the beam spot, some displaced in d0
    assert np.std(s.tracks[pile][:, 4]) > 10.0
    assert np.any(np.abs(s.tracks[pile][:, 3] / s.tracks[pile][:, 5]) > 5)
    # the same seed gives the same file (the model is read from the cache the second time)
    generate(cfg, 20, tmp_path / "again", seed=3, progress=False)
    assert read(tmp_path / "again" / "tracks_mu10.npz").fingerprint() == s.fingerprint()
