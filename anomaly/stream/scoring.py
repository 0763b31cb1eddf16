"""Scoring of one work unit: read, compute the scores, keep the candidate anomalies.

Encoder-only scores run without TensorFlow: ``mu2`` through the numpy float fast path
(:mod:`anomaly.stream.fastpath`), ``mu2_q`` and ``kl_q`` through the model's integer fixed-point
graph (:mod:`anomaly.quantized`, the same numbers as :meth:`ModelArtifact.score` and the firmware).
Any other requested score (``loss``, ``nll``, ``kl``) makes the unit go through the model's
TensorFlow scoring with a large batch. :class:`UnitTask` is the task the executors run; it must
stay picklable (workers reload the model from its folder).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from anomaly.quantized import FIXED_POINT_SCORES, quantized_scores
from anomaly.stream.fastpath import NumpyNet, UnsupportedModelError
from anomaly.stream.plan import INPUT_ERRORS, WorkUnit
from triggerad.errors import ConfigError, did_you_mean
from triggerad.events import EventBatch
from triggerad.io.base import Reader

log = logging.getLogger(__name__)

#: Scores computed without TensorFlow: the float encoder's ``mu2`` and the fixed-point scores.
FAST_SCORES = ("mu2", *FIXED_POINT_SCORES)

#: Event identifier columns of every output table.
ID_COLUMNS = ["source_file", "entry", "run", "lumi", "event"]

#: Event-record fields the raw inputs of each model kind are computed from
#: (:func:`anomaly.artifact.raw_inputs`; ``hlf`` for feature-only sources).
INPUT_FIELDS = {
    "l1_vae": ("objects",),
    "hlf_vae": ("objects", "ele_charge", "mu_charge", "ele_iso", "mu_iso", "jet_mass", "jet_btag",
                "n_ch_had", "n_neu_had", "hlf"),
}

#: Event-record fields of the score table besides ``source_file`` and ``entry``.
TABLE_FIELDS = ("run", "lumi", "event", "pileup", "weight")


def encoder_inputs(model, x: np.ndarray) -> np.ndarray:
    """What the encoders see: normalised inputs, with padded L1 slots zeroed (as in training).

    Equals ``model.normalise(x)`` (``(x - mean) / scale`` in float32), times
    ``anomaly.model.input_mask(x)`` for ``l1_vae``, bit for bit, computed in one float32 buffer:
    the slot mask is applied to the pT, eta and phi columns in turn (a broadcast over the last
    axis of length 3 is ~4x slower).
    """
    xn = np.subtract(x, model.mean, dtype=np.float32)
    np.divide(xn, model.scale, out=xn)
    if model.kind == "l1_vae":
        from triggerad import schema

        slots = (len(x), schema.N_SLOTS, 3)
        occupied = np.asarray(x).reshape(slots)[:, :, 0] > 0
        occupied[:, schema.MET_SLOT] = True
        xn3 = xn.reshape(slots)
        for column in range(3):
            np.multiply(xn3[:, :, column], occupied, out=xn3[:, :, column])
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
        self._float_net: NumpyNet | None = None
        self._graph = None
        self._prepared = False
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

    @property
    def read_fields(self) -> tuple[str, ...] | None:
        """Event-record fields to read: the model's inputs and the table columns (None: all)."""
        inputs = INPUT_FIELDS.get(self.model.kind)
        return None if inputs is None else (*inputs, *TABLE_FIELDS)

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
        """Build the integer graph and the float fast path (or fall back to TensorFlow for a
        float encoder without a numpy twin)."""
        if not self.fast or self._prepared:
            return
        if "mu2" in self.scores:
            try:
                self._float_net = NumpyNet.from_keras(self.model.float_encoder())
            except UnsupportedModelError as err:
                log.warning("numpy fast path unavailable (%s); using TensorFlow", err)
                self.fast = False
                return
        if set(self.scores) & set(FIXED_POINT_SCORES):
            self._graph = self.model.fixed_graph()
        self._prepared = True

    def score_inputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Scores (float64 (n,) each) of raw inputs ``x`` (n, d)."""
        self.prepare()
        if self.fast:
            out = {} if self._graph is None else quantized_scores(self._graph, x, self.scores)
            if self._float_net is not None:
                mu = self._float_net(encoder_inputs(self.model, x))[0]
                out["mu2"] = np.sum(np.square(mu), axis=1, dtype=np.float64)
            return {name: out[name] for name in self.scores}
        out = self.model.score(x, batch_size=self.tf_batch_size)
        return {name: np.asarray(out[name], dtype=np.float64) for name in self.scores}


@dataclass
class UnitResult:
    """What a worker returns for one unit (small: ids, scores and candidate rows only)."""

    unit: WorkUnit
    table: pd.DataFrame | None
    candidates: pd.DataFrame | None
    error: str | None = None


def string_column(values: np.ndarray):
    """``values`` (object array of str) as pandas stores it in a DataFrame column.

    A column holding one string throughout (the events of a unit come from one file) is built
    directly as the Arrow string array pandas would convert the objects to (when its default
    string dtype is Arrow-backed), instead of converting every element: same dtype and values.
    """
    dtype = pd.Series([""]).dtype
    if (len(values) and isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"
            and isinstance(values[0], str) and (values == values[0]).all()):
        return pd.array(pa.repeat(pa.scalar(values[0], pa.large_string()), len(values)),
                        dtype=dtype)
    return values


def unit_table(batch: EventBatch, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Identifier columns, pile-up, weight and one column per score for the events of ``batch``."""
    return pd.DataFrame({
        "source_file": string_column(batch.source_file),
        "entry": batch.entry,
        "run": batch.run,
        "lumi": batch.lumi,
        "event": batch.event,
        "pileup": batch.pileup,
        "weight": batch.weight,
        **scores,
    })


