"""ONNX export of the VAE model folders (``hlf_vae``, ``l1_vae``): the kind-specific part.

:func:`build_vae_export` is the export builder of both kinds (their ``export_spec`` hook in
:mod:`anomaly.kinds`); the generic conversion, validation and writing are in
:mod:`triggerad.export`.

The exported graph takes the RAW inputs in the documented layout (``features``: the 21 high-level
features; ``l1_inputs``: the 57 L1 values) and does the input preparation of training inside the
graph, with the same code (:func:`anomaly.model.prepare_inputs` on the TensorFlow backend):
``(x - mean) / scale``, the L1 occupancy mask, the HLF likelihood targets. Outputs:

* ``score`` (n,): the exported score (default: the score of ``threshold.json``, or the float
  score in place of a quantized one: ``mu2`` for ``mu2_q``, ``kl`` for ``kl_q``);
* ``mu``, ``logvar`` (n, latent_dim): the float encoder;
* with ``full``: ``reconstruction`` (decoder output at z = mu) and every float score
  (``loss``, ``nll``, ``kl``, ``mu2``).

Only the encoder is in the graph unless the score needs the decoder (``nll``, ``loss``) or
``full`` is asked for. The quantized (QKeras) encoder is not exported: see ``docs/export.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from triggerad.errors import ConfigError, SchemaMismatchError, did_you_mean
from triggerad.export.spec import (
    Decision,
    ExportOptions,
    ExportSpec,
    Reference,
    TensorDoc,
)

#: Float scores the exported graph computes -> whether they need the decoder.
GRAPH_SCORES = {"mu2": False, "kl": False, "nll": True, "loss": True}
#: Quantized scores -> the float score the graph computes in their place.
FLOAT_TWIN = {"mu2_q": "mu2", "kl_q": "kl"}
#: Graph input name and description per kind.
INPUTS = {
    "hlf_vae": ("features", "the 21 high-level features of Cerri et al. 2019 (GeV, counts, "
                "relative isolation, charge), raw physical values, columns in this order"),
    "l1_vae": ("l1_inputs", "the 57 L1 inputs: 19 ADC2021 slots x [pT (GeV), eta, phi (rad)], "
               "slot-major (MET, 4 electrons, 4 muons, 10 jets), pT-ordered, empty slots 0"),
}
RECONSTRUCTION = {
    "hlf_vae": "decoder output at z = mu: the raw likelihood parameters, per feature in feature "
               "order (docs/anomaly.md, 'HLF likelihood families')",
    "l1_vae": "decoder output at z = mu: the reconstructed normalised inputs ((x - mean) / scale)",
}


def export_score(requested: str | None, threshold: dict, where: str) -> str:
    """The float score to export: ``requested``, else the threshold's score (its float twin).

    Raises
    ------
    ConfigError
        For a score the ONNX graph cannot compute (naming the valid ones).
    """
    score = requested or FLOAT_TWIN.get(threshold["score"], threshold["score"])
    if score not in GRAPH_SCORES:
        twin = f" (use its float twin {FLOAT_TWIN[score]!r})" if score in FLOAT_TWIN else ""
        raise ConfigError(
            f"{where}: the ONNX graph computes the float scores {list(GRAPH_SCORES)}, not "
            f"{score!r}{twin}; " + did_you_mean(score, GRAPH_SCORES)
        )
    return score


def export_graph(art, score: str, *, full: bool = False):
    """Keras model: raw inputs ``{input_name: (n, d)}`` -> dict of named outputs (module doc).

    Parameters
    ----------
    art : anomaly.artifact.ModelArtifact
        The model folder.
    score : str
        One of :data:`GRAPH_SCORES`.
    full : bool
        Also the decoder output and every float score.
    """
    import tensorflow as tf

    from anomaly.model import encoder_input, latent_scores, prepare_inputs
    from triggerad.arrayops import tensorflow as tf_ops

    vae, kind, mean, scale = art.vae(), art.kind, art.mean, art.scale
    with_decoder = full or GRAPH_SCORES[score]

    class VAEScores(tf.keras.layers.Layer):
        """Input preparation + VAE: raw inputs -> the exported outputs."""

        def __init__(self, **kw):
            super().__init__(**kw)
            self.vae = vae

        def call(self, raw):
            inputs = prepare_inputs(kind, raw, mean, scale, ops=tf_ops())
            if with_decoder:
                terms = self.vae.terms(inputs, sample=False)
            else:
                mu, logvar = self.vae.encoder(encoder_input(kind, inputs))
                terms = {"mu": mu, "logvar": logvar, **latent_scores(mu, logvar)}
            out = {"score": terms[score], "mu": terms["mu"], "logvar": terms["logvar"]}
            if full:
                out.update({k: terms[k] for k in ("reconstruction", *GRAPH_SCORES)})
            return out

    name = INPUTS[kind][0]
    raw = tf.keras.Input((len(art.input_names),), name=name)
    return tf.keras.Model({name: raw}, VAEScores(name="vae_scores")(raw), name=f"{kind}_export")


def output_docs(art, score: str, full: bool) -> list[TensorDoc]:
    """Documentation of the outputs of :func:`export_graph`."""
    from anomaly.artifact import SCORE_DEFINITIONS

    latent = (art.latent_dim,)
    docs = [
        TensorDoc("score", (), f"{score}: {SCORE_DEFINITIONS[score]}; larger = more anomalous"),
        TensorDoc("mu", latent, "latent means of the float encoder"),
        TensorDoc("logvar", latent, "latent log sigma^2 of the float encoder"),
    ]
    if full:
        width = art.vae().decoder.output_shape[-1]
        docs.append(TensorDoc("reconstruction", (width,), RECONSTRUCTION[art.kind]))
        docs += [TensorDoc(k, (), SCORE_DEFINITIONS[k]) for k in GRAPH_SCORES]
    return docs


def validation_inputs(art, options: ExportOptions) -> tuple[np.ndarray, str]:
    """Raw validation inputs: the model's validation split, or all events of ``options.data``."""
    from triggerad.data import load_sample, load_split

    if options.data:
        batch, source = load_sample(options.data), f"all events of {', '.join(options.data)}"
    else:
        if "background" not in art.data_info:
            raise ConfigError(f"{art.path}/artifact.json: data_info records no background files; "
                              "pass --data FILE... to validate on other events")
        batch = load_split(art.data_info, "val")
        source = f"validation split of {', '.join(art.data_info['background'])}"
    x = art.inputs(batch)
    if options.n_events and len(x) > options.n_events:
        x, source = x[:options.n_events], f"first {options.n_events} events of the {source}"
    return x, source


