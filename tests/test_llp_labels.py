"""Truth labels of LLP-sample jets on hand-built event records (arXiv:1912.12238 scheme)."""

from __future__ import annotations

import numpy as np
import pytest

from tagger import labels as lab
from triggerad.generation.pythia import Particles
from triggerad.jets import LABELS

pytest.importorskip("fastjet")

V = (12.0, 5.0, -3.0)  # LLP decay point (mm)
S_ID = 9000006


def row(i, pid, status, m1=0, m2=0, d1=0, pt=0.0, eta=0.0, phi=0.0, mass=0.0, v=(0, 0, 0)):
    return dict(i=i, id=pid, status=status, m1=m1, m2=m2, d1=d1, pt=pt, eta=eta, phi=phi,
                mass=mass, v=v)


def event_record(events: list[list[dict]]) -> Particles:
    """Particles (with history and vertices) from rows listed in event-record order."""
    flat = [r for ev in events for r in ev]
    for ev in events:
        assert [r["i"] for r in ev] == list(range(len(ev)))
    get = lambda k: np.array([r[k] for r in flat])  # noqa: E731
    pt, eta, phi, mass = get("pt"), get("eta"), get("phi"), get("mass")
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    charge = np.where(np.isin(np.abs(get("id")), (211, 411, 5, 1)), np.sign(get("id")), 0.0)
    v = np.array([r["v"] for r in flat], dtype=float)
    return Particles(
        offsets=np.concatenate([[0], np.cumsum([len(ev) for ev in events])]),
        id=get("id"), status=get("status"), daughter1=get("d1"), px=px, py=py, pz=pz,
        e=np.sqrt(px**2 + py**2 + pz**2 + mass**2), charge=charge, vx=v[:, 0], vy=v[:, 1],
        vz=v[:, 2], mother1=get("m1"), mother2=get("m2"),
    )


def llp_event() -> list[dict]:
    """An LLP S decaying at V to b b~; a string from a prompt ISR gluon to the b, one from b to b~.

    Hadron 7 comes from the g-b string (mother1 = the prompt gluon): Pythia-style isAncestor
    following mother1 misses its LLP origin. Hadron 9 comes from the gluon alone (prompt). The
    gluon and b strings form one jet at (eta, phi) = (0, 0) with 50 of 60 GeV from the LLP.
    """
    return [
        row(0, 90, -11), row(1, 2212, -12), row(2, 2212, -12),
        row(3, S_ID, -22, m1=1, m2=2, d1=5, pt=40.0, eta=0.0, phi=0.0, mass=40.0),
        row(4, 21, -71, m1=1, pt=10.0, eta=0.05, phi=0.02),
        row(5, 5, -71, m1=3, d1=7, pt=25.0, eta=0.0, phi=0.0, mass=4.8, v=V),
        row(6, -5, -71, m1=3, d1=8, pt=25.0, eta=0.02, phi=0.01, mass=4.8, v=V),
        row(7, 211, 83, m1=4, m2=5, pt=30.0, eta=0.01, phi=0.0, mass=0.14, v=V),
        row(8, -211, 84, m1=5, m2=6, pt=20.0, eta=0.03, phi=0.02, mass=0.14, v=V),
        row(9, 111, 83, m1=4, m2=4, pt=10.0, eta=0.06, phi=0.03, mass=0.135),
    ]


def sm_event() -> list[dict]:
    """A b jet (B0 -> pions at 3 mm), a c jet (D+), a uds jet and a gluon jet, all prompt."""
    b_v = (2.0, 2.0, 1.0)
    return [
        row(0, 90, -11), row(1, 2212, -12), row(2, 2212, -12),
        # b jet at (1.5, 1.5): a b quark about to hadronise, B0 decaying to two pions
        row(3, 5, -71, m1=1, pt=45.0, eta=1.5, phi=1.5, mass=4.8),
        row(4, 511, -83, m1=3, m2=3, d1=5, pt=40.0, eta=1.5, phi=1.5, mass=5.28),
        row(5, 211, 91, m1=4, pt=25.0, eta=1.52, phi=1.5, mass=0.14, v=b_v),
        row(6, -211, 91, m1=4, pt=15.0, eta=1.48, phi=1.52, mass=0.14, v=b_v),
        # c jet at (-1.5, 1.5): a c quark and a D+ (final here)
        row(7, 4, -71, m1=1, pt=32.0, eta=-1.5, phi=1.5, mass=1.5),
        row(8, 411, 83, m1=7, m2=7, pt=30.0, eta=-1.5, phi=1.5, mass=1.87),
        # uds jet at (-1.5, -1.5): a u quark and two pions
        row(9, 2, -71, m1=1, pt=35.0, eta=-1.5, phi=-1.5),
        row(10, 211, 83, m1=9, m2=9, pt=20.0, eta=-1.5, phi=-1.5, mass=0.14),
        row(11, 111, 84, m1=9, m2=9, pt=15.0, eta=-1.45, phi=-1.5, mass=0.135),
        # gluon jet at (1.5, -1.5): a gluon and two pions
        row(12, 21, -71, m1=2, pt=30.0, eta=1.5, phi=-1.5),
        row(13, 211, 83, m1=12, m2=12, pt=18.0, eta=1.5, phi=-1.5, mass=0.14),
        row(14, -211, 84, m1=12, m2=12, pt=12.0, eta=1.55, phi=-1.48, mass=0.14),
        # a soft pion far away: no jet above gen_pt_min
        row(15, 211, 83, m1=12, m2=12, pt=2.0, eta=-3.0, phi=0.0, mass=0.14),
    ]


