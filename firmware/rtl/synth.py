"""Resource estimate of a generated module with Yosys (open synthesis; not a Vivado result).

``xilinx``: ``synth_xilinx`` for the family of the configured part (LUT, FF, CARRY, DSP, BRAM
cells and the percentage of the part); ``generic``: ``synth -lut 6`` (6-input LUTs and
flip-flops, no carry chains or DSPs). :func:`parse_stat` reads the ``stat`` table of a Yosys log.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from firmware.rtl.sim import need_tool
from triggerad.errors import TriggerADError

SCRIPT = "synth.ys"
LOG = "yosys.log"

#: Resources of FPGA parts (CLB LUTs, flip-flops, DSP slices, 36 kb block RAMs), from the
#: AMD/Xilinx product tables; the part number's prefix selects the row.
PARTS = {
    "xcvu13p": {"family": "xcup", "LUT": 1_728_000, "FF": 3_456_000, "DSP": 12_288, "BRAM": 2_688},
    "xcvu9p": {"family": "xcup", "LUT": 1_182_240, "FF": 2_364_480, "DSP": 6_840, "BRAM": 2_160},
    "xcku15p": {"family": "xcup", "LUT": 522_720, "FF": 1_045_440, "DSP": 1_968, "BRAM": 984},
    "xc7vx690t": {"family": "xc7", "LUT": 433_200, "FF": 866_400, "DSP": 3_600, "BRAM": 1_470},
}

#: Yosys cell name pattern -> resource class.
CELL_CLASSES = (
    (r"LUT[1-6](_2)?|\$lut", "LUT"),
    (r"SRL16E?|SRLC32E|SRLC16E", "LUT"),  # shift registers live in LUTs (as Vivado counts them)
    (r"FD[RSCP]E?(_1)?|\$_S?DFFE?_\w+|\$_DFF_\w+", "FF"),
    (r"CARRY[48]", "CARRY"),
    (r"DSP48E?[12]?|\$mul|\$__MUL\w*", "DSP"),
    (r"RAMB(18|36)\w*", "BRAM"),
)


def part_info(part: str) -> dict | None:
    """The :data:`PARTS` row of ``part`` (matched on its prefix), or None."""
    for prefix, info in PARTS.items():
        if part.lower().startswith(prefix):
            return info
    return None


def script(top: str, verilog_file: str, *, flow: str, family: str = "xcup") -> str:
    """The Yosys script of ``flow`` (``xilinx`` or ``generic``)."""
    synth = (f"synth_xilinx -family {family} -top {top} -flatten" if flow == "xilinx"
             else f"synth -top {top} -flatten -lut 6")
    return f"read_verilog -sv {verilog_file}\n{synth}\nstat\n"


def run_yosys(folder: Path, top: str, verilog_file: str, *, flow: str, part: str,
              timeout: float = 7200) -> dict:
    """Run Yosys in ``folder`` (writing :data:`SCRIPT` and :data:`LOG`) and return the resources."""
    yosys = need_tool("yosys")
    info = part_info(part) or {"family": "xcup"}
    (Path(folder) / SCRIPT).write_text(script(top, verilog_file, flow=flow, family=info["family"]))
    proc = subprocess.run([yosys, "-q", "-l", LOG, "-s", SCRIPT], cwd=folder, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise TriggerADError(f"yosys failed in {folder} (exit {proc.returncode}):\n{tail}")
    return resources(parse_stat((Path(folder) / LOG).read_text()), part, flow)


def parse_stat(log: str) -> dict[str, int]:
    """Cell counts ``{cell type: n}`` of the last ``stat`` table in a Yosys log.

    Raises
    ------
    TriggerADError
        If the log has no ``Number of cells`` table.
    """
    start = log.rfind("Number of cells:")
    if start < 0:
        raise TriggerADError("the Yosys log has no `stat` table (Number of cells: ...)")
    cells = {}
    for line in log[start:].splitlines()[1:]:
        m = re.match(r"^\s+(\S+)\s+(\d+)\s*$", line)
        if m:
            cells[m.group(1)] = int(m.group(2))
        elif cells and line.strip() and not line.startswith(" "):
            break
        elif cells and not line.strip():
            break
    return cells


def resources(cells: dict[str, int], part: str, flow: str) -> dict:
    """LUT/FF/CARRY/DSP/BRAM totals of the cell counts and the percentage of ``part``."""
    totals = {"LUT": 0, "FF": 0, "CARRY": 0, "DSP": 0, "BRAM": 0.0}
    for cell, n in cells.items():
        for pattern, cls in CELL_CLASSES:
            if re.fullmatch(pattern, cell):
                totals[cls] += n / 2 if cell.startswith("RAMB18") else n
                break
    info = part_info(part)
    percent = ({k: round(100 * totals[k] / info[k], 3) for k in ("LUT", "FF", "DSP", "BRAM")}
               if info else None)
    return {"tool": "yosys", "flow": flow, "part": part, **totals, "percent_of_part": percent,
            "cells": cells,
            "note": "Yosys estimate of an open synthesis flow, not a Vivado result"}
