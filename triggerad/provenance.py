"""Provenance: every output folder holds the resolved config, package version and git hash."""

from __future__ import annotations

import datetime
import functools
import platform
import subprocess
import sys
import threading
from concurrent.futures import Future
from importlib import metadata
from pathlib import Path
from typing import Any

from triggerad import atomic, spare
from triggerad.config import dump

PROVENANCE_FILE = "provenance.json"
CONFIG_FILE = "config.resolved.yaml"


@functools.lru_cache(maxsize=1)
def package_version() -> str:
    """The installed trigger-ad version, or ``"unknown"`` when run from an uninstalled tree
    (looked up once per process)."""
    try:
        return metadata.version("trigger-ad")
    except metadata.PackageNotFoundError:
        return "unknown"


def _git_lookup() -> str:
    """Run git on the source tree: ``rev-parse HEAD`` and ``status`` (see :func:`git_hash`)."""
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


_GIT_LOCK = threading.Lock()
#: The process's git lookup (:func:`start_git_hash`), None until started.
_git_future: Future | None = None


def start_git_hash() -> Future:
    """Start the lookup of :func:`git_hash` in a background thread, once per process.

    The two git subprocesses take ~10 ms; the thread waits for them without holding the GIL, so
    a command calls this when it starts (``trigger-ad score``) and :func:`git_hash` gets the
    result when it writes the provenance. Returns the lookup's future.
    """
    global _git_future
    with _GIT_LOCK:
        if _git_future is None:
            _git_future = spare.background(_git_lookup, name="git-hash")
        return _git_future


def git_hash() -> str:
    """The git commit of the source tree (``-dirty`` when it has uncommitted changes), or
    ``"unknown"`` (no git, not a checkout); looked up once per process (:func:`start_git_hash`)."""
    return start_git_hash().result()


def _reset_git_hash() -> None:
    """Forget the process's git lookup (tests)."""
    global _git_future
    with _GIT_LOCK:
        _git_future = None


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


#: Files a command's output folder may hold without making it "not empty" (a stale lock).
IGNORED_FILES = (".lock",)


def written_by(path: str | Path) -> str | None:
    """The command named by the provenance record of output ``path``, or None.

    A folder's record is ``path/provenance.json``; a file's is the sidecar
    ``path.stem + ".provenance.json"`` next to it (``features``).
    """
    import json

    path = Path(path)
    record = (path / PROVENANCE_FILE if path.is_dir()
              else path.with_name(path.stem + ".provenance.json"))
    try:
        command = json.loads(record.read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        return None
    return command if isinstance(command, str) else None


def check_output_dir(outdir: str | Path, command: str, *, force: bool = False,
                     own_markers: tuple[str, ...] = (), option: str = "--out") -> None:
    """Refuse an existing, non-empty output folder that ``command`` did not write.

    The one guard of every command's output folder. A folder is ours if its ``provenance.json``
    names ``command`` (or it holds one of ``own_markers``, e.g. the ``run.json`` of an
    unfinished, resumable ``score`` run); then it may be replaced or resumed. ``force`` accepts
    any folder (``--force``/``--overwrite``).

    Parameters
    ----------
    outdir : str or Path
        The folder given to ``option``.
    command : str
        The subcommand name (``"evaluate"``, ``"tagger generate"``, ...).
    force : bool
        Accept a foreign non-empty folder.
    own_markers : tuple of str
        File names whose presence marks the folder as this command's (unfinished) output.
    option : str
        The option name, for the message.

    Raises
    ------
    ConfigError
        If ``outdir`` is a file, or a non-empty folder of another origin and not ``force``.
    """
    from triggerad.errors import ConfigError

    out = Path(outdir)
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"{option} {out}: exists and is a file, expected a folder; choose "
                          "another name")
    if force or not any(p.name not in IGNORED_FILES for p in out.iterdir()):
        return
    if any((out / m).exists() for m in own_markers):
        return
    by = written_by(out)
    if by != command:
        origin = (f"its {PROVENANCE_FILE} names 'trigger-ad {by}'" if by
                  else f"it has no {PROVENANCE_FILE} of trigger-ad")
        raise ConfigError(
            f"{option} {out}: exists, is not empty and was not written by 'trigger-ad {command}' "
            f"({origin}); its content would be lost. Choose another folder, or pass --force to "
            "replace it"
        )


def check_output_file(path: str | Path, command: str, *, force: bool = False,
                      option: str = "--out") -> None:
    """Refuse an existing output file that ``command`` did not write (see :func:`check_output_dir`).

    A file is ours if its sidecar provenance (``X.provenance.json``) names ``command``.

    Raises
    ------
    ConfigError
        If ``path`` is a folder, or an existing file of another origin and not ``force``.
    """
    from triggerad.errors import ConfigError

    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"{option} {out}: is a folder, expected a file name")
    if not out.exists() or force or written_by(out) == command:
        return
    raise ConfigError(
        f"{option} {out}: exists and was not written by 'trigger-ad {command}'; its content "
        "would be lost. Choose another name, or pass --force to replace it"
    )
