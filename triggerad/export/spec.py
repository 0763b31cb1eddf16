"""What a model kind hands to the generic exporter: :class:`ExportSpec` and its parts.

A model kind's ``export_spec`` hook (:class:`triggerad.models.ModelKind`) turns a model folder
into an :class:`ExportSpec`: a Keras model whose inputs are the RAW physical inputs in the
documented layout (normalisation inside the graph) and whose outputs are named, the documentation
of every input and output, the metadata to store in the ONNX file, validation inputs taken from
the model's own validation split, and the decision (output, cut) whose agreement is checked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from triggerad.errors import SchemaMismatchError


@dataclass
class TensorDoc:
    """Name, per-event shape and meaning of one graph input or output.

    Attributes
    ----------
    name : str
        Tensor name in the ONNX graph.
    shape : tuple of int
        Shape of one event (the graph adds a leading dynamic batch dimension).
    description : str
        What it holds, with units.
    columns : list of str, optional
        Names along the last axis (the documented input layout), if meaningful.
    dtype : str
        numpy dtype name.
    """

    name: str
    shape: tuple[int, ...]
    description: str
    columns: list[str] | None = None
    dtype: str = "float32"

    def as_dict(self) -> dict:
        """JSON-able form (stored in the ONNX metadata and the report)."""
        out = asdict(self)
        out["shape"] = ["batch", *self.shape]
        if self.columns is None:
            del out["columns"]
        return out


@dataclass
class Decision:
    """The selection whose agreement ONNX Runtime vs Keras is checked: ``output > value``.

    Attributes
    ----------
    output : str
        Output name.
    value : float
        The cut (e.g. the stored threshold).
    column : int, optional
        Column of a 2-d output (e.g. one class probability); None for a per-event scalar.
    description : str
        Where the cut comes from.
    """

    output: str
    value: float
    column: int | None = None
    description: str = ""

    def select(self, values: np.ndarray) -> np.ndarray:
        """Boolean (n,) selection ``values > value``.

        Raises
        ------
        SchemaMismatchError
            If the (column of the) output is not one value per event.
        """
        v = np.asarray(values)
        if self.column is not None:
            v = v[:, self.column]
        if v.ndim != 1:
            raise SchemaMismatchError(
                f"decision on output {self.output!r}: expected one value per event, found shape "
                f"{v.shape}; give the column to cut on"
            )
        return v > self.value

    def as_dict(self) -> dict:
        """JSON-able form, with the selection written out."""
        target = self.output if self.column is None else f"{self.output}[:, {self.column}]"
        return {**asdict(self), "selection": f"{target} > {self.value!r}"}


@dataclass
class Reference:
    """Values of one output computed by the kind's own code, compared with ONNX Runtime too.

    Attributes
    ----------
    label : str
        Key in the report (e.g. ``model_score``).
    output : str
        The graph output they correspond to.
    values : array
        One row per validation event.
    description : str
        What they are (e.g. "ModelArtifact.score()['nll'], the model folder's scoring code").
    """

    label: str
    output: str
    values: np.ndarray
    description: str = ""


@dataclass
class ExportOptions:
    """Command-line choices passed to a kind's export builder.

    Attributes
    ----------
    score : str, optional
        The score (output) to export and decide on; None for the kind's default.
    full : bool
        Export the complete model (e.g. the whole VAE), not only what the decision needs.
    data : list of str, optional
        Validate on all events of these files instead of the model's validation split.
    n_events : int
        At most this many validation events (0: all).
    """

    score: str | None = None
    full: bool = False
    data: list[str] | None = None
    n_events: int = 100_000


@dataclass
class ExportSpec:
    """Everything the generic exporter needs about one model.

    Attributes
    ----------
    model : keras.Model
        Functional model with one ``keras.Input`` per entry of ``inputs`` (same names, raw
        physical values) and a dict of outputs keyed by the names in ``outputs``.
    inputs, outputs : list of TensorDoc
        Documentation of the graph inputs and outputs, in order.
    validation_inputs : dict of str to array
        Raw inputs (n, \\*shape) per input name.
    validation_source : str
        Where the validation events come from.
    metadata : dict
        JSON-able key/values written into the ONNX metadata properties (schema, threshold,
        score definition, training versions, ...).
    decision : Decision, optional
        The decision to check (agreement ONNX Runtime vs Keras); None if the model has none.
    references : list of Reference
        Optional outputs of the kind's own scoring code on the same events (e.g. the model
        folder's ``score``), compared with ONNX Runtime too.
    """

    model: Any
    inputs: list[TensorDoc]
    outputs: list[TensorDoc]
    validation_inputs: dict[str, np.ndarray]
    validation_source: str
    metadata: dict[str, Any]
    decision: Decision | None = None
    references: list[Reference] = field(default_factory=list)

    @property
    def input_names(self) -> list[str]:
        """Input names in order."""
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        """Output names in order."""
        return [t.name for t in self.outputs]

    @property
    def n_events(self) -> int:
        """Number of validation events."""
        return len(next(iter(self.validation_inputs.values()))) if self.validation_inputs else 0

    def check(self, where: str) -> None:
        """Raise :class:`SchemaMismatchError` if names, shapes or references are inconsistent."""
        names = self.input_names + self.output_names
        if len(set(names)) != len(names):
            raise SchemaMismatchError(f"{where}: input/output names must be unique, found {names}")
        if sorted(self.validation_inputs) != sorted(self.input_names):
            raise SchemaMismatchError(
                f"{where}: validation inputs {sorted(self.validation_inputs)} do not match the "
                f"graph inputs {self.input_names}"
            )
        for doc in self.inputs:
            found = np.shape(self.validation_inputs[doc.name])[1:]
            if tuple(found) != tuple(doc.shape):
                raise SchemaMismatchError(
                    f"{where}: input {doc.name!r} expects per-event shape {tuple(doc.shape)}, the "
                    f"validation inputs have {tuple(found)}"
                )
            if doc.columns is not None and len(doc.columns) != doc.shape[-1]:
                raise SchemaMismatchError(
                    f"{where}: input {doc.name!r} documents {len(doc.columns)} columns for a last "
                    f"axis of {doc.shape[-1]}"
                )
        lengths = {len(v) for v in self.validation_inputs.values()}
        if len(lengths) > 1:
            raise SchemaMismatchError(f"{where}: validation inputs differ in length: {lengths}")
        unknown = [r.output for r in self.references if r.output not in self.output_names]
        if self.decision is not None and self.decision.output not in self.output_names:
            unknown.append(self.decision.output)
        if unknown:
            raise SchemaMismatchError(
                f"{where}: {unknown[0]!r} is not an output; outputs are {self.output_names}"
            )
