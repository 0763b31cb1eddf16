"""The manifest: one JSON line per finished work unit, appended and fsynced by the driver only.

A line records the unit (index, file, entry range, event count), its part files with sha256, the
threshold in force and the controller state after the unit, or the error of a unit whose file
failed while reading. On resume the longest prefix of units (in plan order) whose lines are present
and whose part files exist with the recorded checksum is kept; everything after it is redone and
its part files are rewritten. A line cut short by a kill is ignored.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from triggerad.atomic import write_text
from triggerad.stream.plan import WorkUnit
from triggerad.stream.writer import sha256

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.jsonl"


class Manifest:
    """Append-only record of finished work units in ``outdir/manifest.jsonl``."""

    def __init__(self, outdir: str | Path):
        self.outdir = Path(outdir)
        self.path = self.outdir / MANIFEST_FILE

    def entries(self) -> dict[int, dict]:
        """The last complete line of every unit index."""
        found: dict[int, dict] = {}
        if not self.path.exists():
            return found
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s:%d: incomplete line ignored (interrupted run)", self.path, number)
                continue
            found[int(entry["unit"])] = entry
        return found

    def valid(self, entry: dict, unit: WorkUnit) -> bool:
        """True if ``entry`` describes ``unit`` and every part it lists has the recorded sha256."""
        if (entry["file"], entry["start"], entry["stop"]) != (unit.file, unit.start, unit.stop):
            return False
        for part in entry.get("parts", []):
            path = self.outdir / part["path"]
            if not path.exists() or sha256(path) != part["sha256"]:
                log.warning("%s: missing or checksum mismatch; unit %d is redone", path, unit.index)
                return False
        return True

    def done_prefix(self, units: list[WorkUnit]) -> list[dict]:
        """Entries of the longest prefix of ``units`` that is finished and intact."""
        entries = self.entries()
        done = []
        for unit in units:
            entry = entries.get(unit.index)
            if entry is None or not self.valid(entry, unit):
                break
            done.append(entry)
        return done

    def append(self, entry: dict, *, sync: bool = True) -> None:
        """Append one line and fsync it (the unit counts as done only after this returns);
        ``sync=False``: the caller calls :meth:`sync` later (the run's last line, synced while
        the summary is written)."""
        self.outdir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
            fh.flush()
            if sync:
                os.fsync(fh.fileno())

    def sync(self) -> None:
        """fsync the manifest (after :meth:`append` with ``sync=False``)."""
        with open(self.path, "a") as fh:
            os.fsync(fh.fileno())

    def rewrite(self, entries: list[dict]) -> None:
        """Atomically replace the manifest by ``entries`` (the intact prefix kept on resume)."""
        write_text(self.path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
