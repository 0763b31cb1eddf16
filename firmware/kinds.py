"""The per-kind piece of the firmware: what a model kind's trigger computes and decides.

The firmware pipeline (:mod:`firmware.convert` -> :mod:`firmware.validate` -> :mod:`firmware.emit`
-> :mod:`firmware.report`) is the same for every model. What differs per model kind is here, in
:data:`FIRMWARE_KINDS` (keyed by the model folder's ``kind``): which model it takes (inputs,
normalisation, network), which outputs the firmware computes and which decision it takes on them.
Adding the L1 LLP tagger means adding one :class:`FirmwareKind` and one entry.
"""

from __future__ import annotations

import logging
from typing import Any

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
        from firmware.emit import TriggerInputs

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


ANOMALY_ENCODER = AnomalyEncoder()

#: Model kind (``artifact.json`` ``kind``) -> its firmware.
FIRMWARE_KINDS: dict[str, FirmwareKind] = {
    "hlf_vae": ANOMALY_ENCODER,
    "l1_vae": ANOMALY_ENCODER,
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
