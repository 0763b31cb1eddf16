"""LLP-tagger training throughput: the full input pipeline vs a bare ``fit`` on in-memory arrays.

In the same process, with the same network, domain-adversarial step and batch composition:

1. **pipeline**: ``fit`` on the ``tf.data`` pipeline of ``trigger-ad tagger train``
   (:mod:`tagger.pipeline`: chunked reads of the jet files in reader threads, shuffle buffer,
   per-batch (pT, eta) resampling and c-tau transfer, domain batch, normalisation, prefetch);
2. **in-memory**: the same number of batches assembled beforehand into numpy arrays, then
   ``fit(x, t, batch_size=...)`` on them (no reading, no resampling: the bare training cost).

The rate of the pipeline alone (batches prepared by the generator, no training) is printed
too. Each runs ``--warmup`` untimed steps (tracing, first shuffle-buffer fill) and then ``--steps``
timed steps inside the same ``fit``, alternated ``--repeat`` times; rows/s counts every jet of a
batch (class and domain parts). Two ratios pipeline / in-memory (goal >= 0.9: the CPU prepares
the next batch while the step runs):

- **wall**: rows/s, best run of each (the machine may be shared; the per-pair ratios of
  adjacent runs are printed too, their spread shows the load noise);
- **CPU**: in-memory / pipeline CPU seconds of this process per step (all threads: reading,
  preparation, training), median over the runs: on a saturated machine the throughput
  follows it, and it hardly depends on the other jobs.

The chunk cache (``data.cache_mb``) in use is printed; ``--cache-mb 0`` measures the streaming
pipeline (every chunk read and normalised on every pass).

Usage::

    python benchmarks/tagger_throughput.py [--data DIR] [--config tagger-train-fast]
                                           [--steps 20] [--warmup 3] [--repeat 3]
                                           [--batch-size 2000] [--cache-mb MB]

Without ``--data`` a synthetic sample (``tests/tagger_samples.py``) is written to a temporary
folder. The default run takes about three minutes on two cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="jet sample folder (default: synthetic)")
    parser.add_argument("--config", default="tagger-train-fast")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    parser.add_argument("--repeat", type=int, default=3,
                        help="alternated runs of each (best wall time, median CPU time kept)")
    parser.add_argument("--cache-mb", type=float, default=None,
                        help="data.cache_mb (default: the config's; 0: no cache, streaming)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from tagger import pipeline
    from tagger.train import build_trainer, load_config, prepare, streams

    tmp = None
    data = args.data
    if data is None:
        from tagger_samples import write_sample

        tmp = tempfile.TemporaryDirectory()
        data = str(write_sample(Path(tmp.name), 20_000, 20_000, 10_000))
    bs = args.batch_size
    d_over = {"dir": data, "shuffle_buffer": max(5 * bs, 10_000)}
    if args.cache_mb is not None:
        d_over["cache_mb"] = args.cache_mb
    cfg = load_config(args.config, {
        "data": d_over,
        "training": {"batch_size": bs, "domain_batch_size": bs // 2}})
    tf.keras.utils.set_random_seed(cfg.training.seed)
    prep = prepare(cfg)
    s = streams(cfg, prep)
    sizes = prep["sizes"]

    # in-memory batches, assembled by the same code beforehand
    gen = pipeline.batches(s, split="train", seed=1, domain=True)
    held = [next(gen) for _ in range(args.warmup)]
    t0, c0 = time.perf_counter(), time.process_time()
    held += [next(gen) for _ in range(args.steps)]
    t_prep = (time.perf_counter() - t0) / args.steps
    c_prep = (time.process_time() - c0) / args.steps
    rows = [len(t["class_weight"]) for _, t in held]
    per_batch = int(np.mean(rows))
    x_mem = {k: np.concatenate([x[k] for x, _ in held]) for k in held[0][0]}
    t_mem = {k: np.concatenate([t[k] for _, t in held]) for k in held[0][1]}

    class StepTimes(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.times.append((time.perf_counter(), time.process_time()))

    def timed_fit(trainer, data, steps):
        """Wall and CPU seconds per step in the steady state: from the end of step
        ``--warmup`` to the end of the last one, inside one ``fit`` (tracing and the first
        buffer fill excluded)."""
        cb = StepTimes()
        cb.times = []
        trainer.fit(data, epochs=1, steps_per_epoch=steps + args.warmup, verbose=0,
                    callbacks=[cb])
        (w0, c0), (w1, c1) = cb.times[args.warmup - 1], cb.times[-1]
        return (w1 - w0) / steps, (c1 - c0) / steps

    _, trainer = build_trainer(cfg, sizes)
    ds = pipeline.dataset(s, sizes, split="train", seed=2, domain=True).repeat()
    _, trainer2 = build_trainer(cfg, sizes)
    mem = tf.data.Dataset.from_tensor_slices((x_mem, t_mem)).batch(per_batch).cache().repeat()
    pipe, mem_s = [], []
    for _ in range(args.repeat):   # alternated: the machine may be shared
        pipe.append(timed_fit(trainer, ds, args.steps))
        mem_s.append(timed_fit(trainer2, mem, args.steps))
    (w_pipe, c_pipe), (w_mem, c_mem) = np.array(pipe).T, np.array(mem_s).T
    r_pipe, r_mem = per_batch / w_pipe.min(), per_batch / w_mem.min()
    cache = getattr(s, "cache", None)
    print(f"sample {data}: {sum(sum(v.values()) for v in prep['sim'].counts.values())} "
          f"simulation jets; batch {bs} drawn -> {per_batch} rows (class + domain); "
          f"{args.steps} timed steps x {args.repeat} runs each")
    print("chunk cache: " + ("off (streaming)" if cache is None else
                             f"{cache.used / 2**20:.1f} MiB of {cache.budget / 2**20:.0f} MiB, "
                             f"{len(cache.store)} (chunk, split) entries"))
    print(f"pipeline  (tf.data, read + resample + normalise + prefetch): {r_pipe:9.0f} rows/s, "
          f"{1e3 * np.median(c_pipe):.0f} ms CPU per step")
    print(f"in-memory (pre-assembled arrays, bare fit):                   {r_mem:9.0f} rows/s, "
          f"{1e3 * np.median(c_mem):.0f} ms CPU per step")
    print(f"the pipeline alone (batches prepared, no training):          "
          f"{per_batch / t_prep:9.0f} rows/s ({1e3 * t_prep:.0f} ms per batch, "
          f"{1e3 * c_prep:.0f} ms CPU)")
    pairs = " ".join(f"{m / p:.2f}" for p, m in zip(w_pipe, w_mem, strict=True))
    print(f"wall ratio pipeline / in-memory: {r_pipe / r_mem:.2f} (best of each; per pair {pairs})"
          " (goal >= 0.9)")
    print(f"CPU  ratio pipeline / in-memory: {np.median(c_mem) / np.median(c_pipe):.2f} "
          "(CPU per step, median) (goal >= 0.9)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