def test_origins_walk_every_mother_including_string_ranges():
    p = event_record([llp_event()])
    llp = lab.is_llp(p.id, [S_ID], rhadrons=False)
    origin, decays, decay_vertex = lab.origins(p, llp)
    np.testing.assert_array_equal(decays, [3])
    np.testing.assert_allclose(decay_vertex, [V])
    np.testing.assert_array_equal(origin, [0, 0, 0, 0, 0, 1, 1, 1, 1, 0])
    # the naive walk (Pythia's isAncestor follows mother1 at a string) misses hadron 7
    i, chain = 7, []
    while i > 0:
        chain.append(i)
        i = p.mother1[i]
    assert 3 not in chain


def test_rhadron_formation_is_not_a_decay():
    # gluino 3 -> R-hadron 4 at the origin (formation, same point); R-hadron decays at V
    rows = [
        row(0, 90, -11), row(1, 2212, -12), row(2, 2212, -12),
        row(3, 1000021, -62, m1=1, m2=2, d1=4, pt=300.0, mass=1600.0),
        row(4, 1009213, -104, m1=3, m2=3, d1=6, pt=300.0, mass=1600.5),
        row(5, 211, 105, m1=3, m2=3, pt=3.0, eta=1.0, mass=0.14),  # prompt hadron of formation
        row(6, 1000021, -106, m1=4, d1=7, pt=290.0, mass=1600.0, v=V),
        row(7, 1, -23, m1=6, pt=100.0, eta=0.2, v=V),
    ]
    p = event_record([rows])
    llp = lab.is_llp(p.id, [1000021], rhadrons=True)
    assert llp.tolist() == [False, False, False, True, True, False, True, False]
    origin, decays, _ = lab.origins(p, llp)
    np.testing.assert_array_equal(decays, [4])
    np.testing.assert_array_equal(origin, [0, 0, 0, 0, 0, 0, 1, 1])


def test_generator_jets_are_labelled_by_vertex_fraction_and_flavour():
    p = event_record([llp_event(), sm_event()])
    origin, decays, decay_vertex = lab.origins(p, lab.is_llp(p.id, [S_ID], rhadrons=False))
    gen = lab.gen_jets(p, origin, decay_vertex, decays, lab.LabelConfig(), radius=0.4)
    got = {(int(e), round(float(eta), 1), round(float(phi), 1)): i
           for i, (e, eta, phi) in enumerate(zip(gen.event, gen.eta, gen.phi, strict=True))}
    assert len(gen.pt) == 5
    llp_jet = got[(0, 0.0, 0.0)]
    assert LABELS[gen.label[llp_jet]] == "LLP"
    assert gen.vertex_fraction[llp_jet] == pytest.approx(50.0 / 60.0, rel=1e-3)
    np.testing.assert_allclose(gen.vertex[llp_jet], V)
    expected = {(1, 1.5, 1.5): ("b", 5, 5), (1, -1.5, 1.5): ("c", 4, 4),
                (1, -1.5, -1.5): ("uds", 0, 2), (1, 1.5, -1.5): ("g", 0, 21)}
    for key, (name, hflav, pflav) in expected.items():
        j = got[key]
        assert (LABELS[gen.label[j]], gen.hadron_flavour[j], gen.parton_flavour[j]) == (
            name, hflav, pflav)
        assert gen.vertex_index[j] == 0 and gen.vertex_fraction[j] == pytest.approx(1.0)
        np.testing.assert_array_equal(gen.vertex[j], 0.0)


def test_reco_jets_take_the_nearest_generator_jet_within_match_dr():
    p = event_record([llp_event(), sm_event()])
    origin, decays, decay_vertex = lab.origins(p, lab.is_llp(p.id, [S_ID], rhadrons=False))
    gen = lab.gen_jets(p, origin, decay_vertex, decays, lab.LabelConfig(), radius=0.4)
    event = np.array([0, 1, 1, 1])
    eta = np.array([0.1, 1.4, -1.5, 0.0])
    phi = np.array([0.05, 1.6, -1.5, 0.0])
    index, dr = lab.match(event, eta, phi, gen, 2, 0.4)
    assert [LABELS[gen.label[i]] if i >= 0 else None for i in index] == ["LLP", "b", "uds", None]
    assert dr[3] == -1.0
    np.testing.assert_allclose(
        dr[:3], np.hypot(eta[:3] - gen.eta[index[:3]], phi[:3] - gen.phi[index[:3]]))
