"""ONNX Runtime vs Keras on the validation inputs: differences per output and decision agreement.

Float results are compared with tolerances, never for bit identity: ONNX Runtime and TensorFlow
use different kernels (summation order, vectorised exp/log), so outputs differ by a few float32
ulp and a decision can only flip for an event whose score lies that close to the cut.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from triggerad.export.spec import ExportSpec


def _batches(inputs: dict[str, np.ndarray], batch_size: int):
    n = len(next(iter(inputs.values())))
    for start in range(0, n, batch_size):
        yield {k: np.ascontiguousarray(v[start:start + batch_size]) for k, v in inputs.items()}


def run_onnx(session, inputs: dict[str, np.ndarray], names: list[str], batch_size: int,
             progress: bool = False) -> dict[str, np.ndarray]:
    """Outputs ``names`` of an ONNX Runtime session on ``inputs``, batch by batch."""
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    n = len(next(iter(inputs.values())))
    for batch in tqdm(_batches(inputs, batch_size), total=-(-n // batch_size), unit="batch",
                      desc="ONNX Runtime", disable=not progress, leave=False):
        for name, value in zip(names, session.run(names, batch), strict=True):
            parts[name].append(value)
    return {k: np.concatenate(v) for k, v in parts.items()}


def session(model_bytes: bytes):
    """A CPU ONNX Runtime session of a serialised model."""
    import onnxruntime as ort

    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])


def compare_arrays(onnx_values: np.ndarray, reference: np.ndarray) -> dict:
    """Largest absolute difference, the reference's largest magnitude, non-finite mismatches.

    Entries where both are non-finite and equal (both NaN, or the same infinity) count as equal.
    """
    a = np.asarray(onnx_values, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64).reshape(a.shape)
    same_nonfinite = (~np.isfinite(a)) & (~np.isfinite(b)) & ((a == b) | (np.isnan(a) & np.isnan(b)))
    both_finite = np.isfinite(a) & np.isfinite(b)
    diff = np.abs(a - b)[both_finite]
    return {
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "max_abs_value": float(np.abs(b[both_finite]).max()) if diff.size else 0.0,
        "n_nonfinite_mismatch": int((~both_finite & ~same_nonfinite).sum()),
    }


def decision_agreement(spec: ExportSpec, onnx_values: np.ndarray, reference: np.ndarray) -> dict:
    """Fraction of events with the same decision, number that differ and numbers selected."""
    a, b = spec.decision.select(onnx_values), spec.decision.select(reference)
    n = len(a)
    return {
        "agreement": float(np.mean(a == b)) if n else 1.0,
        "n_disagree": int((a != b).sum()),
        "n_selected_onnx": int(a.sum()),
        "n_selected_reference": int(b.sum()),
    }


def validate(spec: ExportSpec, model_bytes: bytes, keras_model, batch_size: int) -> dict:
    """Compare ONNX Runtime with Keras ``predict`` (and the kind's references) on the spec's inputs.

    Returns
    -------
    dict
        ``n_events``, ``source``, ``outputs`` (per output: ``max_abs_diff``, ``max_abs_value``,
        ``n_nonfinite_mismatch``), ``decision`` (cut, ``agreement``, ``n_disagree``, ...; None
        without a decision) and ``references`` (per reference: output, differences and, for the
        decision output, the agreement).
    """
    names = spec.output_names
    onnx_out = run_onnx(session(model_bytes), spec.validation_inputs, names, batch_size,
                        progress=True)
    keras_out = keras_model.predict(spec.validation_inputs, batch_size=batch_size, verbose=0)
    report = {
        "n_events": spec.n_events,
        "source": spec.validation_source,
        "batch_size": batch_size,
        "outputs": {n: compare_arrays(onnx_out[n], keras_out[n]) for n in names},
        "decision": None,
        "references": {},
    }
    if spec.decision is not None:
        out = spec.decision.output
        report["decision"] = {
            **spec.decision.as_dict(),
            **decision_agreement(spec, onnx_out[out], keras_out[out]),
        }
    for ref in spec.references:
        entry = {"output": ref.output, "description": ref.description,
                 **compare_arrays(onnx_out[ref.output], ref.values)}
        if spec.decision is not None and ref.output == spec.decision.output:
            entry["decision"] = decision_agreement(spec, onnx_out[ref.output], ref.values)
        report["references"][ref.label] = entry
    return report
