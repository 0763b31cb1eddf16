"""Exceptions a physicist can act on.

Every error names the file, tree, dataset, branch or key involved, says what was expected and what
was found, and where possible suggests the nearest valid name. They subclass built-in exceptions so
callers can catch them generically.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def nearest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Return candidates ordered by similarity to ``name``, the closest first.

    Parameters
    ----------
    name : str
        The name the user gave.
    candidates : iterable of str
        The valid names.
    n : int
        How many to return at most.
    """
    candidates = list(candidates)
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.0)
    return close + [c for c in candidates if c not in close][: max(0, n - len(close))]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Format a 'did you mean' hint listing the valid names, nearest first."""
    ordered = nearest(name, candidates, n=50)
    if not ordered:
        return "there are no valid names"
    return f"did you mean {ordered[0]!r}? Valid: {', '.join(map(repr, ordered))}"


class TriggerADError(Exception):
    """Base class of every error raised on purpose by trigger-ad."""


class ConfigError(TriggerADError, ValueError):
    """A YAML config has an unknown, misspelt, missing or wrongly typed key."""


class InputFileError(TriggerADError, OSError):
    """An input file cannot be opened, is truncated or corrupt, or is empty."""


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
    kind: str, name: str, where: str, available: Iterable[str], *, limit: int | None = None
) -> MissingFieldError:
    """Build a :class:`MissingFieldError` listing the available names, nearest first.

    Parameters
    ----------
    kind : str
        What is missing ("branch", "tree", "dataset", "column").
    name : str
        The name that was asked for.
    where : str
        The file (and tree) searched.
    available : iterable of str
        The names that do exist there.
    limit : int, optional
        List only the ``limit`` nearest names (default all).
    """
    available = list(available)
    shown = nearest(name, available, n=len(available) if limit is None else limit)
    listing = ", ".join(map(repr, shown)) or "none"
    plural = f"{kind}es" if kind.endswith(("ch", "sh", "s")) else f"{kind}s"
    which = "Available" if len(shown) == len(available) else f"Nearest {len(shown)} of {len(available)}"
    return MissingFieldError(f"{where}: no {kind} {name!r}. {which} {plural} (nearest first): {listing}")
