"""Layers of an integer fixed-point network, each with the semantics of hls4ml 1.3's C simulation.

Every layer maps raw int64 inputs (see :mod:`triggerad.fixedpoint.types`) to raw outputs of its
``result`` type, and knows the hls4ml precision keys it stands for (:meth:`Layer.precisions`):

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

Exactness: products and sums are integers below 2**62 (checked when a layer is built). A matrix
product whose every partial sum stays below 2**53 in magnitude runs as a float64 BLAS product of
the integers: each partial sum is then an exactly representable integer, so the result is exact
and the same for any summation order, thread count or CPU; larger ones use int64.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from triggerad.fixedpoint.types import Fixed, FixedPointError

#: Largest magnitude of exact integers in float64.
FLOAT_EXACT = 2**53
#: Largest magnitude allowed for any intermediate integer.
INT_LIMIT = 2**62


def _range(t: Fixed) -> tuple[int, int]:
    return t.min_raw, t.max_raw


def _check_limit(bound: int, what: str) -> None:
    if bound >= INT_LIMIT:
        raise FixedPointError(f"{what}: intermediate values reach 2^{bound.bit_length()}, beyond the "
                              "int64 arithmetic of triggerad.fixedpoint (2^62)")


class Layer:
    """Base class: ``name``, the names of the input layers, the ``result`` type and ``forward``."""

    kind: ClassVar[str] = "Layer"

    def __init__(self, name: str, inputs: tuple[str, ...], result: Fixed):
        self.name, self.inputs, self.result = name, tuple(inputs), result

    def forward(self, *raw: np.ndarray) -> np.ndarray:
        """Raw output values from the raw values of the input layers."""
        raise NotImplementedError

    def precisions(self) -> dict[str, Fixed]:
        """hls4ml precision keys of this layer (``result``, ``accum``, ``weight``, ...) -> type."""
        return {"result": self.result}

    def params(self) -> dict:
        """Constants of the layer (raw integers as lists), for :meth:`FixedGraph.to_dict`."""
        return {}

    def to_dict(self) -> dict:
        """JSON-ready description: kind, inputs, types (HLS strings) and constants."""
        return {"name": self.name, "kind": self.kind, "inputs": list(self.inputs),
                "types": {k: t.hls() for k, t in self.precisions().items()}, **self.params()}


class Input(Layer):
    """Floats (physical inputs) assigned to the input type."""

    kind = "Input"

    def __init__(self, name: str, result: Fixed):
        super().__init__(name, (), result)

    def forward(self, x) -> np.ndarray:
        return self.result.to_raw(x)


class ScaleShift(Layer):
    """``result = x * scale + bias`` per feature (last axis), exact product and sum, one rounding."""

    kind = "ScaleShift"

    def __init__(self, name: str, source: str, input_type: Fixed, scale: np.ndarray,
                 scale_type: Fixed, bias: np.ndarray, bias_type: Fixed, result: Fixed):
        super().__init__(name, (source,), result)
        self.input_type, self.scale_type, self.bias_type = input_type, scale_type, bias_type
        self.scale = np.asarray(scale, dtype=np.int64)
        self.bias = np.asarray(bias, dtype=np.int64)
        self.frac = max(input_type.frac + scale_type.frac, bias_type.frac)
        self._scale_shift = self.frac - input_type.frac - scale_type.frac
        self._bias_aligned = self.bias << (self.frac - bias_type.frac)
        x_max = max(-input_type.min_raw, input_type.max_raw)
        bound = (x_max * int(np.max(np.abs(self.scale), initial=0)) << self._scale_shift) + int(
            np.max(np.abs(self._bias_aligned), initial=0))
        _check_limit(bound, f"layer {name!r}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = x * self.scale
        if self._scale_shift:
            y <<= self._scale_shift
        if self._bias_aligned.any():
            y += self._bias_aligned
        return self.result.cast(y, self.frac, inplace=True)

    def precisions(self) -> dict[str, Fixed]:
        return {"scale": self.scale_type, "bias": self.bias_type, "result": self.result}

    def params(self) -> dict:
        return {"scale": self.scale.tolist(), "bias": self.bias.tolist()}


class Dense(Layer):
    """Dense layer (or pointwise Conv1D over the last axis) with hls4ml's accumulation.

    Parameters
    ----------
    name, source : str
        Layer name and the name of its input layer.
    input_type : Fixed
        Type of the inputs.
    weight, bias : int arrays
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
        self.weight = np.asarray(weight, dtype=np.int64)
        self.bias = np.asarray(bias, dtype=np.int64)
        self.prod_frac = input_type.frac + weight_type.frac
        self.sum_frac = max(self.prod_frac, bias_type.frac)
        # bounds of every partial sum (any order), from the input type's range: python ints
        w = self.weight.astype(object)
        x_lo, x_hi = _range(input_type)
        prod_low = np.minimum(w * x_lo, w * x_hi).sum(axis=0)
        prod_high = np.maximum(w * x_lo, w * x_hi).sum(axis=0)
        matmul_bound = max([abs(int(v)) for v in (*prod_low, *prod_high)] + [0])
        shift = 2 ** (self.sum_frac - self.prod_frac)
        b = self.bias.astype(object) * 2 ** (self.sum_frac - bias_type.frac)
        low = [int(v) for v in prod_low * shift + np.minimum(b, 0)]
        high = [int(v) for v in prod_high * shift + np.maximum(b, 0)]
        _check_limit(max([abs(v) for v in low + high] + [0]), f"layer {name!r}")
        self._blas = matmul_bound < FLOAT_EXACT
        acc_scale = 2 ** (accum.frac - self.sum_frac) if accum.frac >= self.sum_frac else 0
        self.exact_accum = bool(acc_scale) and all(
            accum.min_raw <= v * acc_scale <= accum.max_raw for v in low + high)
        self._weight_f = self.weight.astype(np.float64)
        self._bias_aligned = self.bias << (self.sum_frac - bias_type.frac)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.exact_accum:
            return self.result.cast(self._exact_sum(x), self.sum_frac, inplace=True)
        return self.result.cast(self._stepwise_sum(x), self.accum.frac, inplace=True)

    def _exact_sum(self, x: np.ndarray) -> np.ndarray:
        if self._blas:
            y = (x.astype(np.float64) @ self._weight_f).astype(np.int64)
        else:
            y = x @ self.weight
        if self.sum_frac > self.prod_frac:
            y <<= self.sum_frac - self.prod_frac
        y += self._bias_aligned
        return y

    def _stepwise_sum(self, x: np.ndarray) -> np.ndarray:
        """``acc = (accum_t) b; for i: acc += (accum_t)(x_i * w_i)``, every step in ``accum_t``."""
        acc = np.broadcast_to(self.accum.cast(self.bias, self.bias_type.frac),
                              x.shape[:-1] + self.bias.shape).copy()
        for i in range(self.weight.shape[0]):
            product = self.accum.cast(x[..., i:i + 1] * self.weight[i], self.prod_frac, inplace=True)
            acc += product
            acc = self.accum.cast(acc, self.accum.frac, inplace=True)
        return acc

    def precisions(self) -> dict[str, Fixed]:
        return {"weight": self.weight_type, "bias": self.bias_type, "accum": self.accum,
                "result": self.result}

    def params(self) -> dict:
        return {"weight": self.weight.tolist(), "bias": self.bias.tolist()}


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

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.function == "relu":
            return self.result.cast(np.maximum(x, 0), self.input_type.frac, inplace=True)
        return self.result.cast(x, self.input_type.frac)

    def params(self) -> dict:
        return {"function": self.function}


