"""``MODEL/threshold.json``: the cut (or working point) a model folder carries, and its checks.

Written by ``trigger-ad threshold`` (:meth:`triggerad.models.ModelFolder.write_threshold`), read
by every command that applies the cut; :mod:`triggerad.models` re-exports these names.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from triggerad.errors import ModelFolderError, did_you_mean

THRESHOLD_FILE = "threshold.json"
#: The one selection a ``threshold.json`` describes (events above the cut are kept).
SELECTION = "score > value"
#: Numeric fields of ``threshold.json`` that must be finite when present.
THRESHOLD_NUMBERS = ("value", "fpr", "target_rate_hz", "input_rate_hz", "achieved_rate_hz")


def read_threshold(path: str | Path, score_names: list[str] | None = None) -> dict | None:
    """Read and check ``path/threshold.json``; None if the model has no threshold yet.

    Parameters
    ----------
    path : str or Path
        The model folder.
    score_names : list of str, optional
        The model's scores; the threshold's ``score`` must be one of them.

    Raises
    ------
    ModelFolderError
        If the file is not a JSON object, lacks ``score`` or ``value``, has a value that is not a
        finite number, names a score the model does not have, or an edited ``selection``.
    """
    file = Path(path) / THRESHOLD_FILE
    if not file.is_file():
        return None
    redo = "set it again with `trigger-ad threshold`"
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{file}: unreadable or truncated ({err}); {redo}") from err
    if not isinstance(data, dict):
        raise ModelFolderError(f"{file}: expected a JSON object, found {type(data).__name__}; "
                               f"{redo}")
    missing = [k for k in ("score", "value") if k not in data]
    if missing:
        raise ModelFolderError(f"{file}: missing {', '.join(map(repr, missing))} (found keys "
                               f"{sorted(data)}); {redo}")
    for key in THRESHOLD_NUMBERS:
        value = data.get(key)
        if key in data and (isinstance(value, bool) or not isinstance(value, (int, float))
                            or not math.isfinite(value)):
            raise ModelFolderError(f"{file}: {key} must be a finite number, found {value!r}; "
                                   f"{redo}")
    if score_names is not None and data["score"] not in score_names:
        raise ModelFolderError(f"{file}: score {data['score']!r} is not a score of this model; "
                               f"{did_you_mean(str(data['score']), score_names)}")
    if data.get("selection", SELECTION) != SELECTION:
        raise ModelFolderError(f"{file}: selection {data['selection']!r}; trigger-ad applies "
                               f"only {SELECTION!r} (the file was edited); {redo}")
    return data
