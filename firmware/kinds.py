"""The per-kind piece of the firmware: what a model kind's trigger computes and decides.

The firmware pipeline (:mod:`firmware.convert` -> :mod:`firmware.validate` -> :mod:`firmware.emit`
-> :mod:`firmware.report`) is the same for every model. What differs per model kind is here, in
:data:`FIRMWARE_KINDS` (keyed by the model folder's ``kind``): which model it takes (inputs,
normalisation, network), which outputs the firmware computes and which decision it takes on them,
what the float reference is and how the project README describes the inputs and outputs:
:class:`AnomalyEncoder` (score = sum of mu^2 + trigger bit) and :class:`L1Tagger` (the LLP logit +
tag bit at the working point stored in the model folder).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from triggerad.errors import ConfigError

log = logging.getLogger(__name__)


class FirmwareKind:
    """What the firmware of a model kind computes.

    Attributes
    ----------
    name : str
        Name of the trigger (the README and the report say which one was built).
    scores : tuple of str
        Scores the firmware computes: a threshold must be set on one of them.
    """

    name = "base"
    scores: tuple[str, ...] = ()

    def trigger_inputs(self, model) -> Any:
        """What the firmware needs from ``model``: network, fixed-point graph, inputs, threshold."""
        raise NotImplementedError

    def graph(self, inputs):
        """The Keras graph hls4ml converts (its types come from :meth:`reference`)."""
        raise NotImplementedError

    def reference(self, inputs):
        """The integer fixed-point graph (:class:`triggerad.fixedpoint.FixedGraph`) the firmware
        computes bit for bit: the validation reference and the source of every hls4ml type."""
        raise NotImplementedError

    def float_score(self, inputs, x_raw, batch_size: int):
        """The float pipeline's score (the training-time QKeras model in float32) of raw inputs."""
        raise NotImplementedError

    def readme_info(self, inputs, reference) -> dict:
        """Kind-specific entries of the project description (README and report)."""
        return {}

    def readme_parts(self, info: dict) -> dict[str, str]:
        """README text: ``summary`` (what the trigger computes), ``inputs`` (the input format
        section), ``score`` (the score output line), ``bit`` (the bit output line),
        ``reference`` (what the expected test-bench outputs are)."""
        raise NotImplementedError

    def check_threshold(self, model) -> dict:
        """The model's ``threshold.json``, refused if missing or set on a score the firmware does
        not compute."""
        thr = model.threshold
        if thr is None:
            raise ConfigError(f"{model.path}: no threshold.json; run `trigger-ad threshold "
                              f"{model.path} --rate ...` first (the firmware needs the cut for the "
                              "trigger bit)")
        if thr.get("score") not in self.scores:
            raise ConfigError(
                f"{model.path}/threshold.json: the cut is on {thr.get('score')!r}, but the "
                f"firmware computes {', '.join(map(repr, self.scores))} ({self.name}); the same "
                "cut on another score gives another rate than the one recorded. Set the threshold "
                f"on the firmware score at the same target: `{self._threshold_command(model, thr)}`")
        return thr

    def check_digest(self, model, thr: dict, digest: str) -> None:
        """Refuse a threshold set with another fixed-point graph than the model's (``digest``);
        warn for an older threshold that does not record one."""
        stored = thr.get("fixed_point_digest")
        if stored is None:
            log.warning("%s/threshold.json does not record the fixed-point graph it was set with "
                        "(an older threshold?); set it again to be sure it matches the firmware",
                        model.path)
        elif stored != digest:
            raise ConfigError(
                f"{model.path}/threshold.json was set with other fixed-point types or weights than "
                f"the model's current ones (digest {stored[:12]}... vs {digest[:12]}...); set it "
                f"again: `{self._threshold_command(model, thr)}`")

    def _threshold_command(self, model, thr: dict) -> str:
        """The ``trigger-ad threshold`` command setting the same target on the firmware score."""
        if thr.get("target_rate_hz") and thr.get("input_rate_hz"):
            target = f"--rate {thr['target_rate_hz']:.6g} --input-rate {thr['input_rate_hz']:.6g}"
        elif thr.get("fpr"):
            target = f"--fpr {thr['fpr']:.6g}"
        else:
            target = "--rate RATE"
        return f"trigger-ad threshold {model.path} {target} --score {self.scores[0]}"


