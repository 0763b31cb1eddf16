"""Offline stream scoring: chunked, resumable, exactly-once, rate-monitored, local or Dask."""
