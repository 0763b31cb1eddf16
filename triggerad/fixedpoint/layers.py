"""Layers of an integer fixed-point network, each with the semantics of hls4ml 1.3's C simulation.

Every layer maps raw inputs to raw outputs of its ``result`` type (raw integers held exactly in
float64, see :mod:`triggerad.fixedpoint.types`), and knows the hls4ml precision keys it stands
for (:meth:`Layer.precisions`):

* :class:`Input` - floats assigned to the input type (the top function's ``input_t``).
* :class:`ScaleShift` - ``res = x * scale + bias`` computed exactly, one rounding into ``result``
  (hls4ml ``BatchNormalization``, ``nnet::normalize``).
* :class:`Dense` - ``nnet::dense_latency``, and pointwise ``Conv1D`` (kernel 1) over the last
  axis: ``acc = (accum_t) bias; acc += (accum_t)(x_i * w_i)`` in input order, then
  ``(result_t) acc``. When the accumulator can neither round nor overflow (the usual exact
  types) the sum is one exact matrix product; otherwise every step is rounded and saturated or
  wrapped as in C.
* :class:`Activation` - ``relu`` (``res = x > 0 ? x : 0``) or ``linear``, cast into ``result``
  (a ``quantized_relu(b, i)`` is ``ap_ufixed<b, i, AP_RND_CONV, AP_SAT>``).
* :class:`GlobalAveragePooling1D` - ``nnet::global_pooling1d_cl`` average: ``accum_t y = 0;
  y += x_i`` over the steps, ``y /= n`` (integer division truncating towards zero, in ``accum_t``),
  then ``(result_t) y``.
* :class:`SumSquares` - ``sum_i x_i^2`` accumulated exactly, one rounding into ``result``.
* :class:`ThresholdBit` - ``raw(score) > threshold_units`` as ``ap_uint<1>``.

Exactness: when a layer is built, the bounds of all its intermediate integers are computed from
its input type and constants and checked against :data:`~triggerad.fixedpoint.types.EXACT_LIMIT`.
Matrix products are float64 BLAS calls on these integers: every partial sum is an exactly
representable integer, so the result is exact and the same for any summation order, thread
count or CPU. Where every value and partial sum stays below 2^24 (:data:`~triggerad.fixedpoint.base.FLOAT32_LIMIT`: proven
from the input type when a layer is built, or for a Dense layer per block from the values'
largest magnitude) the same holds in float32, which layers then use (half the memory traffic,
twice the BLAS speed); the integers are the same.
"""

from __future__ import annotations

import math

import numpy as np

from triggerad.fixedpoint.base import (
    FLOAT32_LIMIT,
    FLOAT32_WIDTH,
    Layer,
    _check_limit,
    _ints,
    _max_abs,
    _source,
    _type,
    rows_of,
)
from triggerad.fixedpoint.reductions import GlobalAveragePooling1D, SumSquares, ThresholdBit
from triggerad.fixedpoint.types import Fixed, FixedPointError, _round_inplace


class Input(Layer):
    """Floats (physical inputs) assigned to the input type."""

    kind = "Input"

    def __init__(self, name: str, result: Fixed):
        super().__init__(name, (), result)

    def forward(self, x) -> np.ndarray:
        return self.result.to_raw(x, compact=True)  # may be float32: later layers upcast

    @classmethod
    def from_dict(cls, spec: dict, input_type: Fixed | None) -> Input:
        return cls(spec["name"], _type(spec, "result"))


