"""The score cut of a model at a target trigger rate, stored as ``MODEL/threshold.json``.

The cut is computed on the weighted SM validation cocktail of the model (or on files or a sample
list given explicitly) with :func:`triggerad.rates.threshold_at_rate`; an event is selected when
``score > value``. Negative event weights are used with their sign. The record holds the achieved
rate with its Clopper-Pearson interval on Kish effective counts (see :mod:`triggerad.rates`) and
the fingerprint of the data it was set on.

A target is one of: a rate in Hz (needs the input rate), a number of events per day (the same,
``N / 86400`` Hz) or a false-positive rate (a weighted fraction). The input rate is either given
or derived from the weighted cross-section of the background and an instantaneous luminosity:
``input_rate = sigma_total [pb] x 1e-36 x L [cm^-2 s^-1]``.

Example
-------
>>> target = Target(events_per_day=33)
>>> round(target.rate_hz(input_rate_hz=70.0) * 86400, 6)
33.0
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import numpy as np

from triggerad import rates
from triggerad.errors import ConfigError, did_you_mean
from triggerad.provenance import provenance

#: Keys every ``threshold.json`` holds (other commands rely on them).
REQUIRED_KEYS = (
    "score", "value", "target_rate_hz", "input_rate_hz", "achieved_rate_hz", "rate_ci_low_hz",
    "rate_ci_high_hz", "n_background_above", "dataset_fingerprint",
)


@dataclass(frozen=True)
class Target:
    """A target trigger rate: exactly one of ``rate`` (Hz), ``events_per_day`` or ``fpr``."""

    rate: float | None = None
    events_per_day: float | None = None
    fpr: float | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("rate", "events_per_day", "fpr") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(
                f"threshold target: give exactly one of rate, events_per_day, fpr; found {given!r}"
            )
        value = getattr(self, given[0])
        if not value > 0 or (self.fpr is not None and self.fpr > 1):
            raise ConfigError(f"threshold target: {given[0]} must be > 0 (fpr <= 1), found {value!r}")

    def rate_hz(self, input_rate_hz: float) -> float:
        """The target rate in Hz for a given input rate."""
        if self.rate is not None:
            return self.rate
        if self.events_per_day is not None:
            return self.events_per_day / rates.SECONDS_PER_DAY
        return self.fpr * input_rate_hz

    def fraction(self, input_rate_hz: float) -> float:
        """The target weighted fraction of the input stream."""
        if self.fpr is not None:
            return self.fpr
        fraction = self.rate_hz(input_rate_hz) / input_rate_hz
        if fraction > 1:
            raise ConfigError(
                f"threshold target: the target rate {self.rate_hz(input_rate_hz):.4g} Hz exceeds "
                f"the input rate {input_rate_hz:.4g} Hz"
            )
        return fraction


def input_rate_from_luminosity(sigma_total_pb: float, luminosity_cm2s: float) -> float:
    """Input rate in Hz of a stream of cross-section ``sigma_total_pb`` at a luminosity.

    Parameters
    ----------
    sigma_total_pb : float
        Total (post-trigger) cross-section in pb: the sum of the event weights of the full sample.
    luminosity_cm2s : float
        Instantaneous luminosity in cm^-2 s^-1.
    """
    return sigma_total_pb * rates.PB_CM2 * luminosity_cm2s


def threshold_record(
    scores: np.ndarray,
    weights: np.ndarray,
    target: Target,
    input_rate_hz: float,
    *,
    cl: float = rates.ONE_SIGMA_CL,
    min_events: float = 10,
) -> dict[str, Any]:
    """Compute the cut at the target and the achieved rate: the numeric part of ``threshold.json``.

    Parameters
    ----------
    scores, weights : (n,) arrays
        Background scores and weights.
    target : Target
        The target rate.
    input_rate_hz : float
        Rate of the stream the background sample represents.
    cl : float
        Confidence level of the rate interval.
    min_events : float
        Refuse (:class:`~triggerad.errors.StatisticsError`) when fewer background
        events pass the cut.

    Returns
    -------
    dict
        ``value``, ``fpr``, ``target_rate_hz``, ``input_rate_hz``, ``achieved_fraction``,
        ``achieved_rate_hz``, ``rate_ci_low_hz``, ``rate_ci_high_hz``, ``rate_ci_cl``,
        ``ci_method``, ``n_background_above``, ``n_background_total``,
        ``n_background_negative_weight``, ``n_eff``, ``k_eff``, ``selection``.
    """
    fraction = target.fraction(input_rate_hz)
    cut = rates.threshold_at_rate(scores, weights, fraction)
    result = rates.rate_at_cut(scores, weights, cut, cl=cl)
    rates.check_statistics(result, fraction, min_events=min_events)
    return {
        "value": cut,
        "selection": "score > value",
        "fpr": fraction,
        "target_rate_hz": target.rate_hz(input_rate_hz),
        "input_rate_hz": input_rate_hz,
        "achieved_fraction": result.fraction,
        "achieved_rate_hz": result.fraction * input_rate_hz,
        "rate_ci_low_hz": result.ci_low * input_rate_hz,
        "rate_ci_high_hz": result.ci_high * input_rate_hz,
        "rate_ci_cl": cl,
        "ci_method": "Clopper-Pearson on Kish effective counts: n_eff = (sum w)^2 / sum w^2, "
        "k_eff = achieved_fraction * n_eff (signed weights; fraction clipped to [0, 1])",
        "n_background_above": result.n_above,
        "n_background_total": result.n_total,
        "n_background_negative_weight": result.n_negative,
        "n_eff": result.n_eff,
        "k_eff": result.k_eff,
    }


def set_threshold(
    art: Any,
    batch: Any,
    target: Target,
    input_rate_hz: float,
    *,
    score: str | None = None,
    data: dict[str, Any] | None = None,
    cl: float = rates.ONE_SIGMA_CL,
    min_events: float = 10,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score ``batch`` with the model, set the cut at the target and write ``MODEL/threshold.json``.

    Parameters
    ----------
    art : triggerad.models.Model
        The model (any kind: scores, default score, score definitions, ``write_threshold``).
    batch : EventBatch
        The weighted background (usually the validation split of the model's background).
    target : Target
        Target rate.
    input_rate_hz : float
        Rate of the stream the background represents.
    score : str, optional
        Score name (default: the artifact's default score).
    data : dict, optional
        Description of the background (source files, split) stored under ``data``.
    cl, min_events : float
        See :func:`threshold_record`.
    extra : dict, optional
        More fields to store (e.g. ``luminosity_cm2s``, ``sigma_total_pb``).

    Returns
    -------
    dict
        The record written.
    """
    from triggerad.data import fingerprint

    score = score or art.default_score
    if score not in art.score_names:
        raise ConfigError(f"threshold --score: unknown score {score!r}; "
                          + did_you_mean(score, art.score_names))
    scores = art.score(batch)
    record = {"score": score, **threshold_record(
        scores[score], batch.weight, target, input_rate_hz, cl=cl, min_events=min_events
    )}
    digest = art.score_digest(score)
    if digest is not None:  # the cut belongs to this exact integer graph
        record["fixed_point_digest"] = digest
    record.update(
        score_definition=art.meta.get("scores", {}).get(score, score),
        dataset_fingerprint=fingerprint(batch),
        data=data or {},
        **(extra or {}),
        created_utc=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        provenance=provenance("threshold"),
    )
    art.write_threshold(record)
    return record


@dataclass
class RatesConfig:
    """How rates are computed (YAML section ``rates`` of ``configs/evaluate.yaml``).

    Attributes
    ----------
    luminosity_fb_per_month : float
        Integrated luminosity per 30-day month of running (Cerri et al.: 40 fb^-1/year over 8
        months = 5 fb^-1/month). Sets the average instantaneous luminosity used when no input
        rate is given, and the cross-section for N selected events per month.
    cl : float
        Confidence level of the Clopper-Pearson rate interval.
    min_events_above : float
        Refuse a threshold when fewer background events pass (a warning when only their
        effective number is lower).
    """

    luminosity_fb_per_month: float = 5.0
    cl: float = rates.ONE_SIGMA_CL
    min_events_above: float = 10.0

    def __post_init__(self) -> None:
        if not (self.luminosity_fb_per_month > 0 and 0 < self.cl < 1 and self.min_events_above >= 0):
            raise ConfigError(
                "rates: expected luminosity_fb_per_month > 0, 0 < cl < 1, min_events_above >= 0; "
                f"found {self.luminosity_fb_per_month!r}, {self.cl!r}, {self.min_events_above!r}"
            )
