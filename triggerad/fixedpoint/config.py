"""The fixed-point definition of a quantized model (config section ``quantization.fixed_point``).

It is stored with the model (``MODEL/artifact.json``), and everything that computes a quantized
score reads it from there: the integer evaluation (:func:`triggerad.fixedpoint.from_keras`), the
threshold, the stream fast path and the firmware conversion, which passes the resulting per-layer
types to hls4ml explicitly. Weight, bias and activation types come from the QKeras quantizers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from triggerad.fixedpoint.types import FixedPointError, parse_fixed

#: Per-layer precision keys that can be set in ``layers``.
LAYER_KEYS = ("weight", "bias", "accum", "result")


def _check_type(text: str, where: str, allow_auto: bool = False) -> None:
    if not (allow_auto and text == "auto"):
        parse_fixed(text, where)


@dataclass
class FixedPointConfig:
    """Fixed-point types of a quantized model's graph (HLS type strings).

    Attributes
    ----------
    input : str
        Raw (physical) inputs, e.g. pT in GeV, eta and phi in radians.
    normalised : str
        Normalised inputs ``(x - mean) / scale``, computed as ``x * s + b`` in fixed point.
    norm_constants_bits : int
        Significant bits of the normalisation constants ``s = 1/scale`` and ``b = -mean/scale``
        (their types are derived from the values: the integer bits cover the largest, the
        fractional bits give the smallest this many significant bits).
    power_of_two_scales : bool
        The normalisation scales are exact powers of two (training rounds the fitted scales to
        the nearest power of two, as AXOL1TL shifts pT by a constant), so ``s = 1/scale`` is a
        shift: no multiplier and, in the RTL, no adder. Building the graph checks it.
    accum, result : str
        Accumulator and result types of Dense / pointwise Conv1D layers: ``auto`` (exact widths
        from the weight, bias and input types, as hls4ml infers them) or a type.
    score : str
        The anomaly score (sum of mu^2); must be unsigned.
    layers : dict
        Per-layer overrides ``{layer_name: {weight|bias|accum|result: type}}``.
    """

    input: str = "ap_fixed<18,13,AP_RND_CONV,AP_SAT>"
    normalised: str = "ap_fixed<16,7,AP_RND_CONV,AP_SAT>"
    norm_constants_bits: int = 12
    power_of_two_scales: bool = False
    accum: str = "auto"
    result: str = "auto"
    score: str = "ap_ufixed<18,10,AP_RND_CONV,AP_SAT>"
    layers: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("input", "normalised", "score"):
            _check_type(getattr(self, key), key)
        for key in ("accum", "result"):
            _check_type(getattr(self, key), key, allow_auto=True)
        if parse_fixed(self.score).signed:
            raise FixedPointError(f"score must be an unsigned type (ap_ufixed), found {self.score!r}")
        if not isinstance(self.power_of_two_scales, bool):
            raise FixedPointError(f"power_of_two_scales must be true or false, found "
                                  f"{self.power_of_two_scales!r}")
        if self.norm_constants_bits < 2:
            raise FixedPointError(f"norm_constants_bits must be >= 2, found "
                                  f"{self.norm_constants_bits!r}")
        for name, over in self.layers.items():
            for key, text in over.items():
                if key not in LAYER_KEYS:
                    raise FixedPointError(f"layers.{name}: unknown precision {key!r}; valid: "
                                          f"{', '.join(LAYER_KEYS)}")
                _check_type(text, f"layers.{name}.{key}", allow_auto=key in ("accum", "result"))
