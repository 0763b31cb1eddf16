"""Scoring of one work unit: read, compute the scores, keep the candidate anomalies.

Encoder-only scores (``mu2`` from the float encoder, ``mu2_q`` from the quantized encoder) run
through the numpy fast path (:mod:`anomaly.stream.fastpath`) from the saved weights; any other
requested score (``loss``, ``nll``, ``kl``, ``kl_q``) makes the unit go through the model's
TensorFlow scoring with a large batch. :func:`score_unit` is the task the executors run; it must
stay picklable (workers reload the model from its folder).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from anomaly.stream.fastpath import NumpyNet, UnsupportedModelError
from anomaly.stream.plan import INPUT_ERRORS, WorkUnit
from triggerad.errors import ConfigError, did_you_mean
from triggerad.events import EventBatch
from triggerad.io.base import Reader

log = logging.getLogger(__name__)

#: Scores the numpy fast path computes, and the encoder each needs.
FAST_SCORES = {"mu2": "float_encoder", "mu2_q": "quantized_encoder"}

#: Event identifier columns of every output table.
ID_COLUMNS = ["source_file", "entry", "run", "lumi", "event"]


def encoder_inputs(model, x: np.ndarray) -> np.ndarray:
    """What the encoders see: normalised inputs, with padded L1 slots zeroed (as in training)."""
    xn = model.normalise(x)
    if model.kind == "l1_vae":
        from anomaly.model import input_mask

        xn = xn * input_mask(x)
    return xn


class StreamScorer:
    """Computes the requested scores of event batches for one model.

    Parameters
    ----------
    model : str or model artifact
        Model folder (loaded lazily, also on Dask workers) or an object with the
        :class:`~anomaly.artifact.ModelArtifact` interface.
    scores : list of str, optional
        Scores to compute; default every score the model defines. The threshold's score is
        always included.
    tf_batch_size : int
        Batch size of the TensorFlow scoring pass.
    """

    def __init__(self, model, scores: list[str] | None = None, tf_batch_size: int = 8192):
        self.model_ref = model
        self.tf_batch_size = tf_batch_size
        self._model = None if isinstance(model, str) else model
        self._nets: dict[str, NumpyNet] | None = None
        available = list(self.model.score_names)
        threshold = self.model.threshold or {}
        wanted = list(scores or available)
        if threshold.get("score") and threshold["score"] not in wanted:
            wanted.append(threshold["score"])
        for name in wanted:
            if name not in available:
                raise ConfigError(f"--score {name!r}: the model defines no such score; "
                                  + did_you_mean(name, available))
        self.scores = wanted
        self.fast = all(name in FAST_SCORES for name in wanted)

    def __getstate__(self) -> dict:
        # workers get the extracted numpy networks and reload the (cheap) artifact description
        state = dict(self.__dict__)
        if isinstance(self.model_ref, str):
            state["_model"] = None
        return state

    @property
    def model(self):
        """The model artifact (loaded on first use)."""
        if self._model is None:
            from anomaly.artifact import load_artifact

            self._model = load_artifact(self.model_ref)
        return self._model

    def prepare(self) -> None:
        """Extract the fast-path networks (or decide on TensorFlow if the model has no twin)."""
        if not self.fast or self._nets is not None:
            return
        needed = sorted({FAST_SCORES[name] for name in self.scores})
        try:
            self._nets = {name: NumpyNet.from_keras(getattr(self.model, name)()) for name in needed}
        except UnsupportedModelError as err:
            log.warning("numpy fast path unavailable (%s); using TensorFlow", err)
            self.fast = False

    def score_inputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Scores (float64 (n,) each) of raw inputs ``x`` (n, d)."""
        self.prepare()
        if self.fast:
            xe = encoder_inputs(self.model, x)
            mu = {enc: net(xe)[0] for enc, net in self._nets.items()}
            return {
                name: np.sum(np.square(mu[FAST_SCORES[name]]), axis=1, dtype=np.float64)
                for name in self.scores
            }
        out = self.model.score(x, batch_size=self.tf_batch_size)
        return {name: np.asarray(out[name], dtype=np.float64) for name in self.scores}


@dataclass
class UnitResult:
    """What a worker returns for one unit (small: ids, scores and candidate rows only)."""

    unit: WorkUnit
    table: pd.DataFrame | None
    candidates: pd.DataFrame | None
    error: str | None = None


def unit_table(batch: EventBatch, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Identifier columns, pile-up, weight and one column per score for the events of ``batch``."""
    return pd.DataFrame({
        "source_file": batch.source_file.astype(str),
        "entry": batch.entry,
        "run": batch.run,
        "lumi": batch.lumi,
        "event": batch.event,
        "pileup": batch.pileup,
        "weight": batch.weight,
        **scores,
    })


def score_unit(
    unit: WorkUnit,
    reader_for: Callable[[str], Reader],
    scorer: StreamScorer,
    decision_score: str,
    candidate_cut: float,
) -> UnitResult:
    """Read and score one unit; keep the full inputs of events with score > ``candidate_cut``.

    Reading errors (corrupt or truncated file) are returned in :attr:`UnitResult.error`; the
    driver decides whether to skip or fail. Model errors (schema mismatch) propagate.
    """
    try:
        batch = reader_for(unit.file).read(unit.file, unit.start, unit.stop)
    except INPUT_ERRORS as err:
        return UnitResult(unit, None, None, f"{type(err).__name__}: {err}")
    x = scorer.model.inputs(batch)
    scores = scorer.score_inputs(x)
    table = unit_table(batch, scores)
    keep = np.flatnonzero(scores[decision_score] > candidate_cut)
    candidates = pd.concat(
        [
            pd.DataFrame({"row": keep}),
            table.iloc[keep][ID_COLUMNS].reset_index(drop=True),
            pd.DataFrame(x[keep], columns=scorer.model.input_names),
        ],
        axis=1,
    )
    return UnitResult(unit, table, candidates)
