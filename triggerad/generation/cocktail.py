"""Cocktail weights, weighted process fractions after the trigger, and the summary table.

Each generated event of a process carries ``weight = sigma_pb / N_generated`` times any fake or
forced-decay weight, so the summed weight of the triggered events of a process is
sigma x trigger efficiency (pb), and the weighted fractions are directly comparable with the
published single-lepton stream of Cerri et al. 2019.
"""

from __future__ import annotations

import numpy as np

from triggerad.generation.config import PUBLISHED_FRACTIONS


def weighted_fractions(weights: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Fraction of the summed weight carried by each label (labels in first-seen order).

    Raises
    ------
    ValueError
        If the weights sum to zero (no triggered events).
    """
    total = float(np.sum(weights))
    if total <= 0:
        raise ValueError("the weights of the triggered events sum to zero: no events selected")
    names = list(dict.fromkeys(labels.tolist()))
    return {name: float(np.sum(weights[labels == name]) / total) for name in names}


def published_comparison(group_fractions: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per Cerri et al. group: our weighted fraction after the trigger vs the published one."""
    return {
        group: {"generated": group_fractions.get(group, 0.0), "published": published}
        for group, published in PUBLISHED_FRACTIONS.items()
    }


def format_table(processes: dict[str, dict], comparison: dict[str, dict[str, float]]) -> str:
    """The generation summary as text: per-process numbers, then the published comparison."""
    head = (
        f"{'process':<13}{'kind':<7}{'generated':>10}{'selected':>10}{'sigma [pb]':>12}"
        f"{'trig. eff.':>12}{'w. fraction':>13}{'events/s':>10}"
    )
    lines = [head, "-" * len(head)]
    for name, p in processes.items():
        lines.append(
            f"{name:<13}{p['kind']:<7}{p['generated']:>10d}{p['selected']:>10d}"
            f"{p['sigma_pb']:>12.4g}{p['trigger_efficiency']:>12.3g}"
            f"{p['weighted_fraction']:>13.4f}{p['events_per_s']:>10.0f}"
        )
    lines += ["", "SM cocktail after the single-lepton trigger vs Cerri et al. 2019:"]
    lines += [
        f"  {group:<7} {c['generated'] * 100:6.1f} %   (published {c['published'] * 100:4.1f} %)"
        for group, c in comparison.items()
    ]
    return "\n".join(lines)
