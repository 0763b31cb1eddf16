"""The stream-scoring driver: plan, resume, dispatch units, apply the controller, write, summarise.

Only the driver writes the manifest, in plan order, after each unit's part files are complete, so
the set of finished units is always a prefix of the plan. Re-running the same command in the same
output folder resumes after that prefix with the controller state recorded there, which makes the
final output identical to an uninterrupted run (the score table is defined as the concatenation of
``scores/part-*`` in plan order).

Output folder::

    run.json                  inputs, plan fingerprint, threshold and settings (checked on resume)
    manifest.jsonl            one line per finished unit (file, entry range, part sha256s, state)
    scores/part-XXXXX.*       per-event ids, pile-up, scores, block, threshold, accepted
    anomalies/part-XXXXX.parquet and anomalies.parquet   full inputs of accepted events
    blocks.csv, rate_vs_block.png, rate_vs_pileup.png    rate per block with Garwood errors
    threshold_log.jsonl       every threshold change and the block it applies to
    summary.json, provenance.json, config.resolved.yaml

A scorer that takes no trigger decision (``scorer.decides`` False, e.g. the LLP jet tagger's
class probabilities) needs no threshold: its run writes ``run.json``, ``manifest.jsonl``,
``scores/part-*``, ``summary.json`` and the provenance, with the same exactly-once resumption.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from tqdm import tqdm

from triggerad import atomic, lockfile, spare
from triggerad.config import to_dict
from triggerad.errors import ConfigError, InputFileError
from triggerad.executor import LocalExecutor
from triggerad.models import kind_of
from triggerad.provenance import start_git_hash
from triggerad.stream.config import ScoreConfig
from triggerad.stream.control import ControllerState, RateController, block_keys
from triggerad.stream.finalise import (
    MONITOR_FILES,
    finalise,
    monitor_outputs,
    part_summary,
    planned_summaries,
)
from triggerad.stream.manifest import Manifest
from triggerad.stream.plan import Plan, ReaderChooser, WorkUnit, make_plan
from triggerad.stream.unit import UnitResult, UnitTask
from triggerad.stream.writer import ANOMALIES_FILE, part_path, start_concatenation, write_part

log = logging.getLogger(__name__)

RUN_FILE = "run.json"


def _check_run(outdir: Path, signature: dict) -> None:
    """Write ``run.json``, or check that an existing one describes the same run."""
    path = outdir / RUN_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        changed = [k for k in signature if previous.get(k) != signature[k]]
        if changed:
            raise ConfigError(
                f"{outdir}: holds a run with different {', '.join(map(repr, changed))}; resuming "
                "it would mix two selections. Use another --out (or delete the folder)"
            )
        return
    atomic.write_json(path, signature)


#: Units whose parts may wait for the writer thread while the next one is scored (their score
#: tables in memory): the manifest's fsync after each unit takes 0.5-12 ms on a busy disk, which
#: then does not hold up the scoring.
WRITES_WAITING = 2

#: Anomalies parts kept in memory for ``anomalies.parquet`` (bytes of Arrow tables), beyond
#: which the summary reads the parts back.
KEEP_ANOMALY_BYTES = 256 << 20


class _Driver:
    """State of one scoring run (see :func:`run_stream`)."""

    def __init__(self, outdir: Path, config: ScoreConfig, scorer, plan: Plan):
        self.outdir, self.config, self.scorer, self.plan = outdir, config, scorer, plan
        self.manifest = Manifest(outdir)
        self.done = self.manifest.done_prefix(plan.units)
        self.manifest.rewrite(self.done)
        self.decision = self.controller = None
        if scorer.decides:
            thr = scorer.model.threshold
            self.decision = thr["score"]
            self.target_fraction = float(thr["target_rate_hz"]) / float(thr["input_rate_hz"])
            state = ControllerState.from_json(self.done[-1]["controller"]) if self.done else None
            self.controller = RateController(config.control, float(thr["value"]),
                                             self.target_fraction, state)
        self.files = list(dict.fromkeys(u.file for u in plan.units))
        #: unit index -> :func:`~triggerad.stream.finalise.part_summary` of the units written by this run (writer jobs)
        self.summaries: dict[int, tuple] = {}
        #: part path -> Arrow table of the anomalies parts written by this run (writer jobs; at
        #: most KEEP_ANOMALY_BYTES, the rest is read back by the summary)
        self.anomaly_tables: dict[Path, object] = {}
        self._anomaly_bytes = 0
        #: unit index -> anomalies part written by this run
        self.anomaly_paths: dict[int, Path] = {}
        #: ``anomalies.parquet`` being written (started once the last unit's anomalies part is
        #: written, beside its score part; None: finalise starts it)
        self.anomalies_file = None
        #: :func:`~triggerad.stream.finalise.monitor_outputs` written while the last unit's
        #: parts were (None: finalise writes them)
        self.monitored: dict | None = None

    @property
    def todo(self) -> list[WorkUnit]:
        """Units still to do, in plan order."""
        return self.plan.units[len(self.done):]

    def entry(self, unit: WorkUnit, **fields) -> dict:
        """Manifest line of ``unit`` (with the controller state after it, if any)."""
        line = {"unit": unit.index, "file": unit.file, "start": unit.start, "stop": unit.stop,
                **fields}
        if self.controller is not None:
            line["controller"] = self.controller.state.to_json()
        return line

    def handle(self, result: UnitResult, on_error: str) -> Callable[[], dict]:
        """Apply the controller to a unit's scores; return the job writing the unit's parts.

        The controller runs here, in plan order; the returned function writes the part files,
        records the unit's block counts in :attr:`summaries` and returns the unit's manifest line
        (it touches no other driver state, so it may run in the writer thread while the next
        unit is scored).
        """
        unit = result.unit
        if result.error is not None:
            message = f"{unit.file}: entries [{unit.start}, {unit.stop}): {result.error}"
            if on_error == "fail":
                raise InputFileError(message)
            log.error("%s; skipped (--on-error skip)", message)
            entry = self.entry(unit, n_events=0, accepted=0, parts=[], error=result.error)
            return lambda: entry
        table = result.table
        if self.controller is None:  # no decision: the score table only
            entry = self.entry(unit, n_events=len(table), accepted=0)
            return lambda: {**entry, "parts": [self._write(table, "scores", unit.index,
                                                           self.config.output.format)]}
        stream_index = unit.offset + table["entry"].to_numpy() - unit.start
        keys = block_keys(table["run"].to_numpy(), table["lumi"].to_numpy(), stream_index,
                          self.config.chunking.block_events)
        threshold, accepted, block = self.controller.apply(
            table[self.decision].to_numpy(), *keys, pileup=table["pileup"].to_numpy())
        table["block"], table["threshold"], table["accepted"] = block, threshold, accepted
        entry = self.entry(unit, n_events=len(table), accepted=int(accepted.sum()),
                           threshold=[float(threshold.min()), float(threshold.max())]
                           if len(table) else None)
        frames = [(table, "scores", self.config.output.format)]
        if self.config.output.anomalies:
            rows = result.candidates
            chosen = rows[accepted[rows["row"].to_numpy()]].drop(columns="row")
            frames.append((chosen.reset_index(drop=True), "anomalies", "parquet"))

        last = unit.index == self.plan.units[-1].index
        if last:  # known now: the monitor table is made while the last parts are written
            self.summaries[unit.index] = part_summary(table)

        def summarise_and_write(frames) -> list[dict]:
            if not last:
                self.summaries[unit.index] = part_summary(table)
            return [self._write(frame, kind, unit.index, fmt) for frame, kind, fmt in frames]

        def write() -> dict:
            if not last or len(frames) < 2:
                return {**entry, "parts": summarise_and_write(frames)}
            # the last unit: nothing is read or scored any more, so the anomalies part and the
            # block counts are done beside the score part, on the otherwise idle core
            def side_parts() -> list[dict]:
                written = summarise_and_write(frames[1:])
                # every anomalies part is written: the anomalies file is encoded (GIL-free)
                # while the score part is
                self.anomalies_file = start_concatenation(
                    self.anomaly_parts(), self.outdir / ANOMALIES_FILE, self.anomaly_tables)
                return written

            side = spare.pool(1).submit(side_parts)
            frame, kind, fmt = frames[0]
            try:
                first = self._write(frame, kind, unit.index, fmt)
            except BaseException:
                if not side.cancel():
                    wait([side])  # its anomalies file is removed by abandon()
                raise
            # not started yet (no free core after all): done here
            rest = summarise_and_write(frames[1:]) if side.cancel() else side.result()
            return {**entry, "parts": [first, *rest]}

        return write

    def _write(self, frame, kind: str, index: int, fmt: str = "parquet") -> dict:
        path = part_path(self.outdir, kind, index, fmt)
        keep = kind == "anomalies" and self._anomaly_bytes < KEEP_ANOMALY_BYTES
        digest = write_part(frame, path, fmt, files=self.files,
                            tables=self.anomaly_tables if keep else None)
        if keep and path in self.anomaly_tables:
            self._anomaly_bytes += self.anomaly_tables[path].nbytes
        if kind == "anomalies":
            self.anomaly_paths[index] = path
        return {"kind": kind, "path": str(path.relative_to(self.outdir)), "sha256": digest}

    def anomaly_parts(self) -> list[Path]:
        """Anomalies parts of every unit in plan order, once the last one is written: those of
        the resumed units (their manifest lines) and those this run wrote (what
        ``parts(entries, "anomalies")`` gives at the end)."""
        done = self.parts(self.done, "anomalies")
        return done + [self.anomaly_paths[u.index] for u in self.todo if u.index in self.anomaly_paths]

    def abandon(self) -> None:
        """After a failure: wait for an early ``anomalies.parquet`` and remove it (the manifest
        does not list every unit; a resumed run writes it)."""
        if self.anomalies_file is not None:
            wait([self.anomalies_file])
            (self.outdir / ANOMALIES_FILE).unlink(missing_ok=True)
            self.anomalies_file = None
        if self.monitored is not None:
            for name in MONITOR_FILES:
                (self.outdir / name).unlink(missing_ok=True)
            self.monitored = None

    def parts(self, entries: list[dict], kind: str) -> list[Path]:
        """Part files of ``kind`` of the finished units, in plan order."""
        return [self.outdir / p["path"] for e in entries for p in e["parts"] if p["kind"] == kind]


def run_stream(
    model,
    files: list[str],
    outdir: str | Path,
    *,
    config: ScoreConfig | None = None,
    reader_for=None,
    executor=None,
    scores: list[str] | None = None,
    on_error: str = "skip",
    progress: bool = True,
    scorer_options: dict | None = None,
    command: str = "trigger-ad score",
) -> dict:
    """Score ``files`` with ``model`` into ``outdir`` exactly once (resuming a previous run).

    Parameters
    ----------
    model : str or model
        Model folder with ``threshold.json``, or a loaded model (:class:`triggerad.models.Model`);
        its kind (:func:`triggerad.models.kind_of`) provides the scorer.
    files : list of str
        Expanded input files, in stream order.
    outdir : str or Path
        Output folder (see the module docstring).
    config : ScoreConfig, optional
        Chunking, monitor, controller and output settings (default: all defaults).
    reader_for : callable, optional
        Path -> reader (default: :class:`ReaderChooser` with ``auto`` detection).
    executor : triggerad.executor.Executor, optional
        Where the files are counted and the units scored (default: in this process, reading
        one unit ahead). Outputs do not depend on it.
    scores : list of str, optional
        Scores to compute (default: what the model's scorer computes by default; for the VAEs
        the threshold's score, ``["all"]`` every score).
    on_error : {"skip", "fail"}
        Unreadable files or chunks are listed in the summary and skipped, or stop the run.
    progress : bool
        Show a progress bar on stderr.
    scorer_options : dict, optional
        Kind-specific settings of the scorer (:meth:`triggerad.models.ModelKind.stream_scorer`),
        e.g. ``{"ctau_mm": 1.0}`` for the LLP tagger.
    command : str
        The command, named by the lock a concurrent run into ``outdir`` is refused with.

    Returns
    -------
    dict
        The summary (also written to ``outdir/summary.json``).
    """
    start_git_hash()  # the provenance's git lookup runs beside the scoring (joined by finalise)
    config = config or ScoreConfig()
    reader_for = reader_for or ReaderChooser("auto", chunk_size=config.chunking.chunk_size)
    executor = executor or LocalExecutor()
    outdir = Path(outdir)
    scorer = kind_of(model).stream_scorer(model, scores=scores,
                                          tf_batch_size=config.chunking.tf_batch_size,
                                          **(scorer_options or {}))
    thr = scorer.model.threshold if scorer.decides else None
    if scorer.decides and not thr:
        raise InputFileError(
            f"{model}: the model has no threshold.json; set one first with "
            "`trigger-ad threshold MODEL --rate 1kHz --input-rate 100kHz`"
        )
    missing = [k for k in ("input_rate_hz", "target_rate_hz") if thr and k not in thr]
    if missing:
        raise InputFileError(
            f"{model}: threshold.json lacks {', '.join(map(repr, missing))} (a cut set by hand?); "
            "the rate monitor needs them: set it with `trigger-ad threshold`"
        )
    plan = make_plan(files, reader_for, chunk_size=config.chunking.chunk_size, on_error=on_error,
                     executor=executor)
    outdir.mkdir(parents=True, exist_ok=True)
    with lockfile.exclusive(outdir, command):
        _check_run(outdir, {
            "files": list(files), "plan": plan.fingerprint(), "threshold": thr,
            "scores": scorer.scores, "config": to_dict(config),
            "scorer_settings": scorer.settings,
        })
        driver = _Driver(outdir, config, scorer, plan)
        scorer.prepare()
        entries = list(driver.done)
        if entries:
            log.info("%s: resuming after %d of %d units", outdir, len(entries), len(plan.units))
        todo = driver.todo
        bar = tqdm(total=sum(u.size for u in todo), unit="ev", disable=not progress, file=sys.stderr,
                   desc="score")
        start = time.perf_counter()
        task = UnitTask(reader_for, scorer, driver.decision,
                        None if driver.controller is None else driver.controller.lowest_threshold)
        results = executor.map(task, todo)

        last = todo[-1].index if todo else None

        def commit(write: Callable[[], dict], unit: WorkUnit) -> dict:
            entry = write()
            # only after the unit's part files are complete; the last line is synced while the
            # summary is written (a run counts as finished only once both are done)
            driver.manifest.append(entry, sync=unit.index != last)
            return entry

        # One writer thread writes the parts and the manifest lines, in plan order, while the next
        # unit is scored; at most WRITES_WAITING units wait to be written.
        with ThreadPoolExecutor(1, thread_name_prefix="writer") as writer:
            pending: deque = deque()

            def finish_oldest() -> None:
                unit, job = pending.popleft()
                entries.append(job.result())
                bar.update(unit.size)

            try:
                for result in results:
                    pending.append((result.unit, writer.submit(commit, driver.handle(result, on_error),
                                                               result.unit)))
                    while pending and (len(pending) > WRITES_WAITING or pending[0][1].done()):
                        finish_oldest()
                while len(pending) > 1:
                    finish_oldest()
                if driver.controller is not None and todo:  # every unit's block counts known
                    driver.monitored = monitor_outputs(driver, list(planned_summaries(driver)))
                while pending:
                    finish_oldest()
            except BaseException:
                for _, job in pending:
                    job.cancel()
                wait([job for _, job in pending])
                driver.abandon()
                raise
        elapsed = time.perf_counter() - start
        bar.close()
        synced = spare.pool(1).submit(driver.manifest.sync) if todo else None
        scored = sum(u.size for u in todo)
        try:
            return finalise(driver, entries, {
                "events_this_run": scored, "elapsed_s": elapsed,
                "events_per_s": scored / elapsed if elapsed > 0 else 0.0,
                "resumed_units": len(driver.done), "executor": getattr(executor, "name", "local"),
                "fast_path": scorer.fast,
            }, driver.monitored)
        finally:
            if synced is not None:
                synced.result()
