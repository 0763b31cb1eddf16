"""Verilog of a :class:`triggerad.fixedpoint.FixedGraph`: fully pipelined, bit-exact.

One module, one event per clock (initiation interval 1): the raw inputs of the graph's input
type enter on ``x`` with ``in_valid``, the raw outputs leave on ``y`` with ``out_valid`` a fixed
number of clocks later. Each arithmetic layer (:class:`~triggerad.fixedpoint.Dense`,
:class:`~triggerad.fixedpoint.ScaleShift`, :class:`~triggerad.fixedpoint.SumSquares`) is an
adder tree per output, cut by registers into the configured number of pipeline stages (0: purely
combinational); element-wise layers (activations, the trigger bit) are combinational logic in
the stage that follows. Constant multiplications are either shift-add terms in canonical signed
digits (``shift_add``: no DSP, zero weights cost nothing) or multipliers (``dsp``); squares are
AND-gated partial products (``shift_add``) or multipliers. Casts follow the types of the graph
exactly (:meth:`firmware.rtl.netlist.Netlist.cast`), so the module computes the same integers as
:meth:`FixedGraph.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware.rtl.netlist import Netlist, Sig, Term, adder_levels, csd, literal, sum_tree
from triggerad.errors import TriggerADError
from triggerad.fixedpoint import (
    Activation,
    Dense,
    Fixed,
    FixedGraph,
    Input,
    ScaleShift,
    SumSquares,
    ThresholdBit,
)

STYLES = ("shift_add", "dsp")


class RTLError(TriggerADError, ValueError):
    """A graph (or option) the RTL generator cannot turn into exact Verilog."""


@dataclass
class Port:
    """One input or output layer on the module's bus: ``size`` values of ``type`` from bit
    ``offset``."""

    name: str
    type: Fixed
    size: int
    offset: int

    @property
    def bits(self) -> int:
        return self.type.width * self.size


@dataclass
class RTLDesign:
    """A generated module and how its buses map to the graph's inputs and outputs."""

    top: str
    verilog: str
    inputs: list[Port]
    outputs: list[Port]
    latency: int
    style: str
    adders: int
    multipliers: int
    max_levels_per_stage: int
    layers: list[dict] = field(default_factory=list)

    @property
    def in_bits(self) -> int:
        return sum(p.bits for p in self.inputs)

    @property
    def out_bits(self) -> int:
        return sum(p.bits for p in self.outputs)

    def pack_inputs(self, raw: list[np.ndarray]) -> list[str]:
        """Hex words (one per event) of the raw input values (one ``(n, size)`` array per input)."""
        return _pack(self.inputs, raw, self.in_bits)

    def unpack_outputs(self, words: list[str]) -> dict[str, np.ndarray]:
        """Raw output values ``{name: (n, size) int64}`` from the hex words the test bench wrote."""
        values = [int(w, 16) for w in words]
        out = {}
        for p in self.outputs:
            w = p.type.width
            mask = (1 << w) - 1
            arr = np.array([[(v >> (p.offset + j * w)) & mask for j in range(p.size)]
                            for v in values], dtype=np.int64).reshape(len(values), p.size)
            if p.type.signed:
                arr[arr >= 1 << (w - 1)] -= 1 << w
            out[p.name] = arr
        return out


def _pack(ports: list[Port], raw: list[np.ndarray], bits: int) -> list[str]:
    total = np.zeros(len(raw[0]), dtype=object)
    for p, values in zip(ports, raw, strict=True):
        values = np.asarray(values, dtype=np.int64).reshape(len(values), p.size)
        mask = (1 << p.type.width) - 1
        for j in range(p.size):
            field_ = (values[:, j].astype(object) & mask) << (p.offset + j * p.type.width)
            total = total + field_
    digits = (bits + 3) // 4
    return [f"{int(v):0{digits}x}" for v in total]


@dataclass
class _Context:
    net: Netlist
    style: str
    dense_stages: int
    other_stages: int
    share_multiples: bool = True
    max_levels: int = 0
    depth: int = 0  # max_levels mode: adder levels already used in the current stage
    levels: list[int] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)