class GlobalAveragePooling1D(Layer):
    """Mean over the steps (axis -2) of ``(n, steps, channels)`` inputs, as hls4ml computes it."""

    kind = "GlobalAveragePooling1D"

    def __init__(self, name: str, source: str, input_type: Fixed, steps: int, accum: Fixed,
                 result: Fixed):
        super().__init__(name, (source,), result)
        self.input_type, self.steps, self.accum = input_type, int(steps), accum
        self.frac = max(accum.frac, input_type.frac)
        scale = 2 ** (accum.frac - input_type.frac) if accum.frac >= input_type.frac else 0
        lo, hi = _range(input_type)
        self.exact_accum = bool(scale) and (accum.min_raw <= min(lo, 0) * self.steps * scale
                                            and max(hi, 0) * self.steps * scale <= accum.max_raw)
        _check_limit(max(-lo, hi) * self.steps << (self.frac - input_type.frac), f"layer {name!r}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-2] != self.steps:
            raise FixedPointError(f"layer {self.name!r}: expected {self.steps} steps, found "
                                  f"shape {x.shape}")
        if self.exact_accum:
            y = self.accum.cast(x.sum(axis=-2), self.input_type.frac, inplace=True)
        else:
            up_acc, up_in = self.frac - self.accum.frac, self.frac - self.input_type.frac
            y = np.zeros(x.shape[:-2] + x.shape[-1:], dtype=np.int64)
            for i in range(self.steps):
                y = self.accum.cast((y << up_acc) + (x[..., i, :] << up_in), self.frac, inplace=True)
        mean = np.where(y < 0, -((-y) // self.steps), y // self.steps)  # truncation towards 0
        return self.result.cast(mean, self.accum.frac, inplace=True)

    def precisions(self) -> dict[str, Fixed]:
        return {"accum": self.accum, "result": self.result}

    def params(self) -> dict:
        return {"steps": self.steps}


class SumSquares(Layer):
    """``result = sum_i x_i^2`` over the last axis, exact accumulation, one rounding."""

    kind = "SumSquares"

    def __init__(self, name: str, source: str, input_type: Fixed, n_in: int, result: Fixed):
        super().__init__(name, (source,), result)
        self.input_type, self.n_in = input_type, int(n_in)
        x_max = max(-input_type.min_raw, input_type.max_raw)
        _check_limit(x_max * x_max * self.n_in, f"layer {name!r}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.result.cast(np.sum(x * x, axis=-1), 2 * self.input_type.frac, inplace=True)

    def params(self) -> dict:
        return {"n_in": self.n_in}


class ThresholdBit(Layer):
    """The trigger bit ``raw(score) > units`` as ``ap_uint<1>``.

    ``units`` comes from :func:`triggerad.fixedpoint.types.threshold_units`, so the bit equals the
    offline selection ``score > value`` on the same score, event by event.
    """

    kind = "ThresholdBit"
    BIT = Fixed(1, 1, signed=False)

    def __init__(self, name: str, source: str, units: int):
        super().__init__(name, (source,), self.BIT)
        self.units = int(units)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return (x > self.units).astype(np.int64)

    def params(self) -> dict:
        return {"threshold_units": self.units}
