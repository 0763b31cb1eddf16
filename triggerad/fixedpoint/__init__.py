"""Exact fixed-point (``ap_fixed``) arithmetic and the integer evaluation of quantized networks.

The one implementation of fixed-point quantization in trigger-ad. Raw values (the integers a
fixed-point number stores) are held exactly in float64 arrays (see :mod:`.types`). Quantized scores (``mu2_q``),
thresholds on them, the stream fast path and the firmware reference all evaluate a
:class:`FixedGraph` built from the QKeras model and its :class:`FixedPointConfig`; hls4ml receives
the same per-layer types (:meth:`FixedGraph.hls_precisions`), so the integer evaluation and the
HLS C simulation agree bit for bit, on any CPU, batch size and thread count.

Public API
----------
Types (:mod:`~triggerad.fixedpoint.types`)
    :class:`Fixed` (``to_raw``, ``cast``, ``from_raw``, ``quantize``), :func:`parse_fixed`,
    :func:`fixed_covering`, :func:`threshold_units`, :func:`round_shift`,
    :class:`FixedPointError`.
Layers (:mod:`~triggerad.fixedpoint.layers`)
    :class:`Input`, :class:`ScaleShift`, :class:`Dense` (also pointwise Conv1D),
    :class:`Activation`, :class:`GlobalAveragePooling1D`, :class:`SumSquares`,
    :class:`ThresholdBit`.
Graphs
    :class:`FixedGraph` (``run``, ``__call__``, ``extend``, ``hls_precisions``, ``table``,
    ``digest``), :func:`from_keras`, :class:`FixedPointConfig`.

Example
-------
>>> import numpy as np
>>> from triggerad.fixedpoint import Fixed, FixedGraph, Input, SumSquares
>>> x_t = Fixed(8, 3, rounding="AP_RND_CONV", saturation="AP_SAT")
>>> g = FixedGraph([Input("x", x_t), SumSquares("s", "x", x_t, 2, Fixed(12, 8, signed=False))],
...                ["s"])
>>> raw = g(np.array([[1.5, -0.25], [3.0, 2.0]]))[0]
>>> raw.tolist(), g.value("s", raw).tolist()
([37.0, 208.0], [2.3125, 13.0])
"""

from triggerad.fixedpoint.config import FixedPointConfig
from triggerad.fixedpoint.graph import FixedGraph
from triggerad.fixedpoint.keras import from_keras, mac_accumulator, pooling_accumulator
from triggerad.fixedpoint.layers import (
    Activation,
    Dense,
    GlobalAveragePooling1D,
    Input,
    Layer,
    ScaleShift,
    SumSquares,
    ThresholdBit,
)
from triggerad.fixedpoint.types import (
    Fixed,
    FixedPointError,
    fixed_covering,
    parse_fixed,
    round_shift,
    threshold_units,
)

__all__ = [
    "Activation", "Dense", "Fixed", "FixedGraph", "FixedPointConfig", "FixedPointError",
    "GlobalAveragePooling1D", "Input", "Layer", "ScaleShift", "SumSquares", "ThresholdBit",
    "fixed_covering", "from_keras", "mac_accumulator", "parse_fixed", "pooling_accumulator",
    "round_shift", "threshold_units",
]
