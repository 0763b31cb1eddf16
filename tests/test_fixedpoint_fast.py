"""The integer graph's fast evaluation (float32 products and activations where exact, clipping
from known extremes) against a straightforward reference in Python integers, on random inputs
including values at, between and beyond the saturation bounds."""

from __future__ import annotations

import numpy as np
import pytest

from triggerad.fixedpoint.graph import FixedGraph
from triggerad.fixedpoint.layers import (
    Activation,
    Dense,
    Input,
    ScaleShift,
    SumSquares,
)
from triggerad.fixedpoint.types import Fixed, parse_fixed

# --- reference: every value an exact (integer, fractional bits) pair -----------------------


def _round(r: int, bits: int, mode: str) -> int:
    """``r * 2**-bits`` rounded to an integer with an HLS quantization mode."""
    if bits <= 0:
        return r << -bits
    floor = r >> bits
    rem, half = r - (floor << bits), 1 << (bits - 1)
    up = {"AP_TRN": False, "AP_RND": rem >= half, "AP_RND_CONV": rem > half or (
        rem == half and floor % 2 == 1), "AP_RND_MIN_INF": rem > half,
        "AP_RND_INF": rem > half or (rem == half and r > 0),
        "AP_RND_ZERO": rem > half or (rem == half and r < 0),
        "AP_TRN_ZERO": rem > 0 and r < 0}[mode]
    return floor + int(up)


def _cast(r: int, frac: int, t: Fixed) -> int:
    """The raw value of ``r * 2**-frac`` assigned to ``t``: rounding, then overflow."""
    v = _round(r, frac - t.frac, t.rounding)
    lo, hi = t.min_raw, t.max_raw
    if t.saturation == "AP_SAT_SYM" and t.signed:
        lo = -hi
    if t.saturation == "AP_WRAP":
        return (v - t.min_raw) % 2**t.width + t.min_raw
    if t.saturation == "AP_SAT_ZERO":
        return v if lo <= v <= hi else 0
    return min(max(v, lo), hi)


def _reference(graph: FixedGraph, x: np.ndarray) -> dict[str, list]:
    """Raw values of every layer, event by event, in Python integers."""
    values: dict[str, list] = {}
    for layer in graph.layers:
        t = layer.result
        if isinstance(layer, Input):
            rows = []
            for event in x.tolist():
                row = []
                for value in event:
                    num, den = float(value).as_integer_ratio()
                    row.append(_cast(num, den.bit_length() - 1, t))
                rows.append(row)
        else:
            (source,) = layer.inputs
            src, fin = values[source], layer.input_type.frac
        if isinstance(layer, ScaleShift):
            sf, bf = layer.scale_type.frac, layer.bias_type.frac
            f = max(fin + sf, bf)
            rows = [[_cast((v * int(s) << (f - fin - sf)) + (int(b) << (f - bf)), f, t)
                     for v, s, b in zip(row, layer.scale, layer.bias, strict=True)] for row in src]
        elif isinstance(layer, Dense):
            pf, bf = fin + layer.weight_type.frac, layer.bias_type.frac
            f = max(pf, bf)
            w = layer.weight.astype(np.int64).T.tolist()
            rows = [[_cast((sum(a * b for a, b in zip(row, col, strict=True)) << (f - pf))
                           + (int(bias) << (f - bf)), f, t)
                     for col, bias in zip(w, layer.bias, strict=True)] for row in src]
        elif isinstance(layer, Activation):
            rows = [[_cast(max(v, 0) if layer.function == "relu" else v, fin, t) for v in row]
                    for row in src]
        elif isinstance(layer, SumSquares):
            rows = [_cast(sum(v * v for v in row), 2 * fin, t) for row in src]
        values[layer.name] = rows
    return values


# --- graphs and inputs ------------------------------------------------------------------------