def generate(graph: FixedGraph, *, top: str = "trigger_rtl", style: str = "shift_add",
             dense_stages: int = 2, other_stages: int = 1,
             share_multiples: bool = True, max_levels: int = 0) -> RTLDesign:
    """Verilog module computing ``graph`` bit for bit.

    Parameters
    ----------
    graph : FixedGraph
        Input, ScaleShift, Dense (with an accumulator that holds every sum), Activation,
        SumSquares and ThresholdBit layers.
    top : str
        Module name.
    style : {"shift_add", "dsp"}
        Constant multiplications as CSD shift-add terms (no DSP) or as multipliers.
    dense_stages, other_stages : int
        Pipeline registers of each Dense layer and of each other arithmetic layer
        (normalisation, sum of squares); 0 makes the layer combinational.
    share_multiples : bool
        ``shift_add``: build every odd multiple ``m * x_i`` a weight of input ``i`` needs once
        (one or two adders) and share it between the outputs, so that every non-zero weight is
        one term of the output's adder tree (instead of one term per CSD digit).
    max_levels : int
        > 0: ignore ``dense_stages`` / ``other_stages`` and place the registers across layer
        boundaries wherever a stage would exceed this many logic levels (an adder, a rounding,
        a comparison: one level each); the outputs are registered and the latency follows.

    Raises
    ------
    RTLError
        For a layer without an RTL version (naming it and the supported kinds).
    """
    if style not in STYLES:
        raise RTLError(f"multiplier style {style!r}: expected one of {STYLES}")
    if max_levels < 0:
        raise RTLError(f"max_levels must be >= 0, found {max_levels!r}")
    ctx = _Context(Netlist(), style, dense_stages, other_stages, share_multiples, max_levels)
    values: dict[str, list[Sig]] = {}
    depths: dict[str, int] = {}
    inputs, offset = [], 0
    needed = set(graph.outputs)
    for layer in reversed(graph.layers):  # layers no output depends on are left out
        if layer.name in needed:
            needed.update(layer.inputs)
    for layer in graph.layers:
        if layer.name not in needed and not isinstance(layer, Input):
            continue
        if isinstance(layer, Input):
            size = _input_size(graph, layer.name)
            port = Port(layer.name, layer.result, size, offset)
            offset += port.bits
            inputs.append(port)
            values[layer.name] = [_input_signal(ctx.net, port, j) for j in range(size)]
            continue
        handler = _handler(layer)
        ctx.depth = depths.get(layer.inputs[0], 0)  # max_levels: levels used in its stage
        values[layer.name] = handler(ctx, layer, values[layer.inputs[0]])
        depths[layer.name] = ctx.depth
        ctx.layers.append({"name": layer.name, "kind": layer.kind,
                           "stage": max(s.stage for s in values[layer.name])})
    for name in graph.outputs:  # max_levels: the outputs leave from registers
        if ctx.max_levels and depths.get(name, 0):
            values[name] = [ctx.net.reg(s) for s in values[name]]
            ctx.levels.append(depths[name])
    latency = max(s.stage for name in graph.outputs for s in values[name])
    outputs, offset, assigns = [], 0, []
    for name in graph.outputs:
        t = graph.layer(name).result
        sigs = [ctx.net.delay(s, latency) for s in values[name]]
        port = Port(name, t, len(sigs), offset)
        offset += port.bits
        outputs.append(port)
        for j, s in enumerate(sigs):
            lo = port.offset + j * t.width
            assigns.append(f"assign y[{lo + t.width - 1}:{lo}] = {_bits(s, t.width)};")
    valid = ctx.net.delay(Sig("valid_in", 0, 1), latency)
    verilog = _module(top, ctx.net, inputs, outputs, assigns, valid, graph)
    return RTLDesign(top, verilog, inputs, outputs, latency, style, ctx.net.adders,
                     ctx.net.multipliers, max(ctx.levels, default=0), ctx.layers)


def _bits(s: Sig, width: int) -> str:
    if s.const:
        return f"{width}'d{s.lo % (1 << width)}"
    if s.width >= width:
        return f"{s.name}[{width - 1}:0]"
    return f"{{{{{width - s.width}{{{s.name}[{s.width - 1}]}}}}, {s.name}}}"


