"""Trigger rates from weighted scores: rate strings, the cut at a target rate, Clopper-Pearson.

Conventions
-----------
- An event is *selected* when ``score > cut`` (strictly greater).
- Background events carry weights ``sigma x eff / N`` in pb (docs/architecture.md, "Weights"),
  so the weighted fraction above a cut is the fraction of the input rate that passes:
  ``rate = input_rate * sum(w[score > cut]) / sum(w)``.
- Rate uncertainties use the Clopper-Pearson interval on *effective* counts (Kish):
  ``n_eff = (sum w)^2 / sum w^2`` and ``k_eff = fraction * n_eff``. For unit weights these are
  the plain counts; for a cocktail mixing heavy and light weights they give the number of
  unweighted events carrying the same statistical power. The beta quantiles accept non-integer
  counts, so no rounding is done.

Negative weights
----------------
NLO generators give a fraction of events negative weights; they are supported everywhere, with
their sign: every fraction is a ratio of *signed* weighted sums, which needs a positive total.
``sum w^2`` counts both signs, so a sample with a fraction ``r`` of weights ``-w`` has
``n_eff = (1 - 2r)^2 n``: the effective count shrinks and the interval widens, as the variance
of a signed sum does. A signed fraction can leave [0, 1] by fluctuation (e.g. in a tail holding
mostly negative weights); the interval is then computed at the fraction clipped to [0, 1], and
the measured fraction is reported unclipped. The cut at a target rate is the tightest cut at which
the signed cumulative fraction reaches the target (see :func:`threshold_at_rate`).

Example
-------
>>> parse_rate("1kHz"), round(parse_rate("30/day") * 86400, 9)
(1000.0, 30.0)
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

import numpy as np
from scipy import stats

from triggerad.errors import ConfigError, NonFiniteError, ShapeError, StatisticsError

#: Seconds per day and per month (a month is 30 days throughout trigger-ad).
SECONDS_PER_DAY = 86400.0
SECONDS_PER_MONTH = 30 * SECONDS_PER_DAY
#: 1 pb in cm^2 and 1 fb^-1 in cm^-2.
PB_CM2 = 1e-36
INV_FB_CM2 = 1e39
#: Default confidence level of rate intervals (one Gaussian sigma).
ONE_SIGMA_CL = 0.6827

log = logging.getLogger(__name__)

_HZ_UNITS = {"": 1.0, "hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}
_PER_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0,
              "hour": 3600.0, "day": SECONDS_PER_DAY, "month": SECONDS_PER_MONTH}
_RATE_RE = re.compile(
    r"^\s*(?P<num>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>[A-Za-z]*|/\s*[A-Za-z]+)\s*$"
)
ACCEPTED_RATE_FORMS = (
    "a number in Hz ('250', '1e3'), a number with a unit Hz/kHz/MHz/GHz ('5Hz', '1kHz', "
    "'100 kHz', '40MHz'), or events per time unit ('30/day', '2/h', '1000/month', '5/s'; "
    "a month is 30 days)"
)


def _unit_factor(unit: str) -> float | None:
    """Hz per unit of ``unit`` (``"kHz"``, ``"/day"``, ...), or None if unknown."""
    if unit.startswith("/"):
        name = unit[1:].strip().lower()
        per = _PER_UNITS.get(name) or _PER_UNITS.get(name.removesuffix("s"))
        return 1.0 / per if per else None
    if unit.lower() == "mhz" and unit[0] != "M":
        return None  # millihertz ('mHz') is refused: too easily confused with MHz
    return _HZ_UNITS.get(unit.lower())


def parse_rate(text: str | float | int, what: str = "rate") -> float:
    """Parse a rate such as ``"1kHz"``, ``"100 kHz"``, ``"30/day"``, ``"5Hz"`` or ``"250"`` into Hz.

    Parameters
    ----------
    text : str or number
        The rate; plain numbers are in Hz. Units are case-insensitive except that ``MHz`` is
        megahertz (millihertz is not accepted, to avoid the ambiguity).
    what : str
        Name of the option, used in error messages.

    Returns
    -------
    float
        The rate in Hz (> 0).

    Raises
    ------
    ConfigError
        On an unparsable, zero or negative rate; the message lists the accepted forms.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _RATE_RE.match(str(text))
        if not match:
            raise ConfigError(f"{what}: cannot parse {text!r}; expected {ACCEPTED_RATE_FORMS}")
        number, unit = float(match["num"]), match["unit"]
        factor = _unit_factor(unit)
        if factor is None:
            raise ConfigError(f"{what}: unknown unit in {text!r}; expected {ACCEPTED_RATE_FORMS}")
        value = number * factor
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what}: expected a positive finite rate, found {text!r}")
    return value


