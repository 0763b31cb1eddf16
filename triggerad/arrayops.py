"""One definition, two backends: the few array operations input preparation needs, for numpy and
TensorFlow.

A preprocessing step written against an :class:`ArrayOps` namespace (``ops.maximum(x, 0.0)``,
``ops.cast(x, "float64")``, ...) runs on numpy arrays when scoring and inside a Keras graph when the
model is exported (ONNX), so the exported graph computes exactly what training computed. Both
backends use IEEE arithmetic with round-half-to-even (``np.rint`` and ``tf.round``), so elementwise
results agree bit for bit.

Example
-------
>>> from triggerad.arrayops import NUMPY
>>> NUMPY.rint(NUMPY.maximum(NUMPY.cast([-1.0, 2.5], "float64"), 0.0)).tolist()
[0.0, 2.0]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ArrayOps:
    """Backend operations (numpy semantics) used by input-preparation code.

    Attributes
    ----------
    cast : callable
        ``cast(x, dtype_name)``: convert to an array/tensor of ``"float32"``, ``"float64"`` or
        ``"bool"``.
    maximum, logical_or : callable
        Elementwise, with broadcasting.
    rint : callable
        Round half to even.
    reshape : callable
        ``reshape(x, shape)`` (``-1`` allowed).
    repeat : callable
        ``repeat(x, repeats, axis)``: every element repeated along ``axis``.
    stack : callable
        ``stack(list, axis)``.
    name : str
        ``numpy`` or ``tensorflow``.
    """

    cast: Callable[[Any, str], Any]
    maximum: Callable[[Any, Any], Any]
    logical_or: Callable[[Any, Any], Any]
    rint: Callable[[Any], Any]
    reshape: Callable[[Any, tuple], Any]
    repeat: Callable[[Any, int, int], Any]
    stack: Callable[[list, int], Any]
    name: str


NUMPY = ArrayOps(
    cast=lambda x, dtype: np.asarray(x, dtype=dtype),
    maximum=np.maximum,
    logical_or=np.logical_or,
    rint=np.rint,
    reshape=np.reshape,
    repeat=lambda x, repeats, axis: np.repeat(x, repeats, axis=axis),
    stack=lambda arrays, axis: np.stack(arrays, axis=axis),
    name="numpy",
)


@functools.lru_cache(maxsize=1)
def tensorflow() -> ArrayOps:
    """The TensorFlow backend (imports TensorFlow on first use)."""
    import tensorflow as tf

    return ArrayOps(
        cast=lambda x, dtype: tf.cast(x, dtype),
        maximum=tf.maximum,
        logical_or=tf.logical_or,
        rint=tf.round,
        reshape=tf.reshape,
        repeat=lambda x, repeats, axis: tf.repeat(x, repeats, axis=axis),
        stack=lambda arrays, axis: tf.stack(arrays, axis=axis),
        name="tensorflow",
    )
