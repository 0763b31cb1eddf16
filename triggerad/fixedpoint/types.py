"""Fixed-point types with the semantics of HLS ``ap_fixed`` / ``ap_ufixed``, in exact integer arithmetic.

A value of type ``ap_fixed<W, I>`` is held as its *raw* integer ``r``: the value is
``r * 2**-(W - I)``. Raw integers are stored in float64 arrays: every integer below 2**53 is
exactly representable there, and sums, products, scalings by powers of two, ``floor``,
``rint``, ``trunc``, ``fmod`` and comparisons of such integers are exact, whatever the CPU, the
BLAS library or the order of the operations, as long as no value reaches 2**53. Widths are
limited to :data:`MAX_WIDTH` bits and every layer checks the bounds of its intermediate values
when it is built (:data:`EXACT_LIMIT`), so this *is* integer arithmetic - and it lets matrix
products run as BLAS calls. Assigning a value to a type (:meth:`Fixed.cast`) first applies the type's
quantization mode to the bits below its LSB, then its overflow mode to the bits above its MSB,
exactly as the Xilinx ``ap_fixed`` headers do (and hence hls4ml's C simulation):

=================  ==========================================================================
``AP_TRN``         truncate towards minus infinity (the HLS default)
``AP_TRN_ZERO``    truncate towards zero
``AP_RND``         round to nearest, ties towards plus infinity
``AP_RND_ZERO``    round to nearest, ties towards zero
``AP_RND_MIN_INF`` round to nearest, ties towards minus infinity
``AP_RND_INF``     round to nearest, ties away from zero
``AP_RND_CONV``    round to nearest, ties to even (convergent)
``AP_WRAP``        keep the low ``W`` bits (two's complement wrap-around; the HLS default)
``AP_SAT``         clip to the type's range
``AP_SAT_ZERO``    set to zero when out of range
``AP_SAT_SYM``     clip to ``[-max, max]`` (signed types; as ``AP_SAT`` for unsigned ones)
=================  ==========================================================================

Floats are converted exactly (:meth:`Fixed.to_raw`), whatever their number of bits.

Example
-------
>>> t = parse_fixed("ap_fixed<8,3,AP_RND_CONV,AP_SAT>")     # LSB 1/32, range [-4, 4 - 1/32]
>>> t.to_raw([0.015625, 0.046875, 5.0, -1.0]).tolist()      # 0.5 and 1.5 LSB: ties to even
[0.0, 2.0, 127.0, -32.0]
>>> t.cast([3, 5], frac=1).tolist()                          # 1.5 and 2.5 in a type with 1 frac bit
[48.0, 80.0]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from triggerad.errors import NonFiniteError, TriggerADError

ROUNDING_MODES = ("AP_TRN", "AP_TRN_ZERO", "AP_RND", "AP_RND_CONV", "AP_RND_ZERO", "AP_RND_INF",
                  "AP_RND_MIN_INF")
SATURATION_MODES = ("AP_WRAP", "AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM")
#: Widest type supported.
MAX_WIDTH = 52
#: Bound of every raw value and intermediate integer: below it float64 integer arithmetic is exact
#: (with a bit of headroom for the overflow arithmetic).
EXACT_LIMIT = 2**52

_FIXED_RE = re.compile(
    r"^\s*ap_(u?)(fixed|int)\s*<\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?(?:,\s*(AP_\w+)\s*)?(?:,\s*(AP_\w+)\s*)?>\s*$"
)


class FixedPointError(TriggerADError, ValueError):
    """A fixed-point type, value or network the integer arithmetic cannot represent exactly."""


@dataclass(frozen=True)
class Fixed:
    """A fixed-point type: ``width`` bits of which ``integer`` (including the sign) are integer bits.

    Attributes
    ----------
    width, integer : int
        Total and integer bits, as in ``ap_fixed<width, integer>`` (``integer`` may exceed
        ``width`` or be negative, as in HLS).
    signed : bool
        ``ap_fixed`` (True) or ``ap_ufixed`` (False).
    rounding, saturation : str
        HLS quantization (``AP_TRN``, ``AP_RND_CONV``, ...) and overflow (``AP_WRAP``,
        ``AP_SAT``, ...) modes applied when a value is assigned to this type.
    """

    width: int
    integer: int
    signed: bool = True
    rounding: str = "AP_TRN"
    saturation: str = "AP_WRAP"

    def __post_init__(self) -> None:
        if not 1 <= self.width <= MAX_WIDTH:
            raise FixedPointError(f"fixed-point width must be in [1, {MAX_WIDTH}], found "
                                  f"{self.width!r} in {self.hls()}")
        if self.rounding not in ROUNDING_MODES:
            raise FixedPointError(f"unknown rounding mode {self.rounding!r}; valid: {ROUNDING_MODES}")
        if self.saturation not in SATURATION_MODES:
            raise FixedPointError(f"unknown saturation mode {self.saturation!r}; valid: "
                                  f"{SATURATION_MODES}")

    @property
    def frac(self) -> int:
        """Fractional bits."""
        return self.width - self.integer

    @property
    def lsb(self) -> float:
        """Value of the least significant bit."""
        return 2.0 ** -self.frac

    @property
    def min_raw(self) -> int:
        """Smallest representable value in LSB units."""
        return -(2 ** (self.width - 1)) if self.signed else 0

    @property
    def max_raw(self) -> int:
        """Largest representable value in LSB units."""
        return 2 ** (self.width - 1) - 1 if self.signed else 2**self.width - 1

    def hls(self) -> str:
        """The HLS type string (modes written only when they differ from the defaults;
        ``ap_int``/``ap_uint`` for integers with the default modes)."""
        sign = "" if self.signed else "u"
        if (self.rounding, self.saturation) == ("AP_TRN", "AP_WRAP"):
            if self.frac == 0:
                return f"ap_{sign}int<{self.width}>"
            return f"ap_{sign}fixed<{self.width},{self.integer}>"
        return f"ap_{sign}fixed<{self.width},{self.integer},{self.rounding},{self.saturation}>"

    def with_modes(self, rounding: str, saturation: str) -> Fixed:
        """The same type with other rounding/saturation modes."""
        return Fixed(self.width, self.integer, self.signed, rounding, saturation)

    # Conversions -------------------------------------------------------------------------------
    def assign(self, v: np.ndarray) -> np.ndarray:
        """Assign values given in LSB units of this type (float64, possibly fractional) to this
        type: rounding, then overflow. Overwrites and returns ``v``.

        (For ``AP_SAT``/``AP_SAT_SYM`` the clipping is done first: every rounding mode is
        monotonic and leaves the integer bounds unchanged, so the result is the same.)
        """
        if self.saturation in ("AP_SAT", "AP_SAT_SYM"):
            return _round_inplace(self._overflow_inplace(v), self.rounding)
        _round_inplace(v, self.rounding)
        return self._overflow_inplace(v)

    def cast(self, raw, frac: int, *, inplace: bool = False) -> np.ndarray:
        """Assign the values ``raw * 2**-frac`` (integers) to this type; returns the new raw values.

        Parameters
        ----------
        raw : array of integers
            Raw values, ``|raw| < 2**52``.
        frac : int
            Their fractional bits.
        inplace : bool
            ``raw`` (a float64 array) may be overwritten with the result.
        """
        v = np.array(raw, dtype=np.float64, copy=not inplace)
        shift = frac - self.frac
        if shift < 0 and self.saturation == "AP_WRAP":  # more fractional bits: wrap first
            v = _residue(v, self.width + shift) if shift > -self.width else np.zeros_like(v)
        if shift:
            v *= 2.0**-shift
        return self.assign(v)

    def to_raw(self, x, *, compact: bool = False) -> np.ndarray:
        """Raw values (integer-valued float64) of the floats ``x`` assigned to this type, exact
        for any float.

        Parameters
        ----------
        x : float array
            Values.
        compact : bool
            Return float32 when that is exact too (float32 ``x``, a saturating type of at most
            24 bits with ``frac >= 0``): half the memory traffic for wide inputs.

        Raises
        ------
        NonFiniteError
            If ``x`` holds NaN or inf.
        """
        x = np.asarray(x)
        # the extremes are finite exactly when every value is (NaN propagates through min/max);
        # they also tell the clipping below which bounds the values cross
        extremes = (x.min(), x.max()) if x.size and x.dtype.kind == "f" else None
        if (not np.isfinite(extremes).all()) if extremes else not np.isfinite(x).all():
            raise NonFiniteError(f"{int(np.sum(~np.isfinite(x)))} of {x.size} values to convert to "
                                 f"{self.hls()} are NaN or inf")
        small = (compact and x.dtype == np.float32 and self.width <= 24 and self.frac >= 0
                 and self.saturation in ("AP_SAT", "AP_SAT_SYM"))
        # exact: a scaling by a power of two (in float32 an overflow becomes inf, then saturates)
        v = np.multiply(x, 2.0**self.frac, dtype=np.float32 if small else np.float64)
        bound = 2.0**self.width
        if self.saturation == "AP_WRAP":
            np.fmod(v, bound, out=v)  # exact; keeps the value modulo 2^W (and its sign)
        elif self.saturation == "AP_SAT_ZERO":
            _clip(v, -bound, bound)  # out of range either way
        elif extremes is not None:  # AP_SAT, AP_SAT_SYM: clip (with the known extremes), round
            with np.errstate(over="ignore"):  # beyond float64: inf, clipped the same
                scaled = np.ldexp(np.array(extremes, dtype=np.float64), self.frac)
            return _round_inplace(self._overflow_inplace(v, extremes=scaled), self.rounding)
        return self.assign(v)

    def from_raw(self, raw) -> np.ndarray:
        """Values (float64) of raw integers of this type (exact)."""
        return np.ldexp(np.asarray(raw, dtype=np.float64), -self.frac)

    def quantize(self, x) -> np.ndarray:
        """Values of ``x`` after assignment to this type (float64), as HLS ``ap_fixed`` does it."""
        return self.from_raw(self.to_raw(x))

    def contains(self, low: int, high: int, frac: int) -> bool:
        """True if every integer in ``[low, high]`` with ``frac`` fractional bits is exactly
        representable in this type (assigning it changes nothing)."""
        if frac > self.frac:
            return False
        scale = 2 ** (self.frac - frac)
        return self.min_raw <= low * scale and high * scale <= self.max_raw

    # Internals ---------------------------------------------------------------------------------
    def _overflow_inplace(self, v: np.ndarray, extremes=None) -> np.ndarray:
        lo, hi = self.min_raw, self.max_raw
        mode = self.saturation
        if mode == "AP_WRAP":
            v = _residue(v, self.width)
            if self.signed:
                v[v > hi] -= 2.0**self.width
            return v
        if mode == "AP_SAT_ZERO":
            v[(v < lo) | (v > hi)] = 0.0
            return v
        if mode == "AP_SAT_SYM" and self.signed:
            lo = -hi
        return _clip(v, lo, hi, extremes)


def _clip(v: np.ndarray, lo: float, hi: float, extremes=None) -> np.ndarray:
    """``np.clip(v, lo, hi, out=v)``, faster (numpy's clip takes a slow path for floats).

    A bound the values do not cross is not applied: a reduction reads the array, where a clip
    also writes it (the integer graph is ~15 % faster; the values are the same). ``extremes``:
    the smallest and largest value of ``v`` when the caller knows them (no reduction then).
    """
    if extremes is not None:
        if extremes[0] < lo:
            np.maximum(v, lo, out=v)
        if extremes[1] > hi:
            np.minimum(v, hi, out=v)
        return v
    if not v.size or v.min() < lo:
        np.minimum(v, hi, out=v)
        return np.maximum(v, lo, out=v)
    if v.max() > hi:
        np.minimum(v, hi, out=v)
    return v


def _residue(v: np.ndarray, bits: int) -> np.ndarray:
    """``v mod 2**bits`` in ``[0, 2**bits)`` for integer-valued float64 ``v`` (exact, in place)."""
    np.fmod(v, 2.0**bits, out=v)
    v[v < 0] += 2.0**bits
    return v


def _round_inplace(v: np.ndarray, mode: str) -> np.ndarray:
    """Round ``v`` (float64, in LSB units) to integers with an HLS quantization mode, in place.

    ``floor``, ``rint`` (ties to even), ``trunc`` and the remainder ``v - floor(v)`` are exact for
    every float, so each mode is exact: ties are detected as a remainder of exactly one half.
    """
    if mode == "AP_RND_CONV":
        return np.rint(v, out=v)
    if mode == "AP_TRN":
        return np.floor(v, out=v)
    if mode == "AP_TRN_ZERO":
        return np.trunc(v, out=v)
    if mode not in ROUNDING_MODES:
        raise FixedPointError(f"unknown rounding mode {mode!r}; valid: {ROUNDING_MODES}")
    floor = np.floor(v)
    remainder = v - floor
    up = remainder > 0.5
    if mode != "AP_RND_MIN_INF":  # ties: up for AP_RND, towards zero / away from zero
        tie = remainder == 0.5
        if mode == "AP_RND_ZERO":
            tie &= v < 0
        elif mode == "AP_RND_INF":
            tie &= v > 0
        up |= tie
    np.add(floor, up, out=v)
    return v


def round_shift(raw, bits: int, mode: str) -> np.ndarray:
    """``raw * 2**-bits`` rounded to integers with an HLS quantization mode (float64 result)."""
    return _round_inplace(np.ldexp(np.asarray(raw, dtype=np.float64), -bits), mode)


def parse_fixed(text: str, where: str = "precision") -> Fixed:
    """Parse an HLS fixed-point or integer type string into a :class:`Fixed`.

    Parameters
    ----------
    text : str
        E.g. ``ap_fixed<16,6>``, ``ap_ufixed<18,10,AP_RND_CONV,AP_SAT>``, ``ap_uint<1>``.
    where : str
        Config key for error messages.

    Raises
    ------
    FixedPointError
        If the string is not a fixed-point/integer type or has unknown modes.
    """
    m = _FIXED_RE.match(str(text))
    if not m:
        raise FixedPointError(
            f"{where}: expected an HLS type like 'ap_fixed<16,6>' or 'ap_ufixed<18,10,AP_RND_CONV,"
            f"AP_SAT>', found {text!r}"
        )
    unsigned, kind, width, integer, rnd, sat = m.groups()
    width = int(width)
    if kind == "int":
        integer = width
    elif integer is None:
        raise FixedPointError(f"{where}: {text!r} needs both width and integer bits")
    rnd, sat = rnd or "AP_TRN", sat or "AP_WRAP"
    if rnd not in ROUNDING_MODES:
        raise FixedPointError(f"{where}: unknown rounding mode {rnd!r} in {text!r}; valid: "
                              f"{ROUNDING_MODES}")
    if sat not in SATURATION_MODES:
        raise FixedPointError(f"{where}: unknown saturation mode {sat!r} in {text!r}; valid: "
                              f"{SATURATION_MODES}")
    if not 1 <= width <= MAX_WIDTH:
        raise FixedPointError(f"{where}: width must be in [1, {MAX_WIDTH}] (exact arithmetic in "
                              f"float64 integers), found {text!r}")
    return Fixed(width, int(integer), not unsigned, rnd, sat)


def fixed_covering(values, significant_bits: int, signed: bool = True) -> Fixed:
    """The narrowest type holding ``values`` with ``significant_bits`` on the smallest one.

    Used for constants such as normalisation scales: the integer bits cover the largest
    magnitude, the fractional bits give the smallest non-zero magnitude ``significant_bits`` of
    precision. Rounding to nearest (ties to even), saturating.
    """
    mags = np.abs(np.asarray(values, dtype=np.float64))
    nonzero = mags[mags > 0]
    if nonzero.size == 0:
        return Fixed(2, 2, signed, "AP_RND_CONV", "AP_SAT")
    integer = max(1, math.floor(math.log2(nonzero.max())) + 1) + (1 if signed else 0)
    frac = max(0, significant_bits - math.floor(math.log2(nonzero.min())) - 1)
    return Fixed(integer + frac, integer, signed, "AP_RND_CONV", "AP_SAT")


def threshold_units(value: float, score_type: Fixed) -> int:
    """The cut ``score > value`` as a cut on raw score units: ``raw > threshold_units``.

    ``floor(value / LSB)``, clipped to ``[min_raw - 1, max_raw]``: for every score on the grid,
    ``raw * LSB > value`` holds exactly when ``raw > floor(value / LSB)``, so the firmware's
    integer comparison selects the same events as the offline cut on the same score. A signed
    score type (e.g. a classifier logit) takes negative cuts; below its range the bit always
    fires (``min_raw - 1``), above it never (``max_raw``).

    Raises
    ------
    FixedPointError
        For a NaN or infinite threshold, or a negative one on an unsigned score type (such a cut
        cannot be expressed).
    """
    value = float(value)
    if not math.isfinite(value) or (value < 0 and not score_type.signed):
        raise FixedPointError(f"threshold {value!r}: expected a finite value"
                              + ("" if score_type.signed else " >= 0")
                              + f" for the {'signed' if score_type.signed else 'unsigned'} "
                              f"score type {score_type.hls()}")
    if value >= (score_type.max_raw + 1) * score_type.lsb:
        return score_type.max_raw
    if value < score_type.min_raw * score_type.lsb:
        return score_type.min_raw - 1
    return math.floor(math.ldexp(value, score_type.frac))
