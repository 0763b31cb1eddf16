"""triggerad.fixedpoint: ap_fixed semantics (checked against the Xilinx headers), integer layers,
graphs from QKeras, thresholds, configs."""

from __future__ import annotations

import doctest
import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest

from triggerad.errors import NonFiniteError
from triggerad.fixedpoint import (
    Dense,
    Fixed,
    FixedGraph,
    FixedPointConfig,
    FixedPointError,
    GlobalAveragePooling1D,
    Input,
    parse_fixed,
    threshold_units,
)
from triggerad.fixedpoint import keras as fp_keras
from triggerad.fixedpoint import types as fp_types

ROUNDING = fp_types.ROUNDING_MODES
SATURATION = fp_types.SATURATION_MODES
#: (width, integer) shapes tried for every signedness x rounding x saturation mode.
SHAPES = ((8, 3), (6, 1), (5, 7), (7, -1))


def _ap_types() -> Path:
    """The ``ap_fixed`` headers shipped with hls4ml (those its C simulation compiles against)."""
    spec = importlib.util.find_spec("hls4ml")
    return Path(spec.submodule_search_locations[0]) / "templates" / "vivado" / "ap_types"


def _all_types() -> list[Fixed]:
    return [Fixed(w, i, s, q, o) for w, i in SHAPES for s in (True, False) for q in ROUNDING
            for o in SATURATION]


@pytest.mark.slow
def test_conversions_equal_the_ap_fixed_headers(tmp_path):
    """Every shape x signedness x 7 rounding x 4 saturation modes (224 types): converting doubles
    (``to_raw``) and converting an ``ap_fixed<50,25>`` (``cast``) give the raw values C++ gives."""
    types = _all_types()

    def assign(t: Fixed, source: str) -> str:
        return (f"  {{ {t.hls()} t = {source}; std::printf(\" %.0f\", "
                f"std::ldexp(t.to_double(), {t.frac})); }}")

    body = "\n".join(assign(t, "x") for t in types) + '\n  std::printf("\\n");\n' + "\n".join(
        assign(t, "v") for t in types)
    src = tmp_path / "ap.cpp"
    src.write_text(f"""#include <cmath>
#include <cstdio>
#include "ap_fixed.h"
int main() {{
  double x;
  while (std::scanf("%lf", &x) == 1) {{
    ap_fixed<50,25> v = x;
{body}
    std::printf("\\n");
  }}
}}
""")
    exe = tmp_path / "ap"
    subprocess.run(["g++", "-O0", "-std=c++14", f"-I{_ap_types()}", str(src), "-o", str(exe)],
                   check=True)
    rng = np.random.default_rng(0)
    # every tie of every type (multiples of 1/64), random doubles with full mantissas, huge values
    x = np.concatenate([np.arange(-1200, 1200) / 64, rng.normal(0, 20, 1500),
                        rng.normal(0, 1, 300) * 2.0**-3, [1e6, -1e6, 0.0, -0.0, 2.0**40 + 0.5]])
    out = subprocess.run([str(exe)], input="\n".join(f"{v:.17g}" for v in x), capture_output=True,
                         text=True, check=True).stdout.split("\n")
    rows = [line for line in out if line.strip()]
    from_double = np.array([row.split() for row in rows[0::2]], dtype=float)
    from_fixed = np.array([row.split() for row in rows[1::2]], dtype=float)
    source = parse_fixed("ap_fixed<50,25>")
    v = source.to_raw(x)
    assert from_double.shape == (len(x), len(types))
    for k, t in enumerate(types):
        np.testing.assert_array_equal(t.to_raw(x), from_double[:, k], err_msg=t.hls())
        np.testing.assert_array_equal(t.cast(v, source.frac), from_fixed[:, k], err_msg=t.hls())


