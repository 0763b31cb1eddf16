"""Stream-scoring throughput vs a raw read of the same columns and vs Keras ``predict``.

Writes a multi-file ADC2021 HDF5 stream, then measures in the same process:

1. raw ``h5py`` read, chunk by chunk, of exactly the datasets the scorer reads (the model's inputs
   and the table columns, :attr:`StreamScorer.read_fields` mapped through the ADC2021 branch map:
   ``Particles``, ``run``, ``lumi``, ``event``, ``pileup``, ``weight``) (events/s);
2. ``trigger-ad score`` end to end (read, inputs, numpy fast path, decisions, parquet parts,
   manifest) with the threshold's encoder-only score ``mu2_q``, with the default local executor
   (the next unit read in a background thread while the current one is scored, the previous one
   written by the driver's writer thread) and reading sequentially (events/s of the scoring loop,
   and wall clock incl. model loading, planning and the summary);
3. the same with every score of the model (decoder scores through TensorFlow, large batch);
4. Keras ``predict`` of the quantized encoder with its default batch size (32) on the normalised
   inputs (events/s, on a subset);

and prints the ratios (goal: fast-path score / raw read >= 0.8). Raw read and fast-path scoring
are alternated ``--repeat`` times and the best of each is kept (the machine may be shared).

Usage::

    python benchmarks/scoring_throughput.py [--files 4] [--events 50000] [--repeat 2]
                                            [--model MODEL] [--out DIR]

Without ``--model`` an untrained L1 VAE of AXOL1TL size (57 -> 32 -> 16 -> 8) is built. The
default run takes about 30 s on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def build_model(path: Path) -> Path:
    """Untrained AXOL1TL-size L1 VAE with a threshold at the 99th percentile of mu2_q."""
    import tensorflow as tf
    from stream_samples import drifting_batch

    from anomaly import model as m
    from anomaly.artifact import load_artifact, raw_inputs, save_artifact
    from triggerad.config import to_dict

    tf.keras.utils.set_random_seed(1)
    mcfg = m.ModelConfig(kind="l1_vae", encoder=[32, 16], decoder=[16, 32], latent_dim=8)
    qcfg = m.QuantizationConfig(weight_bits=[6, 6, 6], weight_integer=[1, 1, 1],
                                activation_bits=[8, 8], activation_integer=[3, 3])
    vae, qenc = m.build_vae(mcfg), m.build_quantized_encoder(57, mcfg, qcfg)
    m.copy_encoder_weights(vae.encoder, qenc)
    raw = raw_inputs("l1_vae", drifting_batch(20_000, 2))
    mean, scale = m.fit_normalisation("l1_vae", raw)
    save_artifact(path, vae=vae, quantized_encoder=qenc, mean=mean, scale=scale,
                  config={"model": to_dict(mcfg), "quantization": to_dict(qcfg)},
                  data_info={"files": []})
    art = load_artifact(path)
    art.write_threshold({"score": "mu2_q",
                         "value": float(np.quantile(art.score(raw)["mu2_q"], 0.99)),
                         "target_rate_hz": 1000.0, "input_rate_hz": 100_000.0})
    return path


def raw_columns(model: Path, scores: list[str]) -> list[str]:
    """HDF5 datasets holding the event-record fields the scorer reads for ``model``."""
    from anomaly.stream.scoring import StreamScorer
    from triggerad.io.adc2021 import Adc2021BranchMap

    names = Adc2021BranchMap()
    return [names.particles if field == "objects" else getattr(names, field)
            for field in StreamScorer(str(model), scores).read_fields]


def raw_read(files: list[Path], chunk: int, columns: list[str]) -> float:
    """events/s of an h5py read of the datasets ``columns`` in chunks of ``chunk`` events."""
    import h5py

    start, n = time.perf_counter(), 0
    for path in files:
        with h5py.File(path, "r") as f:
            total = len(f[columns[0]])
            for lo in range(0, total, chunk):
                arrays = [f[c][lo:lo + chunk] for c in columns]
                n += len(arrays[0])
    return n / (time.perf_counter() - start)


def score_rate(model: Path, files: list[Path], out: Path, chunk: int, scores,
               read_ahead: int = 1) -> tuple:
    """(events/s of the scoring loop, events/s wall clock incl. planning and summary)."""
    from triggerad.executor import LocalExecutor
    from triggerad.stream.config import load_score_config
    from triggerad.stream.runner import run_stream

    shutil.rmtree(out, ignore_errors=True)
    config = load_score_config(None, {"chunking": {"chunk_size": chunk},
                                      "monitor": {"plots": False}})
    start = time.perf_counter()
    summary = run_stream(str(model), [str(f) for f in files], out, config=config,
                         executor=LocalExecutor(read_ahead), scores=scores, progress=False)
    wall = time.perf_counter() - start
    return summary["events_per_s"], summary["events"] / wall


def keras_predict_rate(model: Path, files: list[Path], n: int) -> float:
    """events/s of quantized-encoder ``predict`` at the default batch size on ``n`` events."""
    from anomaly.artifact import load_artifact
    from anomaly.stream.scoring import encoder_inputs
    from triggerad.io.adc2021 import Adc2021Reader

    art = load_artifact(model)
    x = encoder_inputs(art, art.inputs(Adc2021Reader().read(files[0], 0, n)))
    encoder = art.quantized_encoder()
    encoder.predict(x[:64], verbose=0)
    start = time.perf_counter()
    encoder.predict(x, verbose=0)
    return len(x) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print/return the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--events", type=int, default=50_000, help="events per file")
    p.add_argument("--chunk-size", type=int, default=50_000)
    p.add_argument("--keras-events", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=2, help="alternations of raw read and score")
    p.add_argument("--model", default=None, help="model folder with threshold.json")
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)

    from stream_samples import write_stream

    work = Path(args.out or tempfile.mkdtemp(prefix="scoring_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else build_model(work / "model")
    files = write_stream(work, args.files, args.events, pileup=(60, 20), lumi_size=10_000)
    columns = raw_columns(model, ["mu2_q"])
    raw_read(files[:1], args.chunk_size, columns)  # warm the page cache
    score_rate(model, files[:1], work / "out_fast", args.chunk_size, ["mu2_q"])  # warm imports
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        fast, fast_wall = score_rate(model, files, work / "out_fast", args.chunk_size, ["mu2_q"])
        figures = {
            "raw_read": raw_read(files, args.chunk_size, columns),
            "score_fast": fast,
            "score_fast_wall": fast_wall,
            "score_fast_sequential": score_rate(model, files, work / "out_fast",
                                                args.chunk_size, ["mu2_q"], read_ahead=0)[0],
        }
        best = {key: max(value, best.get(key, 0.0)) for key, value in figures.items()}
    results = {"events": args.files * args.events, "raw_columns": ",".join(columns), **best}
    results["score_all"], results["score_all_wall"] = score_rate(
        model, files, work / "out_all", args.chunk_size, None)
    results["keras_predict_default_batch"] = keras_predict_rate(model, files, args.keras_events)
    results["ratio_fast_vs_raw"] = results["score_fast"] / results["raw_read"]
    results["ratio_fast_sequential_vs_raw"] = (results["score_fast_sequential"]
                                               / results["raw_read"])
    results["ratio_fast_wall_vs_raw"] = results["score_fast_wall"] / results["raw_read"]
    results["ratio_all_vs_raw"] = results["score_all"] / results["raw_read"]
    results["ratio_fast_vs_keras"] = results["score_fast"] / results["keras_predict_default_batch"]
    for key, value in results.items():
        unit = "" if key.startswith(("ratio", "events")) else " events/s"
        if isinstance(value, float):
            print(f"{key:30s} {value:12.3f}{unit}")
        else:
            print(f"{key:30s} {value:>12}")
    (work / "benchmark.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
