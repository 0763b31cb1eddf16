"""Verilog of a :class:`triggerad.fixedpoint.FixedGraph`: fully pipelined, bit-exact.

One module, one event per clock (initiation interval 1): the raw inputs of the graph's input
type enter on ``x`` with ``in_valid``, the raw outputs leave on ``y`` with ``out_valid`` a fixed
number of clocks later. Each arithmetic layer (:class:`~triggerad.fixedpoint.Dense` and pointwise
Conv1D, :class:`~triggerad.fixedpoint.ScaleShift`, :class:`~triggerad.fixedpoint.SumSquares`,
:class:`~triggerad.fixedpoint.GlobalAveragePooling1D`) is an adder tree per output, cut by
registers into the configured number of pipeline stages (0: purely combinational); element-wise
layers (activations, the trigger bit) are combinational logic in
the stage that follows. Constant multiplications are either shift-add terms in canonical signed
digits (``shift_add``: no DSP, zero weights cost nothing) or multipliers (``dsp``); squares are
AND-gated partial products (``shift_add``) or multipliers. Casts follow the types of the graph
exactly (:meth:`firmware.rtl.netlist.Netlist.cast`), so the module computes the same integers as
:meth:`FixedGraph.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware.rtl.layers import Context, RTLError, handler
from firmware.rtl.netlist import Netlist, Sig
from triggerad.fixedpoint import (
    Dense,
    Fixed,
    FixedGraph,
    GlobalAveragePooling1D,
    Input,
    ScaleShift,
    SumSquares,
)

STYLES = ("shift_add", "dsp")




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




def generate(graph: FixedGraph, *, top: str = "trigger_rtl", style: str = "shift_add",
             dense_stages: int = 2, other_stages: int = 1,
             share_multiples: bool = True, max_levels: int = 0,
             input_sizes: dict[str, int] | None = None) -> RTLDesign:
    """Verilog module computing ``graph`` bit for bit.

    Parameters
    ----------
    graph : FixedGraph
        Input, ScaleShift, Dense and pointwise Conv1D (with an accumulator that holds every
        sum), Activation, GlobalAveragePooling1D, SumSquares and ThresholdBit layers.
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
    input_sizes : dict, optional
        Values per event of each input layer (e.g. 10 x 14 = 140 candidates x features, the
        bus holding them position-major); by default from the layer reading the input.

    Raises
    ------
    RTLError
        For a layer without an RTL version (naming it and the supported kinds).
    """
    if style not in STYLES:
        raise RTLError(f"multiplier style {style!r}: expected one of {STYLES}")
    if max_levels < 0:
        raise RTLError(f"max_levels must be >= 0, found {max_levels!r}")
    ctx = Context(Netlist(), style, dense_stages, other_stages, share_multiples, max_levels)
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
            size = (input_sizes or {}).get(layer.name) or _input_size(graph, layer.name)
            port = Port(layer.name, layer.result, size, offset)
            offset += port.bits
            inputs.append(port)
            values[layer.name] = [_input_signal(ctx.net, port, j) for j in range(size)]
            continue
        build = handler(layer)
        ctx.depth = depths.get(layer.inputs[0], 0)  # max_levels: levels used in its stage
        adders = ctx.net.adders
        values[layer.name] = build(ctx, layer, values[layer.inputs[0]])
        depths[layer.name] = ctx.depth
        ctx.layers.append({"name": layer.name, "kind": layer.kind,
                           "stage": max(s.stage for s in values[layer.name]),
                           "adders": ctx.net.adders - adders})
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
    """Values of input ``name``, from the layer reading it (times the positions of a pointwise
    Conv1D: the steps of the average pooling that follows it)."""
    for layer in graph.layers:
        if name in layer.inputs:
            if isinstance(layer, Dense):
                return int(layer.weight.shape[0]) * _positions(graph, layer)
            if isinstance(layer, ScaleShift):
                return int(np.size(layer.scale))
            if isinstance(layer, SumSquares):
                return layer.n_in
    raise RTLError(f"input {name!r}: its size is not known from the layer reading it "
                   "(expected a Dense, ScaleShift or SumSquares layer); pass input_sizes")


def _positions(graph: FixedGraph, layer) -> int:
    """Positions a pointwise layer runs over: the steps of the pooling its chain reaches."""
    if layer.kind != "PointwiseConv1D":
        return 1
    name = layer.name
    while True:
        readers = [la for la in graph.layers if name in la.inputs]
        if not readers:
            raise RTLError(f"layer {layer.name!r}: the positions of the pointwise Conv1D are not "
                           "known (no average pooling follows it); pass input_sizes")
        if isinstance(readers[0], GlobalAveragePooling1D):
            return readers[0].steps
        name = readers[0].name


def _input_signal(net: Netlist, port: Port, j: int) -> Sig:
    t = port.type
    lo = port.offset + j * t.width
    bits = f"x[{lo + t.width - 1}:{lo}]"
    return net.wire(bits if t.signed else f"{{1'b0, {bits}}}", t.min_raw, t.max_raw, 0, "in")


# Layers ----------------------------------------------------------------------------------------
