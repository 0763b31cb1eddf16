"""One work unit of a stream: read its rows, score them, keep the candidate anomalies.

:class:`UnitTask` is the task the executors (:mod:`triggerad.executor`) run on each
:class:`~triggerad.stream.plan.WorkUnit`. The model-specific part, the *scorer*, comes from the
model's kind (:meth:`triggerad.models.ModelKind.stream_scorer`): it names the record fields its
inputs need (``read_fields``) and the per-row fields of the output table (``table_fields``),
turns a batch into the inputs of ``score_inputs`` (``inputs``) and computes the scores.
Scorers of models that take a trigger decision (``decides``: anomaly models with a threshold)
also get candidate anomalies; the others (e.g. the LLP jet tagger's class probabilities) give
the score table only. The task must stay picklable (workers rebuild the model from its folder).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from triggerad.events import EventBatch
from triggerad.io.base import Reader
from triggerad.stream.plan import INPUT_ERRORS, WorkUnit

#: Event identifier columns of every output table.
ID_COLUMNS = ["source_file", "entry", "run", "lumi", "event"]

#: Event-record fields of the score table besides ``source_file`` and ``entry``.
TABLE_FIELDS = ("run", "lumi", "event", "pileup", "weight")


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
            and isinstance(values[0], str)
            and values.tolist().count(values[0]) == len(values)):  # 5x faster than == and all()
        return pd.array(pa.repeat(pa.scalar(values[0], pa.large_string()), len(values)),
                        dtype=dtype)
    return values


def unit_table(batch: EventBatch, scores: dict[str, np.ndarray],
               fields: tuple[str, ...] = TABLE_FIELDS) -> pd.DataFrame:
    """``source_file``, ``entry``, the record ``fields`` (default: run, lumi, event, pile-up,
    weight) and one column per score for the rows of ``batch`` (events, or jets)."""
    return pd.DataFrame({
        "source_file": string_column(batch.source_file),
        "entry": batch.entry,
        **{name: getattr(batch, name) for name in fields},
        **scores,
    }, copy=False)  # the columns as they are: no consolidation into 2-D blocks


@dataclass
class UnitTask:
    """Read and score one work unit: the task the executors run (picklable, for Dask workers).

    The two stages are separate so that the local executor can read the next unit while this one
    is scored; calling the task runs both.

    Parameters
    ----------
    reader_for : callable
        Path -> reader.
    scorer : stream scorer of the model's kind
        The scores to compute (and the event-record fields to read).
    decision_score : str or None
        Score the trigger decision is taken on (None: the scorer takes no decision).
    candidate_cut : float or None
        The full inputs of events with ``decision_score > candidate_cut`` are kept as candidate
        anomalies (the lowest threshold the controller can set).
    """

    reader_for: Callable[[str], Reader]
    scorer: Any
    decision_score: str | None = None
    candidate_cut: float | None = None

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
        x = self.scorer.inputs(batch)
        scores = self.scorer.score_inputs(x)
        table = unit_table(batch, scores, self.scorer.table_fields)
        if self.decision_score is None:
            return UnitResult(unit, table, None)
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
