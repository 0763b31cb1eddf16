"""Default YAML configs shipped with trigger-ad (installed as ``triggerad.configs``)."""
