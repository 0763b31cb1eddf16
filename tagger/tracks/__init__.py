"""Track-level LLP event classification under pile-up (issue 20).

Per event the N highest-pT tracks (hard process + pile-up) of the parametric detector; a per-track
MLP with mean pooling (Deep-Sets-like) and a Transformer encoder classify LLP signal against QCD,
trained on truth labels (supervised) or on two mixed samples (CWoLa). Modules: :mod:`.config`
(``configs/tracks*.yaml``), :mod:`.generate` (samples), :mod:`.features` (model inputs),
:mod:`.models` (Keras networks), :mod:`.cwola` (mixed samples), :mod:`.train`, :mod:`.artifact`
(model folder, kind ``track_classifier``), :mod:`.evaluate`, :mod:`.synthetic` (toy samples for
tests). See docs/tracks.md.
"""
