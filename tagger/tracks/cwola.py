"""Classification without labels (CWoLa): two mixed samples, labelled by membership only.

Mixture 1 holds signal fraction ``fraction``, mixture 2 ``reference_fraction`` (0: background
only); a classifier trained to tell mixture 1 from mixture 2 is, for enough events, a monotonic
function of the signal/background likelihood ratio (Metodiev, Nachman, Thaler, arXiv:1708.02949).
The truth labels choose which events enter which mixture (on data: two control regions); the
training targets are the mixture numbers and nothing else.
"""

from __future__ import annotations

import numpy as np


def mixtures(truth: np.ndarray, fraction: float, reference_fraction: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``truth`` of the two mixtures and their targets (1: mixture 1, 0: mixture 2).

    The background events are split in two halves; each mixture gets its half plus as many
    signal events as its fraction asks for (fewer background events are used when the signal
    runs out). Every event enters at most one mixture.

    Returns
    -------
    index : int64 (m,)
        Events of mixture 1 then mixture 2, shuffled.
    target : float32 (m,)
        1 for mixture 1, 0 for mixture 2: sample membership, never the truth label.
    """
    truth = np.asarray(truth)
    sig = rng.permutation(np.flatnonzero(truth == 1))
    bkg = rng.permutation(np.flatnonzero(truth == 0))
    r1, r2 = fraction / (1 - fraction), reference_fraction / (1 - reference_fraction)
    half = len(bkg) // 2
    if (r1 + r2) * half > len(sig):  # not enough signal: use fewer background events
        half = int(len(sig) / (r1 + r2))
    n1, n2 = round(r1 * half), round(r2 * half)
    first = np.concatenate([bkg[:half], sig[:n1]])
    second = np.concatenate([bkg[half:2 * half], sig[n1:n1 + n2]])
    index = np.concatenate([first, second])
    target = np.concatenate([np.ones(len(first)), np.zeros(len(second))]).astype(np.float32)
    order = rng.permutation(len(index))
    return index[order], target[order]
