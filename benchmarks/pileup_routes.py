"""Fast pile-up routes vs full overlay: speed and distribution distances, in the same run.

The same hard events (``--process`` of ``--config``) get N ~ Poisson(mu) minimum-bias events
(the same N per event for every route) from each route of
:data:`triggerad.generation.pileup.ROUTES`, for every ``--mu``. Printed per mu and route:

- speed: hard events per CPU second of the pile-up synthesis alone (``pu ev/s``) and of pile-up +
  detector model (``+det ev/s``), and their ratios to full overlay (same run, same events);
  one-off costs (building the pool, fitting the model) are printed separately;
- distances to full overlay of the pile-up particles: two-sample KS statistic and Wasserstein
  distance (in units of the overlay's standard deviation) of the final-state particles per
  event, and of the charged particles' pT, eta, d0 and dz (|eta| < 2.5, pT > 0.5 GeV);
- the effect on the HLF inputs after the detector: KS statistic (and p-value) of the charged /
  neutral hadron counts, MET and the leading lepton's relative isolation vs full overlay.

CPU time (``time.process_time``) is used: the development machine is shared.

Usage::

    python benchmarks/pileup_routes.py [--mu 20 40 60] [--events 50] [--pool-size 1000]
        [--routes overlay library hgmm] [--cache /tmp/pu_cache] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
from scipy import stats

from triggerad.generation import pileup as pu
from triggerad.generation import pythia as py
from triggerad.generation import run as grun
from triggerad.generation.config import load_config
from triggerad.generation.detector import Detector
from triggerad.generation.geometry import impact_parameters

BASELINE = "overlay"


def track_features(p: py.Particles) -> dict[str, np.ndarray]:
    """Per-event multiplicity and charged-particle pT, eta, d0, dz of pile-up particles."""
    sel = (p.charge != 0) & (p.pt > 0.5) & (np.abs(p.eta) < 2.5)
    d0, dz = impact_parameters(p.vx[sel], p.vy[sel], p.vz[sel], p.px[sel], p.py[sel], p.pz[sel])
    return {"particles/event": np.diff(p.offsets).astype(float), "pT": p.pt[sel],
            "eta": p.eta[sel], "d0": d0, "dz": dz}


def leading_lepton_iso(reco) -> np.ndarray:
    """Total relative isolation of each event's leading electron or muon (events with one)."""
    pt = np.concatenate([reco.electrons["pt"], reco.muons["pt"]], axis=1)
    iso = np.concatenate([reco.electrons["iso"], reco.muons["iso"]], axis=1).sum(axis=2)
    lead = np.argmax(pt, axis=1)
    rows = np.arange(len(pt))
    has = pt[rows, lead] > 0
    return iso[rows, lead][has]


