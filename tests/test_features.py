"""The 21 high-level features and the L1 inputs on hand-checked events."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly.features import L1_INPUT_NAMES, compute_features, feature_frame, l1_inputs, l1_mask
from triggerad import schema
from triggerad.events import EventBatch, from_collections

F = {name: i for i, name in enumerate(schema.FEATURE_NAMES)}


def _coll(pt, eta=None, phi=None, **extra):
    pt = np.atleast_2d(np.asarray(pt, dtype=np.float32))
    out = {
        "pt": pt,
        "eta": np.zeros_like(pt) if eta is None else np.atleast_2d(np.asarray(eta, np.float32)),
        "phi": np.zeros_like(pt) if phi is None else np.atleast_2d(np.asarray(phi, np.float32)),
    }
    out.update({k: np.asarray(v) for k, v in extra.items()})
    return out


def single_muon_event():
    """One muon pT 40 at phi 0, MET 30 at phi pi/2, two jets."""
    return from_collections(
        met_pt=np.array([30.0]),
        met_phi=np.array([np.pi / 2]),
        electrons=_coll(np.zeros((1, 0))),
        muons=_coll([40.0], charge=[[-1]], iso=[[[0.1, 0.05, 0.02]]]),
        jets=_coll([50.0, 30.0], eta=[0.0, 0.0], phi=[0.0, np.pi], mass=[[0.0, 0.0]],
                   btag=[[True, False]]),
        n_ch_had=np.array([17], dtype=np.int32),
        n_neu_had=np.array([5], dtype=np.int32),
        weight=np.array([2.5]),
        process=np.array(["W"], dtype=object),
    )


def test_single_lepton_met_event_hand_checked():
    row = compute_features(single_muon_event())[0]
    np.testing.assert_allclose(row[F["MT"]], np.sqrt(2 * 40 * 30), rtol=1e-6)
    np.testing.assert_allclose(row[F["METp"]], 0.0, atol=1e-5)
    np.testing.assert_allclose(row[F["METo"]], 30.0, rtol=1e-6)
    np.testing.assert_allclose(row[F["LepPt"]], 40.0)
    np.testing.assert_allclose(row[F["HT"]], 80.0)
    # back-to-back massless jets of 50 and 30 GeV at eta 0: m = 2 sqrt(50*30)
    np.testing.assert_allclose(row[F["allJetMass"]], 2 * np.sqrt(50 * 30), rtol=1e-5)
    np.testing.assert_allclose(row[F["allMuPt"]], 40.0)
    assert row[F["allMuMass"]] == 0.0
    np.testing.assert_allclose(row[[F["LepIsoCh"], F["LepIsoGamma"], F["LepIsoNeu"]]],
                               [0.1, 0.05, 0.02], rtol=1e-6)
    assert (row[F["nMu"]], row[F["nEle"]], row[F["nJets"]], row[F["bJets"]]) == (1, 0, 2, 1)
    assert (row[F["LepCharge"]], row[F["LepIsEle"]]) == (-1, 0)
    assert (row[F["nChHad"]], row[F["nNeuHad"]]) == (17, 5)
    assert row[F["allElePt"]] == 0 and row[F["allEleMass"]] == 0


def test_dielectron_mass_and_lepton_choice():
    # Two electrons of 45 GeV back to back at eta 0 -> m = 90; a softer muon does not become the lepton
    batch = from_collections(
        met_pt=np.array([10.0]),
        met_phi=np.array([np.pi]),
        electrons=_coll([45.0, 45.0], phi=[0.0, np.pi], charge=[[1, -1]]),
        muons=_coll([20.0], charge=[[1]]),
        jets=_coll(np.zeros((1, 0))),
    )
    row = compute_features(batch)[0]
    np.testing.assert_allclose(row[F["allEleMass"]], 90.0, rtol=1e-5)
    np.testing.assert_allclose(row[F["allElePt"]], 0.0, atol=1e-4)
    assert (row[F["LepIsEle"]], row[F["LepCharge"]], row[F["nEle"]]) == (1, 1, 2)
    # MET antiparallel to the lepton: METp = -10, MT = sqrt(2*45*10*2)
    np.testing.assert_allclose(row[F["METp"]], -10.0, rtol=1e-6)
    np.testing.assert_allclose(row[F["MT"]], np.sqrt(2 * 45 * 10 * 2), rtol=1e-6)


def test_event_without_lepton_uses_met_components():
    batch = from_collections(
        met_pt=np.array([20.0]), met_phi=np.array([np.pi / 2]),
        electrons=_coll(np.zeros((1, 0))), muons=_coll(np.zeros((1, 0))), jets=_coll([100.0]),
    )
    row = compute_features(batch)[0]
    assert row[F["LepPt"]] == 0 and row[F["MT"]] == 0 and row[F["LepCharge"]] == 0
    np.testing.assert_allclose([row[F["METp"]], row[F["METo"]]], [0.0, 20.0], atol=1e-5)


def test_objects_are_pt_ordered_and_truncated_to_slots():
    pt = np.array([[5.0, 50.0, 20.0, 0.0, 30.0, 10.0]], dtype=np.float32)
    batch = from_collections(
        met_pt=np.array([1.0]), met_phi=np.array([0.0]),
        electrons=_coll(pt, eta=np.arange(6, dtype=np.float32)[None], charge=[[1, -1, 1, 1, -1, 1]]),
        muons=_coll(np.zeros((1, 0))), jets=_coll(np.zeros((1, 0))),
    )
    np.testing.assert_array_equal(batch.electrons[0, :, 0], [50, 30, 20, 10])
    np.testing.assert_array_equal(batch.electrons[0, :, 1], [1, 4, 2, 5])
    np.testing.assert_array_equal(batch.ele_charge[0], [-1, -1, 1, 1])
    np.testing.assert_array_equal(batch.objects[0, :, 3],
                                  [1, 2, 2, 2, 2] + [0] * 14)


def test_feature_frame_columns_exact():
    frame = feature_frame(single_muon_event())
    assert list(frame.columns) == list(schema.FEATURE_NAMES) + ["event", "process", "weight"]
    assert frame["process"].iloc[0] == "W" and frame["weight"].iloc[0] == 2.5


def test_feature_only_batch_returns_precomputed_features():
    hlf = np.arange(42, dtype=np.float32).reshape(2, 21)
    batch = EventBatch.empty(2, hlf=hlf, has_objects=False)
    np.testing.assert_array_equal(compute_features(batch), hlf)
    with pytest.raises(ValueError, match="no trigger objects"):
        l1_inputs(batch)


def test_l1_inputs_and_mask():
    batch = single_muon_event()
    x, m = l1_inputs(batch), l1_mask(batch)
    assert x.shape == (1, 57) and len(L1_INPUT_NAMES) == 57
    assert L1_INPUT_NAMES[:4] == ("MET_pT", "MET_eta", "MET_phi", "Electron0_pT")
    np.testing.assert_allclose(x[0, [0, 2]], [30.0, np.pi / 2], rtol=1e-6)
    np.testing.assert_allclose(x[0, 15], 40.0)  # Muon0_pT: slot 5 -> index 15
    # MET + 1 muon + 2 jets occupied -> 4 slots x 3 entries
    assert m.sum() == 12 and m[0, 15] == 1 and m[0, 3] == 0


def test_l1_inputs_equal_the_slot_slice_bit_for_bit():
    rng = np.random.default_rng(5)
    objects = rng.normal(size=(50, 19, 4)).astype(np.float32)
    batch = EventBatch.empty(50, objects=objects)
    expected = objects[:, :, :3].reshape(50, -1)
    x = l1_inputs(batch)
    assert x.dtype == np.float32 and x.flags.c_contiguous
    assert x.tobytes() == expected.tobytes()
    x[:] = 0  # a copy, not a view of the event record
    assert batch.objects.tobytes() == objects.tobytes()
