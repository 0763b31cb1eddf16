"""Shared test fixtures: small hand-built event batches, the small firmware trigger."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def trained():
    """``(x, mean, scale, encoder)``: the small quantized encoder (firmware_samples)."""
    from firmware_samples import trained_encoder

    return trained_encoder()


@pytest.fixture(scope="session")
def trigger(trained, tmp_path_factory):
    """The compiled firmware trigger of ``trained`` (hls4ml C simulation, integer reference)."""
    from firmware_samples import firmware_trigger

    return firmware_trigger(trained, tmp_path_factory.mktemp("trigger"))