class ScaleShift(Layer):
    """``result = x * scale + bias`` per feature (last axis), exact product and sum, one rounding."""

    kind = "ScaleShift"

    def __init__(self, name: str, source: str, input_type: Fixed, scale: np.ndarray,
                 scale_type: Fixed, bias: np.ndarray, bias_type: Fixed, result: Fixed):
        super().__init__(name, (source,), result)
        self.input_type, self.scale_type, self.bias_type = input_type, scale_type, bias_type
        self.scale = np.asarray(scale, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        prod_frac = input_type.frac + scale_type.frac
        frac = max(prod_frac, bias_type.frac)
        bound = _max_abs(input_type) * max(map(abs, _ints(self.scale)), default=0) * 2 ** (
            frac - prod_frac) + max(map(abs, _ints(self.bias)), default=0) * 2 ** (frac - bias_type.frac)
        _check_limit(bound, f"layer {name!r}")
        # x * s + b in LSB units of the result, the scalings by powers of two folded in (exact)
        self._scale = np.ldexp(self.scale, result.frac - prod_frac)
        self._bias = np.ldexp(self.bias, result.frac - bias_type.frac)
        self._has_bias = bool(self._bias.any())
        self._tiles: dict = {}
        self._bias_tiles: dict = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = x.astype(np.float64)  # then an in-place product: faster than a mixed-type one
        y *= rows_of(self._scale, y, self._tiles)
        if self._has_bias:
            y += rows_of(self._bias, y, self._bias_tiles)
        y = self.result.assign(y)
        # raw values below 2^24 are exact in float32: a following Dense can then run a float32
        # product (half the time of float64, see Dense.forward)
        return y.astype(np.float32) if self.result.width <= FLOAT32_WIDTH else y

    def precisions(self) -> dict[str, Fixed]:
        return {"scale": self.scale_type, "bias": self.bias_type, "result": self.result}

    def params(self) -> dict:
        return {"scale": _ints(self.scale), "bias": _ints(self.bias)}

    @classmethod
    def from_dict(cls, spec: dict, input_type: Fixed | None) -> ScaleShift:
        return cls(spec["name"], _source(spec), input_type, spec["scale"], _type(spec, "scale"),
                   spec["bias"], _type(spec, "bias"), _type(spec, "result"))


class Dense(Layer):
    """Dense layer (or pointwise Conv1D over the last axis) with hls4ml's accumulation.

    Parameters
    ----------
    name, source : str
        Layer name and the name of its input layer.
    input_type : Fixed
        Type of the inputs.
    weight, bias : integer arrays
        Raw weights ``(n_in, n_out)`` and biases ``(n_out,)`` of ``weight_type``/``bias_type``.
    accum, result : Fixed
        Accumulator and output types.
    pointwise : bool
        A pointwise ``Conv1D`` (hls4ml ``PointwiseConv1D``) rather than a ``Dense``.
    """

    kind = "Dense"

    def __init__(self, name: str, source: str, input_type: Fixed, weight: np.ndarray,
                 weight_type: Fixed, bias: np.ndarray, bias_type: Fixed, accum: Fixed,
                 result: Fixed, pointwise: bool = False):
        super().__init__(name, (source,), result)
        self.kind = "PointwiseConv1D" if pointwise else "Dense"
        self.input_type, self.weight_type, self.bias_type, self.accum = (
            input_type, weight_type, bias_type, accum)
        self.weight = np.asarray(weight, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        self.prod_frac = input_type.frac + weight_type.frac
        self.sum_frac = max(self.prod_frac, bias_type.frac)
        # bounds of every partial sum (any order), from the input type's range, as python ints
        w = np.array(_ints(self.weight), dtype=object).reshape(self.weight.shape)
        b = np.array(_ints(self.bias), dtype=object) * 2 ** (self.sum_frac - bias_type.frac)
        lo, hi = input_type.min_raw, input_type.max_raw
        shift = 2 ** (self.sum_frac - self.prod_frac)
        low = [int(v) for v in np.minimum(w * lo, w * hi).sum(axis=0) * shift + np.minimum(b, 0)]
        high = [int(v) for v in np.maximum(w * lo, w * hi).sum(axis=0) * shift + np.maximum(b, 0)]
        _check_limit(max(map(abs, low + high), default=0), f"layer {name!r}")
        self.exact_accum = accum.contains(min(low, default=0), max(high, default=0), self.sum_frac)
        # the result needs no rounding or overflow handling when it holds every possible sum
        self._identity = result.contains(min(low, default=0), max(high, default=0), self.sum_frac)
        # products and bias in LSB units of the result (scalings by powers of two: exact)
        self._weight = np.ldexp(self.weight, result.frac - self.prod_frac)
        self._bias = np.ldexp(self.bias, result.frac - bias_type.frac)
        # float32 products are exact too when every partial sum stays below 2^24 (in units of
        # 2^-sum_frac): always when the input type's range proves it, otherwise when the values
        # of a block do (their largest magnitude times the largest column sum of |weights|)
        self._weight32 = self._weight.astype(np.float32)
        self._bias32 = self._bias.astype(np.float32)
        self._tiles: dict = {}  # the biases repeated over a block's rows (base.rows_of)
        self._tiles32: dict = {}
        self._single_always = max(map(abs, low + high), default=0) < FLOAT32_LIMIT
        self._column_sum = max((sum(abs(v) for v in column) for column in w.T), default=0) * shift
        self._bias_max = max((abs(v) for v in b), default=0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.exact_accum:
            x = np.asarray(x, dtype=np.float64)
            return self.result.cast(self._stepwise_sum(x), self.accum.frac, inplace=True)
        if self._identity and x.dtype == np.float32 and self._single_exact(x):
            y = x @ self._weight32  # exact: integers (times powers of two) below 2^24
            y += rows_of(self._bias32, y, self._tiles32)
            return y
        y = x @ self._weight  # exact: integers (times powers of two) below 2^52
        y += rows_of(self._bias, y, self._tiles)
        return y if self._identity else self.result.assign(y)

    def _single_exact(self, x: np.ndarray) -> bool:
        """True if the float32 product of raw inputs ``x`` is exact (see ``__init__``)."""
        if self._single_always or not x.size:
            return self._single_always
        largest = max(-float(x.min()), float(x.max()))
        return largest * self._column_sum + self._bias_max < FLOAT32_LIMIT

    def _stepwise_sum(self, x: np.ndarray) -> np.ndarray:
        """``acc = (accum_t) b; for i: acc += (accum_t)(x_i * w_i)``, every step in ``accum_t``."""
        acc = np.broadcast_to(self.accum.cast(self.bias, self.bias_type.frac),
                              x.shape[:-1] + self.bias.shape).copy()
        for i in range(self.weight.shape[0]):
            acc += self.accum.cast(x[..., i:i + 1] * self.weight[i], self.prod_frac, inplace=True)
            acc = self.accum.assign(acc)
        return acc

    def precisions(self) -> dict[str, Fixed]:
        return {"weight": self.weight_type, "bias": self.bias_type, "accum": self.accum,
                "result": self.result}

    def params(self) -> dict:
        return {"weight": _ints(self.weight), "bias": _ints(self.bias)}

    @classmethod
    def from_dict(cls, spec: dict, input_type: Fixed | None) -> Dense:
        bias = np.asarray(spec["bias"], dtype=np.float64)
        weight = np.asarray(spec["weight"], dtype=np.float64).reshape(-1, len(bias))
        return cls(spec["name"], _source(spec), input_type, weight, _type(spec, "weight"), bias,
                   _type(spec, "bias"), _type(spec, "accum"), _type(spec, "result"),
                   pointwise=spec["kind"] == "PointwiseConv1D")


class Activation(Layer):
    """``relu`` or ``linear`` activation: the (rectified) input cast into ``result``."""

    kind = "Activation"
    FUNCTIONS = ("relu", "linear")

    def __init__(self, name: str, source: str, input_type: Fixed, function: str, result: Fixed):
        if function not in self.FUNCTIONS:
            raise FixedPointError(f"layer {name!r}: activation {function!r} has no integer "
                                  f"version; supported: {self.FUNCTIONS}")
        super().__init__(name, (source,), result)
        self.input_type, self.function = input_type, function
        # a saturating unsigned result already maps every negative value to 0 (rounding is
        # monotonic), so relu(x) cast into it equals x cast into it
        self._clips_negatives = not result.signed and result.saturation in ("AP_SAT", "AP_SAT_SYM")
        self._saturating = _saturating_bounds(function, input_type, result)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self._saturating is not None:
            # clip in input units (scaling by a power of two and rounding are monotonic and
            # exact, so clipping before them gives the same integers), then scale and round:
            # one new array and 3-4 passes instead of a copy and 5
            lo, hi, scale = self._saturating
            # float32 in, float32 out when the result's raw values are below 2^24 (all exact)
            single = x.dtype == np.float32 and self.result.width <= FLOAT32_WIDTH
            y = np.maximum(x if single else np.asarray(x, dtype=np.float64), lo)
            if y.size and y.max() > hi:
                np.minimum(y, hi, out=y)
            if scale != 1.0:
                y *= scale
            return _round_inplace(y, self.result.rounding)
        if self.function == "relu" and not self._clips_negatives:
            return self.result.cast(np.maximum(x, 0.0), self.input_type.frac, inplace=True)
        return self.result.cast(x, self.input_type.frac)

    def params(self) -> dict:
        return {"function": self.function}

    @classmethod
    def from_dict(cls, spec: dict, input_type: Fixed | None) -> Activation:
        return cls(spec["name"], _source(spec), input_type, spec["function"],
                   _type(spec, "result"))


def _saturating_bounds(function: str, input_type: Fixed, result: Fixed):
    """``(lo, hi, scale)`` for an activation into a saturating ``result``: its range in raw
    units of ``input_type`` (``lo`` 0 for ``relu``) and the power of two taking raw input
    units to raw result units; None for a wrapping result (then :meth:`Fixed.cast`)."""
    if result.saturation not in ("AP_SAT", "AP_SAT_SYM"):
        return None
    lo = -result.max_raw if result.saturation == "AP_SAT_SYM" and result.signed else result.min_raw
    shift = input_type.frac - result.frac  # raw input * 2**-shift = raw result
    lo = 0.0 if function == "relu" else math.ldexp(lo, shift)
    return lo, math.ldexp(result.max_raw, shift), math.ldexp(1.0, -shift)


#: Layer classes by the ``kind`` of their :meth:`Layer.to_dict` description.
LAYER_KINDS: dict[str, type[Layer]] = {
    "Input": Input, "ScaleShift": ScaleShift, "Dense": Dense, "PointwiseConv1D": Dense,
    "Activation": Activation, "GlobalAveragePooling1D": GlobalAveragePooling1D,
    "SumSquares": SumSquares, "ThresholdBit": ThresholdBit,
}


def layer_from_dict(spec: dict, input_type: Fixed | None) -> Layer:
    """Rebuild a layer from its :meth:`Layer.to_dict` description.

    Raises
    ------
    FixedPointError
        For an unknown kind or a description lacking a key (naming the layer).
    """
    name = spec.get("name", "?") if isinstance(spec, dict) else "?"
    if not isinstance(spec, dict) or spec.get("kind") not in LAYER_KINDS:
        kind = spec.get("kind") if isinstance(spec, dict) else spec
        raise FixedPointError(f"layer {name!r}: unknown kind {kind!r}; "
                              f"known: {sorted(LAYER_KINDS)}")
    try:
        return LAYER_KINDS[spec["kind"]].from_dict(spec, input_type)
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, FixedPointError):
            raise
        raise FixedPointError(f"layer {name!r} ({spec['kind']}): bad description ({err!r})"
                              ) from err
