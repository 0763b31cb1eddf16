"""Stream-scoring throughput vs a raw read of the same columns and vs Keras ``predict``.

Writes a multi-file ADC2021 HDF5 stream, then measures in the same process:

1. raw ``h5py`` read, chunk by chunk, of exactly the datasets the scorer reads (the model's inputs
   and the table columns, :attr:`StreamScorer.read_fields` mapped through the ADC2021 branch map:
   ``Particles``, ``run``, ``lumi``, ``event``, ``pileup``, ``weight``) (events/s); also the same
   read through :func:`triggerad.io.adc2021.read_rows` (the reader's own path: ISA-L inflation
   of the chunks in a thread pool), for reference; and, for a baseline that inflates with the
   same library as the reader, the chunks read and inflated by ISA-L one after the other in one
   thread (``raw_read_isal``, the h5py read with a faster inflater);
2. the default ``trigger-ad score`` (only the threshold's score ``mu2_q``, from the integer graph
   of ``MODEL/fastpath.json``; read, inputs, decisions, parquet parts, manifest) with the default
   local executor (the next unit read in a background thread while the current one is scored,
   the previous one written by the driver's writer thread) and reading sequentially (events/s of
   the scoring loop, and wall clock incl. model loading, planning and the summary); also events
   per CPU second of the whole run vs those of the raw read (``ratio_default_cpu``: the overhead
   of scoring, much less sensitive to a shared machine than the wall clock);
3. the same with ``--score all`` (decoder scores through TensorFlow, large batch);
4. Keras ``predict`` of the quantized encoder with its default batch size (32) on the normalised
   inputs (events/s, on a subset);
5. with ``--cli``: the default command as a fresh process (``trigger-ad score``, its
   wall clock incl. interpreter start and imports) vs a fresh process doing the raw h5py read.

and prints the ratios (goal: default score / raw read >= 0.8, loop and wall). Raw read and
default scoring are alternated ``--repeat`` times: the ratios of the best rates are printed, and
the median and range of the per-round ratios (figures measured seconds apart: the robust number
on a shared machine).

Usage::

    python benchmarks/scoring_throughput.py [--files 4] [--events 50000] [--repeat 3] [--cli]
                                            [--model MODEL] [--out DIR]

Without ``--model`` an untrained L1 VAE of AXOL1TL size (57 -> 32 -> 16 -> 8) is built. The
default run takes about 30 s on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
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


def raw_read(files: list[Path], chunk: int, columns: list[str], inflate: str = ""
             ) -> tuple[float, float]:
    """(events/s, events per CPU second) of an h5py read of the datasets ``columns`` in chunks
    of ``chunk`` events (``inflate="pool"``: through :func:`triggerad.io.adc2021.read_rows`;
    ``"inline"``: the same with every chunk inflated in this thread)."""

    from triggerad.io import adc2021
    from triggerad.io.adc2021 import read_rows

    inline = adc2021.INLINE_BYTES
    if inflate == "inline":
        adc2021.INLINE_BYTES = 1 << 62
    try:
        return _raw_read(files, chunk, columns, read_rows if inflate else None)
    finally:
        adc2021.INLINE_BYTES = inline


def _raw_read(files, chunk, columns, read_rows) -> tuple[float, float]:
    import h5py

    start, cpu, n = time.perf_counter(), time.process_time(), 0
    for path in files:
        with h5py.File(path, "r") as f:
            total = len(f[columns[0]])
            for lo in range(0, total, chunk):
                if read_rows:
                    arrays = [read_rows(f[c], lo, lo + chunk) for c in columns]
                else:
                    arrays = [f[c][lo:lo + chunk] for c in columns]
                n += len(arrays[0])
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


RAW_READ_SCRIPT = """
import sys, time, h5py
start, n = time.perf_counter(), 0
chunk, columns, files = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3:]
for path in files:
    with h5py.File(path, "r") as f:
        for lo in range(0, len(f[columns[0]]), chunk):
            n += len([f[c][lo:lo + chunk] for c in columns][0])
"""


def process_walls(model: Path, files: list[Path], out: Path, chunk: int,
                  columns: list[str]) -> tuple[float, float]:
    """events/s wall clock of fresh processes: (default ``trigger-ad score``, raw h5py read)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    shutil.rmtree(out, ignore_errors=True)
    n = 0
    rates = []
    cli = "import sys; from triggerad.cli import main; sys.exit(main(sys.argv[1:]))"
    for argv in ([sys.executable, "-c", cli, "score", str(model), *map(str, files),
                  "--out", str(out), "--chunk-size", str(chunk), "--no-progress"],
                 [sys.executable, "-c", RAW_READ_SCRIPT, str(chunk), ",".join(columns),
                  *map(str, files)]):
        start = time.perf_counter()
        subprocess.run(argv, check=True, env=env, capture_output=True)
        rates.append(time.perf_counter() - start)
    n = json.loads((out / "summary.json").read_text())["events"]
    return n / rates[0], n / rates[1]


