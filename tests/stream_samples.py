"""Tiny drifting event streams and a tiny untrained L1 model artifact for the stream tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from triggerad.events import EventBatch, from_collections

#: Input and target rates written into the test model's threshold.json.
INPUT_RATE_HZ = 100_000.0
TARGET_RATE_HZ = 5_000.0


def drifting_batch(n: int, seed: int, pileup: tuple[float, float] = (40.0, 40.0),
                   lumi_size: int = 0, first_event: int = 0) -> EventBatch:
    """``n`` random events whose pile-up falls linearly from ``pileup[0]`` to ``pileup[1]``.

    Object pT scales with ``1 + 0.02 (pileup - 40)`` so scores drift with pile-up. Lumi blocks of
    ``lumi_size`` events (1, 2, ...) if ``lumi_size`` > 0, else ``lumi = 0`` (no lumi info).
    """
    rng = np.random.default_rng(seed)
    pu = np.linspace(*pileup, n).astype(np.float32)
    grow = (1 + 0.02 * (pu - 40))[:, None]

    def coll(m, occupancy, extra):
        pt = np.where(rng.random((n, m)) < occupancy, rng.exponential(30, (n, m)) * grow, 0)
        return {"pt": pt.astype(np.float32), "eta": rng.uniform(-2, 2, (n, m)).astype(np.float32),
                "phi": rng.uniform(-3, 3, (n, m)).astype(np.float32), **extra}

    events = np.arange(first_event, first_event + n, dtype=np.int64)
    return from_collections(
        (rng.exponential(30, n) * grow[:, 0]).astype(np.float32),
        rng.uniform(-3, 3, n).astype(np.float32),
        coll(4, 0.3, {}), coll(4, 0.3, {}), coll(10, 0.5, {}),
        event=events, run=np.full(n, 1, dtype=np.int64),
        lumi=(events // lumi_size + 1) if lumi_size else np.zeros(n, dtype=np.int64),
        pileup=pu,
    )


def write_stream(folder: Path, n_files: int, n_per_file: int, seed: int = 1,
                 pileup: tuple[float, float] = (40.0, 40.0), lumi_size: int = 0) -> list[Path]:
    """ADC2021 HDF5 files ``stream_XX.h5`` holding one drifting stream cut into ``n_files``."""
    from triggerad.io.adc2021 import write_h5

    total = n_files * n_per_file
    full = drifting_batch(total, seed, pileup, lumi_size)
    paths = []
    for i in range(n_files):
        path = Path(folder) / f"stream_{i:02d}.h5"
        write_h5(path, full.take(slice(i * n_per_file, (i + 1) * n_per_file)))
        paths.append(path)
    return paths


def make_model(path: Path, quantile: float = 0.95, seed: int = 3) -> Path:
    """A tiny untrained L1 VAE artifact with a threshold at the ``quantile`` of mu2_q.

    The threshold's target rate is ``TARGET_RATE_HZ`` of ``INPUT_RATE_HZ`` (5 %).
    """
    import tensorflow as tf

    from anomaly import model as m
    from anomaly.artifact import load_artifact, raw_inputs, save_artifact
    from triggerad.config import to_dict

    tf.keras.utils.set_random_seed(seed)
    mcfg = m.ModelConfig(kind="l1_vae", encoder=[16, 8], decoder=[8, 16], latent_dim=3)
    qcfg = m.QuantizationConfig(weight_bits=[8, 8, 8], weight_integer=[2, 2, 2],
                                activation_bits=[8, 8], activation_integer=[3, 3])
    vae = m.build_vae(mcfg)
    qenc = m.build_quantized_encoder(57, mcfg, qcfg)
    m.copy_encoder_weights(vae.encoder, qenc)
    sample = drifting_batch(4000, seed)
    raw = raw_inputs("l1_vae", sample)
    mean, scale = m.fit_normalisation("l1_vae", raw)
    save_artifact(path, vae=vae, quantized_encoder=qenc, mean=mean, scale=scale,
                  config={"model": to_dict(mcfg), "quantization": to_dict(qcfg)},
                  data_info={"files": []})
    art = load_artifact(path)
    mu2_q = art.score(raw)["mu2_q"]
    art.write_threshold({"score": "mu2_q", "value": float(np.quantile(mu2_q, quantile)),
                         "target_rate_hz": TARGET_RATE_HZ, "input_rate_hz": INPUT_RATE_HZ})
    return Path(path)


def small_graph(block: int = 2048):
    """A small integer graph (9 inputs -> Dense 6 -> relu -> sum of squares), fixed weights,
    evaluated in blocks of ``block`` events."""
    from triggerad.fixedpoint import FixedGraph
    from triggerad.fixedpoint.layers import Activation, Dense, Input, SumSquares
    from triggerad.fixedpoint.types import parse_fixed

    rng = np.random.default_rng(4)
    t = parse_fixed
    x = Input("x", t("ap_fixed<12,6,AP_RND_CONV,AP_SAT>"))
    d0 = Dense("d0", "x", x.result, rng.integers(-31, 32, (9, 6)), t("ap_fixed<6,2>"),
               rng.integers(-31, 32, 6), t("ap_fixed<6,2>"), t("ap_fixed<24,12>"),
               t("ap_fixed<24,12>"))
    r0 = Activation("r0", "d0", d0.result, "relu", t("ap_ufixed<8,3,AP_RND_CONV,AP_SAT>"))
    s = SumSquares("s", "r0", r0.result, 6, t("ap_ufixed<18,10,AP_RND_CONV,AP_SAT>"))
    graph = FixedGraph([x, d0, r0, s], ["s"])
    graph.BLOCK = block
    return graph


#: Events per work unit of the stream tests' ``score`` runs.
CHUNK = 500


def score_args(model, inputs, out, *extra) -> list[str]:
    """``trigger-ad score`` arguments for the stream tests (units of :data:`CHUNK` events)."""
    return ["score", str(model), *map(str, inputs), "--out", str(out), "--chunk-size",
            str(CHUNK), "--no-progress", *extra]


def score_table(out: Path):
    """The final score table of a ``score`` run: its parts concatenated in plan order."""
    import pandas as pd

    from triggerad.stream.writer import read_part

    parts = sorted((out / "scores").glob("part-*"))
    return pd.concat([read_part(p) for p in parts], ignore_index=True)

