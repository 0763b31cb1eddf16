"""Generic QKeras -> hls4ml conversion driven by the firmware config.

Works for any Keras/QKeras model hls4ml supports (QDense, QConv1D, Concatenate, Flatten,
QActivation, ...), with one or several inputs and outputs, plus the trigger-ad score layers of
:mod:`firmware.score_layer`. Precisions: ``precisions`` (normally
:meth:`triggerad.fixedpoint.FixedGraph.hls_precisions` of the model's fixed-point graph) sets
every type of the layers it names explicitly, so hls4ml infers nothing and the C simulation
computes exactly the integer graph; layers it does not name keep hls4ml's own choices (QKeras
quantizer types, ``auto`` accumulators, ``precision.default``). ``overrides`` (the precision
sweep) are applied last.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from firmware.config import FirmwareConfig, parse_fixed
from firmware.hls_types import fixed_from_hls
from firmware.score_layer import register_hls4ml_extensions
from triggerad.errors import ConfigError, did_you_mean

log = logging.getLogger(__name__)


def _hls_type(text: str) -> str:
    """HLS type string as hls4ml wants it (``auto`` unchanged)."""
    return text if text == "auto" else parse_fixed(text).hls()


def _layer_precisions(model, precisions: dict | None, overrides: dict | None
                      ) -> dict[str, dict[str, str]]:
    """Precision entries per layer name: ``precisions`` for the model's layers, then overrides."""
    names = [layer.name for layer in model.layers]
    out = {name: dict(values) for name, values in (precisions or {}).items() if name in names}
    for name, values in (overrides or {}).items():
        if name not in names:
            raise ConfigError(f"override: no layer {name!r} in model {model.name!r}; "
                              + did_you_mean(name, names))
        out.setdefault(name, {}).update(values)
    return out


def hls_config(model, cfg: FirmwareConfig, precisions: dict | None = None,
               overrides: dict | None = None) -> dict:
    """The hls4ml config dict (granularity ``name``) of ``model`` under the firmware config.

    Parameters
    ----------
    model : keras.Model
        The (Q)Keras model.
    cfg : FirmwareConfig
        Firmware config (strategy, reuse factor, default precision).
    precisions : dict, optional
        ``{layer: {result|accum|weight|bias|scale: type}}`` for the layers whose types are fixed
        (the fixed-point graph's :meth:`~triggerad.fixedpoint.FixedGraph.hls_precisions`;
        entries for layers not in ``model`` are ignored).
    overrides : dict, optional
        Extra per-layer precisions applied last (used by the precision sweep); an unknown layer
        name is refused.
    """
    import hls4ml

    register_hls4ml_extensions()
    conf = hls4ml.utils.config_from_keras_model(
        model, granularity="name", backend=cfg.hls.backend,
        default_precision=_hls_type(cfg.precision.default), default_reuse_factor=cfg.hls.reuse_factor,
    )
    conf["Model"]["Strategy"] = cfg.hls.strategy
    conf["Model"]["ReuseFactor"] = cfg.hls.reuse_factor
    for name, values in _layer_precisions(model, precisions, overrides).items():
        layer_conf = conf["LayerName"].setdefault(name, {})
        layer_conf.setdefault("Precision", {}).update({k: _hls_type(v) for k, v in values.items()})
        layer_conf["Strategy"] = cfg.hls.strategy
        # hls4ml splits a layer's linear activation off as "<name>_linear": with the layer's
        # result set explicitly it would keep it, cast to the default precision (lossy), unless
        # both have the same type (then it is removed)
        linear = conf["LayerName"].get(f"{name}_linear")
        if linear is not None and "result" in values:
            linear.setdefault("Precision", {})["result"] = _hls_type(values["result"])
    return conf


def convert(model, cfg: FirmwareConfig, output_dir: str | Path, precisions: dict | None = None,
            overrides: dict | None = None, testbench: tuple[Path, Path] | None = None):
    """Convert ``model`` with hls4ml into an HLS project in ``output_dir`` (not yet compiled).

    Parameters
    ----------
    model : keras.Model
        The (Q)Keras model (e.g. :func:`firmware.score_layer.trigger_graph`).
    cfg : FirmwareConfig
        Firmware config.
    output_dir : str or Path
        Where hls4ml writes the project.
    precisions, overrides : dict, optional
        Per-layer types (see :func:`hls_config`).
    testbench : (Path, Path), optional
        Input and expected-output vector files (``.dat``) copied into the project's ``tb_data``.

    Returns
    -------
    hls4ml.model.ModelGraph
    """
    import hls4ml

    conf = hls_config(model, cfg, precisions, overrides)
    tb_in, tb_out = (str(p) for p in testbench) if testbench else (None, None)
    return hls4ml.converters.convert_from_keras_model(
        model, hls_config=conf, output_dir=str(output_dir), project_name=cfg.hls.project_name,
        backend=cfg.hls.backend, part=cfg.hls.part, clock_period=cfg.hls.clock_period,
        io_type=cfg.hls.io_type, input_data_tb=tb_in, output_data_tb=tb_out,
    )


def compile_model(model, cfg: FirmwareConfig, output_dir: str | Path, precisions: dict | None = None,
                  overrides: dict | None = None, testbench: tuple[Path, Path] | None = None):
    """:func:`convert`, then write the project and build the C simulation library with g++."""
    hls_model = convert(model, cfg, output_dir, precisions, overrides, testbench)
    hls_model.compile()
    return hls_model


def predict(hls_model, x, batch_size: int, progress: bool = False) -> list[np.ndarray]:
    """Run the compiled C simulation on ``x`` (array or list of arrays) in batches.

    Returns
    -------
    list of np.ndarray
        One float64 array per model output, shape ``(n, output size)``.
    """
    from tqdm import tqdm

    xs = x if isinstance(x, (list, tuple)) else [x]
    n = len(xs[0])
    chunks: list[list[np.ndarray]] = []
    for start in tqdm(range(0, n, batch_size), desc="C simulation", unit="batch",
                      disable=not progress or n <= batch_size):
        batch = [np.ascontiguousarray(a[start:start + batch_size], dtype=np.float64) for a in xs]
        out = hls_model.predict(batch if len(batch) > 1 else batch[0])
        out = out if isinstance(out, (list, tuple)) else [out]
        chunks.append([np.asarray(o, dtype=np.float64).reshape(len(batch[0]), -1) for o in out])
    return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]


def output_types(hls_model) -> list:
    """The :class:`firmware.config.Fixed` type of each model output (for LSB units)."""
    return [fixed_from_hls(v.type.precision) for v in hls_model.get_output_variables()]
