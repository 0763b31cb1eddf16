"""Provenance: every output folder holds the resolved config, package version and git hash."""

from __future__ import annotations

import datetime
import functools
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from triggerad import atomic
from triggerad.config import dump

PROVENANCE_FILE = "provenance.json"
CONFIG_FILE = "config.resolved.yaml"


def package_version() -> str:
    """The installed trigger-ad version, or ``"unknown"`` when run from an uninstalled tree."""
    try:
        return metadata.version("trigger-ad")
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.lru_cache(maxsize=1)
def git_hash() -> str:
    """The git commit of the source tree (``-dirty`` when it has uncommitted changes)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=10,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """trigger-ad's version and git hash, Python's and those of ``packages`` (``"unknown"`` when
    not installed): stored with a saved model."""
    out = {"trigger_ad": package_version(), "git_hash": git_hash(),
           "python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def provenance(command: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provenance record of a command run."""
    return {
        "command": command,
        "argv": sys.argv,
        "trigger_ad_version": package_version(),
        "git_hash": git_hash(),
        "python": platform.python_version(),
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }


def write_provenance(
    outdir: str | Path, command: str, config: Any = None, extra: dict[str, Any] | None = None
) -> None:
    """Write ``provenance.json`` and (if given) ``config.resolved.yaml`` into ``outdir``.

    Parameters
    ----------
    outdir : str or Path
        The command's output folder.
    command : str
        The subcommand name.
    config : dataclass or dict, optional
        The resolved config.
    extra : dict, optional
        More fields (inputs, seeds, ...).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if config is not None:
        atomic.write_text(outdir / CONFIG_FILE, dump(config))
    atomic.write_json(outdir / PROVENANCE_FILE, provenance(command, extra))


def check_output_dir(outdir: str | Path, command: str) -> None:
    """Refuse an existing, non-empty output folder that ``command`` did not write.

    A folder is ours if its ``provenance.json`` names ``command``; then it may be replaced.

    Raises
    ------
    ConfigError
        If ``outdir`` is a file, or a non-empty folder without such a provenance record.
    """
    import json

    from triggerad.errors import ConfigError

    out = Path(outdir)
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    if not any(out.iterdir()):
        return
    try:
        written_by = json.loads((out / PROVENANCE_FILE).read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        written_by = None
    if written_by != command:
        raise ConfigError(
            f"--out {out}: exists, is not empty and was not written by 'trigger-ad {command}' "
            f"(its {PROVENANCE_FILE} names {written_by!r}); choose another folder or remove it"
        )