class AnomalyEncoder(FirmwareKind):
    """The anomaly trigger: quantized VAE encoder, score = sum of mu^2, bit = score > threshold.

    The threshold must have been set on ``mu2_q`` (the model's integer score): a cut set on
    another score (e.g. the float ``mu2``) is refused, since applied to ``mu2_q`` it would select
    another rate than the one ``threshold.json`` records.
    """

    name = "anomaly encoder (score = sum of mu^2)"
    scores = ("mu2_q",)

    def trigger_inputs(self, model):
        """:class:`firmware.emit.TriggerInputs` of an anomaly model folder."""
        from anomaly.transform import refuse_transform
        from firmware.emit import TriggerInputs

        refuse_transform(model, "the firmware")
        thr = self.check_threshold(model)
        graph = model.fixed_graph()
        self.check_digest(model, thr, graph.digest())
        return TriggerInputs(model.quantized_encoder(), graph, model.mean, model.scale,
                             list(model.input_names), float(thr["value"]), thr["score"])

    def graph(self, inputs):
        """Normalisation -> quantized encoder -> sum of mu^2 -> threshold bit, as Keras layers."""
        from firmware.score_layer import trigger_graph

        return trigger_graph(inputs.encoder, inputs.graph, inputs.threshold)

    def reference(self, inputs):
        """The model's integer graph extended by the threshold bit."""
        from firmware.score_layer import trigger_reference

        return trigger_reference(inputs.graph, inputs.threshold)

    def float_score(self, inputs, x_raw, batch_size: int):
        """Float normalisation, the QKeras encoder in float32, sum of mu^2."""
        from firmware.emit import float_score

        return float_score(inputs, x_raw, batch_size)

    def readme_info(self, inputs, reference) -> dict:
        """Normalisation constants and types of the README's input table."""
        from triggerad.fixedpoint import ScaleShift

        norm = next(layer for layer in reference.layers if isinstance(layer, ScaleShift))
        return {"mean": list(inputs.mean), "scale": list(inputs.scale),
                "scale_type": norm.scale_type.hls(), "offset_type": norm.bias_type.hls(),
                "normalised_type": norm.result.hls()}

    def readme_parts(self, info: dict) -> dict[str, str]:
        names = info["input_names"]
        rows = "\n".join(f"| {i} | {n} | {m:.6g} | {s:.6g} |" for i, (n, m, s) in
                         enumerate(zip(names, info["mean"], info["scale"], strict=True)))
        return {
            "summary": "Anomaly trigger: raw trigger objects -> normalisation -> quantized VAE "
                       "encoder (mu) ->\nscore = sum of mu^2 -> trigger bit = score > threshold. "
                       "No decoder, no sampling.",
            "inputs": f"""`input_t` = `{info['input_type']}`: the raw values in physical units (pT in GeV, eta, phi in
radians), LSB {info['input_lsb']:g}; values outside the range saturate. Order of the array:

| index | input | mean | scale |
|---|---|---|---|
{rows}

The firmware normalises them itself (hls4ml `BatchNormalization`, `nnet::normalize`):
`x_norm = x * s + b` with `s = 1/scale` as `{info['scale_type']}` and `b = -mean/scale` as
`{info['offset_type']}`, rounded to `{info['normalised_type']}`.""",
            "score": "anomaly score",
            "bit": "trigger bit, 1 when the score is above the threshold",
            "reference": "the model's `mu2_q`",
        }


ANOMALY_ENCODER = AnomalyEncoder()

