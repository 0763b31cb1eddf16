"""Integer signals with exact bounds, pipelined adder trees and ``ap_fixed`` casts, as Verilog.

Every signal is a signed Verilog wire or register whose width comes from the exact integer
bounds of its value (Python integers), so no bit is wider than the fixed-point types allow.
A *term* of an adder tree is a signal times ``+-2**shift``: a constant multiplication written
in canonical signed digits (CSD) is a list of terms of the same signal, free of logic until they
are added. Adding two terms aligns their shifts (the low zero bits never enter an adder) and
folds the signs into additions and subtractions, so negation costs nothing.

:func:`cast` writes the assignment of a value to an ``ap_fixed`` type, with the rounding
(``AP_TRN`` ... ``AP_RND_CONV``) and overflow (``AP_WRAP``, ``AP_SAT``, ``AP_SAT_ZERO``,
``AP_SAT_SYM``) modes of :class:`triggerad.fixedpoint.Fixed`: bit-exact with the integer
reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from triggerad.fixedpoint import Fixed, round_shift


def signed_width(lo: int, hi: int) -> int:
    """Bits of the narrowest two's-complement integer holding every value in ``[lo, hi]``."""
    bits = max(hi.bit_length() if hi > 0 else 0, (-lo - 1).bit_length() if lo < 0 else 0)
    return bits + 1


def literal(value: int, width: int) -> str:
    """A signed Verilog literal of ``value`` (``width`` bits at least)."""
    width = max(width, signed_width(value, value))
    return f"{width}'sd{value}" if value >= 0 else f"-{width}'sd{-value}"


