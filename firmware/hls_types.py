"""hls4ml precision objects as :class:`~firmware.config.Fixed` types (no TensorFlow needed).

Next to :mod:`firmware.config`, which parses the HLS type strings of the YAML config, so that
the report (:mod:`firmware.report`) reads the types of a converted project without importing
the Keras layers of :mod:`firmware.score_layer`.
"""

from __future__ import annotations

from firmware.config import Fixed


def fixed_from_hls(precision) -> Fixed:
    """hls4ml ``FixedPrecisionType``/``IntegerPrecisionType`` -> :class:`Fixed`."""
    rounding = getattr(precision, "rounding_mode", None)
    saturation = getattr(precision, "saturation_mode", None)
    return Fixed(int(precision.width), int(precision.integer), bool(precision.signed),
                 f"AP_{rounding.name}" if rounding is not None else "AP_TRN",
                 f"AP_{saturation.name}" if saturation is not None else "AP_WRAP")
