"""Base of the integer layers: the :class:`Layer` interface, exactness bounds and description helpers."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from triggerad.fixedpoint.types import EXACT_LIMIT, Fixed, FixedPointError, parse_fixed

#: Raw values and partial sums below this bound are exact in float32 (24-bit significand).
FLOAT32_LIMIT = 2**24
#: Types of at most this width hold raw values below :data:`FLOAT32_LIMIT`.
FLOAT32_WIDTH = 24


def _check_limit(bound: int, what: str) -> None:
    if bound >= EXACT_LIMIT:
        raise FixedPointError(f"{what}: intermediate values reach 2^{int(bound).bit_length()}, "
                              "beyond the exact integer arithmetic of triggerad.fixedpoint (2^52)")


def _max_abs(t: Fixed) -> int:
    return max(-t.min_raw, t.max_raw)


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

    @classmethod
    def from_dict(cls, spec: dict, input_type: Fixed | None) -> Layer:
        """The layer described by ``spec`` (from :meth:`to_dict`); ``input_type`` is the result
        type of its input layer (None for an :class:`Input`)."""
        raise NotImplementedError


def rows_of(vector: np.ndarray, like: np.ndarray, cache: dict) -> np.ndarray:
    """``vector`` (per feature, last axis) repeated over the rows of the 2-D block ``like``
    (cached per row count): an element-wise operation with it runs as one contiguous loop, 2-4x
    faster than numpy's broadcast over a short last axis; the values are the same. Other shapes
    get ``vector`` itself (broadcast)."""
    if like.ndim != 2:
        return vector
    tiled = cache.get(len(like))
    if tiled is None:
        if len(cache) >= 4:  # a few row counts (whole blocks, a stream's last block) at a time
            cache.clear()
        tiled = cache[len(like)] = np.tile(vector, (len(like), 1))
    return tiled


def _ints(values) -> list[int]:
    return [int(v) for v in np.ravel(values)]


def _type(spec: dict, key: str) -> Fixed:
    return parse_fixed(spec["types"][key], f"layer {spec['name']!r} type {key!r}")


def _source(spec: dict) -> str:
    (source,) = spec["inputs"]
    return source