def csd(value: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``value``: ``[(shift, +-1), ...]`` with ``sum(d << shift) == value``
    and no two adjacent non-zero digits (the fewest adders for a constant multiplication)."""
    digits, k = [], 0
    while value:
        if value & 1:
            d = 2 - (value & 3)  # +1 if value % 4 == 1, -1 if value % 4 == 3
            digits.append((k, d))
            value -= d
        value >>= 1
        k += 1
    return digits


@dataclass(frozen=True)
class Sig:
    """A Verilog signal: name (or literal), exact bounds of its value, pipeline stage."""

    name: str
    lo: int
    hi: int
    stage: int = 0
    const: bool = False

    @property
    def width(self) -> int:
        return signed_width(self.lo, self.hi)


@dataclass(frozen=True)
class Term:
    """``(-1 if neg else 1) * sig * 2**shift``: a leaf or node of an adder tree."""

    sig: Sig
    shift: int = 0
    neg: bool = False


class Netlist:
    """The body of one Verilog module: declarations, combinational assigns and registers."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.registers: list[str] = []
        self._n = 0
        self.adders = 0
        self.multipliers = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def wire(self, expr: str, lo: int, hi: int, stage: int, prefix: str = "w") -> Sig:
        """A new wire ``= expr`` whose value lies in ``[lo, hi]``."""
        sig = Sig(self._name(prefix), lo, hi, stage)
        self.lines.append(f"wire signed [{sig.width - 1}:0] {sig.name} = {expr};")
        return sig

    def const(self, value: int, stage: int) -> Sig:
        return Sig(literal(value, 2), value, value, stage, const=True)

    def reg(self, sig: Sig) -> Sig:
        """``sig`` delayed by one clock (constants pass unchanged, one stage later)."""
        if sig.const:
            return replace(sig, stage=sig.stage + 1)
        out = Sig(self._name("r"), sig.lo, sig.hi, sig.stage + 1)
        self.lines.append(f"reg signed [{out.width - 1}:0] {out.name};")
        self.registers.append(f"{out.name} <= {sig.name};")
        return out

    def delay(self, sig: Sig, stage: int) -> Sig:
        """``sig`` delayed to pipeline stage ``stage``."""
        while sig.stage < stage:
            sig = self.reg(sig)
        return sig

    # Arithmetic ---------------------------------------------------------------------------------
    def add(self, a: Term, b: Term) -> Term:
        """The sum of two terms (one adder or subtractor, aligned on the lower shift)."""
        if a.sig.const and b.sig.const:
            value = _term_value(a) + _term_value(b)
            return Term(self.const(value, max(a.sig.stage, b.sig.stage)))
        low, high = (a, b) if a.shift <= b.shift else (b, a)
        d = high.shift - low.shift
        if d and not low.sig.const and not high.sig.const and low.sig.width > d:
            return self._add_passing_low_bits(low, high, d)
        shift = min(a.shift, b.shift)
        if a.neg and not b.neg:
            a, b = b, a
        sub = a.neg != b.neg
        da, db = a.shift - shift, b.shift - shift
        lo_b, hi_b = (-b.sig.hi, -b.sig.lo) if sub else (b.sig.lo, b.sig.hi)
        lo = (a.sig.lo << da) + (lo_b << db)
        hi = (a.sig.hi << da) + (hi_b << db)
        expr = f"{_shifted(a.sig, da)} {'-' if sub else '+'} {_shifted(b.sig, db)}"
        self.adders += 1
        sig = self.wire(expr, lo, hi, max(a.sig.stage, b.sig.stage), "s")
        return Term(sig, shift, a.neg and b.neg)

    def _add_passing_low_bits(self, low: Term, high: Term, d: int) -> Term:
        """``low +- high * 2**d``: the ``d`` low bits of ``low`` pass unchanged, only the bits
        above them go through the adder (``d`` LUTs fewer than an aligned addition)."""
        sub = low.neg != high.neg
        lo_h, hi_h = (-high.sig.hi, -high.sig.lo) if sub else (high.sig.lo, high.sig.hi)
        stage = max(low.sig.stage, high.sig.stage)
        top = self.wire(f"({low.sig.name} >>> {d}) {'-' if sub else '+'} {high.sig.name}",
                        (low.sig.lo >> d) + lo_h, (low.sig.hi >> d) + hi_h, stage, "s")
        self.adders += 1
        width = top.width + d
        sig = _Wide(self._name("s"), low.sig.lo + (lo_h << d), low.sig.hi + (hi_h << d), stage,
                    declared=width)
        self.lines.append(f"wire signed [{width - 1}:0] {sig.name} = "
                          f"{{{top.name}, {low.sig.name}[{d - 1}:0]}};")
        return Term(sig, low.shift, low.neg)

    def multiply(self, x: Sig, weight: int) -> Term:
        """``x * weight`` as one multiplier (DSP style); trailing zero bits become a shift."""
        shift = (weight & -weight).bit_length() - 1
        w = weight >> shift
        if w in (1, -1):
            return Term(x, shift, w < 0)
        lo, hi = sorted((x.lo * w, x.hi * w))
        self.multipliers += 1
        return Term(self.wire(f"{x.name} * {literal(w, 2)}", lo, hi, x.stage, "m"), shift)

    def value(self, term: Term, shift: int) -> Sig:
        """The integer ``term * 2**-shift`` when it is exact (``term.shift >= shift``), as a signal."""
        k = term.shift - shift
        assert k >= 0
        if term.sig.const:  # a constant stays a literal (its value, sign included)
            return self.const(_term_value(term) >> shift, term.sig.stage)
        if not term.neg and k == 0:
            return term.sig
        lo, hi = term.sig.lo << k, term.sig.hi << k
        if term.neg:
            return self.wire(f"-{_shifted(term.sig, k)}", -hi, -lo, term.sig.stage)
        return self.wire(_shifted(term.sig, k), lo, hi, term.sig.stage)

    def relu(self, x: Sig) -> Sig:
        """``x > 0 ? x : 0``."""
        if x.lo >= 0:
            return x
        if x.hi <= 0:
            return self.const(0, x.stage)
        return self.wire(f"{x.name}[{x.width - 1}] ? {literal(0, x.width)} : {x.name}", 0, x.hi,
                         x.stage, "a")

    def cast(self, x: Sig, frac: int, t: Fixed) -> Sig:
        """The raw value of ``x * 2**-frac`` assigned to type ``t`` (rounding, then overflow)."""
        shift = frac - t.frac
        if shift <= 0:
            x = self.value(Term(x, -shift), 0) if shift else x
        else:
            x = self._round(x, shift, t.rounding)
        return self._overflow(x, t)

    def _round(self, x: Sig, k: int, mode: str) -> Sig:
        if x.const:
            return self.const(int(round_shift([x.lo], k, mode)[0]), x.stage)
        w = max(x.width, k + 1)
        if w > x.width:
            x = self._widen(x, w)
        n = x.name
        sign, half = f"{n}[{w - 1}]", f"{n}[{k - 1}]"
        below = f"(|{n}[{k - 2}:0])" if k >= 2 else "1'b0"
        frac_bits = f"(|{n}[{k - 1}:0])"
        up = {
            "AP_TRN": None,
            "AP_TRN_ZERO": f"{sign} & {frac_bits}",
            "AP_RND": half,
            "AP_RND_CONV": f"{half} & ({below} | {n}[{k}])",
            "AP_RND_ZERO": f"{half} & ({below} | {sign})",
            "AP_RND_INF": f"{half} & ({below} | ~{sign})",
            "AP_RND_MIN_INF": f"{half} & {below}",
        }[mode]
        lo, hi = x.lo >> k, x.hi >> k
        if up is None:
            return self.wire(f"{n} >>> {k}", lo, hi, x.stage, "q")
        return self.wire(f"({n} >>> {k}) + $signed({{1'b0, {up}}})", lo, hi + 1, x.stage, "q")

    def _widen(self, x: Sig, width: int) -> Sig:
        sig = Sig(self._name("w"), x.lo, x.hi, x.stage)
        self.lines.append(f"wire signed [{width - 1}:0] {sig.name} = {x.name};")
        return _Wide(sig.name, sig.lo, sig.hi, sig.stage, declared=width)

    def _overflow(self, x: Sig, t: Fixed) -> Sig:
        tmin, tmax = t.min_raw, t.max_raw
        if t.saturation == "AP_SAT_SYM" and t.signed:
            tmin = -tmax
        if tmin <= x.lo and x.hi <= tmax:
            return x
        if x.const:
            return self.const(int(t.assign(np.array([float(x.lo)]))[0]), x.stage)
        n, w = x.name, x.width
        if t.saturation == "AP_WRAP":
            bits = f"{n}[{t.width - 1}:0]"
            if t.signed:
                return self.wire(bits, tmin, tmax, x.stage, "o")
            return self.wire(f"{{1'b0, {bits}}}", tmin, tmax, x.stage, "o")
        over = f"({n} > {literal(tmax, w)})" if x.hi > tmax else None
        under = f"({n} < {literal(tmin, w)})" if x.lo < tmin else None
        # saturated bounds (clamped: a range entirely beyond one limit becomes that limit)
        lo, hi = min(max(x.lo, tmin), tmax), max(min(x.hi, tmax), tmin)
        if t.saturation == "AP_SAT_ZERO":
            cond = " | ".join(c for c in (over, under) if c)
            return self.wire(f"{cond} ? {literal(0, w)} : {n}", min(lo, 0), max(hi, 0), x.stage,
                             "o")
        expr = n
        if under:
            expr = f"{under} ? {literal(tmin, w)} : {expr}"
        if over:
            expr = f"{over} ? {literal(tmax, w)} : ({expr})"
        return self.wire(expr, lo, hi, x.stage, "o")


@dataclass(frozen=True)
class _Wide(Sig):
    """A signal declared wider than its bounds need (so that bit ``k`` of it exists)."""

    declared: int = 0

    @property
    def width(self) -> int:
        return self.declared


def _term_value(t: Term) -> int:
    v = t.sig.lo << t.shift
    return -v if t.neg else v


def _shifted(sig: Sig, k: int) -> str:
    return f"({sig.name} <<< {k})" if k else sig.name


def reciprocal(n: int, hi: int, scale: int = 1) -> tuple[int, int]:
    """Multiplier ``m`` and shift ``s`` with ``(y * m) >> s == (y * scale) // n`` for every
    integer ``y`` in ``[0, hi]``: a division by the constant ``n > 0`` (of ``y`` times the
    constant ``scale > 0``) as one constant multiplication.

    With ``a / n`` the reduced fraction ``scale / n``, ``m = ceil(a * 2**s / n) = (a * 2**s +
    e) / n`` with ``0 <= e < n``; then ``y * m / 2**s = y * a / n + y * e / (n * 2**s)``, and
    the floor is unchanged when ``y * e < 2**s`` (the fraction of ``y * a / n`` is at most
    ``(n - 1) / n``). The smallest such ``s`` is returned.
    """
    if n <= 0 or scale <= 0 or hi < 0:
        raise ValueError(f"reciprocal needs n, scale > 0 and hi >= 0, found {n!r}, {scale!r}, "
                         f"{hi!r}")
    g = math.gcd(n, scale)
    n, a = n // g, scale // g
    s = 0
    while True:
        m = -(-(a << s) // n)
        if hi * (m * n - (a << s)) < 1 << s:
            return m, s
        s += 1


def adder_levels(n_terms: int) -> int:
    """Levels of a balanced adder tree of ``n_terms`` terms."""
    return max(n_terms - 1, 0).bit_length()


def sum_tree(net: Netlist, terms: list[Term], cuts: set[int], stage: int) -> tuple[Term, int]:
    """Sum ``terms`` in a balanced tree, registering every live node after the levels in ``cuts``.

    Returns the root and its pipeline stage. Terms are paired in order of their shifts, so that
    the adders stay as narrow as the bounds allow.
    """
    live = sorted(terms, key=lambda t: (t.sig.const, t.shift))
    if not live:
        live = [Term(net.const(0, stage))]
    level = 0
    cache: dict[str, Sig] = {}
    while True:
        if level in cuts:
            live = [_registered(net, t, cache) for t in live]
            stage += 1
            cache = {}
        if len(live) == 1 and level >= max(cuts, default=-1):
            return live[0], stage
        if len(live) > 1:
            live = [net.add(live[i], live[i + 1]) if i + 1 < len(live) else live[i]
                    for i in range(0, len(live), 2)]
        level += 1


def _registered(net: Netlist, t: Term, cache: dict[str, Sig]) -> Term:
    if t.sig.name not in cache:
        cache[t.sig.name] = net.reg(t.sig)
    return replace(t, sig=cache[t.sig.name])
