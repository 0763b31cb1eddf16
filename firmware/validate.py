"""Bit-accuracy of the C simulation against the Keras reference, and the precision sweep.

The Keras reference (:func:`firmware.score_layer.trigger_graph`) computes the same graph as the
firmware - fixed-point inputs, normalisation, QKeras encoder, score, trigger bit - so differences
are counted in LSBs of the firmware score type and should be zero. Separately, the firmware is
compared with the float pipeline (float normalisation + QKeras encoder, the artifact's ``mu2_q``)
to measure what the fixed-point inputs and normalisation cost.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from firmware.config import FirmwareConfig, Fixed, parse_fixed
from firmware.convert import compile_model, predict

log = logging.getLogger(__name__)


@dataclass
class Agreement:
    """Agreement of firmware scores/decisions with a reference.

    Attributes
    ----------
    n_events : int
        Events compared.
    decision_agreement : float
        Fraction of events with the same trigger bit.
    max_score_diff_lsb, mean_abs_score_diff_lsb : float
        Largest and mean absolute score difference in LSB units of the firmware score type.
    score_diff_counts : dict
        ``{difference in LSB: events}`` for the 20 most frequent differences.
    n_disagreeing : int
        Events with a different trigger bit.
    """

    n_events: int
    decision_agreement: float
    max_score_diff_lsb: float
    mean_abs_score_diff_lsb: float
    score_diff_counts: dict[int, int] = field(default_factory=dict)
    n_disagreeing: int = 0

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


def compare_scores(score_fw, bit_fw, score_ref, bit_ref, score_type: Fixed) -> tuple[Agreement, np.ndarray]:
    """Compare firmware and reference scores (in LSBs of ``score_type``) and trigger bits.

    Returns
    -------
    (Agreement, np.ndarray)
        The summary and the indices of the events whose trigger bits differ.
    """
    score_fw, score_ref = np.ravel(score_fw), np.ravel(score_ref)
    diff = (score_fw - score_ref) / score_type.lsb
    disagree = np.flatnonzero(np.ravel(bit_fw) != np.ravel(bit_ref))
    values, counts = np.unique(np.rint(diff).astype(np.int64), return_counts=True)
    top = np.argsort(-counts)[:20]
    n = len(score_fw)
    return Agreement(
        n_events=n,
        decision_agreement=float(1.0 - len(disagree) / n) if n else float("nan"),
        max_score_diff_lsb=float(np.max(np.abs(diff))) if n else float("nan"),
        mean_abs_score_diff_lsb=float(np.mean(np.abs(diff))) if n else float("nan"),
        score_diff_counts={int(values[i]): int(counts[i]) for i in top},
        n_disagreeing=int(len(disagree)),
    ), disagree


def max_output_diff_lsb(outputs_fw: list[np.ndarray], outputs_ref: list[np.ndarray],
                        types: list[Fixed]) -> list[float]:
    """Largest absolute difference of each output in LSBs of its firmware type (generic models)."""
    return [float(np.max(np.abs(np.asarray(f).reshape(len(f), -1) - np.asarray(r).reshape(len(r), -1)))
                  / t.lsb) for f, r, t in zip(outputs_fw, outputs_ref, types, strict=True)]


def keras_reference(model, x, batch_size: int) -> list[np.ndarray]:
    """Keras model outputs as float64 arrays ``(n, size)`` (list, one per output)."""
    out = model.predict(x, batch_size=batch_size, verbose=0)
    out = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o, dtype=np.float64).reshape(len(o), -1) for o in out]


@dataclass
class TriggerValidation:
    """Result of :func:`validate_trigger`."""

    exact: Agreement
    disagreeing: np.ndarray
    csim_seconds: float
    keras_seconds: float
    scores_fw: np.ndarray
    bits_fw: np.ndarray


def validate_trigger(hls_model, keras_model, x_fixed: np.ndarray, score_type: Fixed,
                     batch_size: int, progress: bool = True) -> TriggerValidation:
    """Run the C simulation and the Keras reference on the same fixed-point inputs and compare.

    Parameters
    ----------
    hls_model : hls4ml ModelGraph
        Compiled trigger model (outputs: score, trigger bit).
    keras_model : keras.Model
        The Keras graph it was converted from.
    x_fixed : np.ndarray
        Raw inputs already on the firmware input grid.
    score_type : Fixed
        Firmware score type.
    batch_size : int
        Events per call.
    """
    start = time.perf_counter()
    score_fw, bit_fw = predict(hls_model, x_fixed, batch_size, progress=progress)
    csim = time.perf_counter() - start
    start = time.perf_counter()
    score_ref, bit_ref = keras_reference(keras_model, x_fixed, batch_size)
    keras_s = time.perf_counter() - start
    exact, disagree = compare_scores(score_fw, bit_fw, score_ref, bit_ref, score_type)
    log.info("C simulation of %d events: %.1f s; decision agreement %.6f, max diff %g LSB",
             len(x_fixed), csim, exact.decision_agreement, exact.max_score_diff_lsb)
    return TriggerValidation(exact, disagree, csim, keras_s, np.ravel(score_fw), np.ravel(bit_fw))


def mac_layer_types(hls_model) -> dict[str, tuple[int, bool]]:
    """``{layer: (integer bits, signed)}`` of the result type of every Dense/Conv layer."""
    out = {}
    for layer in hls_model.get_layers():
        if layer.class_name in ("Dense", "Conv1D", "Conv2D", "PointwiseConv1D", "PointwiseConv2D"):
            p = layer.get_output_variable().type.precision
            out[layer.name] = (int(p.integer), bool(p.signed))
    return out


def sweep_overrides(exact_types: dict[str, tuple[int, bool]], width: int) -> dict[str, dict[str, str]]:
    """Per-layer accum/result types of ``width`` bits keeping the exact types' integer bits."""
    overrides = {}
    for name, (integer, signed) in exact_types.items():
        text = f"ap_{'' if signed else 'u'}fixed<{width},{integer}>"
        overrides[name] = {"accum": text, "result": text}
    return overrides