def distances(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """KS statistic, its p-value and the Wasserstein distance / std(a) of two samples."""
    ks = stats.ks_2samp(a, b)
    scale = float(np.std(a)) or 1.0
    return float(ks.statistic), float(ks.pvalue), float(stats.wasserstein_distance(a, b) / scale)


def run(args) -> dict:
    cfg = load_config(args.config)
    proc = cfg.processes[args.process]
    seed_hard, seed_pu, seq = grun.job_seeds(args.seed, args.process, 0)
    pythia = py.make_pythia(grun.pythia_settings(cfg, proc), seed_hard)
    charges = py.ChargeTable(pythia.particleData)
    start = time.process_time()
    hard = py.generate(pythia, args.events, charges)
    t_hard = time.process_time() - start
    result = {"events": args.events, "process": args.process, "setup_cpu_s": {}, "mu": {},
              "hard_ev_per_cpu_s": args.events / t_hard}
    base_cfg = dataclasses.replace(cfg.pileup, pool_size=args.pool_size, cache_dir=args.cache,
                                   max_reuse=1e9)
    sources = {}
    for route in args.routes:
        rcfg = dataclasses.replace(base_cfg, route=route)
        start = time.process_time()
        if route in pu.POOL_ROUTES:
            pu.load_pool(rcfg, cfg.beam.ecm, args.seed, progress=True)
        sources[route] = pu.Pileup(rcfg, cfg.beam.ecm, pythia_seed=seed_pu, seed=args.seed,
                                   charges=charges)
        result["setup_cpu_s"][route] = time.process_time() - start
    for mu in args.mu:
        counts = np.random.default_rng(seq).poisson(mu, args.events)
        rows, features, hlf = {}, {}, {}
        for route, source in sources.items():
            rng = np.random.default_rng([args.seed, int(mu)])
            start = time.process_time()
            pile = source.events(counts, rng)
            t_pu = time.process_time() - start
            merged = py.Particles.merge(hard, pile)
            start = time.process_time()
            reco = Detector(cfg.detector, np.random.default_rng(1))(merged)
            t_det = time.process_time() - start
            features[route] = track_features(pile)
            hlf[route] = {"nChHad": reco.n_ch_had.astype(float),
                          "nNeuHad": reco.n_neu_had.astype(float), "MET": reco.met_pt,
                          "lepton iso": leading_lepton_iso(reco)}
            rows[route] = {"pu_ev_per_cpu_s": args.events / t_pu,
                           "with_detector_ev_per_cpu_s": args.events / (t_pu + t_det),
                           "full_ev_per_cpu_s": args.events / (t_hard + t_pu + t_det)}
        for route, row in rows.items():
            row["speedup_pileup"] = row["pu_ev_per_cpu_s"] / rows[BASELINE]["pu_ev_per_cpu_s"]
            row["speedup_with_detector"] = (row["with_detector_ev_per_cpu_s"]
                                            / rows[BASELINE]["with_detector_ev_per_cpu_s"])
            row["speedup_full"] = row["full_ev_per_cpu_s"] / rows[BASELINE]["full_ev_per_cpu_s"]
            if route != BASELINE:
                row["distances"] = {k: distances(features[BASELINE][k], v)
                                    for k, v in features[route].items()}
                row["hlf_ks"] = {k: distances(hlf[BASELINE][k], v)[:2]
                                 for k, v in hlf[route].items()}
        result["mu"][mu] = rows
    return result


def print_table(result: dict) -> None:
    print(f"\n{result['events']} {result['process']} events (hard process alone "
          f"{result['hard_ev_per_cpu_s']:.0f} ev/CPU s); one-off CPU s: "
          + ", ".join(f"{k} {v:.1f}" for k, v in result["setup_cpu_s"].items()) + "\n")
    print("| mu | route | pile-up ev/CPU s | x overlay | + detector ev/CPU s | x overlay "
          "| + hard process ev/CPU s | x overlay |")
    print("|--:|---|--:|--:|--:|--:|--:|--:|")
    for mu, rows in result["mu"].items():
        for route, r in rows.items():
            print(f"| {mu:g} | {route} | {r['pu_ev_per_cpu_s']:.1f} | {r['speedup_pileup']:.0f} "
                  f"| {r['with_detector_ev_per_cpu_s']:.2f} | {r['speedup_with_detector']:.1f} "
                  f"| {r['full_ev_per_cpu_s']:.2f} | {r['speedup_full']:.1f} |")
    names = None
    for mu, rows in result["mu"].items():
        for route, r in rows.items():
            if "distances" not in r:
                continue
            if names is None:
                names = list(r["distances"]) + list(r["hlf_ks"])
                print("\nKS statistic / Wasserstein (in overlay std) vs overlay "
                      "(particles/event: KS (p) / W); HLF: KS (p)\n")
                print("| mu | route | " + " | ".join(names) + " |")
                print("|--:|---|" + "--:|" * len(names))
            cells = [f"{d[0]:.3f} ({d[1]:.2f}) / {d[2]:.3f}" if k == "particles/event"
                     else f"{d[0]:.3f} / {d[2]:.3f}" for k, d in r["distances"].items()]
            cells += [f"{d[0]:.3f} ({d[1]:.2f})" for d in r["hlf_ks"].values()]
            print(f"| {mu:g} | {route} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="generate")
    parser.add_argument("--process", default="W")
    parser.add_argument("--mu", type=float, nargs="+", default=[20.0, 40.0, 60.0])
    parser.add_argument("--events", type=int, default=50, help="hard events per mu")
    parser.add_argument("--pool-size", type=int, default=1000)
    parser.add_argument("--routes", nargs="+", default=list(pu.ROUTES), choices=list(pu.ROUTES))
    parser.add_argument("--cache", default="/tmp/trigger-ad-pileup-bench")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    if BASELINE not in args.routes:
        parser.error(f"--routes must include the baseline {BASELINE!r}")
    result = run(args)
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
