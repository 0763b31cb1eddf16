"""The common part of the stream scorers of the model kinds (:meth:`ModelKind.stream_scorer`).

:class:`ModelScorer` holds the model folder (or a loaded model), opens it on first use through the
model-kind registry, and pickles without the loaded model when it has a folder to reload from
(executor workers rebuild it). Subclasses set the capabilities the runner reads and implement
``score_inputs``; see :meth:`triggerad.models.ModelKind.stream_scorer` for the protocol.
"""

from __future__ import annotations

from pathlib import Path

from triggerad.stream.unit import TABLE_FIELDS


class ModelScorer:
    """Base of the stream scorers.

    Parameters
    ----------
    model : str, Path or model
        Model folder (loaded lazily, also on workers) or a loaded model.
    """

    #: The model takes a trigger decision (threshold, rate control, candidate anomalies).
    decides = True
    #: Record fields of the score table besides ``source_file``, ``entry`` and the scores.
    table_fields: tuple[str, ...] = TABLE_FIELDS
    #: Kind-specific settings recorded in ``run.json`` and checked on resume (None: none).
    settings: dict | None = None
    #: Record fields to read (None: every field).
    read_fields: tuple[str, ...] | None = None
    #: Scores computed without TensorFlow.
    fast = False

    def __init__(self, model):
        self.model_ref = model
        self._model = None if isinstance(model, (str, Path)) else model

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if isinstance(self.model_ref, (str, Path)):
            state["_model"] = None
        return state

    def load(self, path):
        """Open the model folder ``path`` (subclasses narrow it to their kind)."""
        from triggerad.models import load_model

        return load_model(path)

    @property
    def model(self):
        """The model (loaded on first use)."""
        if self._model is None:
            self._model = self.load(self.model_ref)
        return self._model

    def prepare(self) -> None:
        """Work done once before scoring (nothing by default)."""

    def inputs(self, batch):
        """What :meth:`score_inputs` takes for a record batch (default ``model.inputs(batch)``)."""
        return self.model.inputs(batch)

    def score_inputs(self, x) -> dict:
        """Scores by name of the inputs ``x``."""
        raise NotImplementedError
