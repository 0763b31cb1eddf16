"""The stream scorer of the VAE kinds: the scores of event batches for the core stream runner.

By default only the threshold's score is computed (what the trigger decision needs; the
model's ``default_score`` for a model without threshold); ``scores=["all"]`` (``--score all``)
computes every score of the model, and any list of names those scores. Encoder-only scores run
without TensorFlow: ``mu2_q`` and ``kl_q`` through the integer fixed-point graph read from the
model folder's ``fastpath.json`` (:mod:`anomaly.stream.fastpath`; the same numbers as
:meth:`ModelArtifact.score` and the firmware, bit for bit), ``mu2`` through the numpy float
fast path (its weights come from Keras). Any other requested score (``loss``, ``nll``, ``kl``)
makes the unit go through the model's TensorFlow scoring with a large batch.
:class:`StreamScorer` is what :meth:`anomaly.kinds.VAEKind.stream_scorer` hands to
:mod:`triggerad.stream`; it must stay picklable (workers reload the model from its folder).
"""

from __future__ import annotations

import logging

import numpy as np

from anomaly.quantized import FIXED_POINT_SCORES, SCORE_LAYER, quantized_scores
from anomaly.stream.fastpath import (
    FastPathMissingError,
    NumpyNet,
    UnsupportedModelError,
    load_fastpath,
    write_fastpath,
)
from triggerad.errors import ConfigError, did_you_mean
from triggerad.models import get_kind
from triggerad.stream.scorer import ModelScorer
from triggerad.stream.unit import TABLE_FIELDS

log = logging.getLogger(__name__)

#: Scores computed without TensorFlow: the float encoder's ``mu2`` and the fixed-point scores.
FAST_SCORES = ("mu2", *FIXED_POINT_SCORES)
#: ``--score`` value selecting every score of the model.
ALL_SCORES = "all"


def encoder_inputs(model, x: np.ndarray) -> np.ndarray:
    """What the encoders see: normalised inputs, with padded L1 slots zeroed (as in training).

    Equals ``model.normalise(raw)`` for ``x = model.transformed(raw)`` (``(x - mean) / scale``
    in float32), times
    ``anomaly.model.input_mask(x)`` for kinds with an ``empty_slot_mask`` (``l1_vae``), bit for bit, computed in one float32 buffer:
    the slot mask is applied to the pT, eta and phi columns in turn (a broadcast over the last
    axis of length 3 is ~4x slower). ``x`` are the raw inputs after the model's input
    transform (:meth:`anomaly.artifact.ModelArtifact.transformed`).
    """
    xn = np.subtract(x, model.mean, dtype=np.float32)
    np.divide(xn, model.scale, out=xn)
    if get_kind(model.kind).empty_slot_mask:
        from triggerad import schema

        slots = (len(x), schema.N_SLOTS, 3)
        occupied = np.asarray(x).reshape(slots)[:, :, 0] > 0
        occupied[:, schema.MET_SLOT] = True
        xn3 = xn.reshape(slots)
        for column in range(3):
            np.multiply(xn3[:, :, column], occupied, out=xn3[:, :, column])
    return xn


class StreamScorer(ModelScorer):
    """Computes the requested scores of event batches for one model.

    Parameters
    ----------
    model : str or model artifact
        Model folder (loaded lazily, also on Dask workers) or an object with the
        :class:`~anomaly.artifact.ModelArtifact` interface.
    scores : list of str, optional
        Scores to compute (``["all"]``: every score the model defines); default the threshold's
        score only (the model's ``default_score`` without a threshold). The threshold's score is
        always included.
    tf_batch_size : int
        Batch size of the TensorFlow scoring pass.
    """

    def __init__(self, model, scores: list[str] | None = None, tf_batch_size: int = 8192):
        super().__init__(model)
        self.tf_batch_size = tf_batch_size
        self._float_net: NumpyNet | None = None
        self._graph = None
        self._prepared = False
        available = list(self.model.score_names)
        threshold = self.model.threshold or {}
        decision = threshold.get("score") or self.model.default_score
        wanted = [] if scores is None else list(dict.fromkeys(scores))
        if ALL_SCORES in wanted:
            wanted = available
        if decision not in wanted:
            wanted.append(decision)
        for name in wanted:
            if name not in available:
                raise ConfigError(f"--score {name!r}: the model defines no such score; "
                                  + did_you_mean(name, [*available, ALL_SCORES]))
        self.scores = wanted
        self.fast = all(name in FAST_SCORES for name in wanted)

    @property
    def read_fields(self) -> tuple[str, ...] | None:
        """Event-record fields to read: the model's inputs and the table columns (None: all)."""
        inputs = get_kind(self.model.kind).input_fields
        return None if inputs is None else (*inputs, *TABLE_FIELDS)

    def load(self, path):
        """The :class:`~anomaly.artifact.ModelArtifact` of folder ``path`` (workers get the
        extracted numpy networks and reload the cheap artifact description)."""
        from anomaly.artifact import load_artifact

        return load_artifact(path)

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
            self._graph = self.fastpath_graph()
            if "kl_q" not in self.scores:  # mu2_q only: the logvar head is not evaluated
                self._graph = self._graph.subgraph([SCORE_LAYER])
        self._prepared = True

    def fastpath_graph(self):
        """The integer score graph from the model folder's ``fastpath.json`` (no TensorFlow).

        A folder written before that file existed gets it now, built from the weights (one
        TensorFlow import; logged); a read-only folder is scored with the graph in memory.
        """
        model = self.model
        try:
            return load_fastpath(model.path, model.meta)
        except FastPathMissingError as err:
            graph = model.fixed_graph()
            try:
                write_fastpath(model.path, model.meta, graph)
                log.warning("%s; wrote it from the weights (later runs skip TensorFlow)", err)
            except OSError as write_error:
                log.warning("%s; cannot write it (%s): using the graph built from the weights",
                            err, write_error)
            return graph

    def score_inputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Scores (float64 (n,) each) of raw inputs ``x`` (n, d)."""
        self.prepare()
        if self.fast:
            transform = getattr(self.model, "transform", None)
            if transform is not None and transform.active:  # model.input_transform
                x = transform.apply(x)
            out = {} if self._graph is None else quantized_scores(self._graph, x, self.scores)
            if self._float_net is not None:
                mu = self._float_net(encoder_inputs(self.model, x))[0]
                out["mu2"] = np.sum(np.square(mu), axis=1, dtype=np.float64)
            return {name: out[name] for name in self.scores}
        out = self.model.score(x, batch_size=self.tf_batch_size)
        return {name: np.asarray(out[name], dtype=np.float64) for name in self.scores}