def _graph(rng, *, d: int, input_t: str, norm: str, weight_bits: int, big_weights: bool,
           dense0: str, act0: tuple[str, str], act1: tuple[str, str], score: str, accum: str | None = None) -> FixedGraph:
    fx = parse_fixed
    inp = Input("x", fx(input_t))
    scale_t, bias_t = fx("ap_fixed<20,2,AP_RND_CONV,AP_SAT>"), fx("ap_fixed<8,4,AP_RND_CONV,AP_SAT>")
    norm_l = ScaleShift("norm", "x", inp.result, rng.integers(-2**18, 2**18, d), scale_t,
                        rng.integers(-128, 128, d), bias_t, fx(norm))
    wt = Fixed(weight_bits, 2)
    top = 2 ** (weight_bits - 1)

    def weights(n_in, n_out, big=False):
        if big:
            return rng.choice([-top, top - 1], (n_in, n_out))
        return rng.integers(-top, top, (n_in, n_out))

    layers = [inp, norm_l]
    d0 = Dense("d0", "norm", norm_l.result, weights(d, 8, big_weights), wt,
               rng.integers(-top, top, 8), wt, fx("ap_fixed<40,24>"), fx(dense0))
    a0 = Activation("a0", "d0", d0.result, act0[0], fx(act0[1]))
    d1 = Dense("d1", "a0", a0.result, weights(8, 6), wt, rng.integers(-top, top, 6), wt,
               fx(accum or "ap_fixed<20,11>"), fx("ap_fixed<20,11>"))
    a1 = Activation("a1", "d1", d1.result, act1[0], fx(act1[1]))
    mu = Dense("mu", "a1", a1.result, weights(6, 4), wt, rng.integers(-top, top, 4), wt,
               fx(accum or "ap_fixed<19,10>"), fx("ap_fixed<19,10>"))
    s = SumSquares("score", "mu", mu.result, 4, fx(score))
    layers += [d0, a0, d1, a1, mu, s]
    assert all(la.exact_accum for la in (d0, d1, mu))  # what the reference computes
    return FixedGraph(layers, ["score", "mu"])


