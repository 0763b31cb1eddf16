"""LLP tagger training: schedules, input pipeline (resampling, c-tau transfer, shuffle buffer),
the domain-adversarial step, bad inputs and the ``trigger-ad tagger train`` command."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import tensorflow as tf
from tagger_samples import SIZES, jets, write_sample

from tagger import artifact, pipeline
from tagger import inputs as tin
from tagger.dann import domain_adversarial_model
from tagger.model import ModelConfig, build_tagger, feature_weights, grl_layer
from tagger.schedule import Schedule, grl_lambda, learning_rate
from tagger.train import load_config, prepare
from triggerad.cli import main
from triggerad.errors import (
    ConfigError,
    InputFileError,
    NonFiniteError,
    SchemaMismatchError,
    StatisticsError,
)
from triggerad.jets import GLOBAL_FEATURES

SMALL = ModelConfig(charged=[8, 4], neutral=[4, 2], sv=[4, 2], dense=16, class_layers=[16],
                    domain_layers=[8], dropout=0.0)


# Schedules -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 5, 10, 40])
def test_learning_rate_schedule_formula(n):
    assert learning_rate(n, alpha0=0.01, kappa=0.1) == pytest.approx(0.01 / (1 + 0.1 * n), rel=1e-12)


@pytest.mark.parametrize("n", [0, 1, 5, 15, 50])
def test_lambda_schedule_formula(n):
    expected = 30 * (2 / (1 + math.exp(-0.2 * n)) - 1)
    assert grl_lambda(n, lambda0=30.0, gamma=0.2) == pytest.approx(expected, rel=1e-12)


def test_lambda_reaches_90_percent_after_15_epochs_and_phases():
    assert grl_lambda(0, lambda0=30.0) == 0.0
    assert grl_lambda(15, lambda0=30.0) > 0.9 * 30 > grl_lambda(14, lambda0=30.0)
    s = Schedule(alpha0=0.01, kappa=0.1, lambda0=30.0, gamma=0.2, class_only_epochs=3)
    assert [s.phase(n) for n in range(5)] == [1, 1, 1, 2, 2]
    assert s.values(2) == {"learning_rate": pytest.approx(0.01 / 1.2), "grl_lambda": 0.0,
                           "domain_weight": 0.0, "phase": 1}
    v = s.values(8)   # 5 epochs into phase 2
    assert v["grl_lambda"] == pytest.approx(30 * (2 / (1 + math.exp(-1.0)) - 1))
    assert v["learning_rate"] == pytest.approx(0.01 / 1.8) and v["domain_weight"] == 1.0
    no_da = Schedule(alpha0=0.01, kappa=0.1, lambda0=30.0, gamma=0.2, class_only_epochs=3,
                     domain_adaptation=False)
    assert no_da.values(20)["grl_lambda"] == 0.0 and no_da.phase(20) == 1


def test_schedule_callback_sets_optimizer_lambda_and_domain_weight():
    from tagger.schedule import schedule_callback

    net = build_tagger(SMALL, SIZES)
    trainer = domain_adversarial_model(net)
    trainer.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    s = Schedule(alpha0=0.01, kappa=0.1, lambda0=30.0, gamma=0.2, class_only_epochs=2)
    cb = schedule_callback(s, optimizer=trainer.optimizer, grl=grl_layer(net),
                           domain_weight=trainer.domain_weight)
    for epoch in (0, 1, 2, 7):
        cb.on_epoch_begin(epoch)
        v = s.values(epoch)
        assert float(trainer.optimizer.learning_rate.numpy()) == pytest.approx(v["learning_rate"], rel=1e-6)
        assert float(grl_layer(net).lam.numpy()) == pytest.approx(v["grl_lambda"], rel=1e-6)
        assert float(trainer.domain_weight.numpy()) == v["domain_weight"]
        logs = {}
        cb.on_epoch_end(epoch, logs)
        assert logs["phase"] == (1 if epoch < 2 else 2)
    assert float(grl_layer(net).lam.numpy()) == pytest.approx(30 * (2 / (1 + math.exp(-1.0)) - 1), rel=1e-6)


# Pipeline ------------------------------------------------------------------------------------
def _as_dict(b):
    return {f: getattr(b, f) for f in pipeline.KEEP}


def _hist(globals_, edges):
    return np.histogram2d(np.log10(globals_[:, 0]), globals_[:, 1],
                          bins=(edges.log10_pt_edges, edges.eta_edges))[0]


def test_resampled_sm_matches_llp_pt_eta_histogram_chi2():
    edges = pipeline.ResamplingConfig(log10_pt_edges=[1.3, 1.45, 1.6, 1.75, 1.9, 2.2, 3.0],
                                      eta_edges=[-2.4, -1.2, -0.4, 0.4, 1.2, 2.4])
    b = jets(40_000, seed=11, labels=(0, 1, 2, 3, 4))
    sim = _as_dict(b)
    norm = tin.fit_normalisation(b)
    x, t = pipeline.assemble(sim, None, norm=norm, edges=edges, rng=np.random.default_rng(1))
    n_class = int(t["class_weight"].sum())
    labels = t["class"][:n_class].argmax(axis=1)
    pt_eta = b.globals[:, [GLOBAL_FEATURES.index("pt"), GLOBAL_FEATURES.index("eta")]]
    # undo the normalisation of pT and eta
    g = x["globals"][:n_class] * np.asarray(norm["globals"]["scale"]) + np.asarray(norm["globals"]["mean"])
    got = g[:, [GLOBAL_FEATURES.index("pt"), GLOBAL_FEATURES.index("eta")]]
    h_llp = _hist(got[labels == 0], edges)
    h_sm = _hist(got[labels > 0], edges)
    h_sm_raw = _hist(pt_eta[b.label > 0], edges)

    def chi2(h, ref):
        # two independent samples of different sizes (resampling with replacement: the SM
        # histogram is the reference's shape times a multinomial draw)
        k1, k2 = math.sqrt(h.sum() / ref.sum()), math.sqrt(ref.sum() / h.sum())
        mask = (h + ref) > 0
        return float(np.sum((k2 * h[mask] - k1 * ref[mask]) ** 2 / (h[mask] + ref[mask]))), int(mask.sum()) - 1

    c_after, ndf = chi2(h_sm, h_llp)
    c_before, _ = chi2(h_sm_raw, h_llp)
    assert c_before / ndf > 20                      # the spectra differ before
    from scipy.stats import chi2 as chi2_dist
    assert chi2_dist.sf(c_after, ndf) > 1e-3, (c_after, ndf)
    assert (labels > 0).sum() == (b.label > 0).sum()   # as many SM jets as drawn


def test_sm_ctau_values_drawn_from_the_batch_llp_jets():
    b = jets(3000, seed=4)
    sim = _as_dict(b)
    dom = _as_dict(jets(500, seed=5, domain=1))
    x, t = pipeline.assemble(sim, dom, norm=tin.fit_normalisation(b),
                             edges=pipeline.ResamplingConfig(), rng=np.random.default_rng(2))
    llp_values = tin.log10_ctau(b.ctau[b.label == 0], "test")
    lct = x["log10_ctau"][:, 0]
    n_class = int(t["class_weight"].sum())
    labels = t["class"][:n_class].argmax(axis=1)
    n_llp = int(np.sum(labels == 0))
    # LLP jets first, with their own c-tau, in batch order
    np.testing.assert_array_equal(lct[:n_llp], llp_values)
    # every other jet (resampled SM, domain jets of both domains) carries one of those values
    assert np.isin(lct[n_llp:], llp_values).all()
    assert len(np.unique(lct[n_llp:n_class])) > 50          # drawn, not one value
    # targets: class loss on class jets only, domain loss on both domains only
    assert t["domain_weight"][:n_class].sum() == 0 and t["class_weight"][n_class:].sum() == 0
    dom_part = t["domain"][n_class:, 0]
    assert dom_part.sum() == 500 and len(dom_part) == 1000


def test_batch_without_llp_jets_is_refused():
    b = jets(200, seed=1, labels=(1, 2))
    with pytest.raises(StatisticsError, match="0 LLP and 200 SM"):
        pipeline.assemble(_as_dict(b), None, norm=tin.fit_normalisation(b),
                          edges=pipeline.ResamplingConfig(), rng=np.random.default_rng(0))


def test_shuffle_buffer_yields_every_jet_once_and_mixes():
    chunks = [{"label": np.arange(i * 100, (i + 1) * 100)} for i in range(10)]
    buf = pipeline.ShuffleBuffer(iter(chunks), 250, np.random.default_rng(0))
    seen = []
    while (d := buf.draw(64)) is not None:
        seen.append(d["label"])
    seen = np.concatenate(seen)
    np.testing.assert_array_equal(np.sort(seen), np.arange(1000))
    assert seen[:64].max() >= 200     # the first batch already holds jets of the third chunk


def test_validation_split_is_stable_and_sized():
    b = jets(20_000, seed=2)
    b.source_file[:] = "x/signal.h5"
    val = pipeline.validation_mask(b, 0.2)
    assert abs(val.mean() - 0.2) < 0.015
    np.testing.assert_array_equal(val, pipeline.validation_mask(b.take(slice(None)), 0.2))
    b.source_file[:] = "elsewhere/signal.root"      # the same jets in the PFNano file
    np.testing.assert_array_equal(val, pipeline.validation_mask(b, 0.2))
    b.source_file[:] = "x/background.h5"
    assert np.mean(val == pipeline.validation_mask(b, 0.2)) < 0.8


def test_read_chunks_bounded_by_chunks_and_complete(tmp_path):
    write_sample(tmp_path, 700, 600, 300)
    cfg = load_config("tagger-train-fast", {"data": {"dir": str(tmp_path), "chunk_entries": 128,
                                                     "shuffle_buffer": 2000},
                                            "training": {"batch_size": 500}})
    prep = prepare(cfg)
    s = prep["readers"]
    out = list(pipeline.read_chunks(s, prep["sim"].chunks, rng=np.random.default_rng(0),
                                    split=None, fraction=0.2, workers=2, loop=False,
                                    interleave=3))
    assert max(len(o["label"]) for o in out) <= 3 * 128
    assert sum(len(o["label"]) for o in out) == 1300


# Training step -------------------------------------------------------------------------------
def _batch(seed=0):
    b = jets(600, seed=seed)
    x, t = pipeline.assemble(_as_dict(b), _as_dict(jets(200, seed=seed + 9, domain=1, ip_scale=1.5)),
                             norm=tin.fit_normalisation(b), edges=pipeline.ResamplingConfig(),
                             rng=np.random.default_rng(seed))
    return ({k: tf.constant(v) for k, v in x.items()}, {k: tf.constant(v) for k, v in t.items()})


def test_tiny_model_trains_and_loss_falls():
    tf.keras.utils.set_random_seed(3)
    net = build_tagger(SMALL, SIZES)
    trainer = domain_adversarial_model(net, domain_weight=0.0)
    trainer.compile(optimizer=tf.keras.optimizers.Adam(3e-3))
    data = _batch(1)
    first = float(trainer.losses_of(*data, training=False)["class_loss"])
    for _ in range(40):
        trainer.train_step(data)
    last = float(trainer.losses_of(*data, training=False)["class_loss"])
    assert last < 0.7 * first, (first, last)


def test_lambda_zero_domain_branch_leaves_feature_extractor_unchanged():
    x, t = _batch(2)
    tf.keras.utils.set_random_seed(5)
    net = build_tagger(SMALL, SIZES)
    trainer = domain_adversarial_model(net, domain_weight=1.0)
    grl_layer(net).lam.assign(0.0)
    with tf.GradientTape() as tape:
        domain_loss = trainer.losses_of(x, t, training=True)["domain_loss"]
    feats = feature_weights(net)
    head = [w for w in net.trainable_weights if w.name.startswith("domain")]
    g_feat = tape.gradient(domain_loss, feats + head)
    assert all(np.all(g.numpy() == 0) for g in g_feat[:len(feats)])
    assert all(np.any(g.numpy() != 0) for g in g_feat[len(feats):])

    def run(domain_weight, lam):
        tf.keras.utils.set_random_seed(5)
        n = build_tagger(SMALL, SIZES)
        tr = domain_adversarial_model(n, domain_weight=domain_weight)
        tr.compile(optimizer=tf.keras.optimizers.SGD(0.05))
        grl_layer(n).lam.assign(lam)
        start = [w.numpy().copy() for w in n.trainable_weights]
        for _ in range(3):
            tr.train_step((x, t))
        return n, start

    with_domain, start = run(1.0, 0.0)
    class_only, _ = run(0.0, 0.0)
    reversed_, _ = run(1.0, 5.0)
    for a, b in zip(feature_weights(with_domain), feature_weights(class_only), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-7)
    assert max(float(np.abs(a.numpy() - c.numpy()).max()) for a, c in
               zip(feature_weights(with_domain), feature_weights(reversed_), strict=True)) > 1e-4
    moved = [w for w, s in zip(with_domain.trainable_weights, start, strict=True)
             if w.name.startswith("domain") and not np.allclose(w.numpy(), s)]
    assert moved   # the domain head itself did train


# Bad input -----------------------------------------------------------------------------------
def _cfg(folder, **training):
    return load_config("tagger-train-fast", {
        "data": {"dir": str(folder), "chunk_entries": 256, "shuffle_buffer": 1000},
        "training": {"batch_size": 500, "domain_batch_size": 200, "epochs": 3,
                     "class_only_epochs": 1, **training},
        "model": {"charged": [8], "neutral": [4], "sv": [4], "dense": 16, "class_layers": [16],
                  "domain_layers": [8]}})


def test_prepare_reports_counts_ctau_range_and_fingerprint(tmp_path):
    write_sample(tmp_path, 800, 800, 400)
    prep = prepare(_cfg(tmp_path))
    sim = prep["sim"]
    total = sum(sum(v.values()) for v in sim.counts.values())
    assert total == 1600 and prep["dom"].counts["train"]["unlabelled"] > 300
    s1, s2 = jets(800, seed=1, labels=(0, 0, 0, 3, 4)), jets(800, seed=2, labels=(1, 2, 3, 4))
    llp = np.concatenate([s1.ctau[s1.label == 0], s2.ctau[s2.label == 0]])
    assert sim.ctau_range_mm == (float(llp.min()), float(llp.max()))
    assert prepare(_cfg(tmp_path))["sim"].fingerprint == sim.fingerprint


def test_bad_inputs_are_refused_before_training(tmp_path):
    write_sample(tmp_path, 800, 800, 400)
    (tmp_path / "shifted_sim.h5").rename(tmp_path / "elsewhere.h5")
    with pytest.raises(InputFileError, match=r"data.domain: .*shifted_sim.h5: no such file.*--no-da"):
        prepare(_cfg(tmp_path))
    prepare(_cfg(tmp_path, domain_adaptation=False))   # fine without DA
    cfg = _cfg(tmp_path)
    cfg.data.domain = ["signal.h5"]
    with pytest.raises(ConfigError, match=r"expected the shifted simulation.*found domain values \[0\]"):
        prepare(cfg)

    from triggerad.io.jeth5 import write_jets_h5
    write_jets_h5(tmp_path / "background.h5", jets(800, seed=2, labels=(1, 3, 4)))
    with pytest.raises(StatisticsError, match=r"no training jets of class 'c'"):
        prepare(_cfg(tmp_path, domain_adaptation=False))

    bad = jets(800, seed=2, labels=(1, 2, 3, 4))
    bad.charged[17, 0, 3] = np.nan
    write_jets_h5(tmp_path / "background.h5", bad)
    with pytest.raises(NonFiniteError, match=r"background.h5: 1 of 256 jets.*NaN or inf in charged"):
        prepare(_cfg(tmp_path, domain_adaptation=False))

    write_jets_h5(tmp_path / "background.h5", jets(800, seed=2, labels=(1, 2, 3, 4)))
    with h5py.File(tmp_path / "background.h5", "a") as f:
        f.attrs["sv_features"] = ["pt", "mass"]
    with pytest.raises(SchemaMismatchError, match=r"attribute 'sv_features' expected"):
        prepare(_cfg(tmp_path, domain_adaptation=False))


def test_batch_error_during_training_is_raised_and_leaves_no_model(tmp_path):
    from tagger.train import train
    from triggerad.io.jeth5 import write_jets_h5

    write_sample(tmp_path, 800, 800, 200)
    rare = jets(3000, seed=1, labels=(1, 2, 3, 4))
    rare.label[:6] = 0                     # 6 LLP jets among 3800: most batches have none
    rare.ctau[:6] = 1.0
    rare.event[:6] = [1, 2, 3, 4, 5, 6]
    write_jets_h5(tmp_path / "signal.h5", rare)
    cfg = _cfg(tmp_path, domain_adaptation=False)
    cfg.data.validation_fraction = 0.5
    cfg.training.batch_size = 40
    with pytest.raises(StatisticsError, match=r"train batch \d+: 0 LLP and \d+ SM .* a batch needs both"):
        train(cfg, tmp_path / "model", progress=False)
    assert not (tmp_path / "model").exists() and not list(tmp_path.glob(".model*"))


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"training: unknown key 'epoch'; did you mean 'epochs'"):
        load_config("tagger-train-fast", {"training": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"class_only_epochs \(3\) must be smaller than epochs"):
        load_config("tagger-train-fast", {"training": {"epochs": 3}})
    with pytest.raises(ConfigError, match=r"shuffle_buffer \(100\) must be >= training.batch_size"):
        load_config("tagger-train-fast", {"data": {"shuffle_buffer": 100}})


# Command -------------------------------------------------------------------------------------
def test_cli_bad_input_exit_2_and_no_model_folder(tmp_path, capsys):
    data = write_sample(tmp_path / "data", 400, 400, 200)
    (data / "shifted_sim.h5").unlink()
    out = tmp_path / "model"
    assert main(["-q", "tagger", "train", "tagger-train-fast", "--data", str(data),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "shifted_sim.h5: no such file" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".model*"))


@pytest.mark.slow
def test_cli_trains_and_model_predicts(tmp_path, capsys):
    data = write_sample(tmp_path / "data", 2000, 2000, 1500)
    cfg = tmp_path / "train.yaml"
    import yaml

    from triggerad.config import read_yaml, resolve_config
    raw = read_yaml(resolve_config("tagger-train-fast"))
    raw["data"].update(chunk_entries=512, shuffle_buffer=2000)
    raw["training"].update(batch_size=1000, domain_batch_size=500, class_only_epochs=2,
                           steps_per_epoch=12,
                           learning_rate=0.003)
    raw["model"].update(charged=[16, 8], neutral=[8, 4], sv=[8, 4], dense=32,
                        class_layers=[32, 32], domain_layers=[16])
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "model"
    assert main(["-q", "tagger", "train", str(cfg), "--data", str(data), "--out", str(out),
                 "--epochs", "4"]) == 0
    assert "trained llp_tagger (with domain adaptation)" in capsys.readouterr().out
    model = artifact.load(out)
    m = model.meta["metrics"]
    assert m["epochs_run"] == 4 and m["class_loss"] < m["first_epoch_class_loss"]
    assert model.domain_adaptation and (out / "logs").is_dir()
    assert (out / "checkpoints" / "tagger.best.weights.h5").is_file()
    test = jets(2000, seed=77)
    p = model.predict(test, ctau_mm=np.where(test.ctau > 0, test.ctau, 10.0))
    from sklearn.metrics import roc_auc_score
    auc = roc_auc_score(test.label == 0, p[:, 0])
    assert auc > 0.9, auc
    # the same folder may be replaced by the same command
    assert main(["-q", "tagger", "train", str(cfg), "--data", str(data), "--out", str(out),
                 "--epochs", "2", "--no-da"]) == 0
    assert not artifact.load(out).domain_adaptation


MIRRORED = '''
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from tagger_samples import SIZES, jets
from tagger import inputs as tin, pipeline
from tagger.dann import domain_adversarial_model
from tagger.model import ModelConfig, build_tagger
cfg = ModelConfig(charged=[8], neutral=[4], sv=[4], dense=16, class_layers=[16],
                  domain_layers=[8], dropout=0.0)
b = jets(800, seed=1)
x, t = pipeline.assemble({f: getattr(b, f) for f in pipeline.KEEP}, None,
                         norm=tin.fit_normalisation(b), edges=pipeline.ResamplingConfig(),
                         rng=np.random.default_rng(0))
def run(strategy):
    tf.keras.utils.set_random_seed(1)
    with strategy.scope():
        net = build_tagger(cfg, SIZES)
        tr = domain_adversarial_model(net)
        tr.compile(optimizer=tf.keras.optimizers.SGD(0.1))
    tr.fit(tf.data.Dataset.from_tensors((x, t)).repeat(3), epochs=1, verbose=0)
    return net.get_weights()
w1 = run(tf.distribute.get_strategy())
w2 = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
print(max(float(np.abs(a - c).max()) for a, c in zip(w1, w2)))
print(max(float(np.abs(a).max()) for a in w1))
'''


@pytest.mark.slow
def test_mirrored_strategy_steps_equal_single_device():
    """Two replicas (logical CPUs, as two GPUs would be) update the weights as one device."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).parent)}
    out = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    diff, scale = map(float, out.stdout.split()[-2:])
    assert diff < 1e-5 * scale, (diff, scale)
