"""Compute a model's scores the three ways users get them, in a fresh process, and save them.

Used by ``test_reproducible.py``, which runs it under different thread counts and oneDNN
settings. ``python score_worker.py MODEL INPUTS.npy STREAM.h5 OUT.npz BATCH CHUNK``:

* ``ModelArtifact.score`` (evaluation, thresholds) with batch size ``BATCH``: every score;
* the stream fast path (``StreamScorer.score_inputs``) in chunks of ``CHUNK`` events;
* ``trigger-ad score STREAM.h5 --chunk-size CHUNK`` end to end: its ``mu2_q`` and ``accepted``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str]) -> None:
    """Score and write ``OUT.npz`` (see the module docstring)."""
    import pandas as pd

    from anomaly.artifact import load_artifact
    from anomaly.stream.scoring import StreamScorer
    from triggerad.cli import main as cli
    from triggerad.stream.writer import read_part

    model, inputs, stream, out, batch, chunk = argv
    batch, chunk = int(batch), int(chunk)
    art = load_artifact(model)
    x = np.load(inputs)
    result = {f"score_{k}": v for k, v in art.score(x, batch_size=batch).items()}
    scorer = StreamScorer(art, ["mu2", "mu2_q", "kl_q"])
    parts = [scorer.score_inputs(x[i:i + chunk]) for i in range(0, len(x), chunk)]
    result.update({f"fast_{k}": np.concatenate([p[k] for p in parts]) for k in parts[0]})
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        code = cli(["score", model, stream, "--out", str(run), "--chunk-size", str(chunk),
                    "--score", "mu2_q", "--no-progress"])
        assert code == 0, code
        table = pd.concat([read_part(p) for p in sorted((run / "scores").glob("part-*"))])
        result["cli_mu2_q"] = table["mu2_q"].to_numpy()
        result["cli_accepted"] = table["accepted"].to_numpy()
    np.savez(out, **result)


if __name__ == "__main__":
    main(sys.argv[1:])
