"""Anomaly detection: the 21 high-level features, VAEs, target-rate thresholds, evaluation and stream scoring."""