def _check_scores_weights(scores: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Validate and return float64 copies of scores and weights (unit weights if None)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ShapeError(f"scores: expected a non-empty 1-d array, found shape {scores.shape}")
    weights = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != scores.shape:
        raise ShapeError(f"weights: expected shape {scores.shape} like the scores, found {weights.shape}")
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        raise NonFiniteError(f"scores: {bad} of {scores.size} values are NaN or inf")
    bad = int((~np.isfinite(weights)).sum())
    if bad:
        raise NonFiniteError(f"weights: {bad} of {weights.size} values are NaN or inf")
    if not weights.sum() > 0:
        negative = int((weights < 0).sum())
        raise StatisticsError(
            f"weights: the sum of the {weights.size} event weights is {weights.sum():.6g} "
            f"({negative} negative); a rate is a fraction of a positive total"
        )
    return scores, weights


def threshold_at_rate(scores: np.ndarray, weights: np.ndarray | None, target_fraction: float) -> float:
    """The score cut whose weighted fraction of events above it is closest to, not above, the target.

    Events are selected by ``score > cut``. Going down in score, the weighted fraction above the
    cut is accumulated; the cut is the tightest one at which the next event would take it above
    the target, i.e. the largest selection whose fraction and every tighter selection's fraction
    stay ``<= target_fraction``. With non-negative weights the fraction only grows and this is
    the largest selection not above the target; with negative weights it is the first crossing
    (a later dip back below the target is a fluctuation, not a looser valid cut). Either way the
    achieved fraction equals the target up to the weight of one event (more only when several
    events share the score at the boundary). Only cuts between distinct score values count; the
    cut lies half-way between the lowest selected and the highest rejected score.

    Parameters
    ----------
    scores : (n,) array
        Anomaly scores (higher = more anomalous).
    weights : (n,) array or None
        Event weights, negative ones allowed (None: unit weights); their sum must be positive.
    target_fraction : float
        Target weighted fraction of events above the cut, in (0, 1].

    Returns
    -------
    float
        The cut value.
    """
    scores, weights = _check_scores_weights(scores, weights)
    if not 0 < target_fraction <= 1:
        raise ValueError(f"target_fraction: expected a value in (0, 1], found {target_fraction!r}")
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    cum = np.concatenate([[0.0], np.cumsum(weights[order])]) / weights.sum()
    # k events selected is possible when k == 0, k == n or s[k-1] > s[k]
    k_all = np.arange(s.size + 1)
    separable = np.ones(s.size + 1, dtype=bool)
    separable[1:-1] = s[:-1] > s[1:]
    below = np.maximum.accumulate(cum) <= target_fraction * (1 + 1e-12)
    k = int(k_all[separable & below].max())
    if k == 0:
        return float(s[0])
    if k == s.size:
        return float(np.nextafter(s[-1], -np.inf))
    hi, lo = s[k - 1], s[k]
    mid = lo + (hi - lo) / 2
    return float(mid if lo <= mid < hi else lo)


def fraction_above(scores: np.ndarray, weights: np.ndarray | None, cut: float) -> float:
    """Weighted fraction of events with ``score > cut``."""
    scores, weights = _check_scores_weights(scores, weights)
    return float(weights[scores > cut].sum() / weights.sum())


def effective_count(weights: np.ndarray) -> float:
    """Kish effective number of events ``(sum w)^2 / sum w^2`` (signed sum; see module docs)."""
    weights = np.asarray(weights, dtype=np.float64)
    sum_sq = float(np.sum(weights**2))
    return float(weights.sum() ** 2 / sum_sq) if sum_sq > 0 else 0.0


def clopper_pearson(k: float, n: float, cl: float = ONE_SIGMA_CL) -> tuple[float, float]:
    """Clopper-Pearson (exact binomial) interval of the fraction ``k / n``.

    Non-integer ``k`` and ``n`` (effective counts) are allowed.

    Parameters
    ----------
    k : float
        Number of (effective) events passing.
    n : float
        Number of (effective) events in total.
    cl : float
        Confidence level of the central interval.

    Returns
    -------
    (low, high) : tuple of float
        Bounds of the fraction.
    """
    if not (n > 0 and 0 <= k <= n and 0 < cl < 1):
        raise ValueError(f"clopper_pearson: expected 0 <= k <= n, n > 0, 0 < cl < 1; found {k=}, {n=}, {cl=}")
    alpha = 1 - cl
    low = float(stats.beta.ppf(alpha / 2, k, n - k + 1)) if k > 0 else 0.0
    high = float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k)) if k < n else 1.0
    return low, high