def test_rounding_and_overflow_by_hand():
    t = parse_fixed("ap_fixed<4,2,AP_RND_CONV,AP_SAT>")  # LSB 0.25, range [-2, 1.75]
    np.testing.assert_array_equal(t.quantize([0.125, 0.375, -0.125, 1.9, -3.0, 0.3]),
                                  [0.0, 0.5, -0.0, 1.75, -2.0, 0.25])
    trn = parse_fixed("ap_fixed<4,2>")  # truncation towards -inf, wrap-around
    np.testing.assert_array_equal(trn.quantize([0.3, -0.3, 2.0]), [0.25, -0.5, -2.0])
    u = parse_fixed("ap_ufixed<8,3,AP_RND_CONV,AP_SAT>")
    np.testing.assert_array_equal(u.quantize([-1.0, 9.0, 1.0 / 64]), [0.0, 8 - 1 / 32, 0.0])
    ties = np.array([-5, -3, -1, 1, 3, 5])  # -2.5 ... 2.5 with one fractional bit
    expected = {"AP_TRN": [-3, -2, -1, 0, 1, 2], "AP_TRN_ZERO": [-2, -1, 0, 0, 1, 2],
                "AP_RND": [-2, -1, 0, 1, 2, 3], "AP_RND_ZERO": [-2, -1, 0, 0, 1, 2],
                "AP_RND_MIN_INF": [-3, -2, -1, 0, 1, 2], "AP_RND_INF": [-3, -2, -1, 1, 2, 3],
                "AP_RND_CONV": [-2, -2, 0, 0, 2, 2]}
    for mode, values in expected.items():
        np.testing.assert_array_equal(fp_types.round_shift(ties, 1, mode), values, err_msg=mode)
    assert parse_fixed("ap_uint<1>").max_raw == 1 and parse_fixed("ap_int<6>").hls() == "ap_int<6>"
    assert parse_fixed("ap_fixed<6,6>").hls() == "ap_int<6>"
    with pytest.raises(FixedPointError, match="unknown saturation mode 'AP_SATURATE'"):
        parse_fixed("ap_fixed<8,3,AP_RND,AP_SATURATE>")
    with pytest.raises(FixedPointError, match=r"width must be in \[1, 52\]"):
        parse_fixed("ap_fixed<64,8>")
    with pytest.raises(NonFiniteError, match="1 of 3 values .* are NaN or inf"):
        t.to_raw([0.0, np.nan, 1.0])


def test_doctests_of_the_package():
    import triggerad.fixedpoint

    for module in (triggerad.fixedpoint, fp_types):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted >= 2


def test_threshold_units_select_the_same_events_as_the_offline_cut():
    t = parse_fixed("ap_ufixed<18,10,AP_RND_CONV,AP_SAT>")
    raw = np.arange(0, 4000)
    scores = t.from_raw(raw)
    rng = np.random.default_rng(1)
    values = np.concatenate([scores[::97], (scores[:-1:89] + scores[1::89]) / 2,
                             rng.uniform(0, 16, 300), [0.0, 1023.99, 1e9]])
    for value in values:
        units = threshold_units(value, t)
        np.testing.assert_array_equal(raw > units, scores > value, err_msg=str(value))
    with pytest.raises(FixedPointError, match="threshold -0.5: expected a finite value >= 0"):
        threshold_units(-0.5, t)
    with pytest.raises(FixedPointError, match="threshold nan"):
        threshold_units(float("nan"), t)


def _dense(accum: Fixed, seed: int = 0) -> tuple[Dense, Fixed]:
    rng = np.random.default_rng(seed)
    x_t, w_t = Fixed(10, 4, rounding="AP_RND_CONV", saturation="AP_SAT"), Fixed(6, 2)
    weight, bias = rng.integers(-32, 32, (9, 5)), rng.integers(-32, 32, 5)
    result = Fixed(14, 6, rounding="AP_RND", saturation="AP_SAT")
    return Dense("d", "x", x_t, weight, w_t, bias, w_t, accum, result), x_t


