"""Readers and writers of the common event record (ADC2021 HDF5, Delphes, NanoAOD, flat ROOT, parquet)."""