def precision_sweep(keras_model, cfg: FirmwareConfig, hls_model, x_fixed: np.ndarray,
                    reference: tuple[np.ndarray, np.ndarray], workdir: str | Path) -> list[dict]:
    """Agreement vs accumulator/result width of the Dense/Conv layers.

    For each width in ``cfg.validation.sweep_widths`` every Dense/Conv accumulator and result
    becomes ``ap_fixed<width, I>`` with ``I`` the integer bits of the exact (``auto``) type, i.e.
    fractional bits are dropped (truncation). Each point is converted, compiled and run on
    ``x_fixed``, and compared with ``reference`` (exact firmware scores and bits).

    Returns
    -------
    list of dict
        ``width``, ``types`` and the :class:`Agreement` fields per width.
    """
    exact_types = mac_layer_types(hls_model)
    score_type = parse_fixed(cfg.precision.score)
    rows = []
    for width in cfg.validation.sweep_widths:
        overrides = sweep_overrides(exact_types, width)
        model = compile_model(keras_model, cfg, Path(workdir) / f"sweep_w{width}", overrides)
        score, bit = predict(model, x_fixed, cfg.validation.batch_size)
        agreement, _ = compare_scores(score, bit, reference[0], reference[1], score_type)
        rows.append({"width": width, "types": {k: v["result"] for k, v in overrides.items()},
                     **agreement.to_dict()})
        log.info("sweep width %d: decision agreement %.6f, max diff %g LSB", width,
                 agreement.decision_agreement, agreement.max_score_diff_lsb)
    return rows


__all__ = ["Agreement", "TriggerValidation", "compare_scores", "keras_reference",
           "mac_layer_types", "max_output_diff_lsb", "precision_sweep", "sweep_overrides",
           "validate_trigger"]
