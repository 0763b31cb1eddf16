"""Long-lived-particle jet tagger (multi-class, c-tau parametrised, domain adaptation). Not yet implemented."""
