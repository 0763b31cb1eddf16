"""The stream scorer of the LLP tagger: per-jet class probabilities for the core stream runner.

:class:`TaggerStreamScorer` is what :meth:`tagger.kinds.TaggerKind.stream_scorer` hands to
:mod:`triggerad.stream` (``trigger-ad tagger score``): every jet of a unit is scored at one c-tau
hypothesis, one column ``prob_<class>`` per class. The tagger takes no trigger decision
(``decides`` False): the runner writes the score table only, with the same exactly-once,
resumable bookkeeping as ``trigger-ad score``. It must stay picklable (workers reload the model
from its folder).
"""

from __future__ import annotations

import numpy as np

from triggerad.errors import ConfigError, did_you_mean
from triggerad.jets import JetBatch
from triggerad.stream.scorer import ModelScorer

#: Per-jet fields of the score table besides ``source_file``, ``entry`` and the probabilities.
TABLE_FIELDS = ("event", "jet_index", "label", "ctau", "weight")


class TaggerStreamScorer(ModelScorer):
    """Class probabilities of jet batches at a c-tau hypothesis.

    Parameters
    ----------
    model : str or TaggerModel
        Model folder (loaded lazily, also on workers) or a loaded model.
    ctau_mm : float
        c-tau hypothesis (mm) given to the network for every jet.
    ctau_policy : {"error", "warn"}
        A hypothesis outside the model's trained c-tau range: refuse, or warn and score.
    scores : list of str, optional
        ``prob_<class>`` columns to write (default: all).
    tf_batch_size : int
        Jets per forward pass.
    """

    decides = False
    table_fields = TABLE_FIELDS

    def __init__(self, model, *, ctau_mm: float, ctau_policy: str = "error",
                 scores: list[str] | None = None, tf_batch_size: int = 8192):
        super().__init__(model)
        self.ctau_mm = float(ctau_mm)
        self.tf_batch_size = tf_batch_size
        self.model.check_ctau(self.ctau_mm, policy=ctau_policy, where="--ctau")
        available = self.model.score_names
        for name in scores or []:
            if name not in available:
                raise ConfigError(f"--score {name!r}: the tagger defines no such score; "
                                  + did_you_mean(name, available))
        self.scores = list(scores or available)
        #: Recorded in run.json: a resumed run must use the same hypothesis.
        self.settings = {"ctau_mm": self.ctau_mm}

    def load(self, path):
        """The :class:`~tagger.artifact.TaggerModel` of folder ``path``."""
        from tagger.artifact import load

        return load(path)

    def inputs(self, batch: JetBatch) -> JetBatch:
        """The jets themselves (:meth:`score_inputs` checks their schema)."""
        return batch

    def score_inputs(self, batch: JetBatch) -> dict[str, np.ndarray]:
        """``prob_<class>`` (float32 (n,) each) of the jets at the hypothesis."""
        probs = self.model.predict(batch, ctau_mm=self.ctau_mm, batch_size=self.tf_batch_size)
        names = self.model.score_names
        return {name: probs[:, names.index(name)] for name in self.scores}
