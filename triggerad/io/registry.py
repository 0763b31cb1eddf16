"""Reader registry: reader by name, input-list expansion and reader detection from the file.

Example
-------
>>> reader = make_reader("nanoaod", options=ReadOptions(chunk_size=10_000))   # doctest: +SKIP
>>> for path in expand_inputs(["data/*.root", "@more_files.txt"]):            # doctest: +SKIP
...     for batch in reader.iter_chunks(path): ...
"""

from __future__ import annotations

import glob
from pathlib import Path

from triggerad.errors import ConfigError, InputFileError, MissingFieldError, did_you_mean
from triggerad.io.adc2021 import Adc2021Reader
from triggerad.io.base import Reader, ReadOptions
from triggerad.io.delphes import DelphesReader
from triggerad.io.flat import FlatReader, ParquetReader
from triggerad.io.jeth5 import JetH5Reader, is_jet_file
from triggerad.io.nanoaod import NanoAODReader
from triggerad.io.pfnano import PFNanoReader
from triggerad.io.rootio import describe_contents, event_containers, root_contents

#: Every reader by name; ``READERS[name].record`` says what it yields: ``"events"``
#: (:class:`~triggerad.events.EventBatch`) or ``"jets"`` (:class:`~triggerad.jets.JetBatch`).
READERS: dict[str, type[Reader]] = {
    "adc2021": Adc2021Reader,
    "delphes": DelphesReader,
    "nanoaod": NanoAODReader,
    "flat": FlatReader,
    "parquet": ParquetReader,
    "pfnano": PFNanoReader,
    "jets": JetH5Reader,
}

#: Reader chosen for a ROOT file holding a tree of this name (others: ``flat``).
ROOT_TREES = {"Events": "nanoaod", "Delphes": "delphes"}
SUFFIXES = {".h5": "adc2021", ".hdf5": "adc2021", ".parquet": "parquet", ".pq": "parquet"}


def check_reader_name(kind: str, record: str = "events") -> None:
    """Raise :class:`ConfigError` unless ``kind`` is a registered reader of ``record``.

    An unknown name gets the nearest names among the readers of ``record``; a reader of the
    other record type is named as such.
    """
    if kind not in READERS:
        raise ConfigError(f"unknown reader {kind!r}; " + did_you_mean(kind, readers_of(record)))
    if READERS[kind].record != record:
        valid = readers_of(record)
        raise ConfigError(
            f"reader {kind!r} yields {READERS[kind].record} ({READERS[kind].__name__}), but this "
            f"command needs {record}; readers of {record}: {', '.join(map(repr, valid))}"
        )


def readers_of(record: str) -> list[str]:
    """Names of the readers that yield ``record`` (``"events"`` or ``"jets"``)."""
    return [k for k, r in READERS.items() if r.record == record]


def make_reader(
    kind: str, branch_map_path: str | Path | None = None, options: ReadOptions | None = None,
    *, record: str = "events",
) -> Reader:
    """The reader ``kind`` with its default branch map overridden by ``branch_map_path``.

    ``record`` is what the caller consumes (``"events"`` for the anomaly commands, ``"jets"``
    for the tagger); a reader yielding the other record type is refused.

    Raises
    ------
    ConfigError
        For an unknown reader name (with the nearest valid one), a reader of the wrong record
        type, or a bad branch map.
    """
    check_reader_name(kind, record)
    return READERS[kind](branch_map_path, options)


def detect_reader(path: str | Path, record: str = "events") -> str:
    """Reader name for ``path`` from its suffix (``.root``: from its tree names).

    For events: ``.h5``/``.hdf5`` -> adc2021, ``.parquet`` -> parquet, ``.root`` -> nanoaod if it
    holds an ``Events`` tree (TTree or RNTuple), delphes if ``Delphes``, else flat. For jets
    (``record="jets"``): ``.h5``/``.hdf5`` -> jets, ``.root`` -> pfnano.

    Raises
    ------
    MissingFieldError
        For a ROOT file holding no TTree or RNTuple at all (saying what it holds).
    """
    suffix = Path(path).suffix.lower()
    if record == "jets":
        jet_suffixes = {".h5": "jets", ".hdf5": "jets", ".root": "pfnano"}
        if suffix in jet_suffixes:
            return jet_suffixes[suffix]
        raise InputFileError(
            f"{path}: cannot tell the jet reader from the suffix {suffix!r} (known: "
            f"{', '.join(jet_suffixes)}); pass --reader explicitly"
        )
    if SUFFIXES.get(suffix) == "adc2021" and is_jet_file(path):
        raise ConfigError(
            f"{path}: is a trigger-ad jet file (LLP tagger inputs), not an event file; the "
            f"anomaly commands need events (readers {', '.join(readers_of('events'))})"
        )
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if suffix == ".root":
        contents = root_contents(str(path))
        names = event_containers(contents)
        if not names:
            raise MissingFieldError(
                f"{path}: holds no TTree or RNTuple, only {describe_contents(contents)}; "
                f"expected an event tree ({', '.join(map(repr, ROOT_TREES))} or a flat feature "
                "tree)"
            )
        return next((ROOT_TREES[t] for t in ROOT_TREES if t in names), "flat")
    raise InputFileError(
        f"{path}: cannot tell the reader from the suffix {suffix!r} (known: "
        f"{', '.join([*SUFFIXES, '.root'])}); pass --reader explicitly"
    )


def _list_file(path: str) -> list[str]:
    """Paths listed one per line in a text file (blank lines and ``#`` comments skipped)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise InputFileError(f"{path}: cannot read input list ({err.strerror or err})") from err
    base = Path(path).parent
    out = []
    for line in (ln.strip() for ln in lines):
        if line and not line.startswith("#"):
            out.append(line if Path(line).is_absolute() else str(base / line))
    return out


def expand_inputs(inputs: list[str]) -> list[str]:
    """Expand files, glob patterns and input lists (``@list.txt`` or ``*.txt``) into file paths.

    Paths in a list file are relative to the list file's folder; they may themselves be globs.

    Raises
    ------
    InputFileError
        If a glob matches nothing, a file does not exist, or no input is given.
    """
    out = _expand(inputs)
    if not out:
        raise InputFileError(f"no input files in {inputs!r}")
    return list(dict.fromkeys(out))


def _expand(inputs: list[str]) -> list[str]:
    out: list[str] = []
    for item in inputs:
        if item.startswith("@") or item.endswith(".txt"):
            out.extend(_expand(_list_file(item.removeprefix("@"))))
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise InputFileError(f"{item}: the pattern matches no file")
            out.extend(matches)
        elif not Path(item).exists():
            raise InputFileError(f"{item}: no such file")
        else:
            out.append(item)
    return out
