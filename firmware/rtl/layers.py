"""Layer by layer RTL of a :class:`triggerad.fixedpoint.FixedGraph` (:mod:`firmware.rtl.generate`).

Each arithmetic layer (:class:`~triggerad.fixedpoint.Dense` -- also a pointwise Conv1D, per
position --, :class:`~triggerad.fixedpoint.ScaleShift`, :class:`~triggerad.fixedpoint.SumSquares`,
:class:`~triggerad.fixedpoint.GlobalAveragePooling1D`) becomes adder trees in the
:class:`Context`'s netlist, cut by registers into pipeline stages (per layer, or every
``max_levels`` logic levels);
element-wise layers (activations, the trigger bit) are combinational logic. :data:`LAYER_RTL`
maps a layer class to its builder; :func:`handler` refuses a layer without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware.rtl.netlist import (
    Netlist,
    Sig,
    Term,
    adder_levels,
    csd,
    literal,
    reciprocal,
    sum_tree,
)
from triggerad.errors import TriggerADError
from triggerad.fixedpoint import (
    Activation,
    Dense,
    Fixed,
    GlobalAveragePooling1D,
    ScaleShift,
    SumSquares,
    ThresholdBit,
)


class RTLError(TriggerADError, ValueError):
    """A graph (or option) the RTL generator cannot turn into exact Verilog."""


@dataclass
class Context:
    net: Netlist
    style: str
    dense_stages: int
    other_stages: int
    share_multiples: bool = True
    max_levels: int = 0
    depth: int = 0  # max_levels mode: adder levels already used in the current stage
    levels: list[int] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)
    # layer name -> (signal before its output cast, its fractional bits, the result type)
    pre_cast: dict = field(default_factory=dict)


def _stages_cuts(levels: int, stages: int) -> set[int]:
    """Intermediate register positions (adder levels done) of a tree of ``levels`` levels in
    ``stages`` pipeline stages (the last register follows the output cast)."""
    return {round(levels * k / stages) for k in range(1, stages)}


def _linear(ctx: Context, xs: list[Sig], columns: list[list[tuple[int, int]]],
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


def _budget_cuts(ctx: Context, levels: int) -> set[int]:
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


def _step(ctx: Context, sigs: list[Sig], levels: int) -> list[Sig]:
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


def _finish(ctx: Context, roots: list[Term], frac: int, t: Fixed, stages: int,
            keep: str | None = None) -> list[Sig]:
    """Cast every root (at ``frac``) into ``t`` and register it (when the layer is pipelined);
    ``keep``: record the (single) value before the cast in ``ctx.pre_cast[keep]``."""
    out = []
    logic = any(_cast_logic(r, frac, t) for r in roots)
    sigs = _step(ctx, [r.sig for r in roots], int(logic))
    for root, sig in zip(roots, sigs, strict=True):
        root = Term(sig, root.shift, root.neg)
        x = ctx.net.value(root, root.shift) if root.neg else root.sig
        if keep:
            ctx.pre_cast[keep] = (x, frac - root.shift, t, logic)
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


def _dense(ctx: Context, layer: Dense, xs: list[Sig]) -> list[Sig]:
    """A Dense layer, or a pointwise Conv1D: the same weights applied at every position of a
    ``(positions, n_in)`` input (position-major, as the graph's last axis), one adder tree per
    position and output (each position its own shared multiples: one multiplier network per
    position, as hls4ml's ``io_parallel`` pointwise convolution)."""
    w = np.asarray(layer.weight, dtype=np.int64)
    n_in = w.shape[0]
    if not layer.exact_accum:
        raise RTLError(f"layer {layer.name!r}: no RTL version for its accumulator "
                       f"{layer.accum.hls()}, which does not hold every partial sum exactly; "
                       "supported: Dense and pointwise Conv1D layers whose accumulator holds "
                       "every partial sum (the exact types)")
    if len(xs) % n_in:
        raise RTLError(f"layer {layer.name!r}: {len(xs)} inputs are not a whole number of "
                       f"positions of {n_in} features")
    columns = [[(p * n_in + i, int(w[i, j])) for i in range(n_in) if w[i, j]]
               for p in range(len(xs) // n_in) for j in range(w.shape[1])]
    bias_shift = layer.sum_frac - layer.bias_type.frac
    biases = [int(b) << bias_shift for b in np.asarray(layer.bias, dtype=np.int64)]
    roots, _ = _linear(ctx, xs, columns, layer.sum_frac - layer.prod_frac,
                       biases * (len(xs) // n_in), ctx.dense_stages)
    return _finish(ctx, roots, layer.sum_frac, layer.result, ctx.dense_stages)


def _scale_shift(ctx: Context, layer: ScaleShift, xs: list[Sig]) -> list[Sig]:
    prod_frac = layer.input_type.frac + layer.scale_type.frac
    frac = max(prod_frac, layer.bias_type.frac)
    scale = np.broadcast_to(np.asarray(layer.scale, dtype=np.int64), (len(xs),))
    bias = np.broadcast_to(np.asarray(layer.bias, dtype=np.int64), (len(xs),))
    columns = [[(i, int(s))] if s else [] for i, s in enumerate(scale)]
    biases = [int(b) << (frac - layer.bias_type.frac) for b in bias]
    roots, _ = _linear(ctx, xs, columns, frac - prod_frac, biases, ctx.other_stages)
    return _finish(ctx, roots, frac, layer.result, ctx.other_stages)


def _sum_squares(ctx: Context, layer: SumSquares, xs: list[Sig]) -> list[Sig]:
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
    return _finish(ctx, [root], 2 * layer.input_type.frac, layer.result, stages, keep=layer.name)


def _global_average(ctx: Context, layer: GlobalAveragePooling1D, xs: list[Sig]) -> list[Sig]:
    """The mean over the steps of ``(steps, channels)`` inputs exactly as the graph computes it:
    ``y = (accum_t) sum_p x_p`` (an adder tree per channel), ``y /= steps`` truncating towards
    zero in ``accum_t`` (a constant multiplication by :func:`~firmware.rtl.netlist.reciprocal`
    and a shift, of ``|y|`` with the sign restored when ``y`` can be negative), then
    ``(result_t) y``. The pipeline registers go where the ``max_levels`` budget (or, per layer,
    ``other_stages`` even stages) puts them."""
    steps, net = layer.steps, ctx.net
    if not layer.exact_accum or len(xs) % steps:
        raise RTLError(f"layer {layer.name!r}: no RTL version for "
                       + (f"its accumulator {layer.accum.hls()}, which does not hold every sum"
                          if not layer.exact_accum else f"{len(xs)} inputs in {steps} steps")
                       + "; supported: average pooling with an accumulator holding every sum")
    channels = len(xs) // steps
    lo = min(sum(xs[p * channels + c].lo for p in range(steps)) for c in range(channels))
    hi = max(sum(xs[p * channels + c].hi for p in range(steps)) for c in range(channels))
    scale = 2 ** (layer.accum.frac - layer.input_type.frac)  # exact: the sum fits accum_t
    m, shift = reciprocal(steps, max(-lo, hi), scale)
    signed = lo < 0
    per_layer = not ctx.max_levels
    if per_layer:  # the layer's levels in other_stages even stages (all in one for 0)
        levels = adder_levels(steps) + adder_levels(len(csd(m))) + 2 * signed + 1
        ctx.max_levels = -(-levels // ctx.other_stages) if ctx.other_stages else levels
        ctx.depth = 0
    try:
        stage = max(x.stage for x in xs)
        xs = [net.delay(x, stage) for x in xs]
        cuts = _budget_cuts(ctx, adder_levels(steps))
        sums = [net.value(sum_tree(net, [Term(xs[p * channels + c]) for p in range(steps)],
                                   cuts, stage)[0], 0) for c in range(channels)]
        mags = _step(ctx, sums, int(signed))  # |y|
        if signed:
            mags = [net.wire(f"{_sign(y)} ? -({y.name}) : {y.name}", 0, max(-y.lo, y.hi),
                             y.stage, "abs") for y in mags]
        cuts = _budget_cuts(ctx, adder_levels(len(csd(m))))
        roots = [sum_tree(net, [Term(a, k, d < 0) for k, d in csd(m)], cuts, a.stage)[0]
                 for a in mags]
        quotients = []
        for root, a in zip(roots, mags, strict=True):
            v = net.value(root, 0)
            q_hi = a.hi * scale // steps
            quotients.append(net.wire(f"{v.name} >>> {shift}", 0, q_hi, v.stage, "q")
                             if shift else v)
        if signed:  # restore the sign: truncation towards zero
            at = max(q.stage for q in quotients)
            both = _step(ctx, [net.delay(q, at) for q in quotients]
                         + [net.delay(y, at) for y in sums], 1)
            quotients = [net.wire(f"{_sign(y)} ? -({q.name}) : {q.name}",
                                  -(-y.lo * scale // steps), q.hi, q.stage, "d")
                         for q, y in zip(both[:channels], both[channels:], strict=True)]
        out = _finish(ctx, [Term(q) for q in quotients], layer.accum.frac, layer.result, 0)
    finally:
        if per_layer:
            ctx.max_levels = 0
    if per_layer:
        ctx.levels.append(ctx.depth)
        out = [net.reg(y) for y in out] if ctx.other_stages else out
        ctx.depth = 0
    return out


def _sign(x: Sig) -> str:
    """The sign bit of ``x`` (a constant's: a literal bit)."""
    if x.const:
        return "1'b1" if x.lo < 0 else "1'b0"
    return f"{x.name}[{x.width - 1}]"


def _activation(ctx: Context, layer: Activation, xs: list[Sig]) -> list[Sig]:
    if layer.input_type.frac > layer.result.frac:
        xs = _step(ctx, xs, 1)  # the rounding adder
    if layer.function == "relu" and not layer._clips_negatives:
        xs = [ctx.net.relu(x) for x in xs]
    return [ctx.net.cast(x, layer.input_type.frac, layer.result) for x in xs]


def _threshold(ctx: Context, layer: ThresholdBit, xs: list[Sig]) -> list[Sig]:
    pre = ctx.pre_cast.get(layer.inputs[0])
    if pre is not None and pre[2].saturation in ("AP_SAT", "AP_SAT_SYM"):
        # the cast (rounding, saturation) is monotonic: compare the value before it, in
        # parallel with the rounding, at the first value whose cast exceeds the threshold
        x, frac, t, parallel = pre
        if not parallel:  # the cast was wiring: the comparison is a level of its own
            (x,) = _step(ctx, [x], 1)
        first = _first_above(x, frac, t, layer.units)
        if first is None or first <= x.lo:
            return [ctx.net.const(int(first is not None), x.stage)]
        return [ctx.net.wire(f"({x.name} > {literal(first - 1, x.width)}) ? 2'sd1 : 2'sd0", 0, 1,
                             x.stage, "bit")]
    (x,) = _step(ctx, xs, 1)  # the comparison
    return [ctx.net.wire(f"({x.name} > {literal(layer.units, x.width)}) ? 2'sd1 : 2'sd0", 0, 1,
                         x.stage, "bit")]


def _first_above(x: Sig, frac: int, t: Fixed, units: int) -> int | None:
    """The smallest raw value of ``x`` (at ``frac``) whose cast into ``t`` is ``> units``
    (None if there is none); the cast is monotonic (every rounding mode, saturation)."""
    def above(v: int) -> bool:
        return bool(t.cast(np.array([float(v)]), frac)[0] > units)

    lo, hi = x.lo, x.hi
    if not above(hi):
        return None
    while lo < hi:  # invariant: above(hi)
        mid = (lo + hi) // 2
        if above(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


#: Layer class -> its RTL (looked up along the class hierarchy).
LAYER_RTL = {
    ScaleShift: _scale_shift,
    Dense: _dense,
    Activation: _activation,
    SumSquares: _sum_squares,
    ThresholdBit: _threshold,
    GlobalAveragePooling1D: _global_average,
}


def handler(layer):
    for cls in type(layer).__mro__:
        if cls in LAYER_RTL:
            return LAYER_RTL[cls]
    raise RTLError(f"layer {layer.name!r} ({layer.kind}) has no RTL version; supported: "
                   f"{', '.join(c.__name__ for c in LAYER_RTL)}")
