"""Resumable steps: a finished step leaves a marker and is not redone.

Each step writes its outputs atomically (a temporary name renamed into place) and then its marker
``STUDY/steps/<name>.json`` (what it produced, its wall time). A study killed at any moment
therefore holds whole outputs of the finished steps and nothing of the interrupted one; run again,
it skips the steps with a marker and redoes the rest from their start. Removing a marker (or the
``steps/`` folder) makes that step, and every later step that depends on it, run again (their
inputs changed); a step depends on every earlier step unless it names its ``needs``.
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
    redone: list[str] = []  # a stage that ran again makes the markers of its dependents stale
    for step in steps:
        stale = any(n in redone for n in step.needs) if step.needs is not None else bool(redone)
        done = None if stale else finished(out, step.name)
        if done is not None:
            echo(f"=== {step.name}: finished before ({done.get('seconds', 0):.0f} s), skipped")
            records[step.name] = {**done, "skipped": True}
            continue
        echo(f"=== {step.name}")
        redone.append(step.name)
        marker_path(out, step.name).unlink(missing_ok=True)
        start = time.perf_counter()
        record = dict(step.run(out) or {})
        record.update(
            step=step.name, seconds=round(time.perf_counter() - start, 2),
            finished_utc=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        )
        write_json(marker_path(out, step.name), record)
        echo(f"=== {step.name}: done in {record['seconds']:.0f} s")
        records[step.name] = {**record, "skipped": False}
    return records
