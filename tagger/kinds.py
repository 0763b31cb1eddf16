"""The LLP tagger's model kind, ``llp_tagger``.

Registered with the core's model-kind registry through the entry point of pyproject.toml (group
``trigger_ad.model_kinds``), so that the commands taking a model folder open it without knowing
this package (:mod:`triggerad.models`). Its stream scorer (:mod:`tagger.scoring`) gives the
class probabilities at a c-tau hypothesis (``trigger-ad tagger score``); its evaluation is
:mod:`tagger.evaluate` (``trigger-ad tagger evaluate``).
"""

from __future__ import annotations

from pathlib import Path

from tagger.artifact import FORMAT_VERSION, KIND, REQUIRED_KEYS
from triggerad.errors import ConfigError
from triggerad.models import ModelKind


class TaggerKind(ModelKind):
    """An LLP jet-tagger folder written by ``trigger-ad tagger train`` (:mod:`tagger.artifact`)."""

    name = KIND
    description = "c-tau-parametrised LLP jet tagger with domain adaptation (arXiv:1912.12238)"
    format_versions = (FORMAT_VERSION,)
    required_keys = REQUIRED_KEYS

    def load(self, path: Path, meta: dict):
        """The :class:`~tagger.artifact.TaggerModel` of the folder."""
        from tagger.artifact import TaggerModel

        return TaggerModel(path, meta)

    def stream_scorer(self, model, *, scores=None, tf_batch_size: int = 8192, ctau_mm=None,
                      ctau_policy: str = "error"):
        """:class:`~tagger.scoring.TaggerStreamScorer`: class probabilities at ``ctau_mm``.

        Raises
        ------
        ConfigError
            Without a c-tau hypothesis.
        OutOfRangeError
            For a hypothesis outside the trained range with ``ctau_policy="error"``.
        """
        from tagger.scoring import TaggerStreamScorer

        if ctau_mm is None:
            raise ConfigError(f"{self.name} models are scored at a c-tau hypothesis: pass "
                              "--ctau MM (scorer option ctau_mm)")
        return TaggerStreamScorer(model, ctau_mm=ctau_mm, ctau_policy=ctau_policy,
                                  scores=scores, tf_batch_size=tf_batch_size)

    def load_data(self, model, paths: list[str]):
        """All jets of the jet files ``paths`` (HDF5 or PFNano ROOT; globs expanded)."""
        import glob

        from tagger.evaldata import read_jets
        from triggerad.errors import InputFileError
        from triggerad.jets import JetBatch

        files = [f for p in paths for f in (sorted(glob.glob(p)) if glob.has_magic(p) else [p])]
        if not files:
            raise InputFileError(f"no jet files match {paths!r}")
        return JetBatch.concatenate([read_jets(Path(f)) for f in files])

    def evaluate(self, model, data, out, *, config=None, overrides=None, progress=True,
                 compare=None) -> list[str]:
        """The evaluation report (:func:`tagger.evaluate.evaluate`); its key numbers as lines.

        ``config`` is unused (the settings are :class:`tagger.evaluate.EvaluateConfig`, set
        through ``overrides``); ``compare`` is the model trained without domain adaptation.
        """
        from tagger.evaluate import EvaluateConfig, evaluate, summary_lines
        from triggerad.config import build

        cfg = build(EvaluateConfig, overrides or {}, where="tagger evaluate")
        report = evaluate(model, data, out, cfg, compare=compare, progress=progress)
        return [*summary_lines(report), f"wrote {out}/report.md and report.json"]


LLP_TAGGER = TaggerKind()
