"""Bit-accuracy of the C simulation against the integer reference, and the precision sweep.

The reference is the model's fixed-point graph plus the trigger bit
(:func:`firmware.score_layer.trigger_reference`), evaluated in exact integer arithmetic by
:mod:`triggerad.fixedpoint`: the same numbers as the model's ``mu2_q`` and its threshold.
Differences are counted in LSBs of the firmware score type and must be zero. Separately, the
firmware is compared with the float pipeline (float normalisation + the QKeras encoder in
float32, the training-time model) to measure what fixed point costs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from firmware.config import FirmwareConfig, Fixed
from firmware.convert import compile_model, predict
from firmware.score_layer import SCORE, TRIGGER
from triggerad.fixedpoint import FixedGraph

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
    reference_seconds: float
    scores_fw: np.ndarray
    bits_fw: np.ndarray


def validate_trigger(hls_model, reference: FixedGraph, x_fixed: np.ndarray, batch_size: int,
                     progress: bool = True) -> TriggerValidation:
    """Run the C simulation and the integer reference on the same inputs and compare.

    Parameters
    ----------
    hls_model : hls4ml ModelGraph
        Compiled trigger model (outputs: score, trigger bit).
    reference : FixedGraph
        The integer graph it was converted from, with ``score`` and ``trigger`` layers
        (:func:`firmware.score_layer.trigger_reference`).
    x_fixed : np.ndarray
        Raw inputs already on the firmware input grid.
    batch_size : int
        Events per C-simulation call.
    """
    score_type = reference.layer(SCORE).result
    start = time.perf_counter()
    flat = x_fixed.reshape(len(x_fixed), -1)  # candidates x features: row-major, as hls4ml
    score_fw, bit_fw = predict(hls_model, flat, batch_size, progress=progress)
    csim = time.perf_counter() - start
    start = time.perf_counter()
    raw = reference.run(x_fixed, keep=(SCORE, TRIGGER))
    reference_s = time.perf_counter() - start
    exact, disagree = compare_scores(score_fw, bit_fw, score_type.from_raw(raw[SCORE]),
                                     raw[TRIGGER], score_type)
    log.info("C simulation of %d events: %.1f s; decision agreement %.6f, max diff %g LSB",
             len(x_fixed), csim, exact.decision_agreement, exact.max_score_diff_lsb)
    return TriggerValidation(exact, disagree, csim, reference_s, np.ravel(score_fw), np.ravel(bit_fw))


def mac_layer_names(hls_model) -> list[str]:
    """Names of the Dense/Conv layers of the firmware (whose widths the sweep varies)."""
    return [layer.name for layer in hls_model.get_layers()
            if layer.class_name in ("Dense", "Conv1D", "Conv2D", "PointwiseConv1D", "PointwiseConv2D")]


def observed_integer_bits(graph: FixedGraph, x, names: list[str]) -> dict[str, int]:
    """Signed integer bits covering the largest |output| of each named layer of ``graph`` on ``x``."""
    raw = graph.run(x, keep=tuple(names))
    values = {n: graph.value(n, raw[n]) for n in names}
    return {n: max(1, int(np.floor(np.log2(max(np.max(np.abs(v)), 1e-9)))) + 2)
            for n, v in values.items()}


def sweep_overrides(integer_bits: dict[str, int], width: int) -> dict[str, dict[str, str]]:
    """Accum/result types ``ap_fixed<width, I, AP_RND_CONV, AP_SAT>`` per layer (``I`` given)."""
    return {name: dict.fromkeys(("accum", "result"),
                                f"ap_fixed<{width},{min(bits, width)},AP_RND_CONV,AP_SAT>")
            for name, bits in integer_bits.items()}


def precision_sweep(keras_model, cfg: FirmwareConfig, hls_model, reference: FixedGraph,
                    x_fixed: np.ndarray, exact: tuple[np.ndarray, np.ndarray],
                    workdir: str | Path) -> list[dict]:
    """Agreement vs accumulator/result width of the Dense/Conv layers.

    For each width ``W`` in ``cfg.validation.sweep_widths`` every Dense/Conv accumulator and
    result becomes ``ap_fixed<W, I, AP_RND_CONV, AP_SAT>``, with ``I`` the signed integer bits
    covering the largest value that layer produces on ``x_fixed`` (instead of the model's exact
    types); a Dense/Conv layer that is the ``score`` (the L1 tagger's logit) keeps its result
    type, in whose LSBs the trigger bit's cut is set. Each point is converted, compiled, run on
    ``x_fixed`` and compared with ``exact``
    (the firmware's scores and bits with the model's types). An exploration only: the model's
    ``mu2_q`` keeps its own types.

    Returns
    -------
    list of dict
        ``width``, ``types`` and the :class:`Agreement` fields per width.
    """
    bits = observed_integer_bits(reference, x_fixed, mac_layer_names(hls_model))
    score_type = reference.layer(SCORE).result
    rows = []
    for width in cfg.validation.sweep_widths:
        overrides = sweep_overrides(bits, width)
        if SCORE in overrides:  # a Dense score (the L1 tagger's logit): its result keeps its
            del overrides[SCORE]["result"]  # type, in whose LSBs the trigger bit's cut is set
        model = compile_model(keras_model, cfg, Path(workdir) / f"sweep_w{width}",
                              reference.hls_precisions(), overrides)
        score, bit = predict(model, x_fixed.reshape(len(x_fixed), -1), cfg.validation.batch_size)
        agreement, _ = compare_scores(score, bit, exact[0], exact[1], score_type)
        rows.append({"width": width, "types": {k: v.get("result", v["accum"])
                                               for k, v in overrides.items()},
                     **agreement.to_dict()})
        log.info("sweep width %d: decision agreement %.6f, max diff %g LSB", width,
                 agreement.decision_agreement, agreement.max_score_diff_lsb)
    return rows


__all__ = ["Agreement", "TriggerValidation", "compare_scores", "keras_reference",
           "mac_layer_names", "max_output_diff_lsb", "observed_integer_bits", "precision_sweep", "sweep_overrides",
           "validate_trigger"]
