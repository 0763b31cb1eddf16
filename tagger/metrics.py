"""Metrics of the LLP tagger evaluation, on plain arrays (no model needed).

The discriminant is the network's **P(LLP)** (the softmax output of class 0), for every
comparison: LLP vs udsg, vs b, vs c, and the per-event maximum ``P_max`` of the domain check. A
jet is selected when ``P(LLP) > cut``; the cut at a mistag rate ``m`` is the tightest one letting
a weighted fraction ``<= m`` of the background class through (:func:`triggerad.rates.
threshold_at_rate`). Weighted ROC curves, AUCs and the Jensen-Shannon divergence (in bits) come
from :mod:`triggerad.metrics`.

Classes are the ``label`` values of :data:`triggerad.jets.LABELS` (0 LLP, 1 b, 2 c, 3 uds, 4 g).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from triggerad import metrics, rates
from triggerad.errors import StatisticsError
from triggerad.jets import LABELS

LLP = LABELS.index("LLP")
#: Background classes of the comparisons: name -> label values.
BACKGROUNDS = {"udsg": (LABELS.index("uds"), LABELS.index("g")), "b": (LABELS.index("b"),),
               "c": (LABELS.index("c"),)}
#: Mistag rates at which the LLP efficiency is quoted by default.
MISTAGS = (1e-4, 1e-3)


def background_mask(label: np.ndarray, against: str) -> np.ndarray:
    """Jets of the background class ``against`` (``udsg``, ``b`` or ``c``)."""
    return np.isin(label, BACKGROUNDS[against])


def efficiency_at_mistag(sig: np.ndarray, bkg: np.ndarray, mistag: float, *,
                         sig_weights: np.ndarray | None = None,
                         bkg_weights: np.ndarray | None = None) -> dict[str, Any]:
    """LLP efficiency at the cut letting a weighted fraction ``<= mistag`` of background through.

    Parameters
    ----------
    sig, bkg : (n,) arrays
        Discriminant values of the signal (LLP) and background jets.
    mistag : float
        Target background efficiency in (0, 1].
    sig_weights, bkg_weights : arrays, optional
        Jet weights (None: unit weights).

    Returns
    -------
    dict
        ``efficiency``, ``cut``, ``mistag`` (achieved), ``n_background``,
        ``n_background_above`` (unweighted) and ``limited``: True when the background has fewer
        than ``1 / mistag`` effective jets, so that the cut sits at (or above) its highest value
        and the efficiency is an estimate from too few background jets.
    """
    if len(sig) == 0 or len(bkg) == 0:
        raise StatisticsError(f"efficiency at mistag {mistag:g}: {len(sig)} signal and "
                              f"{len(bkg)} background jets; both classes are needed")
    cut = rates.threshold_at_rate(bkg, bkg_weights, mistag)
    n_eff = len(bkg) if bkg_weights is None else rates.effective_count(bkg_weights)
    return {
        "efficiency": rates.efficiency(sig, cut, sig_weights),
        "cut": float(cut),
        "mistag": rates.fraction_above(bkg, bkg_weights, cut),
        "n_background": int(len(bkg)),
        "n_background_above": int(np.count_nonzero(np.asarray(bkg) > cut)),
        "limited": bool(n_eff * mistag < 1),
    }


def roc_against(p_llp: np.ndarray, label: np.ndarray, weight: np.ndarray | None, against: str,
                *, mistags=MISTAGS, n_points: int = 100) -> dict[str, Any]:
    """ROC curve, AUC and efficiencies at ``mistags`` of LLP jets against one background class.

    Parameters
    ----------
    p_llp : (n,) array
        P(LLP) of every jet.
    label : (n,) int array
        Class labels (:data:`triggerad.jets.LABELS`; -1 jets are ignored).
    weight : (n,) array or None
        Jet weights.
    against : {"udsg", "b", "c"}
        Background class.

    Returns
    -------
    dict
        ``auc``, ``n_signal``, ``n_background``, ``fpr``/``tpr`` (lists, log-spaced background
        efficiencies) and ``at_mistag`` {mistag: :func:`efficiency_at_mistag`}.
    """
    w = np.ones(len(p_llp)) if weight is None else np.asarray(weight, dtype=np.float64)
    sig = label == LLP
    bkg = background_mask(label, against)
    if not sig.any() or not bkg.any():
        raise StatisticsError(f"LLP vs {against}: {int(sig.sum())} LLP and {int(bkg.sum())} "
                              f"{against} jets; both classes are needed")
    fpr, tpr = metrics.roc(p_llp[bkg], w[bkg], p_llp[sig], n_points=n_points,
                           sig_weights=w[sig])
    return {
        "auc": metrics.auc(p_llp[bkg], w[bkg], p_llp[sig], w[sig]),
        "n_signal": int(sig.sum()),
        "n_background": int(bkg.sum()),
        "fpr": fpr.tolist(),
        "tpr": tpr.tolist(),
        "at_mistag": {f"{m:g}": efficiency_at_mistag(p_llp[sig], p_llp[bkg], m,
                                                     sig_weights=w[sig], bkg_weights=w[bkg])
                      for m in mistags},
    }


def ctau_bins(low_mm: float = 0.01, high_mm: float = 10_000.0, per_decade: int = 1) -> np.ndarray:
    """Log-spaced c-tau bin edges (mm), ``per_decade`` bins per decade (default 10 um - 10 m)."""
    decades = np.log10(high_mm) - np.log10(low_mm)
    return np.logspace(np.log10(low_mm), np.log10(high_mm), int(round(decades * per_decade)) + 1)


def hypothesis_scan(hypotheses: np.ndarray, sig: list[np.ndarray], bkg: list[np.ndarray],
                    mistag: float, *, sig_weights: np.ndarray | None = None,
                    bkg_weights: np.ndarray | None = None) -> dict[str, Any]:
    """LLP efficiency at ``mistag`` as a function of the c-tau hypothesis given to the network.

    For a sample of fixed true c-tau, ``sig[i]`` and ``bkg[i]`` are the discriminants of the
    LLP and background jets evaluated with hypothesis ``hypotheses[i]``; the cut is set on the
    background at each hypothesis. A well-parametrised tagger peaks at the true c-tau.

    Returns
    -------
    dict
        ``ctau_mm`` (the hypotheses), ``efficiency`` (list) and ``peak_ctau_mm``.
    """
    if not len(hypotheses) == len(sig) == len(bkg):
        raise ValueError(f"{len(hypotheses)} hypotheses, {len(sig)} signal and {len(bkg)} "
                         "background score arrays")
    eff = [efficiency_at_mistag(s, b, mistag, sig_weights=sig_weights,
                                bkg_weights=bkg_weights)["efficiency"]
           for s, b in zip(sig, bkg, strict=True)]
    return {"ctau_mm": [float(h) for h in hypotheses], "efficiency": eff,
            "peak_ctau_mm": float(hypotheses[int(np.argmax(eff))])}


def per_event_max(values: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum of ``values`` over the jets of each event, events identified by ``keys``.

    Returns
    -------
    (maxima, first) : arrays
        Per event (in order of first appearance): the maximum, and the index of its first jet
        (to take per-event quantities such as the weight).
    """
    values = np.asarray(values)
    if len(values) == 0:
        return values[:0], np.zeros(0, dtype=np.int64)
    codes = np.zeros(len(values), dtype=np.int64)
    for key in keys:
        _, inverse = np.unique(np.asarray(key).astype(str) if np.asarray(key).dtype == object
                               else key, return_inverse=True)
        codes = codes * (int(inverse.max()) + 1) + inverse
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    maxima = np.full(len(first), -np.inf)
    np.maximum.at(maxima, inverse, values)
    order = np.argsort(first, kind="stable")
    return maxima[order], first[order]


