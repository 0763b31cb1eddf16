"""The end of a stream run (:func:`triggerad.stream.runner.run_stream`): per-block monitor table,
rate plots, threshold log, anomalies file, ``summary.json`` and provenance, from the manifest
entries and the per-unit summaries (the driver's in-memory ones, or read back from the parts of
resumed units)."""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future, wait

import numpy as np

from triggerad import atomic
from triggerad.config import to_dict
from triggerad.provenance import write_provenance
from triggerad.stream import monitor
from triggerad.stream.plan import Plan
from triggerad.stream.writer import ANOMALIES_FILE, read_part, start_concatenation

log = logging.getLogger("triggerad.stream.runner")


def _threshold_log(table) -> list[dict]:
    """One record per threshold change, in stream order: at the start of a block whose threshold
    differs from the previous block's last one, or within a block (``within_block``: the
    controller's warm-up re-sets the first block's threshold after its first events)."""
    first, end = table["threshold"].to_numpy(), table["threshold_end"].to_numpy()
    at_start = np.flatnonzero(first[1:] != end[:-1]) + 1
    within = np.flatnonzero(end != first)
    if not len(at_start) and not len(within):
        return []
    block, run, lumi, accepted, events = (table[c].to_numpy() for c in
                                          ("block", "run", "lumi", "accepted", "events"))
    at_start, within = set(at_start.tolist()), set(within.tolist())
    log = []
    for i in sorted(at_start | within):
        where = {"block": int(block[i]), "run": int(run[i]), "lumi": int(lumi[i])}
        if i in at_start:
            log.append({**where, "threshold": float(first[i]), "previous_threshold": float(end[i - 1]),
                        "previous_block_fraction": float(accepted[i - 1] / events[i - 1])})
        if i in within:
            log.append({**where, "threshold": float(end[i]), "previous_threshold": float(first[i]),
                        "within_block": True})
    return log


def _files_failed(plan: Plan, entries: list[dict]) -> list[dict]:
    failed = list(plan.failed)
    failed += [{"file": e["file"], "entries": [e["start"], e["stop"]], "error": e["error"]}
               for e in entries if e.get("error")]
    return failed


def part_summary(frame) -> tuple:
    """Block counts (:func:`monitor.block_partial`), sum of weights and of accepted weights of
    one score part."""
    w = frame["weight"].to_numpy(dtype=np.float64)
    return (monitor.block_partial(frame), float(w.sum()),
            float(w[frame["accepted"].to_numpy(dtype=bool)].sum()))


def _summaries(driver, entries: list[dict]):
    """:func:`part_summary` of every finished unit's score part, in plan order (from memory for
    the units of this run, read back from the part for resumed ones)."""
    columns = [*monitor.MONITOR_COLUMNS, "weight"]
    for entry in entries:
        for part in entry["parts"]:
            if part["kind"] == "scores":
                known = driver.summaries.get(entry["unit"])
                yield known or part_summary(read_part(driver.outdir / part["path"], columns))


def planned_summaries(driver):
    """:func:`_summaries` before the manifest lines of this run's units are complete: resumed
    units from their manifest lines, this run's units from :attr:`driver.summaries` (every unit
    with a score part has one), in plan order."""
    yield from _summaries(driver, driver.done)
    for unit in driver.todo:
        if unit.index in driver.summaries:
            yield driver.summaries[unit.index]


def monitor_outputs(driver, summaries: list) -> dict:
    """The per-block monitor table of ``summaries`` (plan order), written as ``blocks.csv``,
    and the threshold log ``threshold_log.jsonl``; returns them with the weighted totals."""
    outdir, cfg, thr = driver.outdir, driver.config, driver.scorer.model.threshold
    input_rate, target_rate = float(thr["input_rate_hz"]), float(thr["target_rate_hz"])
    # weighted accepted fraction: for data (weights 1) the accepted fraction; for a simulated
    # cocktail (sigma x efficiency weights) the fraction of the stream's rate that is accepted
    total = sum(s[1] for s in summaries)
    table = monitor.block_table((s[0] for s in summaries), input_rate, target_rate,
                                band=cfg.monitor.band, confidence=cfg.monitor.confidence)
    atomic.write_text(outdir / "blocks.csv", table.to_csv(index=False))
    changes = _threshold_log(table)
    atomic.write_text(outdir / "threshold_log.jsonl",
                      "".join(json.dumps(c) + "\n" for c in changes))
    return {"table": table, "changes": changes,
            "weighted": sum(s[2] for s in summaries) / total if total > 0 else 0.0}


