"""The whole export of a model folder: ``OUT.onnx`` plus its validation report ``OUT.onnx.json``.

Steps: refuse to replace existing outputs (unless ``force``), select the kind's builder from the
model folder's ``kind``, convert, run ONNX Runtime against Keras on the validation inputs, refuse
(nothing written) when the decision agreement is below ``validation.min_agreement``, then write
both files atomically (temporary file + rename; the report first, so an ``OUT.onnx`` always has
its report).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from triggerad import atomic
from triggerad.config import to_dict
from triggerad.errors import ConfigError
from triggerad.export.config import ExportConfig
from triggerad.export.convert import (
    ExportError,
    convert,
    export_metadata,
    package_versions,
    require_packages,
)
from triggerad.export.spec import ExportOptions
from triggerad.provenance import provenance

log = logging.getLogger(__name__)


def report_path(out: str | Path) -> Path:
    """The validation report next to an ONNX file: ``OUT.onnx.json``."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def check_output(out: str | Path, *, force: bool) -> None:
    """Refuse a name not ending in ``.onnx``, a folder, or existing outputs without ``force``.

    Raises
    ------
    ConfigError
        Naming the offending path.
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise ConfigError(f"--onnx {out}: expected a file name ending in .onnx, found {out.name!r}")
    for path in (out, report_path(out)):
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder, expected an ONNX file name")
        if path.exists() and not force:
            raise ConfigError(f"{path}: exists; pass --force to replace it")


def export_model(
    model_dir: str | Path, out: str | Path, *, config: ExportConfig, options: ExportOptions,
    force: bool = False, extra: dict | None = None,
) -> dict:
    """Export a model folder to ONNX, validate it with ONNX Runtime and write it with its report.

    Parameters
    ----------
    model_dir : path
        Model folder (its ``artifact.json`` ``kind`` selects the export builder).
    out : path
        The ONNX file to write (``.onnx``); the report goes to ``OUT.onnx.json``.
    config : ExportConfig
        Opset and validation settings.
    options : ExportOptions
        Choices passed to the kind's builder (score, full model, validation data, events).
    force : bool
        Replace existing outputs.
    extra : dict, optional
        More provenance fields (e.g. the command-line options).

    Returns
    -------
    dict
        The report written to ``OUT.onnx.json``.

    Raises
    ------
    ExportError
        If the packages are missing, the conversion fails, or the decision agreement is below
        ``config.validation.min_agreement`` (nothing is written then).
    """
    from triggerad.export.validate import validate
    from triggerad.models import read_meta

    check_output(out, force=force)
    require_packages()
    out, model_dir = Path(out), Path(model_dir)
    kind, _ = read_meta(model_dir)
    spec = kind.export_spec(model_dir, options)
    spec.check(where=f"{model_dir} ({kind.name} export)")
    vcfg = config.validation
    if spec.n_events < vcfg.min_events:
        log.warning("validating on %d events only (validation.min_events %d): %s",
                    spec.n_events, vcfg.min_events, spec.validation_source)
    meta = export_metadata(spec, config.onnx.opset)
    replaced: set[str] = set()
    proto, keras_model = convert(spec, opset=config.onnx.opset, meta=meta, replaced=replaced)
    data = proto.SerializeToString()
    validation = validate(spec, data, keras_model, vcfg.batch_size)
    validation.update(min_events=vcfg.min_events, below_min_events=spec.n_events < vcfg.min_events,
                      min_agreement=vcfg.min_agreement)
    decision = validation["decision"]
    if decision is not None and decision["agreement"] < vcfg.min_agreement:
        raise ExportError(
            f"{model_dir}: ONNX Runtime and Keras agree on {decision['agreement']:.6f} of the "
            f"decisions {decision['selection']} ({decision['n_disagree']} of "
            f"{validation['n_events']} events differ), below validation.min_agreement "
            f"{vcfg.min_agreement}; nothing written"
        )
    report = {
        "onnx_file": out.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "model": str(model_dir.resolve()),
        "kind": kind.name,
        "opset": config.onnx.opset,
        "ir_version": int(proto.ir_version),
        "inputs": meta["inputs"],
        "outputs": meta["outputs"],
        "replaced_tf_ops": sorted(replaced),
        "validation": validation,
        "packages": package_versions(),
        "metadata": meta,
        "config": to_dict(config),
        "provenance": provenance("export", extra),
    }
    with atomic.atomic_path(out) as tmp_onnx, atomic.atomic_path(report_path(out)) as tmp_report:
        tmp_onnx.write_bytes(data)
        atomic.write_json(tmp_report, report)
    return report