@dataclass
class RateResult:
    """The rate a cut achieves on a weighted background sample.

    Attributes
    ----------
    cut : float
        The score cut (events with ``score > cut`` are selected).
    fraction : float
        Weighted (signed) fraction of background above the cut.
    ci_low, ci_high : float
        Clopper-Pearson bounds of the fraction (effective counts; the fraction clipped to [0, 1]).
    n_above : int
        Number of (unweighted) background events above the cut.
    n_total : int
        Number of background events.
    n_eff, k_eff : float
        Effective number of events in total / above the cut.
    cl : float
        Confidence level of the interval.
    n_negative : int
        Number of background events with a negative weight.
    """

    cut: float
    fraction: float
    ci_low: float
    ci_high: float
    n_above: int
    n_total: int
    n_eff: float
    k_eff: float
    cl: float
    n_negative: int = 0


def rate_at_cut(
    scores: np.ndarray, weights: np.ndarray | None, cut: float, *, cl: float = ONE_SIGMA_CL
) -> RateResult:
    """Measure the weighted fraction above ``cut`` with its Clopper-Pearson interval.

    Parameters
    ----------
    scores, weights : (n,) arrays
        Background scores and weights (None: unit weights).
    cut : float
        Score cut.
    cl : float
        Confidence level of the interval.
    """
    scores, weights = _check_scores_weights(scores, weights)
    above = scores > cut
    fraction = float(weights[above].sum() / weights.sum())
    n_eff = effective_count(weights)
    k_eff = min(max(fraction, 0.0), 1.0) * n_eff
    low, high = clopper_pearson(k_eff, n_eff, cl)
    return RateResult(
        cut=float(cut), fraction=fraction, ci_low=low, ci_high=high, n_above=int(above.sum()),
        n_total=int(scores.size), n_eff=n_eff, k_eff=k_eff, cl=cl,
        n_negative=int((weights < 0).sum()),
    )


def check_statistics(result: RateResult, target_fraction: float, *, min_events: float = 10) -> None:
    """Refuse a rate measured with too few background events above the cut.

    The refusal counts the (unweighted) events above the cut; when they are enough but their
    Kish effective number is not (very unequal weights), a warning is logged instead (the
    Clopper-Pearson interval, computed on effective counts, is then wide).

    Raises
    ------
    StatisticsError
        When fewer than ``min_events`` background events pass; the message says how many
        background events are needed: about ``min_events / target_fraction``.
    """
    if result.n_above < min_events:
        needed = math.ceil(min_events / target_fraction)
        raise StatisticsError(
            f"only {result.n_above} background events pass the cut at a target fraction of "
            f"{target_fraction:.3g}; at least {min_events:g} are needed for a meaningful rate, i.e. "
            f"about {needed} background events in total (~{min_events:g}/fraction, more when the "
            f"weights vary); this sample has {result.n_total} events ({result.n_eff:.1f} "
            "effective). Use a larger background sample or a higher rate."
        )
    if result.k_eff < min_events:
        log.warning(
            "%d background events pass the cut but only %.1f effective ones (unequal weights); "
            "the rate interval is wide", result.n_above, result.k_eff,
        )


def rate_curve(
    scores: np.ndarray, weights: np.ndarray | None, *, n_points: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted fraction above the cut as a function of the cut, sampled at score quantiles.

    Parameters
    ----------
    scores, weights : (n,) arrays
        Background scores and weights.
    n_points : int
        Number of cut values (log-spaced in the tail: quantiles 1 - 10^-x).

    Returns
    -------
    cuts, fractions : (m,) arrays
        Increasing unique cut values and the weighted fraction of events above each.
    """
    scores, weights = _check_scores_weights(scores, weights)
    tail = np.logspace(0, np.log10(1.0 / scores.size), n_points)
    cuts = np.unique(np.quantile(scores, 1.0 - tail))
    order = np.argsort(scores)
    s, w = scores[order], weights[order]
    above = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])
    fractions = above[np.searchsorted(s, cuts, side="right")] / w.sum()
    return cuts, fractions


def efficiency(scores: np.ndarray, cut: float, weights: np.ndarray | None = None) -> float:
    """(Weighted) fraction of events with ``score > cut`` — a signal efficiency."""
    return fraction_above(scores, weights, cut)


def xsec_for_events(eff: float, luminosity_pb: float, n_events: float = 100.0) -> float | None:
    """Cross-section in pb giving ``n_events`` selected events: ``n / (eff * L)``.

    Parameters
    ----------
    eff : float
        Selection efficiency.
    luminosity_pb : float
        Integrated luminosity in pb^-1 (e.g. one month: 5 fb^-1 = 5000 pb^-1).
    n_events : float
        Number of selected events.

    Returns
    -------
    float or None
        The cross-section, or None when the efficiency is zero (no cross-section suffices).
    """
    return n_events / (eff * luminosity_pb) if eff > 0 else None


def mean_luminosity_cm2s(luminosity_fb_per_month: float) -> float:
    """Average instantaneous luminosity (cm^-2 s^-1) of an integrated luminosity per 30-day month."""
    return luminosity_fb_per_month * INV_FB_CM2 / SECONDS_PER_MONTH