class L1Tagger(FirmwareKind):
    """The L1 LLP tagger: QKeras network on the jet's candidates -> the LLP logit (``score``) ->
    tag bit = logit > the working point stored in the model folder (``threshold.json``, on
    ``logit_q``: the model's integer logit, signed).

    No normalisation layer: the inputs are the L1 features of :mod:`tagger.l1.features` (already
    O(1)), in the model's input type.
    """

    name = "L1 LLP tagger (score = LLP logit)"
    scores = ("logit_q",)

    def trigger_inputs(self, model):
        """:class:`firmware.emit.TriggerInputs` of an L1 tagger folder."""
        from firmware.emit import TriggerInputs

        thr = self.check_threshold(model)
        graph = model.fixed_graph()
        self.check_digest(model, thr, graph.digest())
        return TriggerInputs(model.network(), graph, None, None, list(model.input_names),
                             float(thr["value"]), thr["score"])

    def graph(self, inputs):
        """The network's layers (same objects and names) -> [logit, tag bit], as Keras layers."""
        from tensorflow import keras

        from firmware.score_layer import TRIGGER, ThresholdBit, apply_layers

        net = inputs.encoder
        (source,) = inputs.graph.inputs
        inp = keras.Input(net.input_shape[1:], name=source.name)
        logit = apply_layers(net, [inp])[0]
        score_type = inputs.graph.layer(inputs.graph.outputs[0]).result.hls()
        bit = ThresholdBit(inputs.threshold, score_type, name=TRIGGER)(logit)
        return keras.Model(inp, [logit, bit], name="l1_llp_tagger_trigger")

    def reference(self, inputs):
        """The model's integer graph (ending in the ``score`` logit) plus the tag bit."""
        from firmware.score_layer import trigger_reference

        return trigger_reference(inputs.graph, inputs.threshold)

    def float_score(self, inputs, x_raw, batch_size: int):
        """The QKeras network in float32 on the float L1 features: the float logit."""
        from firmware.validate import keras_reference

        x = np.asarray(x_raw, dtype=np.float32)
        return keras_reference(inputs.encoder, x, batch_size)[0][:, 0]

    def readme_info(self, inputs, reference) -> dict:
        """Candidates per jet (the README's input layout)."""
        return {"candidates": int(inputs.encoder.input_shape[1])}

    def readme_parts(self, info: dict) -> dict[str, str]:
        names, n = info["input_names"], info["candidates"]
        f = len(names)
        rows = "\n".join(f"| {i} | {name} |" for i, name in enumerate(names))
        return {
            "summary": "L1 LLP jet tagger: the jet's leading candidates -> two pointwise "
                       "QConv1D + ReLU ->\nGlobalAveragePooling1D -> QDense + ReLU -> QDense: "
                       "the LLP logit -> tag bit = logit > working point.",
            "inputs": f"""`input_t` = `{info['input_type']}` (LSB {info['input_lsb']:g}; values outside the range
saturate). The array holds {n} candidates x {f} features, candidate-major: element
`c * {f} + k` is feature `k` of candidate `c` (shape ({n}, {f}) flattened). Candidates: charged
and neutral merged, leading in pT first, missing ones all zero. Features (definitions:
trigger-ad docs/tagger.md, "L1 tagger"; impact parameters `slog(x) = sign(x) log10(1 + |x| /
10 um)`, a look-up table on the track word):

| k | feature |
|---|---|
{rows}""",
            "score": "LLP logit (signed)",
            "bit": "tag bit, 1 when the logit is above the working point",
            "reference": "the model's integer logit `logit_q`",
        }


L1_TAGGER = L1Tagger()

#: Model kind (``artifact.json`` ``kind``) -> its firmware.
FIRMWARE_KINDS: dict[str, FirmwareKind] = {
    "hlf_vae": ANOMALY_ENCODER,
    "l1_vae": ANOMALY_ENCODER,
    "l1_llp_tagger": L1_TAGGER,
}


def firmware_kind(model) -> FirmwareKind:
    """The firmware of ``model``'s kind.

    Raises
    ------
    ConfigError
        If no firmware is registered for the kind (listing the kinds that have one).
    """
    kind = getattr(model, "kind", None)
    if kind not in FIRMWARE_KINDS:
        raise ConfigError(f"{model.path}: no firmware for {kind!r} models; firmware exists for "
                          f"{', '.join(map(repr, FIRMWARE_KINDS))}")
    return FIRMWARE_KINDS[kind]
