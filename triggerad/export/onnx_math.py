"""ONNX forms of TensorFlow math ops that have no ONNX operator: ``Lgamma``, ``Erfc``, ``Log1p``,
``Expm1``.

tf2onnx refuses these ops (the HLF VAE's likelihoods use all four). :func:`handlers` returns
tf2onnx custom-op handlers that replace each by a small subgraph of standard ONNX ops, evaluated
in float64 and rounded once to the input's type:

* ``Log1p(x)``: ``u = 1 + x``; ``x`` where ``u == 1``, else ``log(u) * x / (u - 1)`` (Goldberg's
  correction of the rounding of ``1 + x``);
* ``Expm1(x)``: ``u = exp(x)``; ``x`` where ``u == 1``, ``-1`` where ``u - 1 == -1``, ``u`` where
  ``u`` is infinite, else ``(u - 1) * x / log(u)`` (Kahan);
* ``Erfc(x)``: the Chebyshev fit of Numerical Recipes (``erfcc``, fractional error < 1.2e-7 for
  every x, so the tail keeps its relative precision where ``1 - erf(x)`` would cancel);
  ``2 - erfcc(-x)`` for ``x < 0``;
* ``Lgamma(x)``: the Stirling series (terms to ``1/z^5``, error < 2e-10) at ``z = y + 8`` minus
  ``sum_{i<8} log(y + i)``, with ``y = x`` for ``x >= 0.5`` and the reflection
  ``log(pi / |sin(pi (x - round(x)))|) - lgamma(1 - x)`` below.

For float32 inputs all four are within a few ulp of the exact values (Erfc: the fit's 1.2e-7);
how close the exported model is to TensorFlow is what the export validation measures.
"""

from __future__ import annotations

import math

import numpy as np

#: Numerical Recipes erfcc coefficients, constant term first.
_ERFC_COEFFS = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
                -1.13520398, 1.48851587, -0.82215223, 0.17087277)
_STIRLING_SHIFT = 8


class _Builder:
    """Adds float64 ONNX nodes that replace one TensorFlow node of a tf2onnx graph."""

    def __init__(self, ctx, node):
        from onnx import TensorProto
        from tf2onnx import utils

        self.ctx, self.node, self.utils = ctx, node, utils
        self.dtype = ctx.get_dtype(node.input[0])
        self.double = TensorProto.DOUBLE
        self.x = self.cast(node.input[0], self.double)

    def cast(self, tensor: str, to: int) -> str:
        name = self.utils.make_name(f"{self.node.name}_Cast")
        return self.ctx.make_node("Cast", [tensor], attr={"to": to}, name=name).output[0]

    def const(self, value: float) -> str:
        name = self.utils.make_name(f"{self.node.name}_const")
        return self.ctx.make_const(name, np.array(value, dtype=np.float64)).output[0]

    def op(self, op_type: str, *inputs: str) -> str:
        name = self.utils.make_name(f"{self.node.name}_{op_type}")
        return self.ctx.make_node(op_type, list(inputs), name=name).output[0]

    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", a, b)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def div(self, a: str, b: str) -> str:
        return self.op("Div", a, b)

    def where(self, cond: str, a: str, b: str) -> str:
        return self.op("Where", cond, a, b)

    def equal(self, a: str, value: float) -> str:
        return self.op("Equal", a, self.const(value))

    def finish(self, result: str) -> None:
        """Round ``result`` to the input type, route the node's output to it, remove the node."""
        shape = self.ctx.get_shape(self.node.output[0])
        outputs = list(self.node.output)
        name = self.node.name
        self.ctx.remove_node(name)
        self.ctx.make_node("Cast", [result], attr={"to": self.dtype}, outputs=outputs, name=name,
                           shapes=[shape], dtypes=[self.dtype])


def _log1p(b: _Builder) -> None:
    u = b.add(b.const(1.0), b.x)
    d = b.sub(u, b.const(1.0))
    general = b.mul(b.op("Log", u), b.div(b.x, d))
    b.finish(b.where(b.equal(d, 0.0), b.x, general))


def _expm1(b: _Builder) -> None:
    u = b.op("Exp", b.x)
    d = b.sub(u, b.const(1.0))
    general = b.mul(d, b.div(b.x, b.op("Log", u)))
    general = b.where(b.op("IsInf", u), u, general)
    general = b.where(b.equal(d, -1.0), d, general)
    b.finish(b.where(b.equal(u, 1.0), b.x, general))


def _erfc(b: _Builder) -> None:
    z = b.op("Abs", b.x)
    t = b.div(b.const(1.0), b.add(b.const(1.0), b.mul(b.const(0.5), z)))
    poly = b.const(_ERFC_COEFFS[-1])
    for coeff in reversed(_ERFC_COEFFS[:-1]):
        poly = b.add(b.const(coeff), b.mul(t, poly))
    tail = b.mul(t, b.op("Exp", b.sub(poly, b.mul(z, z))))
    negative = b.op("Less", b.x, b.const(0.0))
    b.finish(b.where(negative, b.sub(b.const(2.0), tail), tail))


def _lgamma(b: _Builder) -> None:
    reflect = b.op("Less", b.x, b.const(0.5))
    y = b.where(reflect, b.sub(b.const(1.0), b.x), b.x)
    z = b.add(y, b.const(float(_STIRLING_SHIFT)))
    inv = b.div(b.const(1.0), z)
    inv2 = b.mul(inv, inv)
    series = b.mul(inv, b.add(b.const(1 / 12), b.mul(inv2, b.add(
        b.const(-1 / 360), b.mul(inv2, b.const(1 / 1260))))))
    stirling = b.add(b.sub(b.mul(b.sub(z, b.const(0.5)), b.op("Log", z)), z),
                     b.add(b.const(0.5 * math.log(2 * math.pi)), series))
    shift = b.op("Log", y)
    for i in range(1, _STIRLING_SHIFT):
        shift = b.add(shift, b.op("Log", b.add(y, b.const(float(i)))))
    direct = b.sub(stirling, shift)
    reduced = b.sub(b.x, b.op("Round", b.x))  # exact: sin(pi x) = +-sin(pi (x - round(x)))
    sine = b.op("Abs", b.op("Sin", b.mul(b.const(math.pi), reduced)))
    reflected = b.sub(b.op("Log", b.div(b.const(math.pi), sine)), direct)
    b.finish(b.where(reflect, reflected, direct))


_REPLACEMENTS = {"Log1p": _log1p, "Expm1": _expm1, "Erfc": _erfc, "Lgamma": _lgamma}


def handlers(replaced: set | None = None) -> dict:
    """tf2onnx ``custom_op_handlers`` replacing ``Lgamma``, ``Erfc``, ``Log1p`` and ``Expm1``.

    The names of the ops actually met in a graph are added to ``replaced`` if given.
    """

    def handler(op, replace):
        def run(ctx, node, name, args):
            if replaced is not None:
                replaced.add(op)
            replace(_Builder(ctx, node))
        return run

    return {op: (handler(op, fn), []) for op, fn in _REPLACEMENTS.items()}
