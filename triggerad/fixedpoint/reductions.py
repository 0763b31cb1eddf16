"""Reducing integer layers: average pooling over steps, sum of squares, the trigger bit."""

from __future__ import annotations

import numpy as np

from triggerad.fixedpoint.base import Layer, _check_limit, _max_abs, _source, _type
from triggerad.fixedpoint.types import Fixed, FixedPointError


class GlobalAveragePooling1D(Layer):
    """Mean over the steps (axis -2) of ``(n, steps, channels)`` inputs, as hls4ml computes it."""

    kind = "GlobalAveragePooling1D"

    def __init__(self, name: str, source: str, input_type: Fixed, steps: int, accum: Fixed,
                 result: Fixed):
        super().__init__(name, (source,), result)
        self.input_type, self.steps, self.accum = input_type, int(steps), accum
        self.frac = max(accum.frac, input_type.frac)
        low, high = min(input_type.min_raw, 0) * self.steps, max(input_type.max_raw, 0) * self.steps
        self.exact_accum = accum.contains(low, high, input_type.frac)
        _check_limit(max(-low, high) * 2 ** (self.frac - input_type.frac), f"layer {name!r}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-2] != self.steps:
            raise FixedPointError(f"layer {self.name!r}: expected {self.steps} steps, found "
                                  f"shape {x.shape}")
        x = np.asarray(x, dtype=np.float64)
        if self.exact_accum:
            y = self.accum.cast(x.sum(axis=-2), self.input_type.frac, inplace=True)
        else:
            y = np.zeros(x.shape[:-2] + x.shape[-1:])
            up_acc, up_in = 2.0 ** (self.frac - self.accum.frac), 2.0 ** (self.frac - self.input_type.frac)
            for i in range(self.steps):
                y = self.accum.cast(y * up_acc + x[..., i, :] * up_in, self.frac, inplace=True)
        y -= np.fmod(y, self.steps)  # y /= steps in accum_t: truncation towards zero, exact
        y /= self.steps
        return self.result.cast(y, self.accum.frac, inplace=True)

    def precisions(self) -> dict[str, Fixed]:
        return {"accum": self.accum, "result": self.result}

    def params(self) -> dict:
        return {"steps": self.steps}

    @classmethod
    def from_dict(cls, spec: dict, input_type: Fixed | None) -> GlobalAveragePooling1D:
        return cls(spec["name"], _source(spec), input_type, spec["steps"], _type(spec, "accum"),
                   _type(spec, "result"))


class SumSquares(Layer):
    """``result = sum_i x_i^2`` over the last axis, exact accumulation, one rounding."""

    kind = "SumSquares"

    def __init__(self, name: str, source: str, input_type: Fixed, n_in: int, result: Fixed):
        super().__init__(name, (source,), result)
        self.input_type, self.n_in = input_type, int(n_in)
        _check_limit(_max_abs(input_type) ** 2 * self.n_in, f"layer {name!r}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self.result.cast(np.einsum("...i,...i->...", x, x), 2 * self.input_type.frac,
                                inplace=True)

    def params(self) -> dict:
        return {"n_in": self.n_in}

    @classmethod
    def from_dict(cls, spec: dict, input_type: Fixed | None) -> SumSquares:
        return cls(spec["name"], _source(spec), input_type, spec["n_in"], _type(spec, "result"))


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
        return (x > self.units).astype(np.float64)

    def params(self) -> dict:
        return {"threshold_units": self.units}

    @classmethod
    def from_dict(cls, spec: dict, input_type: Fixed | None) -> ThresholdBit:
        return cls(spec["name"], _source(spec), spec["threshold_units"])
