"""Track samples with the hard interaction on the beam spot (``selection.dz_reference:
beam_spot``, docs/tracks.md "Hard vertex on the beam spot"): the hard-process dz moves by the
event's z_hard, nothing else changes; reproducible for any worker count; config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagger.tracks.config import load_config
from tagger.tracks.data import read
from tagger.tracks.generate import generate
from triggerad.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST = CONFIGS / "tracks-fast.yaml"


def small_config(cache: Path, reference: str):
    return load_config(FAST, {"selection": {"mu": [0.0, 10.0], "n_tracks": 30,
                                            "dz_reference": reference},
                              "pileup": {"pool_size": 100, "cache_dir": str(cache)},
                              "output": {"job_size": 20, "batch_size": 10}})


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """The same events with the hard vertex at the origin and on the beam spot."""
    root = tmp_path_factory.mktemp("beamspot")
    out = {}
    for ref in ("primary_vertex", "beam_spot"):
        generate(small_config(root / "cache", ref), 20, root / ref, seed=5, progress=False)
        out[ref] = {mu: read(root / ref / f"tracks_mu{mu}.npz") for mu in (0, 10)}
        out[ref]["z_hard"] = {mu: np.load(root / ref / f"tracks_mu{mu}.npz")["z_hard"]
                              for mu in (0, 10)}
    out["root"] = root
    return out


def test_hard_process_dz_moves_by_z_hard_and_pileup_is_unchanged(samples):
    pv, bs = samples["primary_vertex"], samples["beam_spot"]
    for mu in (0, 10):
        a, b = pv[mu], bs[mu]
        z = bs["z_hard"][mu]
        assert len(z) == 40 and np.all(pv["z_hard"][mu] == 0)
        # the hard vertex is spread along the beam like the pile-up (sigma 35 mm)
        assert 20.0 < np.std(z) < 50.0
        # same events, same tracks (pT, eta, phi, d0 and errors), same pile-up flags
        np.testing.assert_array_equal(a.n_tracks, b.n_tracks)
        np.testing.assert_array_equal(a.from_pileup, b.from_pileup)
        np.testing.assert_array_equal(a.tracks[..., [0, 1, 2, 3, 5, 6]],
                                      b.tracks[..., [0, 1, 2, 3, 5, 6]])
        real = np.arange(a.tracks.shape[1])[None, :] < a.n_tracks[:, None]
        hard = real & (a.from_pileup == 0)
        pile = real & (a.from_pileup == 1)
        assert hard.sum() > 300 and (mu == 0) == (pile.sum() == 0)
        dz_a, dz_b = a.tracks[..., 4], b.tracks[..., 4]
        # hard-process tracks: dz from the beam spot = dz from the primary vertex + z_hard
        expected = dz_a + z[:, None]
        np.testing.assert_allclose(dz_b[hard], expected[hard], rtol=0, atol=1e-4)
        np.testing.assert_array_equal(dz_b[pile], dz_a[pile])
        assert np.all(dz_b[~real] == 0)
    # with the option |dz| of hard tracks is no longer small: a per-track pile-up tag is gone
    hard10 = (pv[10].from_pileup == 0) & (np.arange(30)[None] < pv[10].n_tracks[:, None])
    assert np.median(np.abs(pv[10].tracks[..., 4][hard10])) < 1.0
    assert np.median(np.abs(bs[10].tracks[..., 4][hard10])) > 5.0


def test_beam_spot_samples_same_for_one_and_two_workers(samples):
    root = samples["root"]
    summary = generate(small_config(root / "cache", "beam_spot"), 20, root / "w2", seed=5,
                       workers=2, executor="process", progress=False)
    assert (summary["workers"], summary["executor"]) == (2, "process")
    assert summary["selection"]["dz_reference"] == "beam_spot"
    for mu in (0, 10):
        one, two = samples["beam_spot"][mu], read(root / "w2" / f"tracks_mu{mu}.npz")
        assert one.fingerprint() == two.fingerprint()
        np.testing.assert_array_equal(samples["beam_spot"]["z_hard"][mu],
                                      np.load(root / "w2" / f"tracks_mu{mu}.npz")["z_hard"])


def test_invalid_dz_reference_names_key_value_and_valid_values():
    with pytest.raises(ConfigError) as err:
        load_config(FAST, {"selection": {"dz_reference": "beamspot"}})
    msg = str(err.value)
    assert "selection.dz_reference" in msg and "found 'beamspot'" in msg
    assert "'primary_vertex', 'beam_spot'" in msg and "did you mean 'beam_spot'" in msg
    assert load_config(FAST).selection.dz_reference == "primary_vertex"


def test_beamspot_config_differs_from_tracks_only_in_the_dz_reference():
    from triggerad.config import to_dict

    ref, bs = (to_dict(load_config(CONFIGS / f"{n}.yaml")) for n in ("tracks", "tracks-beamspot"))
    assert (ref["selection"]["dz_reference"], bs["selection"]["dz_reference"]) == (
        "primary_vertex", "beam_spot")
    ref["selection"]["dz_reference"] = "beam_spot"
    assert ref == bs


def test_reference_config_is_hgmm_with_the_beam_spot_and_raw_inputs():
    from triggerad.config import to_dict

    hgmm, ref = (to_dict(load_config(CONFIGS / f"{n}.yaml"))
                 for n in ("tracks-hgmm", "tracks-reference"))
    assert ref["selection"]["dz_reference"] == "beam_spot"
    assert ref["models"]["inputs"] == ["pt", "eta", "phi", "d0", "dz"]
    hgmm["selection"]["dz_reference"] = "beam_spot"
    hgmm["models"]["inputs"] = ["pt", "eta", "phi", "d0", "dz"]
    assert hgmm == ref


def test_the_commands_name_every_packaged_tracks_config():
    from triggerad.cli.tagger import TRACKS_CONFIGS

    shipped = {p.stem for p in CONFIGS.glob("tracks*.yaml")}
    assert sorted(TRACKS_CONFIGS) == sorted(shipped)
