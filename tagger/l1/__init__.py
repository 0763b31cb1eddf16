"""The quantized Level-1 LLP jet tagger (TOoLLiP-like): L1 inputs, QKeras model, training, folder.

:mod:`tagger.l1.features` (per-candidate L1 inputs of a :class:`~triggerad.jets.JetBatch`),
:mod:`tagger.l1.model` (the QKeras network), :mod:`tagger.l1.data` (the training arrays, from the
tagger's sample readers), :mod:`tagger.l1.train` (``trigger-ad tagger train configs/tagger-l1.yaml``),
:mod:`tagger.l1.artifact` (the ``l1_llp_tagger`` model folder and kind). Its firmware is
:class:`firmware.kinds.L1Tagger`. See docs/tagger.md, "L1 tagger".
"""