def score_rate(model: Path, files: list[Path], out: Path, chunk: int, scores,
               read_ahead: int = 1) -> tuple:
    """(events/s of the scoring loop, events/s wall clock incl. planning and summary, events per
    CPU second of the process - every thread - over the whole run)."""
    from triggerad.executor import LocalExecutor
    from triggerad.stream.config import load_score_config
    from triggerad.stream.runner import run_stream

    shutil.rmtree(out, ignore_errors=True)
    config = load_score_config(None, {"chunking": {"chunk_size": chunk},
                                      "monitor": {"plots": False}})
    start, cpu = time.perf_counter(), time.process_time()
    summary = run_stream(str(model), [str(f) for f in files], out, config=config,
                         executor=LocalExecutor(read_ahead), scores=scores, progress=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return summary["events_per_s"], summary["events"] / wall, summary["events"] / cpu


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
    p.add_argument("--repeat", type=int, default=3, help="alternations of raw read and score")
    p.add_argument("--cli", action="store_true",
                   help="also time the default command and the raw read as fresh processes")
    p.add_argument("--model", default=None, help="model folder with threshold.json")
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)

    from stream_samples import write_stream

    work = Path(args.out or tempfile.mkdtemp(prefix="scoring_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else build_model(work / "model")
    files = write_stream(work, args.files, args.events, pileup=(60, 20), lumi_size=10_000)
    columns = raw_columns(model, None)
    raw_read(files[:1], args.chunk_size, columns)  # warm the page cache
    score_rate(model, files[:1], work / "out_fast", args.chunk_size, None)  # warm imports
    rounds = []
    for _ in range(args.repeat):
        fast, fast_wall, fast_cpu = score_rate(model, files, work / "out_fast", args.chunk_size,
                                               None)
        raw, raw_cpu = raw_read(files, args.chunk_size, columns)
        rounds.append({
            "raw_read": raw,
            "raw_read_inflate": raw_read(files, args.chunk_size, columns, inflate="pool")[0],
            "raw_read_isal": raw_read(files, args.chunk_size, columns, inflate="inline")[0],
            "score_default": fast,
            "score_default_wall": fast_wall,
            "score_default_sequential": score_rate(model, files, work / "out_fast",
                                                   args.chunk_size, None, read_ahead=0)[0],
            "raw_read_cpu": raw_cpu,
            "score_default_cpu": fast_cpu,
        })
    from triggerad.io.inflate import INFLATER

    results: dict = {"events": args.files * args.events, "raw_columns": ",".join(columns),
                     "inflater": INFLATER.name}
    results.update({key: max(r[key] for r in rounds) for key in rounds[0]})  # best of each
    results["score_all"], results["score_all_wall"], _ = score_rate(
        model, files, work / "out_all", args.chunk_size, ["all"])
    results["keras_predict_default_batch"] = keras_predict_rate(model, files, args.keras_events)
    if args.cli:
        results["cli_default_wall"], results["cli_raw_read_wall"] = process_walls(
            model, files, work / "out_cli", args.chunk_size, columns)
    raw = results["raw_read"]
    # ratios of the best rates, and (robust when the machine is shared) the median and range of
    # the ratios of each round, whose figures were measured within seconds of each other
    for name, key, base in (("default", "score_default", "raw_read"),
                            ("default_sequential", "score_default_sequential", "raw_read"),
                            ("default_wall", "score_default_wall", "raw_read"),
                            ("default_cpu", "score_default_cpu", "raw_read_cpu"),
                            ("default_vs_raw_inflate", "score_default", "raw_read_inflate"),
                            ("default_vs_raw_isal", "score_default", "raw_read_isal"),
                            ("default_wall_vs_raw_isal", "score_default_wall", "raw_read_isal")):
        label = name if base != "raw_read" else f"{name}_vs_raw"
        results[f"ratio_{label}"] = results[key] / results[base]
        per_round = sorted(r[key] / r[base] for r in rounds)
        results[f"ratio_{label}_rounds"] = (f"median {np.median(per_round):.3f}, "
                                            f"{per_round[0]:.3f}-{per_round[-1]:.3f}")
    results["ratio_all_vs_raw"] = results["score_all"] / raw
    results["ratio_default_vs_keras"] = (results["score_default"]
                                         / results["keras_predict_default_batch"])
    if args.cli:
        results["ratio_cli_wall_vs_raw_process"] = (results["cli_default_wall"]
                                                    / results["cli_raw_read_wall"])
    for key, value in results.items():
        unit = "" if key.startswith(("ratio", "events")) else " events/s"
        if isinstance(value, float):
            print(f"{key:38s} {value:12.3f}{unit}")
        else:
            print(f"{key:38s} {value:>12}")
    (work / "benchmark.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