def build_vae_export(model_dir: str | Path, options: ExportOptions) -> ExportSpec:
    """The :class:`~triggerad.export.spec.ExportSpec` of an ``hlf_vae`` or ``l1_vae`` folder.

    Raises
    ------
    SchemaMismatchError
        If the folder's input schema is not the one of this trigger-ad version.
    ConfigError
        Without ``threshold.json`` or for a score the graph cannot compute.
    """
    from anomaly.artifact import SCORE_DEFINITIONS, load_artifact
    from anomaly.model import input_names, quiet_qkeras
    from anomaly.transform import refuse_transform

    art = load_artifact(model_dir)
    refuse_transform(art, "the ONNX export")
    where = str(art.path / "artifact.json")
    if art.kind not in INPUTS:
        raise SchemaMismatchError(f"{where}: the VAE exporter knows kinds {list(INPUTS)}, found "
                                  f"{art.kind!r}; " + did_you_mean(art.kind, INPUTS))
    expected = list(input_names(art.kind))
    if art.input_names != expected:
        found = art.input_names
        i = next((k for k, (a, b) in enumerate(zip(found, expected, strict=False)) if a != b),
                 min(len(found), len(expected)))
        at = lambda names: repr(names[i]) if i < len(names) else "nothing"  # noqa: E731
        raise SchemaMismatchError(
            f"{where}: the exporter does not know this input schema: {len(found)} inputs, the "
            f"{art.kind} of this trigger-ad version has {len(expected)}; first difference at "
            f"position {i}: found {at(found)}, expected {at(expected)}"
        )
    threshold = art.threshold
    if threshold is None:
        raise ConfigError(f"{art.path}: no threshold.json; run `trigger-ad threshold {art.path} "
                          "--rate ...` first (the export checks decisions at the stored cut)")
    score = export_score(options.score, threshold, f"{art.path}/threshold.json")
    x, source = validation_inputs(art, options)
    with quiet_qkeras():
        model_scores = art.score(x)
    input_name, input_description = INPUTS[art.kind]
    references = [Reference("model_score", "score", model_scores[score],
                            f"ModelArtifact.score()[{score!r}]: the model folder's own scoring "
                            "(numpy input preparation + TensorFlow)")]
    meta = {
        "description": f"trigger-ad {art.kind} anomaly score {score!r} from raw inputs "
                       f"{input_name!r} (normalisation inside the graph)",
        "kind": art.kind,
        "model_format_version": art.meta.get("format_version"),
        "input_names": art.input_names,
        "normalisation": {"mean": art.mean.tolist(), "scale": art.scale.tolist(),
                          "applied": "inside the graph: (x - mean) / scale"},
        "score": score,
        "score_definition": SCORE_DEFINITIONS[score],
        "threshold": threshold,
        "latent_dim": art.latent_dim,
        "training_versions": art.meta.get("versions", {}),
        "data_fingerprint": art.data_info.get("fingerprint"),
    }
    if threshold["score"] != score:
        meta["threshold_note"] = (
            f"threshold.json is a cut on {threshold['score']!r} "
            f"({SCORE_DEFINITIONS.get(threshold['score'], 'not a score of the ONNX graph')}); "
            f"this graph computes the float {score!r}, so 'score > threshold.value' only "
            "approximates that selection (agreement in the .onnx.json report, "
            "validation.references.threshold_score); the firmware is the reference for the "
            "quantized score"
        )
    if threshold["score"] != score and threshold["score"] in model_scores:
        references.append(Reference(
            "threshold_score", "score", model_scores[threshold["score"]],
            f"ModelArtifact.score()[{threshold['score']!r}], the score the threshold was set on "
            "(a different score, not a conversion error)"))
    return ExportSpec(
        model=export_graph(art, score, full=options.full),
        inputs=[TensorDoc(input_name, (len(expected),), input_description, columns=expected)],
        outputs=output_docs(art, score, options.full),
        validation_inputs={input_name: x},
        validation_source=source,
        metadata=meta,
        decision=Decision("score", float(threshold["value"]),
                          description=f"threshold.json: {threshold['score']} > value"),
        references=references,
    )
