"""The L1 tagger model folder (kind ``l1_llp_tagger``), its loaded model and its model kind.

Layout::

    MODEL/artifact.json         kind l1_llp_tagger, format_version, input schema (candidate
                                features, per-jet shape), normalisation (the fixed L1 feature
                                definitions: no fitted constants), class names, c-tau range,
                                resolved config (model, pruning, fixed_point, ...), training
                                sample, the fixed-point graph's digest, metrics, versions
    MODEL/l1_tagger.weights.h5  QKeras weights (pruning stripped)
    MODEL/threshold.json        the working point: cut on ``logit_q`` (signed) for the
                                configured udsg mistag, with the graph's digest
    MODEL/provenance.json, MODEL/config.resolved.yaml

:class:`L1TaggerModel` is a :class:`tagger.artifact.TaggerModel`, so ``trigger-ad tagger
evaluate`` writes the same report for it as for the full tagger (its ``P(LLP)`` is the sigmoid
of the integer logit ``logit_q``, the number the firmware computes; there is no c-tau input).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tagger.artifact import TaggerModel
from tagger.kinds import TaggerKind
from tagger.l1 import features as l1f
from triggerad import atomic
from triggerad.config import build
from triggerad.jets import LABELS, JetBatch
from triggerad.models import ARTIFACT_FILE, SELECTION
from triggerad.provenance import library_versions

KIND = "l1_llp_tagger"
FORMAT_VERSION = 1
WEIGHTS = "l1_tagger.weights.h5"
#: The firmware's score: the integer (fixed-point) logit.
SCORE = "logit_q"
REQUIRED_KEYS = ("input_schema", "normalisation", "class_names", "ctau_range_mm", "config",
                 "data_info", "fixed_point_digest")


def write_artifact_files(folder: str | Path, *, net, graph, config: dict, data_info: dict,
                         ctau_range_mm, metrics: dict | None = None) -> None:
    """Write ``artifact.json`` and the weights into an existing (temporary) folder."""
    folder = Path(folder)
    lo, hi = (float(v) for v in ctau_range_mm)
    n = int(config["model"]["n_candidates"])
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "input_schema": l1f.input_schema(n),
        "normalisation": {"kind": "fixed", "definition": "tagger.l1.features (docs/tagger.md, "
                          "L1 tagger)", "ip_scale_mm": l1f.IP_SCALE_MM},
        "class_names": list(LABELS),
        "ctau_range_mm": [lo, hi],
        "domain_adaptation": False,
        "fixed_point_digest": graph.digest(),
        "versions": library_versions(("tensorflow", "qkeras", "numpy")),
        "config": config,
        "data_info": data_info,
        "metrics": metrics or {},
    }
    net.save_weights(str(folder / WEIGHTS))
    atomic.write_json(folder / ARTIFACT_FILE, meta)


def write_working_point(folder: str | Path, graph, wp: dict) -> None:
    """``threshold.json``: the cut on ``logit_q`` (``score > value``) and how it was set."""
    atomic.write_json(Path(folder) / "threshold.json", {
        "score": SCORE, "value": float(wp["value"]), "fpr": float(wp["fpr"]),
        "selection": SELECTION, "background": "udsg jets of the validation split",
        "achieved_fpr": wp.get("achieved_fpr"), "efficiency": wp.get("efficiency"),
        "fixed_point_digest": graph.digest()})


class L1TaggerModel(TaggerModel):
    """A trained L1 tagger folder: the QKeras network, its fixed-point graph, the working point."""

    def __init__(self, path: Path, meta: dict):
        super().__init__(path, meta)
        self._graph = None

    @property
    def n_candidates(self) -> int:
        """Candidates per jet."""
        return int(self.input_schema["candidates"]["shape"][0])

    @property
    def input_names(self) -> list[str]:
        """Per-candidate feature names (the input is (n, candidates, features))."""
        return list(self.input_schema["candidates"]["features"])

    @property
    def sizes(self) -> dict[str, int]:
        return {"candidates": self.n_candidates}

    @property
    def score_names(self) -> list[str]:
        """``logit_q`` (the integer logit, as the firmware) and ``p_llp`` (its sigmoid)."""
        return [SCORE, "p_llp"]

    @property
    def default_score(self) -> str:
        return SCORE

    def score_digest(self, score: str) -> str | None:
        """The fixed-point graph's digest for ``logit_q``."""
        return self.fixed_graph().digest() if score == SCORE else None

    def network(self):
        """The QKeras network with the stored weights (built once)."""
        if self._net is None:
            from tagger.l1.model import L1ModelConfig, build_l1_tagger

            cfg = build(L1ModelConfig, self.config["model"],
                        where=f"{self.path / ARTIFACT_FILE}:config.model")
            net = build_l1_tagger(cfg)
            net.load_weights(str(self.path / WEIGHTS))
            self._net = net
        return self._net

    def fixed_graph(self):
        """The integer graph (:mod:`triggerad.fixedpoint`) of the network: candidates -> score."""
        if self._graph is None:
            from triggerad.fixedpoint import FixedPointConfig, from_keras

            cfg = build(FixedPointConfig, self.config["fixed_point"],
                        where=f"{self.path / ARTIFACT_FILE}:config.fixed_point")
            self._graph = from_keras(self.network(), cfg)
        return self._graph

    def inputs(self, batch: JetBatch, *, ctau_mm=None, where: str | None = None) -> np.ndarray:
        """The L1 inputs (n, candidates, features) of ``batch`` (``ctau_mm`` is ignored)."""
        return l1f.l1_inputs(batch, self.n_candidates)

    def logit_q(self, batch: JetBatch) -> np.ndarray:
        """The integer logit of every jet, as a value (float64)."""
        graph = self.fixed_graph()
        if len(batch) == 0:
            return np.zeros(0)
        return graph.value(graph.outputs[0], graph(self.inputs(batch))[0]).ravel()

    def predict(self, batch: JetBatch, *, ctau_mm=None, batch_size: int = 8192) -> np.ndarray:
        """(n, 5) "probabilities" for the tagger report: column LLP = sigmoid(``logit_q``),
        the others (1 - P(LLP)) / 4 (a binary model); float64."""
        p = 1.0 / (1.0 + np.exp(-self.logit_q(batch)))
        out = np.repeat(((1.0 - p) / (len(LABELS) - 1))[:, None], len(LABELS), axis=1)
        out[:, LABELS.index("LLP")] = p
        return out

    def score(self, data: JetBatch, batch_size: int = 8192, *, ctau_mm=None
              ) -> dict[str, np.ndarray]:
        """``logit_q`` and ``p_llp`` of every jet."""
        logit = self.logit_q(data)
        return {SCORE: logit, "p_llp": 1.0 / (1.0 + np.exp(-logit))}


class L1TaggerKind(TaggerKind):
    """The ``l1_llp_tagger`` folders of ``trigger-ad tagger train configs/tagger-l1.yaml``."""

    name = KIND
    description = "quantized L1 LLP jet tagger (TOoLLiP-like, QKeras), firmware-ready"
    format_versions = (FORMAT_VERSION,)
    required_keys = REQUIRED_KEYS

    def load(self, path: Path, meta: dict):
        """The :class:`L1TaggerModel` of the folder."""
        return L1TaggerModel(path, meta)

    def stream_scorer(self, model, **options):
        raise self._cannot("scored on a stream (score jets with `trigger-ad tagger evaluate`)")

    def load_split(self, model, split: str) -> JetBatch:
        """Labelled jets of split ``split`` (``train``/``val``) of the model's training files."""
        from tagger import trainsample as ts
        from tagger.l1.data import read_split

        cfg = build(ts.TaggerDataConfig, {**model.config["data"], "dir": None},
                    where=f"{model.path / ARTIFACT_FILE}:config.data")
        files = list(model.data_info["simulation"]["files"])
        _, jets = read_split(cfg, files, ts.readers(cfg, files), split, model.n_candidates)
        return jets


L1_LLP_TAGGER = L1TaggerKind()
