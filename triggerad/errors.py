"""Exceptions a physicist can act on.

Every error names the file, tree, dataset, branch or key involved, says what was expected and what
was found, and where possible suggests the nearest valid name. They subclass built-in exceptions so
callers can catch them generically.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: Similarity (difflib ratio) a name needs to be suggested as "did you mean".
SUGGEST_CUTOFF = 0.6
#: Similarity a name needs to be listed among the nearest available names.
LIST_CUTOFF = 0.4
#: At most this many names are listed in a message.
MAX_LISTED = 10


def nearest(name: str, candidates: Iterable[str], n: int = MAX_LISTED,
            cutoff: float = SUGGEST_CUTOFF) -> list[str]:
    """Return up to ``n`` candidates similar to ``name``, the closest first.

    Parameters
    ----------
    name : str
        The name the user gave.
    candidates : iterable of str
        The valid names.
    n : int
        How many to return at most (0 or an empty candidate list: none).
    cutoff : float
        Minimum similarity (difflib ratio in [0, 1]); candidates below it are not returned, so
        garbage input gets no suggestion.
    """
    candidates = list(dict.fromkeys(map(str, candidates)))
    if n <= 0 or not candidates:
        return []
    return difflib.get_close_matches(str(name), candidates, n=n, cutoff=cutoff)


def _listing(name: str, candidates: list[str], kind: str = "names") -> str:
    """Every candidate (nearest first) when there are few, else the <= 10 nearest and the count."""
    if len(candidates) <= MAX_LISTED:
        close = nearest(name, candidates, n=len(candidates), cutoff=0.0)
        return ", ".join(map(repr, close))
    close = nearest(name, candidates, cutoff=LIST_CUTOFF)
    if not close:
        return f"none of the {len(candidates)} {kind} resembles {name!r}"
    return f"{len(candidates)} {kind}; the nearest: " + ", ".join(map(repr, close))


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Format a hint: the nearest valid name if one is similar, and the valid names.

    Few valid names (<= 10) are all listed, nearest first; more are summarised by their count
    and the <= 10 nearest. A name similar to none gets no suggestion.
    """
    candidates = list(dict.fromkeys(map(str, candidates)))
    if not candidates:
        return "there are no valid names"
    best = nearest(name, candidates, n=1)
    listing = _listing(name, candidates)
    if best:
        return f"did you mean {best[0]!r}? Valid: {listing}"
    return f"valid: {listing}"


class TriggerADError(Exception):
    """Base class of every error raised on purpose by trigger-ad."""


class ConfigError(TriggerADError, ValueError):
    """A YAML config has an unknown, misspelt, missing or wrongly typed key."""


class InputFileError(TriggerADError, OSError):
    """An input file cannot be opened, is truncated or corrupt, or is empty."""


class ModelFolderError(InputFileError):
    """A model folder whose ``artifact.json`` lacks a key, has a foreign version or kind (or
    whose ``threshold.json`` is unreadable or edited)."""


class MissingFieldError(TriggerADError, KeyError):
    """A tree, dataset, branch or column the reader needs is not in the file."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ShapeError(TriggerADError, ValueError):
    """An array in an input file has the wrong shape or type."""


class OutOfRangeError(TriggerADError, ValueError):
    """A value in an input file lies outside its allowed range (an index pointing outside its
    collection, a c-tau outside the configured range)."""


class NonFiniteError(TriggerADError, ValueError):
    """An input holds NaN or inf values and the config says to reject them."""


class SchemaMismatchError(TriggerADError, ValueError):
    """A model is asked to score data whose feature schema differs from the one it was trained on."""


class StatisticsError(TriggerADError, ValueError):
    """Too few events to make a requested quantity (e.g. a trigger rate) meaningful."""


def missing_field(
    kind: str, name: str, where: str, available: Iterable[str], note: str = ""
) -> MissingFieldError:
    """Build a :class:`MissingFieldError` listing the nearest available names (at most 10).

    Parameters
    ----------
    kind : str
        What is missing ("branch", "tree", "dataset", "column").
    name : str
        The name that was asked for.
    where : str
        The file (and tree) searched.
    available : iterable of str
        The names that do exist there. Up to 10 are all listed (nearest first); more are
        summarised by their count and the <= 10 most similar.
    note : str
        Context appended to the first sentence (e.g. which branch-map preset was used).
    """
    available = list(dict.fromkeys(map(str, available)))
    plural = f"{kind}es" if kind.endswith(("ch", "sh", "s")) else f"{kind}s"
    context = f" ({note})" if note else ""
    if not available:
        listing = f"There are no {plural}."
    elif len(available) <= MAX_LISTED:
        listing = f"Available {plural} (nearest first): {_listing(name, available)}"
    else:
        listing = f"Available: {_listing(name, available, plural)}"
    return MissingFieldError(f"{where}: no {kind} {name!r}{context}. {listing}")