def _module(top, net, inputs, outputs, assigns, valid, graph) -> str:
    in_bits = sum(p.bits for p in inputs)
    out_bits = sum(p.bits for p in outputs)
    ports = "; ".join(f"{p.name}: {p.size} x {p.type.hls()} from bit {p.offset}"
                      for p in inputs + outputs)
    regs = "\n".join(f"    {r}" for r in net.registers)
    body = "\n".join(net.lines)
    return f"""// Generated by trigger-ad (firmware.rtl) from the fixed-point graph {graph.digest()[:16]}.
// Bit-exact with triggerad.fixedpoint.FixedGraph.run; one event per clock.
// Buses: {ports}
module {top} (
  input  wire clk,
  input  wire in_valid,
  input  wire [{in_bits - 1}:0] x,
  output wire out_valid,
  output wire [{out_bits - 1}:0] y
);
wire signed [1:0] valid_in = {{1'b0, in_valid}};
{body}
always @(posedge clk) begin
{regs}
end
{chr(10).join(assigns)}
assign out_valid = {valid.name}[0];
endmodule
"""


def _input_size(graph: FixedGraph, name: str) -> int:
    for layer in graph.layers:
        if name in layer.inputs:
            if isinstance(layer, Dense):
                return int(layer.weight.shape[0])
            if isinstance(layer, ScaleShift):
                return int(np.size(layer.scale))
            if isinstance(layer, SumSquares):
                return layer.n_in
    raise RTLError(f"input {name!r}: its size is not known from the layer reading it "
                   "(expected a Dense, ScaleShift or SumSquares layer)")


def _input_signal(net: Netlist, port: Port, j: int) -> Sig:
    t = port.type
    lo = port.offset + j * t.width
    bits = f"x[{lo + t.width - 1}:{lo}]"
    return net.wire(bits if t.signed else f"{{1'b0, {bits}}}", t.min_raw, t.max_raw, 0, "in")


# Layers ----------------------------------------------------------------------------------------
def _stages_cuts(levels: int, stages: int) -> set[int]:
    """Intermediate register positions (adder levels done) of a tree of ``levels`` levels in
    ``stages`` pipeline stages (the last register follows the output cast)."""
    return {round(levels * k / stages) for k in range(1, stages)}