def _inputs(rng, t: Fixed, n: int, d: int, dtype) -> np.ndarray:
    """Random values over ~1.5x the type's range, with the bounds, half-LSB ties next to them,
    far overflows, zeros and -0.0 mixed in."""
    lo, hi, lsb = t.min_raw * t.lsb, t.max_raw * t.lsb, t.lsb
    x = rng.uniform(1.5 * lo, 1.5 * hi, (n, d))
    x[rng.random((n, d)) < 0.3] *= 0.05  # most values inside the range
    specials = np.array([lo, hi, lo - lsb / 2, hi + lsb / 2, hi - lsb / 2, lo + lsb / 2,
                         1e30, -1e30, 0.0, -0.0, lsb / 2, -lsb / 2, 3 * lsb / 2])
    mask = rng.random((n, d)) < 0.15
    x[mask] = rng.choice(specials, int(mask.sum()))
    x[: len(specials) // 2 * 2: 2, 0] = specials[: len(specials) // 2]  # each at least once
    return x.astype(dtype)


CASES = {
    # the shipped L1 VAE's types: saturating, rounding to nearest even, identity accumulators
    "l1-like": dict(d=48, input_t="ap_fixed<18,13,AP_RND_CONV,AP_SAT>",
                    norm="ap_fixed<16,7,AP_RND_CONV,AP_SAT>", weight_bits=6, big_weights=False,
                    dense0="ap_fixed<40,24>", act0=("relu", "ap_ufixed<8,3,AP_RND_CONV,AP_SAT>"),
                    act1=("relu", "ap_ufixed<8,3,AP_RND_CONV,AP_SAT>"),
                    score="ap_ufixed<18,10,AP_RND_CONV,AP_SAT>"),
    # the largest weights: the float32 product is not provably exact, float64 is used
    "big-weights": dict(d=48, input_t="ap_fixed<18,13,AP_RND_CONV,AP_SAT>",
                        norm="ap_fixed<16,7,AP_RND_CONV,AP_SAT>", weight_bits=6,
                        big_weights=True, dense0="ap_fixed<40,24>",
                        act0=("relu", "ap_ufixed<8,3,AP_RND_CONV,AP_SAT>"),
                        act1=("relu", "ap_ufixed<8,3,AP_RND_CONV,AP_SAT>"),
                        score="ap_ufixed<18,10,AP_RND_CONV,AP_SAT>"),
    # other modes: symmetric saturation, truncation, a rounding Dense result, signed relu and
    # a linear activation, a wrapping input
    "other-modes": dict(d=12, input_t="ap_fixed<12,6,AP_RND,AP_SAT_SYM>",
                        norm="ap_fixed<14,6,AP_TRN,AP_SAT>", weight_bits=8, big_weights=False,
                        dense0="ap_fixed<12,6,AP_RND,AP_SAT>",
                        act0=("linear", "ap_fixed<10,4,AP_RND_CONV,AP_SAT_SYM>"),
                        act1=("relu", "ap_fixed<10,5,AP_TRN,AP_SAT>"),
                        score="ap_ufixed<16,8,AP_RND_ZERO,AP_SAT>", accum="ap_fixed<32,16>"),
    "wrapping": dict(d=12, input_t="ap_fixed<12,6,AP_RND_CONV,AP_WRAP>",
                     norm="ap_fixed<14,6,AP_RND_INF,AP_WRAP>", weight_bits=6, big_weights=False,
                     dense0="ap_fixed<40,24>", act0=("relu", "ap_ufixed<8,3,AP_TRN,AP_WRAP>"),
                     act1=("linear", "ap_fixed<8,3,AP_RND_MIN_INF,AP_SAT>"),
                     score="ap_ufixed<16,8,AP_TRN,AP_WRAP>"),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_graph_equals_the_integer_reference(case, dtype):
    rng = np.random.default_rng(sorted(CASES).index(case))
    graph = _graph(rng, **CASES[case])
    graph.BLOCK = 128  # several blocks, each with its own extremes
    x = _inputs(rng, graph.layers[0].result, 384, CASES[case]["d"], dtype)
    t = graph.layers[0].result
    x[192:] = rng.uniform(-1, 1, x[192:].shape) * t.max_raw * t.lsb / 1024  # no saturation
    names = tuple(layer.name for layer in graph.layers)
    fast, ref = graph.run(x, keep=names), _reference(graph, x)
    for name in names:
        assert fast[name].dtype == np.float64, name
        np.testing.assert_array_equal(fast[name], np.array(ref[name], dtype=np.float64),
                                      err_msg=f"{case}: layer {name}")
    # the bounds were reached: saturated values in the input and in the first activation
    assert (fast["x"] == t.max_raw).any() and (fast["x"] <= -t.max_raw).any()
    assert (fast["a0"] == graph.layer("a0").result.max_raw).any()


def test_float32_products_are_taken_only_when_proven_exact():
    rng = np.random.default_rng(5)
    small, big = (_graph(rng, **CASES[c]) for c in ("l1-like", "big-weights"))
    for graph in (small, big):
        assert not graph.layer("d0")._single_always  # the input type's range does not prove it
        assert graph.layer("d1")._single_always  # 8-bit activations do
    d0 = small.layer("d0")
    # partial sums below 2^24 with the small weights, not with the largest ones
    value = 2**24 // big.layer("d0")._column_sum + 1
    assert value * d0._column_sum + d0._bias_max < 2**24
    fits = np.full((4, 48), value, dtype=np.float32)
    saturated = np.full((4, 48), -2.0**15, dtype=np.float32)
    assert d0._single_exact(fits) and d0.forward(fits).dtype == np.float32
    assert not d0._single_exact(saturated) and d0.forward(saturated).dtype == np.float64
    assert big.layer("d0").forward(fits).dtype == np.float64
    np.testing.assert_array_equal(d0.forward(fits), d0.forward(fits.astype(np.float64)))
