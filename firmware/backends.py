"""The hls4ml backends trigger-ad writes projects for, and their vendor tools.

One table, used by the project README (:mod:`firmware.emit`), the report and the synthesis run
(:mod:`firmware.report`) and the ``trigger-ad firmware`` summary.
"""

from __future__ import annotations

import shutil

#: hls4ml backend -> the vendor HLS tool that synthesises its projects.
VENDOR_TOOLS = {"Vitis": "vitis_hls", "Vivado": "vivado_hls"}


def synthesis_command(backend: str) -> str:
    """The one command that runs C simulation + synthesis in the project folder."""
    return f'{VENDOR_TOOLS[backend]} -f build_prj.tcl "csim=1 synth=1 cosim=0 export=0"'


def vendor_tool(backend: str) -> str | None:
    """Path of the vendor HLS tool of ``backend`` if it is on ``PATH``."""
    return shutil.which(VENDOR_TOOLS[backend])
