"""ONNX Runtime inference speed vs Keras ``predict`` for exported model folders.

For each model folder: ``trigger-ad export`` it (validation against Keras included), then run the
same batch of validation events through ONNX Runtime (``InferenceSession.run``) and through the
Keras graph that was exported (``predict`` with ``batch_size`` = the batch, and, as the fastest
TensorFlow path, the model called inside a ``tf.function``), alternating them ``--repeat`` times
for ``--seconds`` each, and print events/s and the ratios ONNX Runtime / Keras for every batch
size, measured in the same run.

Usage::

    python benchmarks/onnx_inference.py [--model MODEL ...] [--full] [--batch 1 256 10000]
                                        [--seconds 2] [--repeat 2] [--threads 0] [--out DIR]

Without ``--model`` two untrained VAEs of the packaged sizes are built on synthetic events
(``train-l1``: 57 -> 32 -> 16 -> 8, exported as the encoder + mu2; ``train-hlf``: 21 -> 50 -> 50 -> 4
-> 50 -> 50 -> 48, exported with its nll), with 12000 validation events. ``--threads N`` sets the
intra-op threads of both libraries (0: their defaults, all cores). The default run takes about a
minute on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def build_models(work: Path) -> list[Path]:
    """Untrained packaged-size L1 and HLF VAEs on 60000 synthetic events, cut at 1 %."""
    import tensorflow as tf
    from stream_samples import drifting_batch

    from anomaly import model as m
    from anomaly.artifact import load_artifact, raw_inputs, save_artifact
    from anomaly.train import TrainConfig
    from triggerad import data as d
    from triggerad.config import load, resolve_config, to_dict
    from triggerad.io.adc2021 import write_h5

    write_h5(work / "data" / "background.h5", drifting_batch(60_000, seed=5))
    batch = d.load_sample([str(work / "data")])
    paths = []
    for name, score in (("train-l1", "mu2_q"), ("train-hlf", "nll")):
        tf.keras.utils.set_random_seed(1)
        cfg = load(TrainConfig, resolve_config(name))
        kind = cfg.model.kind
        x = raw_inputs(kind, batch)
        split = d.split_indices(len(batch), cfg.data.fractions, cfg.data.seed)
        mean, scale = m.fit_normalisation(kind, x[split["train"]])
        vae = m.build_vae(cfg.model)
        qenc = m.build_quantized_encoder(x.shape[1], cfg.model, cfg.quantization)
        m.copy_encoder_weights(vae.encoder, qenc)
        path = work / kind
        data_cfg = d.DataConfig(background=[str(work / "data")], fractions=cfg.data.fractions,
                                seed=cfg.data.seed)
        save_artifact(path, vae=vae, quantized_encoder=qenc, mean=mean, scale=scale,
                      config=to_dict(cfg),
                      data_info=d.describe([str(work / "data")], "auto", data_cfg, batch))
        art = load_artifact(path)
        values = art.score(x[split["val"]])[score]
        art.write_threshold({"score": score, "value": float(np.quantile(values, 0.99))})
        paths.append(path)
    return paths


def rate(fn, n_events: int, seconds: float) -> float:
    """events/s of ``fn`` (processing ``n_events`` per call), called for at least ``seconds``."""
    fn()  # warm-up (graph tracing, allocations)
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * n_events / elapsed


def benchmark(model: Path, out: Path, args) -> list[dict]:
    """Export ``model`` and time ONNX Runtime vs Keras predict per batch size."""
    import onnxruntime as ort
    import tensorflow as tf
    from triggerad.export.registry import builder_for, model_kind

    from triggerad.config import resolve_config
    from triggerad.export.config import load_config
    from triggerad.export.run import export_model
    from triggerad.export.spec import ExportOptions

    options = ExportOptions(full=args.full, n_events=args.validation_events)
    report = export_model(model, out, config=load_config(resolve_config("export")),
                          options=options, force=True)
    val = report["validation"]
    print(f"{model.name}: exported {out.name} ({report['size_bytes']} bytes); ONNX Runtime vs "
          f"Keras on {val['n_events']} events: max abs diff "
          f"{max(v['max_abs_diff'] for v in val['outputs'].values()):.3g}, decision agreement "
          f"{val['decision']['agreement']:.6f}")
    spec = builder_for(model_kind(model))(model, options)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
    traced = tf.function(lambda inputs: spec.model(inputs, training=False))
    rows = []
    for size in args.batch:
        reps = -(-size // spec.n_events)
        batch = {k: np.ascontiguousarray(np.concatenate([v] * reps)[:size])
                 for k, v in spec.validation_inputs.items()}
        tensors = {k: tf.constant(v) for k, v in batch.items()}
        runs = {
            "onnxruntime": lambda b=batch: session.run(None, b),
            "keras_predict": lambda b=batch, s=size: spec.model.predict(b, batch_size=s, verbose=0),
            "keras_tf_function": lambda t=tensors: traced(t),
        }
        best = dict.fromkeys(runs, 0.0)
        for _ in range(args.repeat):
            for key, fn in runs.items():
                best[key] = max(best[key], rate(fn, size, args.seconds))
        row = {"model": model.name, "batch": size, **best,
               "ratio_onnx_vs_keras_predict": best["onnxruntime"] / best["keras_predict"],
               "ratio_onnx_vs_tf_function": best["onnxruntime"] / best["keras_tf_function"]}
        print(f"  batch {size:>6}: ONNX Runtime {row['onnxruntime']:10.0f} events/s; Keras predict "
              f"{row['keras_predict']:10.0f} events/s (ratio {row['ratio_onnx_vs_keras_predict']:7.2f}); "
              f"Keras in tf.function {row['keras_tf_function']:10.0f} events/s (ratio "
              f"{row['ratio_onnx_vs_tf_function']:5.2f})")
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark and print/return the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", nargs="+", default=None, help="model folders with threshold.json")
    p.add_argument("--full", action="store_true", help="export the full models")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 256, 10_000])
    p.add_argument("--seconds", type=float, default=2.0, help="timing window per measurement")
    p.add_argument("--repeat", type=int, default=2, help="alternations, best kept")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: defaults)")
    p.add_argument("--validation-events", type=int, default=100_000)
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)

    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    work = Path(args.out or tempfile.mkdtemp(prefix="onnx_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    models = [Path(m) for m in args.model] if args.model else build_models(work)
    print(f"threads: {args.threads or 'library defaults'} ({os.cpu_count()} CPUs)")
    rows = []
    for model in models:
        rows += benchmark(model, work / f"{model.name}.onnx", args)
    (work / "benchmark.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
