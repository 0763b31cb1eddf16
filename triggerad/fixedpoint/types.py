"""Fixed-point types with the semantics of HLS ``ap_fixed`` / ``ap_ufixed``, in integer arithmetic.

A value of type ``ap_fixed<W, I>`` is held as its *raw* integer ``r`` (numpy int64): the value is
``r * 2**-(W - I)``. Assigning a value to a type (:meth:`Fixed.cast`) first applies the type's
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

Every operation is exact: widths up to :data:`MAX_WIDTH` bits, intermediate values checked to fit
in int64. Floats are converted exactly (:meth:`Fixed.to_raw`), whatever their number of bits.

Example
-------
>>> t = parse_fixed("ap_fixed<8,3,AP_RND_CONV,AP_SAT>")     # LSB 1/32, range [-4, 4 - 1/32]
>>> t.to_raw([0.015625, 0.046875, 5.0, -1.0]).tolist()      # 0.5 and 1.5 LSB: ties to even
[0, 2, 127, -32]
>>> t.cast([3, 5], frac=1).tolist()                          # 1.5 and 2.5 in a type with 1 frac bit
[48, 80]
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
#: Widest type supported (raw values and one extra bit for sums stay inside int64).
MAX_WIDTH = 62

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
    def cast(self, raw, frac: int, *, inplace: bool = False) -> np.ndarray:
        """Assign the values ``raw * 2**-frac`` (integers) to this type; returns the new raw values.

        Parameters
        ----------
        raw : int array
            Raw values, ``|raw| < 2**62``.
        frac : int
            Their fractional bits.
        inplace : bool
            ``raw`` (an int64 array) may be overwritten with the result.
        """
        raw = np.asarray(raw, dtype=np.int64)
        if not inplace:
            raw = raw.copy()
        shift = frac - self.frac
        if shift > 0:
            raw = _round_shift_inplace(raw, shift, self.rounding)
        elif shift < 0:
            raw = self._shift_left(raw, -shift)
        return self._overflow_inplace(raw)

    def to_raw(self, x) -> np.ndarray:
        """Raw values (int64) of the floats ``x`` assigned to this type, exact for any float.

        Raises
        ------
        NonFiniteError
            If ``x`` holds NaN or inf.
        FixedPointError
            For types wider than 58 bits.
        """
        if self.width > 58:
            raise FixedPointError(f"float conversion supports types up to 58 bits, found {self.hls()}")
        x = np.asarray(x)
        if x.dtype != np.float32 or self.frac < 0 or self.saturation == "AP_WRAP":
            x = x.astype(np.float64)  # float32 is kept only where ldexp/clip stay exact in it
        if not np.all(np.isfinite(x)):
            raise NonFiniteError(f"{int(np.sum(~np.isfinite(x)))} of {x.size} values to convert to "
                                 f"{self.hls()} are NaN or inf")
        scaled = np.ldexp(x, self.frac)  # exact (a power of two), same float type
        bound = 2.0**self.width
        if self.saturation == "AP_WRAP":
            scaled = np.fmod(scaled, bound)  # exact; keeps the value modulo 2^W (and its sign)
        else:
            np.clip(scaled, -bound, bound, out=scaled)  # beyond the range either way
        if self.rounding in _FLOAT_ROUNDING:  # exact for every float
            _FLOAT_ROUNDING[self.rounding](scaled, out=scaled)
            raw = scaled.astype(np.int64)
        else:  # two guard bits and a sticky bit below the LSB decide the other modes exactly
            fine = np.ldexp(scaled.astype(np.float64), 2)
            floor = np.floor(fine)
            raw = floor.astype(np.int64)
            raw <<= 1
            raw += fine != floor
            raw = _round_shift_inplace(raw, 3, self.rounding)
        return self._overflow_inplace(raw)

    def from_raw(self, raw) -> np.ndarray:
        """Values (float64) of raw integers of this type (exact: widths <= 53 bits)."""
        return np.ldexp(np.asarray(raw, dtype=np.float64), -self.frac)

    def quantize(self, x) -> np.ndarray:
        """Values of ``x`` after assignment to this type (float64), as HLS ``ap_fixed`` does it."""
        return self.from_raw(self.to_raw(x))

    def contains(self, other: Fixed) -> bool:
        """True if every value of ``other`` is exactly representable in this type."""
        if other.frac > self.frac:
            return False
        scale = 2 ** (self.frac - other.frac)
        return self.min_raw <= other.min_raw * scale and other.max_raw * scale <= self.max_raw

    # Internals ---------------------------------------------------------------------------------
    def _shift_left(self, raw: np.ndarray, bits: int) -> np.ndarray:
        if self.saturation == "AP_WRAP":  # modular: only the low bits matter
            return (raw.view(np.uint64) << np.uint64(bits)).view(np.int64)
        if bits > MAX_WIDTH:
            return np.sign(raw) * (2**MAX_WIDTH)  # any non-zero value overflows
        low, high = (self.min_raw >> bits) - 1, (self.max_raw >> bits) + 1
        np.clip(raw, low, high, out=raw)
        raw <<= bits
        return raw

    def _overflow_inplace(self, raw: np.ndarray) -> np.ndarray:
        lo, hi = self.min_raw, self.max_raw
        mode = self.saturation
        if mode == "AP_WRAP":
            raw &= (1 << self.width) - 1
            if self.signed:
                sign = raw >> (self.width - 1)
                sign <<= self.width
                raw -= sign
            return raw
        if mode == "AP_SAT_ZERO":
            raw[(raw < lo) | (raw > hi)] = 0
            return raw
        if mode == "AP_SAT_SYM" and self.signed:
            lo = -hi
        return np.clip(raw, lo, hi, out=raw)


#: Rounding modes that numpy float functions implement exactly (any float, any magnitude).
_FLOAT_ROUNDING = {"AP_RND_CONV": np.rint, "AP_TRN": np.floor, "AP_TRN_ZERO": np.trunc}


def round_shift(raw, bits: int, mode: str) -> np.ndarray:
    """``raw * 2**-bits`` rounded to an integer with an HLS quantization mode (``bits >= 1``).

    Closed forms on int64 (``half = 2**(bits - 1)``): ``AP_TRN`` ``raw >> bits``; ``AP_RND``
    ``(raw + half) >> bits``; ``AP_RND_MIN_INF`` ``(raw + half - 1) >> bits``; ``AP_RND_CONV``
    adds the parity of the truncated result, so ties go to even; ``AP_RND_ZERO``/``AP_RND_INF``
    move ties by the sign; ``AP_TRN_ZERO`` truncates the magnitude.
    """
    return _round_shift_inplace(np.array(raw, dtype=np.int64), bits, mode)


def _round_shift_inplace(r: np.ndarray, bits: int, mode: str) -> np.ndarray:
    """:func:`round_shift` overwriting the int64 array ``r``."""
    if bits > MAX_WIDTH:  # |r| < 2^62: the result is 0 or -1 before rounding
        r, bits = np.sign(r), 2
    half = 1 << (bits - 1)
    if mode == "AP_TRN":
        r >>= bits
    elif mode in ("AP_RND", "AP_RND_MIN_INF"):
        r += half if mode == "AP_RND" else half - 1
        r >>= bits
    elif mode == "AP_RND_CONV":
        parity = r >> bits
        parity &= 1
        r += half - 1
        r += parity
        r >>= bits
    elif mode in ("AP_RND_ZERO", "AP_RND_INF"):
        tie_down = r >= 0 if mode == "AP_RND_ZERO" else r < 0
        r += half
        r -= tie_down
        r >>= bits
    elif mode == "AP_TRN_ZERO":
        negative = r < 0
        np.abs(r, out=r)
        r >>= bits
        np.negative(r, out=r, where=negative)
    else:
        raise FixedPointError(f"unknown rounding mode {mode!r}; valid: {ROUNDING_MODES}")
    return r


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
        raise FixedPointError(f"{where}: width must be in [1, {MAX_WIDTH}], found {text!r}")
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

    ``floor(value / LSB)``, clipped to the type's largest value: for every score on the grid,
    ``raw * LSB > value`` holds exactly when ``raw > floor(value / LSB)``, so the firmware's
    integer comparison selects the same events as the offline cut on the same score.

    Raises
    ------
    FixedPointError
        For a NaN or negative threshold (the score is unsigned: such a cut cannot be expressed).
    """
    value = float(value)
    if not value >= 0:
        raise FixedPointError(f"threshold {value!r}: expected a finite value >= 0 for the unsigned "
                              f"score type {score_type.hls()}")
    if value >= (score_type.max_raw + 1) * score_type.lsb:
        return score_type.max_raw
    return math.floor(math.ldexp(value, score_type.frac))