def domain_check(pmax_sim: np.ndarray, pmax_data: np.ndarray, *,
                 sim_weights: np.ndarray | None = None, data_weights: np.ndarray | None = None,
                 bins: int = 20) -> dict[str, Any]:
    """Distributions of ``P_max`` in simulation and in the data-like sample and their JSD.

    Parameters
    ----------
    pmax_sim, pmax_data : arrays
        Per-event maximum P(LLP) (:func:`per_event_max`) in the two domains.
    sim_weights, data_weights : arrays, optional
        Event weights.
    bins : int
        Equal-width bins on [0, 1].

    Returns
    -------
    dict
        ``edges``, ``simulation`` and ``data_like`` (normalised bin contents), ``jsd_bits``
        (:func:`triggerad.metrics.jensen_shannon`), ``n_simulation``, ``n_data_like``.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    h_sim, _ = np.histogram(np.clip(pmax_sim, 0, 1), edges, weights=sim_weights)
    h_data, _ = np.histogram(np.clip(pmax_data, 0, 1), edges, weights=data_weights)
    if not (h_sim.sum() > 0 and h_data.sum() > 0):
        raise StatisticsError(f"domain check: {len(pmax_sim)} simulated and {len(pmax_data)} "
                              "data-like events; both samples are needed")
    return {
        "edges": edges.tolist(),
        "simulation": (h_sim / h_sim.sum()).tolist(),
        "data_like": (h_data / h_data.sum()).tolist(),
        "jsd_bits": metrics.jensen_shannon(h_sim, h_data),
        "n_simulation": int(len(pmax_sim)),
        "n_data_like": int(len(pmax_data)),
    }
