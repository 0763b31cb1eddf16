"""Shared test fixtures: the small firmware trigger; the stream tests' tiny model and stream
(a test module may define its own ``model`` / ``stream``, which then take precedence)."""

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


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny untrained L1 VAE artifact with its threshold (``stream_samples.make_model``)."""
    from stream_samples import make_model

    return make_model(tmp_path_factory.mktemp("model") / "l1_vae")


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """Three ADC2021 files of 3000 events, pile-up falling from 60 to 20, lumi blocks of 1000."""
    from stream_samples import write_stream

    return write_stream(tmp_path_factory.mktemp("stream"), 3, 3000, pileup=(60, 20),
                        lumi_size=1000)
