"""Generation on every executor: the same seed gives bit-identical files in-process and on Dask."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import yaml
from test_generation import N_EVENTS, SMALL

from triggerad.cli import main
from triggerad.generation import run as grun
from triggerad.generation.config import load_config

pytest.importorskip("pythia8mc")


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL, sort_keys=False))
    return path


def datasets(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in f}


@pytest.mark.slow
def test_dask_generation_is_bit_identical_to_the_local_run(small_config, tmp_path):
    pytest.importorskip("dask.distributed")
    local = grun.generate(load_config(small_config), N_EVENTS, tmp_path / "local", seed=3,
                          executor="local", progress=False)
    assert local["executor"] == "local"
    assert main(["generate", str(small_config), "--events", str(N_EVENTS), "--seed", "3",
                 "--out", str(tmp_path / "dask"), "--executor", "dask", "--workers", "2"]) == 0
    for stem in ("background", "signal_A_4l"):
        ref, found = (datasets(tmp_path / d / f"{stem}.h5") for d in ("local", "dask"))
        assert ref.keys() == found.keys() and len(ref["Particles"]) > 0
        for name in ref:
            np.testing.assert_array_equal(found[name], ref[name], err_msg=f"{stem}:{name}")


def test_unknown_executor_exits_2_before_generating(small_config, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", str(small_config), "--out", str(out), "--executor", "dusk"]) == 2
    err = capsys.readouterr().err
    assert "error: unknown executor 'dusk'; did you mean 'dask'? Valid: " in err
    assert all(f"'{name}'" in err for name in ("local", "process", "dask"))
    assert not out.exists()
