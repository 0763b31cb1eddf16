"""Markdown tables of the human-readable reports (``report.md`` of the anomaly and tagger reports)."""

from __future__ import annotations

from typing import Any


def fmt(value: Any) -> str:
    """A table cell: ``-`` for None, 3 significant digits for floats, ``str`` otherwise."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table of ``rows`` (cells through :func:`fmt`) under ``headers``."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
