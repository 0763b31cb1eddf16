"""Anomaly-model scoring on streams: the numpy fast path and the stream scorer of the VAE kinds."""