#: Files :func:`monitor_outputs` writes (removed again when a run fails after writing them).
MONITOR_FILES = ("blocks.csv", "threshold_log.jsonl")


def finalise(driver, entries: list[dict], run_info: dict, monitored: dict | None = None) -> dict:
    """Monitor table, plots, threshold log, anomalies file, summary and provenance of the run of
    ``driver`` (the runner's state: plan, config, scorer, controller, out folder); returns the
    summary. ``monitored``: :func:`monitor_outputs` already done (by the runner, while the last
    unit's parts were written)."""
    if driver.controller is None:
        return _finalise_scores(driver, entries, run_info)
    outdir, cfg = driver.outdir, driver.config
    if monitored is None:
        monitored = monitor_outputs(driver, list(_summaries(driver, entries)))
    if not cfg.output.anomalies:
        return _finalise_decisions(driver, entries, run_info, monitored, None)
    # parquet encodes without the GIL: the anomalies file is written beside the monitor table
    anomalies = driver.anomalies_file or start_concatenation(
        driver.parts(entries, "anomalies"), outdir / ANOMALIES_FILE, driver.anomaly_tables)
    try:
        return _finalise_decisions(driver, entries, run_info, monitored, anomalies)
    finally:
        wait([anomalies])  # never left running, also on an error


def _finalise_decisions(driver, entries: list[dict], run_info: dict, monitored: dict,
                        anomalies: Future | None) -> dict:
    """:func:`finalise` of a run with trigger decisions, with the monitor outputs
    ``monitored`` and the anomalies file being concatenated by ``anomalies`` (None: not
    written)."""
    outdir, cfg, thr = driver.outdir, driver.config, driver.scorer.model.threshold
    input_rate, target_rate = float(thr["input_rate_hz"]), float(thr["target_rate_hz"])
    table, changes, weighted = monitored["table"], monitored["changes"], monitored["weighted"]
    plotted = cfg.monitor.plots and len(table) > 1
    if plotted:
        monitor.plot_rates(table, target_rate, cfg.monitor.band, outdir)
    elif cfg.monitor.plots:
        log.info("%s: one block (no lumi-block information and at most chunking.block_events "
                 "events): no rate plots, the block's rate is in blocks.csv", outdir)
    n_anomalies = None if anomalies is None else anomalies.result()
    events = sum(e["n_events"] for e in entries)
    accepted = sum(e["accepted"] for e in entries)
    summary = {
        "events": events,
        "accepted": accepted,
        "files_failed": _files_failed(driver.plan, entries),
        "files_empty": driver.plan.empty,
        # read but dropped by --nonfinite drop / --unphysical drop
        "events_dropped": sum(e["stop"] - e["start"] - e["n_events"] for e in entries
                              if not e.get("error")),
        **run_info,
        "accepted_fraction": accepted / events if events else 0.0,
        "accepted_fraction_weighted": weighted,
        "accepted_rate_hz": input_rate * weighted,
        "input_rate_hz": input_rate,
        "target_rate_hz": target_rate,
        "threshold": {"score": thr["score"], "value": float(thr["value"])},
        "scores": driver.scorer.scores,
        "units": len(driver.plan.units),
        "files": driver.files,
        "monitor": {**monitor.rate_summary(table, input_rate), "band": cfg.monitor.band,
                    "table": "blocks.csv", "plots": plotted},
        "controller": {**to_dict(cfg.control), "threshold_changes": len(changes),
                       "final_threshold": driver.controller.state.threshold,
                       "log": "threshold_log.jsonl"},
        "anomalies": n_anomalies,
    }
    atomic.write_json(outdir / "summary.json", summary)
    write_provenance(outdir, "score", cfg, {"model": str(driver.scorer.model_ref),
                                            "inputs": driver.files})
    return summary


def _finalise_scores(driver, entries: list[dict], run_info: dict) -> dict:
    """Summary and provenance of a run without trigger decision (scores only)."""
    summary = {
        "events": sum(e["n_events"] for e in entries),
        "files_failed": _files_failed(driver.plan, entries),
        "files_empty": driver.plan.empty,
        **run_info,
        "scores": driver.scorer.scores,
        "units": len(driver.plan.units),
        "files": driver.files,
        "parts": [str(p.relative_to(driver.outdir)) for p in driver.parts(entries, "scores")],
    }
    atomic.write_json(driver.outdir / "summary.json", summary)
    write_provenance(driver.outdir, "score", driver.config,
                     {"model": str(driver.scorer.model_ref), "inputs": driver.files})
    return summary
