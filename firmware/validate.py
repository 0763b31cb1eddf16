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


def mac_layer_names(hls_model) -> list[str]:
    """Names of the Dense/Conv layers of the firmware (whose widths the sweep varies)."""
    return [layer.name for layer in hls_model.get_layers()
            if layer.class_name in ("Dense", "Conv1D", "Conv2D", "PointwiseConv1D", "PointwiseConv2D")]


def observed_integer_bits(keras_model, x, names: list[str], batch_size: int) -> dict[str, int]:
    """Signed integer bits covering the largest |output| of each named layer on ``x``."""
    from tensorflow import keras

    probe = keras.Model(keras_model.inputs, [_output_in(keras_model, n) for n in names])
    outs = keras_reference(probe, x, batch_size)
    return {n: max(1, int(np.floor(np.log2(max(np.max(np.abs(o)), 1e-9)))) + 2)
            for n, o in zip(names, outs, strict=True)}


def _output_in(keras_model, name: str):
    """Output tensor of layer ``name`` in ``keras_model``'s graph (layers may be shared)."""
    from firmware.score_layer import node_index

    layer = keras_model.get_layer(name)
    return layer.get_output_at(node_index(keras_model, layer))


def sweep_overrides(integer_bits: dict[str, int], width: int) -> dict[str, dict[str, str]]:
    """Accum/result types ``ap_fixed<width, I, AP_RND_CONV, AP_SAT>`` per layer (``I`` given)."""
    return {name: dict.fromkeys(("accum", "result"),
                                f"ap_fixed<{width},{min(bits, width)},AP_RND_CONV,AP_SAT>")
            for name, bits in integer_bits.items()}


def precision_sweep(keras_model, cfg: FirmwareConfig, hls_model, x_fixed: np.ndarray,
                    reference: tuple[np.ndarray, np.ndarray], workdir: str | Path) -> list[dict]:
    """Agreement vs accumulator/result width of the Dense/Conv layers.

    For each width ``W`` in ``cfg.validation.sweep_widths`` every Dense/Conv accumulator and
    result becomes ``ap_fixed<W, I, AP_RND_CONV, AP_SAT>``, with ``I`` the signed integer bits
    covering the largest value that layer produces on ``x_fixed`` (instead of the exact ``auto``
    widths). Each point is converted, compiled, run on ``x_fixed`` and compared with
    ``reference`` (the exact firmware's scores and bits).

    Returns
    -------
    list of dict
        ``width``, ``types`` and the :class:`Agreement` fields per width.
    """
    bits = observed_integer_bits(keras_model, x_fixed, mac_layer_names(hls_model),
                                 cfg.validation.batch_size)
    score_type = parse_fixed(cfg.precision.score)
    rows = []
    for width in cfg.validation.sweep_widths:
        overrides = sweep_overrides(bits, width)
        model = compile_model(keras_model, cfg, Path(workdir) / f"sweep_w{width}", overrides)
        score, bit = predict(model, x_fixed, cfg.validation.batch_size)
        agreement, _ = compare_scores(score, bit, reference[0], reference[1], score_type)
        rows.append({"width": width, "types": {k: v["result"] for k, v in overrides.items()},
                     **agreement.to_dict()})
        log.info("sweep width %d: decision agreement %.6f, max diff %g LSB", width,
                 agreement.decision_agreement, agreement.max_score_diff_lsb)
    return rows


__all__ = ["Agreement", "TriggerValidation", "compare_scores", "keras_reference",
           "mac_layer_names", "max_output_diff_lsb", "observed_integer_bits", "precision_sweep", "sweep_overrides",
           "validate_trigger"]