@dataclass
class UnitTask:
    """Read and score one work unit: the task the executors run (picklable, for Dask workers).

    The two stages are separate so that the local executor can read the next unit while this one
    is scored; calling the task runs both.

    Parameters
    ----------
    reader_for : callable
        Path -> reader.
    scorer : StreamScorer
        The scores to compute (and the event-record fields to read).
    decision_score : str
        Score the trigger decision is taken on.
    candidate_cut : float
        The full inputs of events with ``decision_score > candidate_cut`` are kept as candidate
        anomalies (the lowest threshold the controller can set).
    """

    reader_for: Callable[[str], Reader]
    scorer: StreamScorer
    decision_score: str
    candidate_cut: float

    def read(self, unit: WorkUnit) -> EventBatch | str:
        """The events of ``unit`` (only the fields the scorer needs), or the reading error.

        Reading errors (corrupt or truncated file) are returned as text; the driver decides
        whether to skip or fail.
        """
        try:
            return self.reader_for(unit.file).read(unit.file, unit.start, unit.stop,
                                                   self.scorer.read_fields)
        except INPUT_ERRORS as err:
            return f"{type(err).__name__}: {err}"

    def score(self, unit: WorkUnit, batch: EventBatch | str) -> UnitResult:
        """Scores of the events of ``unit`` read by :meth:`read` and the candidate anomalies.

        Model errors (schema mismatch) propagate.
        """
        if isinstance(batch, str):
            return UnitResult(unit, None, None, batch)
        x = self.scorer.model.inputs(batch)
        scores = self.scorer.score_inputs(x)
        table = unit_table(batch, scores)
        keep = np.flatnonzero(scores[self.decision_score] > self.candidate_cut)
        candidates = pd.concat(
            [
                pd.DataFrame({"row": keep}),
                table.iloc[keep][ID_COLUMNS].reset_index(drop=True),
                pd.DataFrame(x[keep], columns=self.scorer.model.input_names),
            ],
            axis=1,
        )
        return UnitResult(unit, table, candidates)

    def __call__(self, unit: WorkUnit) -> UnitResult:
        """Read and score ``unit``."""
        return self.score(unit, self.read(unit))
