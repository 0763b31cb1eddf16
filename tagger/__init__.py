"""Long-lived-particle jet tagger (arXiv:1912.12238): its samples so far.

``samples`` (config and signal models), ``labels`` (truth labels), ``features`` (jets and their
PFNano record), ``generate`` (``trigger-ad tagger generate``), ``summary`` (summary and checks).
The tagger model, training and evaluation follow. See docs/tagger.md.
"""
