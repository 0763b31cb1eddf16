"""Model interchange: ONNX export of a model folder, validated against Keras with ONNX Runtime.

The generic part lives here (no TensorFlow or ONNX import until used):

* :mod:`~triggerad.export.spec` -- what a model kind hands over (:class:`ExportSpec`: a Keras
  graph with named raw inputs and named outputs, tensor documentation, metadata, validation
  inputs, the decision to check);
* the spec of a model folder comes from its kind's ``export_spec`` hook
  (:class:`triggerad.models.ModelKind`, registered through ``trigger_ad.model_kinds``);
* :mod:`~triggerad.export.config` -- the typed ``export`` YAML config (opset, validation);
* :mod:`~triggerad.export.convert` -- tf2onnx conversion, names, metadata properties;
* :mod:`~triggerad.export.onnx_math` -- ONNX forms of TensorFlow ops ONNX lacks (lgamma, erfc,
  log1p, expm1);
* :mod:`~triggerad.export.validate` -- ONNX Runtime vs Keras on the validation inputs;
* :mod:`~triggerad.export.run` -- the whole export: refuse overwrite, convert, validate, write
  ``OUT.onnx`` and ``OUT.onnx.json`` atomically.

The kind-specific builders live with their models (``anomaly.export`` for the VAEs).
"""

from triggerad.export.spec import Decision, ExportOptions, ExportSpec, Reference, TensorDoc

__all__ = ["Decision", "ExportOptions", "ExportSpec", "Reference", "TensorDoc"]
