"""Event generation: Pythia 8 -> parametric trigger-level detector -> single-lepton trigger -> cocktail."""