def test_exact_accumulation_equals_the_stepwise_c_semantics():
    """The one-matrix-product shortcut gives what hls4ml's step-by-step accumulation gives
    whenever the accumulator can neither round nor overflow; narrow ones differ."""
    exact = fp_keras.mac_accumulator(Fixed(10, 4), Fixed(6, 2), Fixed(6, 2), 9)
    layer, x_t = _dense(exact)
    assert layer.exact_accum
    x = np.random.default_rng(2).integers(x_t.min_raw, x_t.max_raw + 1, (4000, 9)).astype(float)
    x[:50] = x_t.max_raw  # extremes
    x[50:100] = x_t.min_raw
    shortcut = layer.forward(x)
    np.testing.assert_array_equal(shortcut, layer.result.cast(layer._stepwise_sum(x), exact.frac))
    narrow, _ = _dense(Fixed(10, 4, rounding="AP_RND_CONV", saturation="AP_SAT"))  # 9 -> 5
    assert not narrow.exact_accum
    assert np.mean(narrow.forward(x) != shortcut) > 0.1
    pool_t = fp_keras.pooling_accumulator(Fixed(8, 3, False), 6)
    pool = GlobalAveragePooling1D("p", "x", Fixed(8, 3, False), 6, pool_t, pool_t)
    values = np.random.default_rng(3).integers(0, 256, (500, 6, 4)).astype(float)
    assert pool.exact_accum
    stepwise = GlobalAveragePooling1D("p", "x", Fixed(8, 3, False), 6, pool_t.with_modes(
        "AP_RND", "AP_SAT"), pool_t)
    stepwise.exact_accum = False
    np.testing.assert_array_equal(pool.forward(values), stepwise.forward(values))
    np.testing.assert_array_equal(pool.forward(values), (values.sum(axis=1) * 8) // 6)


def test_graph_results_do_not_depend_on_batching():
    layer, x_t = _dense(Fixed(12, 5, rounding="AP_TRN", saturation="AP_WRAP"))
    graph = FixedGraph([Input("x", x_t), layer], ["d"])
    x = np.random.default_rng(4).normal(0, 4, (3001, 9))
    whole = graph(x)[0]
    parts = np.concatenate([graph(part)[0] for part in np.array_split(x, 13)])
    np.testing.assert_array_equal(parts, whole)
    with pytest.raises(FixedPointError, match="no layer 'dd'.*did you mean 'd'"):
        graph.layer("dd")
    assert graph.to_dict()["outputs"] == ["d"] and len(graph.digest()) == 64


def test_graph_rebuilt_from_its_description_is_bit_identical():
    """FixedGraph.from_dict(to_dict()) (the model folder's fastpath.json) has the same digest and
    the same raw outputs, for every layer kind, a stepwise (narrow) accumulator included."""
    import json

    from triggerad.fixedpoint import Activation, ScaleShift, SumSquares, ThresholdBit

    x_t = Fixed(10, 4, rounding="AP_RND_CONV", saturation="AP_SAT")
    s_t, r_t = Fixed(12, 2, rounding="AP_RND_CONV", saturation="AP_SAT"), Fixed(10, 4)
    rng = np.random.default_rng(5)
    narrow, _ = _dense(Fixed(10, 4, rounding="AP_RND_CONV", saturation="AP_SAT"))  # 9 -> 5
    narrow = Dense("d", "s", r_t, narrow.weight, Fixed(6, 2), narrow.bias, Fixed(6, 2),
                   narrow.accum, narrow.result, pointwise=True)
    relu_t = Fixed(8, 3, False, "AP_RND_CONV", "AP_SAT")
    pool_t = fp_keras.pooling_accumulator(relu_t, 5)
    graph = FixedGraph([
        Input("x", x_t),
        ScaleShift("s", "x", x_t, rng.integers(-900, 900, 9), s_t, rng.integers(-3, 3, 9),
                   Fixed(4, 4), r_t),
        narrow,
        Activation("r", "d", narrow.result, "relu", relu_t),
        GlobalAveragePooling1D("p", "r", relu_t, 5, pool_t, pool_t),
        SumSquares("score", "p", pool_t, 5, Fixed(18, 10, False, "AP_RND_CONV", "AP_SAT")),
        ThresholdBit("bit", "score", 37),
    ], ["score", "bit"])
    rebuilt = FixedGraph.from_dict(json.loads(json.dumps(graph.to_dict())))
    assert rebuilt.digest() == graph.digest() and not rebuilt.layer("d").exact_accum
    assert rebuilt.layer("d").kind == "PointwiseConv1D"
    x = rng.normal(0, 6, (5000, 5, 9))  # 5 steps of 9 channels
    a, b = graph.run(x, keep=("d",)), rebuilt.run(x, keep=("d",))
    for name in ("d", "score", "bit"):
        np.testing.assert_array_equal(a[name], b[name])
    assert 0 < a["bit"].mean() < 1
    sub = rebuilt.subgraph(["score"])  # what the stream scorer evaluates for mu2_q alone
    assert [la.name for la in sub.layers] == ["x", "s", "d", "r", "p", "score"]
    np.testing.assert_array_equal(sub.run(x)["score"], a["score"])
    bad = graph.to_dict()
    bad["layers"][2]["kind"] = "Dense3D"
    with pytest.raises(FixedPointError, match="layer 'd': unknown kind 'Dense3D'"):
        FixedGraph.from_dict(bad)
    bad = graph.to_dict()
    del bad["layers"][2]["types"]["accum"]
    with pytest.raises(FixedPointError, match=r"layer 'd' \(PointwiseConv1D\): bad description"):
        FixedGraph.from_dict(bad)


def test_integer_relu_is_qkeras_quantized_relu_on_exact_inputs():
    """On inputs QKeras represents exactly (no float accumulation involved) the integer activation
    of ``quantized_relu(bits, integer)`` gives QKeras' values, boundaries and ties included."""
    from qkeras import QActivation, quantized_relu
    from tensorflow import keras

    x_t = Fixed(16, 6)
    raw = np.arange(x_t.min_raw, x_t.max_raw + 1, 7)
    for bits, integer in ((8, 3), (6, 0), (4, 2)):
        inp = keras.Input((len(raw),))
        model = keras.Model(inp, QActivation(quantized_relu(bits, integer), name="act")(inp))
        graph = fp_keras.from_keras(model, FixedPointConfig(input=x_t.hls()))
        out = graph(x_t.from_raw(raw)[None, :])[0]
        expected = model(x_t.from_raw(raw)[None, :].astype(np.float32)).numpy()
        np.testing.assert_array_equal(graph.value("act", out), expected)


def test_unsupported_models_and_overrides_are_refused():
    from qkeras import QConv1D, QDense, quantized_bits
    from tensorflow import keras

    q = quantized_bits(6, 0, alpha=1)
    inp = keras.Input((4,))
    with pytest.raises(FixedPointError, match="layer 'plain' kernel: no QKeras quantizer"):
        fp_keras.from_keras(keras.Model(inp, QDense(2, name="plain")(inp)), FixedPointConfig())
    with pytest.raises(FixedPointError, match="alpha=1"):
        auto = QDense(2, kernel_quantizer=quantized_bits(6, 0, alpha="auto"), bias_quantizer=q)
        fp_keras.from_keras(keras.Model(inp, auto(inp)), FixedPointConfig())
    with pytest.raises(FixedPointError, match="activation 'relu' inside QDense"):
        inner = QDense(2, kernel_quantizer=q, bias_quantizer=q, activation="relu", name="inner")
        fp_keras.from_keras(keras.Model(inp, inner(inp)), FixedPointConfig())
    seq = keras.Input((5, 3))
    with pytest.raises(FixedPointError, match="only pointwise Conv1D"):
        conv = QConv1D(2, 3, kernel_quantizer=q, bias_quantizer=q, name="c3")
        fp_keras.from_keras(keras.Model(seq, conv(seq)), FixedPointConfig())
    ok = keras.Model(inp, QDense(2, kernel_quantizer=q, bias_quantizer=q, name="q_mu")(inp))
    with pytest.raises(FixedPointError, match="no layer 'q_mus'.*did you mean 'q_mu'"):
        fp_keras.from_keras(ok, FixedPointConfig(layers={"q_mus": {"result": "ap_fixed<8,3>"}}))
    with pytest.raises(FixedPointError, match="not exactly representable in ap_fixed<4,1>"):
        fp_keras.from_keras(ok, FixedPointConfig(layers={"q_mu": {"weight": "ap_fixed<4,1>"}}))


def test_config_checks():
    from triggerad.config import build
    from triggerad.errors import ConfigError

    with pytest.raises(ConfigError, match="score must be an unsigned type"):
        build(FixedPointConfig, {"score": "ap_fixed<18,10>"}, where="train.yaml:quantization."
              "fixed_point")
    with pytest.raises(ConfigError, match=r"layers.q_mu: unknown precision 'acum'; valid: weight"):
        build(FixedPointConfig, {"layers": {"q_mu": {"acum": "auto"}}}, where="x")
    with pytest.raises(ConfigError, match=r"fixed_point: unknown key 'inputs'; did you mean 'input'"):
        build(FixedPointConfig, {"inputs": "ap_fixed<8,3>"}, where="fixed_point")