def _linear(ctx: _Context, xs: list[Sig], columns: list[list[tuple[int, int]]],
            shift: int, biases: list[int], stages: int) -> tuple[list[Term], list[int]]:
    """Adder trees of ``sum_i x_i * w_i * 2**shift + bias`` per column; roots and their stages."""
    net = ctx.net
    shared = ctx.style == "shift_add" and ctx.share_multiples
    if ctx.max_levels:  # the shared multiples (or multipliers) must fit the current stage
        xs = _step(ctx, xs, _multiples_depth(columns) if shared else int(ctx.style == "dsp"))
    stage = max((x.stage for x in xs), default=0)
    xs = [net.delay(x, stage) for x in xs]
    before = net.multipliers
    multiples, pre = _shared_multiples(net, xs, columns) if shared else ({}, 0)
    trees = []
    for column, bias in zip(columns, biases, strict=True):
        terms = []
        for i, w in column:
            if ctx.style == "dsp":
                t = net.multiply(xs[i], w)
                terms.append(Term(t.sig, t.shift + shift, t.neg))
            elif shared:
                tz = (w & -w).bit_length() - 1
                m = multiples[i].get(abs(w) >> tz, Term(xs[i]))
                terms.append(Term(m.sig, m.shift + tz + shift, m.neg != (w < 0)))
            else:
                terms.extend(Term(xs[i], k + shift, d < 0) for k, d in csd(w))
        if bias:
            tz = (bias & -bias).bit_length() - 1
            terms.append(Term(net.const(bias >> tz, stage), tz))
        trees.append(terms)
    mult = 1 if net.multipliers > before else pre
    levels = max((adder_levels(len(t)) for t in trees), default=0) + mult
    if ctx.max_levels:
        cuts = _budget_cuts(ctx, levels - mult)
    else:
        cuts = {max(c - mult, 0) for c in _stages_cuts(levels, stages)} if stages else set()
        ctx.levels.append(-(-levels // max(stages, 1)))
    roots = [sum_tree(net, terms, cuts, stage) for terms in trees]
    return [r for r, _ in roots], [s for _, s in roots]


def _multiples_depth(columns) -> int:
    """Adder levels of the shared odd multiples ``m * x_i`` the weights of ``columns`` need."""
    odd = {abs(w) >> ((w & -w).bit_length() - 1) for column in columns for _, w in column}
    return max((adder_levels(len(csd(m))) for m in odd), default=0)


def _budget_cuts(ctx: _Context, levels: int) -> set[int]:
    """``max_levels`` mode: the tree levels after which to register so that no stage holds more
    than ``ctx.max_levels`` levels, counting those the current stage already used (each
    register as late as the budget allows: placing the first one where fewer signals are live
    cut the flip-flops by 64 % but cost 18 % more LUTs in Yosys)."""
    cuts, depth = set(), ctx.depth
    for k in range(levels):
        if depth + 1 > ctx.max_levels:
            cuts.add(k)
            ctx.levels.append(depth)
            depth = 0
        depth += 1
    ctx.depth = depth
    return cuts


def _step(ctx: _Context, sigs: list[Sig], levels: int) -> list[Sig]:
    """``max_levels`` mode: ``sigs`` about to go through ``levels`` logic levels; registered
    first when the current stage has no room left for them."""
    if not ctx.max_levels or not levels:
        return sigs
    if ctx.depth + levels > ctx.max_levels and ctx.depth:
        ctx.levels.append(ctx.depth)
        sigs = [ctx.net.reg(s) for s in sigs]
        ctx.depth = 0
    ctx.depth += levels
    return sigs


def _shared_multiples(net: Netlist, xs: list[Sig], columns) -> tuple[list[dict[int, Term]], int]:
    """``x_i * m`` for every odd ``m > 1`` that a weight of input ``i`` needs (``|w| = m * 2**k``),
    built once from its CSD digits and shared by all outputs; and the adder levels they add."""
    odd: list[set[int]] = [set() for _ in xs]
    for column in columns:
        for i, w in column:
            m = abs(w) >> ((w & -w).bit_length() - 1)
            if m > 1:
                odd[i].add(m)
    out, depth = [], 0
    for x, ms in zip(xs, odd, strict=True):
        table = {}
        for m in sorted(ms):
            terms = [Term(x, k, d < 0) for k, d in csd(m)]
            depth = max(depth, adder_levels(len(terms)))
            while len(terms) > 1:
                terms = [net.add(terms[j], terms[j + 1]) if j + 1 < len(terms) else terms[j]
                         for j in range(0, len(terms), 2)]
            table[m] = terms[0]
        out.append(table)
    return out, depth


def _finish(ctx: _Context, roots: list[Term], frac: int, t: Fixed, stages: int) -> list[Sig]:
    """Cast every root (at ``frac``) into ``t`` and register it (when the layer is pipelined)."""
    out = []
    sigs = _step(ctx, [r.sig for r in roots], int(any(_cast_logic(r, frac, t) for r in roots)))
    for root, sig in zip(roots, sigs, strict=True):
        root = Term(sig, root.shift, root.neg)
        x = ctx.net.value(root, root.shift) if root.neg else root.sig
        y = ctx.net.cast(x, frac - root.shift, t)
        out.append(ctx.net.reg(y) if stages and not ctx.max_levels else y)
    return out


def _cast_logic(root: Term, frac: int, t: Fixed) -> bool:
    """Whether casting ``root`` (at ``frac``) to ``t`` takes logic (a rounding or a saturation);
    an exact ``auto`` result type is wiring only."""
    shift = frac - root.shift - t.frac
    lo, hi = (-root.sig.hi, -root.sig.lo) if root.neg else (root.sig.lo, root.sig.hi)
    if shift > 0:
        return True
    return not (t.min_raw <= lo << -shift and hi << -shift <= t.max_raw)


def _dense(ctx: _Context, layer: Dense, xs: list[Sig]) -> list[Sig]:
    if layer.kind != "Dense" or not layer.exact_accum:
        what = ("a pointwise Conv1D" if layer.kind != "Dense" else
                f"its accumulator {layer.accum.hls()} does not hold every sum exactly")
        raise RTLError(f"layer {layer.name!r}: no RTL version for {what}; supported: Dense layers "
                       "whose accumulator holds every partial sum (the exact types)")
    w = np.asarray(layer.weight, dtype=np.int64)
    columns = [[(i, int(w[i, j])) for i in range(w.shape[0]) if w[i, j]] for j in range(w.shape[1])]
    bias_shift = layer.sum_frac - layer.bias_type.frac
    biases = [int(b) << bias_shift for b in np.asarray(layer.bias, dtype=np.int64)]
    roots, _ = _linear(ctx, xs, columns, layer.sum_frac - layer.prod_frac, biases,
                       ctx.dense_stages)
    return _finish(ctx, roots, layer.sum_frac, layer.result, ctx.dense_stages)


def _scale_shift(ctx: _Context, layer: ScaleShift, xs: list[Sig]) -> list[Sig]:
    prod_frac = layer.input_type.frac + layer.scale_type.frac
    frac = max(prod_frac, layer.bias_type.frac)
    scale = np.broadcast_to(np.asarray(layer.scale, dtype=np.int64), (len(xs),))
    bias = np.broadcast_to(np.asarray(layer.bias, dtype=np.int64), (len(xs),))
    columns = [[(i, int(s))] if s else [] for i, s in enumerate(scale)]
    biases = [int(b) << (frac - layer.bias_type.frac) for b in bias]
    roots, _ = _linear(ctx, xs, columns, frac - prod_frac, biases, ctx.other_stages)
    return _finish(ctx, roots, frac, layer.result, ctx.other_stages)


def _sum_squares(ctx: _Context, layer: SumSquares, xs: list[Sig]) -> list[Sig]:
    net = ctx.net
    xs = _step(ctx, xs, 1)  # |x| (dsp: the multiplier)
    stage = max(x.stage for x in xs)
    xs = [net.delay(x, stage) for x in xs]
    terms = []
    for x in xs:
        if ctx.style == "dsp":
            lo = 0 if x.lo <= 0 <= x.hi else min(x.lo * x.lo, x.hi * x.hi)
            hi = max(x.lo * x.lo, x.hi * x.hi)
            net.multipliers += 1
            terms.append(Term(net.wire(f"{x.name} * {x.name}", lo, hi, stage, "m")))
            continue
        mag = x if x.lo >= 0 else net.wire(f"{x.name}[{x.width - 1}] ? -{x.name} : {x.name}",
                                           0, max(-x.lo, x.hi), stage, "abs")
        n = max(mag.hi.bit_length(), 1)
        # a^2 = sum_i a_i 4^i + sum_{i<j} 2 a_i a_j 2^(i+j): row i = a_i * ((a >> (i+1)) * 4 + 1)
        # * 4^i, half the partial-product bits of the plain square
        for i in range(n):
            upper = f"{mag.name}[{n - 1}:{i + 1}], " if i + 1 < n else ""
            hi = ((mag.hi >> (i + 1)) << 2) + 1
            pp = net.wire(f"{mag.name}[{i}] ? {{1'b0, {upper}2'b01}} : {n - i + 2}'d0", 0, hi,
                          stage, "pp")
            terms.append(Term(pp, 2 * i))
    mult = 1 if ctx.style == "dsp" else 0
    levels = adder_levels(len(terms)) + mult
    stages = ctx.other_stages
    if ctx.max_levels:
        cuts = _budget_cuts(ctx, levels - mult)
    else:
        cuts = {max(c - mult, 0) for c in _stages_cuts(levels, stages)} if stages else set()
        ctx.levels.append(-(-levels // max(stages, 1)))
    root, _ = sum_tree(net, terms, cuts, stage)
    return _finish(ctx, [root], 2 * layer.input_type.frac, layer.result, stages)


def _activation(ctx: _Context, layer: Activation, xs: list[Sig]) -> list[Sig]:
    if layer.input_type.frac > layer.result.frac:
        xs = _step(ctx, xs, 1)  # the rounding adder
    if layer.function == "relu" and not layer._clips_negatives:
        xs = [ctx.net.relu(x) for x in xs]
    return [ctx.net.cast(x, layer.input_type.frac, layer.result) for x in xs]


def _threshold(ctx: _Context, layer: ThresholdBit, xs: list[Sig]) -> list[Sig]:
    (x,) = _step(ctx, xs, 1)  # the comparison
    return [ctx.net.wire(f"({x.name} > {literal(layer.units, x.width)}) ? 2'sd1 : 2'sd0", 0, 1,
                         x.stage, "bit")]


#: Layer class -> its RTL (looked up along the class hierarchy).
LAYER_RTL = {
    ScaleShift: _scale_shift,
    Dense: _dense,
    Activation: _activation,
    SumSquares: _sum_squares,
    ThresholdBit: _threshold,
}


def _handler(layer):
    for cls in type(layer).__mro__:
        if cls in LAYER_RTL:
            return LAYER_RTL[cls]
    raise RTLError(f"layer {layer.name!r} ({layer.kind}) has no RTL version; supported: "
                   f"{', '.join(c.__name__ for c in LAYER_RTL)}")
