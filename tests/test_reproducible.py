"""Quantized scores and trigger decisions are bit-identical whatever the thread count, oneDNN,
batch size and chunk size; float scores agree within float32 tolerance.

Each case runs ``score_worker.py`` in a fresh process with its own environment (thread counts
and oneDNN are fixed when TensorFlow and BLAS load) and compares with the first case.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import stream_samples as ss

#: (OMP_NUM_THREADS = TF_NUM_INTRAOP_THREADS, TF_ENABLE_ONEDNN_OPTS, batch size, chunk size)
CASES = [(1, "0", 256, 500), (2, "1", 4096, 1700), (1, "1", 1000, 999), (2, "0", 777, 3000)]
FLOAT_SCORES = ("loss", "nll", "kl", "mu2")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from anomaly.artifact import raw_inputs
    from triggerad.io.adc2021 import write_h5

    folder = tmp_path_factory.mktemp("repro")
    model = ss.make_model(folder / "model")
    batch = ss.drifting_batch(3000, seed=21)
    stream = folder / "stream.h5"
    write_h5(stream, batch)
    inputs = folder / "inputs.npy"
    np.save(inputs, raw_inputs("l1_vae", batch))
    return folder, model, inputs, stream


def run_case(setup, case) -> dict[str, np.ndarray]:
    folder, model, inputs, stream = setup
    threads, onednn, batch, chunk = case
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TF_NUM_INTRAOP_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "TF_ENABLE_ONEDNN_OPTS": onednn}
    out = folder / f"case_{threads}_{onednn}_{batch}_{chunk}.npz"
    if not out.is_file():
        worker = Path(__file__).with_name("score_worker.py")
        subprocess.run([sys.executable, str(worker), str(model), str(inputs), str(stream),
                        str(out), str(batch), str(chunk)], env=env, check=True,
                       capture_output=True)
    with np.load(out) as data:
        return dict(data)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES[1:], ids=lambda c: f"threads{c[0]}-onednn{c[1]}-batch{c[2]}"
                         f"-chunk{c[3]}")
def test_quantized_scores_and_decisions_identical(setup, case):
    from anomaly.artifact import load_artifact

    reference, found = run_case(setup, CASES[0]), run_case(setup, case)
    threshold = load_artifact(setup[1]).threshold["value"]
    # every way of computing mu2_q, in every setting: the same integers
    for key in ("score_mu2_q", "fast_mu2_q", "cli_mu2_q"):
        np.testing.assert_array_equal(found[key], reference["score_mu2_q"], err_msg=key)
    np.testing.assert_array_equal(found["cli_accepted"], reference["score_mu2_q"] > threshold)
    assert 0.02 < found["cli_accepted"].mean() < 0.1  # the threshold is at the 95 % quantile
    # kl_q: exact integer inputs, float64 exp (not a bit-exact claim: tolerance)
    np.testing.assert_allclose(found["fast_kl_q"], reference["score_kl_q"], rtol=1e-12)
    # float scores: TensorFlow / BLAS summation order may differ - tolerance, never identity
    for name in FLOAT_SCORES:
        np.testing.assert_allclose(found[f"score_{name}"], reference[f"score_{name}"], rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    np.testing.assert_allclose(found["fast_mu2"], reference["score_mu2"], rtol=1e-5, atol=1e-6)
