"""Long-lived-particle jet tagger (arXiv:1912.12238): samples, network and training.

Samples: ``samples`` (config and signal models), ``labels`` (truth labels), ``features`` (jets
and their PFNano record), ``generate`` (``trigger-ad tagger generate``), ``summary`` (summary
and checks). Tagger: ``model`` (network, gradient reversal), ``inputs`` (schema,
normalisation), ``schedule``, ``pipeline`` (``tf.data`` input), ``reading`` (its chunks, chunk
cache, shuffle buffer), ``dann`` (training step), ``trainsample`` (files, checks), ``train``
(``trigger-ad tagger train``), ``artifact`` (model folder,
:class:`~tagger.artifact.TaggerModel`), ``kinds`` (model kind ``llp_tagger``). See
docs/tagger.md.
"""
