"""The per-kind piece of the firmware: what a model kind's trigger computes and decides.

The firmware pipeline (:mod:`firmware.convert` -> :mod:`firmware.validate` -> :mod:`firmware.emit`
-> :mod:`firmware.report`) is the same for every model. What differs per model kind is here, in
:data:`FIRMWARE_KINDS` (keyed by the model folder's ``kind``): which model it takes (inputs,
normalisation, network), which outputs the firmware computes and which decision it takes on them.
Adding the L1 LLP tagger means adding one :class:`FirmwareKind` and one entry.
"""

from __future__ import annotations

from typing import Any

from triggerad.errors import ConfigError


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
        """What the firmware needs from ``model``: network, normalisation, inputs, threshold."""
        raise NotImplementedError

    def graph(self, inputs, precision):
        """The Keras graph that mirrors the firmware bit for bit (what hls4ml converts)."""
        raise NotImplementedError

    def check_threshold(self, model) -> dict:
        """The model's ``threshold.json``, refused if missing or on a score the firmware lacks."""
        thr = model.threshold
        if thr is None:
            raise ConfigError(f"{model.path}: no threshold.json; run `trigger-ad threshold "
                              f"{model.path} --rate ...` first (the firmware needs the cut for the "
                              "trigger bit)")
        if thr.get("score") not in self.scores:
            raise ConfigError(
                f"{model.path}/threshold.json: the {self.name} firmware computes the score(s) "
                f"{', '.join(self.scores)}, found threshold on {thr.get('score')!r}"
            )
        return thr


class AnomalyEncoder(FirmwareKind):
    """The anomaly trigger: quantized VAE encoder, score = sum of mu^2, bit = score > threshold."""

    name = "anomaly encoder (score = sum of mu^2)"
    scores = ("mu2_q", "mu2")

    def trigger_inputs(self, model):
        """:class:`firmware.emit.TriggerInputs` of an anomaly model folder."""
        from firmware.emit import TriggerInputs

        thr = self.check_threshold(model)
        return TriggerInputs(model.quantized_encoder(), model.mean, model.scale,
                             list(model.input_names), float(thr["value"]), thr["score"])

    def graph(self, inputs, precision):
        """Fixed-point normalisation -> encoder -> sum of mu^2 -> threshold bit."""
        from firmware.score_layer import trigger_graph

        return trigger_graph(inputs.encoder, inputs.mean, inputs.scale, inputs.threshold,
                             precision)


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
