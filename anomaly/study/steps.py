"""Resumable steps: a finished step leaves a marker and is not redone.

Each step writes its outputs atomically (a temporary name renamed into place) and then its marker
``STUDY/steps/<name>.json`` (what it produced, its wall time). A study killed at any moment
therefore holds whole outputs of the finished steps and nothing of the interrupted one; run again,
it skips the steps with a marker and redoes the rest from their start. Removing a marker (or the
``steps/`` folder) makes that step, and every later step that depends on it, run again (their
inputs changed); a step depends on every earlier step unless it names its ``needs``. A marker
older than the marker of a step it depends on is stale (``finished_ns``), so a dependency redone
in a run that was killed before its dependents still makes them run again.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triggerad.atomic import write_json

log = logging.getLogger(__name__)

#: Folder of the step markers inside the study folder.
STEPS_DIR = "steps"


@dataclass
class Step:
    """One stage of the study.

    Attributes
    ----------
    name : str
        Marker name (``generate``, ``train_hlf``, ...).
    run : callable
        ``run(study_folder) -> dict``: does the work (outputs written atomically) and returns the
        record stored in the marker.
    needs : tuple of str or None
        The earlier steps whose outputs it reads: it is redone when one of them is. None: every
        earlier step.
    """

    name: str
    run: Callable[[Path], dict[str, Any]]
    needs: tuple[str, ...] | None = None


def marker_path(out: str | Path, name: str) -> Path:
    """The marker file of step ``name`` in the study folder ``out``."""
    return Path(out) / STEPS_DIR / f"{name}.json"


def finished(out: str | Path, name: str) -> dict[str, Any] | None:
    """The marker record of a finished step, or None if the step has not finished."""
    try:
        return json.loads(marker_path(out, name).read_text())
    except (OSError, ValueError):
        return None


def run_steps(out: str | Path, steps: list[Step], *, echo: Callable[[str], None] = print
              ) -> dict[str, dict[str, Any]]:
    """Run the steps in order, skipping those already finished; return every step's record.

    Parameters
    ----------
    out : path
        The study folder.
    steps : list of Step
        The stages, in order.
    echo : callable
        Where progress lines go (default: print).

    Returns
    -------
    dict
        Step name -> its marker record, with ``skipped: True`` for steps done before this run.
    """
    out = Path(out)
    (out / STEPS_DIR).mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    for i, step in enumerate(steps):
        needs = step.needs if step.needs is not None else [s.name for s in steps[:i]]
        done = finished(out, step.name)
        if done is not None and any(_order(records.get(n)) > _order(done) for n in needs):
            done = None  # a stage it reads finished after it (now, or in a killed earlier run)
        if done is not None:
            echo(f"=== {step.name}: finished before ({done.get('seconds', 0):.0f} s), skipped")
            records[step.name] = {**done, "skipped": True}
            continue
        echo(f"=== {step.name}")
        marker_path(out, step.name).unlink(missing_ok=True)
        start = time.perf_counter()
        record = dict(step.run(out) or {})
        record.update(
            step=step.name, seconds=round(time.perf_counter() - start, 2),
            finished_utc=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            finished_ns=time.time_ns(),
        )
        write_json(marker_path(out, step.name), record)
        echo(f"=== {step.name}: done in {record['seconds']:.0f} s")
        records[step.name] = {**record, "skipped": False}
    return records


def _order(record: dict[str, Any] | None) -> int:
    """When a step finished (``finished_ns`` of its marker; 0 for markers written without it)."""
    return int((record or {}).get("finished_ns", 0))
