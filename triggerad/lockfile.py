"""Exclusive output folders: a lock file naming the process that writes into the folder.

Two runs writing into the same folder at once would mix their outputs (e.g. two ``score`` runs
doubling the manifest). The first takes ``FOLDER/.lock`` (an ``flock`` on it, released by the
kernel when the process ends, so a killed run leaves no stale lock) and writes its PID and
command into it; the second is refused with a message naming that PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from triggerad.errors import ConfigError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def exclusive(folder: str | Path, command: str) -> Iterator[Path]:
    """Hold ``folder/.lock`` for the duration of the block.

    Parameters
    ----------
    folder : str or Path
        The output folder (created if missing).
    command : str
        What holds the lock, for the refusal message (e.g. ``"trigger-ad score"``).

    Raises
    ------
    ConfigError
        If another process holds the lock; the message names its PID and host.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise ConfigError(
                f"{folder}: another run is writing into this folder ({holder}); wait for it to "
                "finish (or stop it), or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{command}, PID {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
    finally:
        os.close(fd)
