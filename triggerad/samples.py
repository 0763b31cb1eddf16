"""Sample lists: which files make up each sample, its cross-section, process label and role.

A sample list is a YAML file shaped like a coffea fileset: one section per sample.

.. code-block:: yaml

    ttbar:                        # sample name
      files: [nano/TTto*.root]    # files or globs, relative to this YAML file
      xsec_pb: 923.6              # cross-section in pb (null: weights kept as read, e.g. data)
      process: ttbar              # process label (default: the sample name)
      is_signal: false            # background (SM) or signal (BSM) sample
      reader: nanoaod             # optional: reader name (default: auto)
      branch_map: null            # optional: branch-map YAML for this sample's files

Every command that reads a data folder or data files (``features``, ``train``, ``threshold``,
``evaluate``, ``score``) also accepts a sample list (a ``.yaml`` / ``.yml`` input).

Generator weights
-----------------
For a sample with a cross-section, each event gets ``weight = xsec_pb * w / sum_w`` where ``w``
is the weight the reader gives (``genWeight`` in the CMS NanoAOD presets, 1 when the file has
none) and ``sum_w`` is the sum of the generator weights of every event produced for the sample,
summed over *all* its files: from ``Runs/genEventSumw`` when every file has it (correct also for
skimmed files), otherwise from the files' own event weights (then the files must hold every
generated event). A sample whose files mix the two is refused. The sum of the weights of the
sample's events is then its cross-section in pb (times the skim efficiency), the convention of
``docs/architecture.md`` ("Weights"). Negative weights (NLO generators) keep their sign.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from triggerad.config import build, read_yaml
from triggerad.errors import ConfigError, InputFileError
from triggerad.events import EventBatch
from triggerad.io.base import Reader, ReadOptions

#: Which samples of a list a command reads.
Role = Literal["background", "signal", "all"]
SUFFIXES = (".yaml", ".yml")


@dataclass
class Sample:
    """One sample of a sample list (see module docstring)."""

    files: list[str] | str
    xsec_pb: float | None = None
    process: str | None = None
    is_signal: bool = False
    reader: str = "auto"
    branch_map: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.files, str):
            self.files = [self.files]
        if not self.files:
            raise ValueError("files: expected at least one file or glob, found []")
        if self.xsec_pb is not None and not (math.isfinite(self.xsec_pb) and self.xsec_pb > 0):
            raise ValueError(f"xsec_pb: expected a positive cross-section in pb, found "
                             f"{self.xsec_pb!r}")


@dataclass
class Normalisation:
    """How a sample's weights were normalised: ``weight = factor * w`` with ``factor = xsec / sumw``."""

    xsec_pb: float | None
    sum_w: float | None
    source: str
    factor: float


def is_sample_list(path: str | Path) -> bool:
    """Whether an input names a sample list (a ``.yaml`` / ``.yml`` file)."""
    return str(path).lower().endswith(SUFFIXES)


def load_sample_list(path: str | Path) -> dict[str, Sample]:
    """Read and check a sample list; file patterns are expanded relative to the YAML's folder.

    Raises
    ------
    ConfigError
        For an empty list, a sample that is not a mapping, an unknown (misspelt) key (naming the
        file, sample and nearest valid key) or a bad value.
    InputFileError
        If a file or pattern of a sample matches nothing.
    """
    from triggerad.io.registry import expand_inputs

    data = read_yaml(path)
    if not data:
        raise ConfigError(f"{path}: the sample list names no sample")
    base = Path(path).parent
    samples = {}
    for name, section in data.items():
        sample = build(Sample, section, where=f"{path}:{name}")
        patterns = [f if Path(f).is_absolute() else str(base / f) for f in sample.files]
        try:
            sample.files = expand_inputs(patterns)
        except InputFileError as err:
            raise InputFileError(f"{path}:{name}: {err}") from err
        samples[str(name)] = sample
    return samples


def normalise(name: str, sample: Sample, readers: dict[str, Reader]) -> Normalisation:
    """The weight factor of ``sample`` (see module docstring), from its files and their readers.

    Raises
    ------
    InputFileError
        When some files have ``Runs/genEventSumw`` and others not, or the sum of the generator
        weights is not positive.
    """
    if sample.xsec_pb is None:
        return Normalisation(None, None, "no cross-section: weights as read", 1.0)
    sums = {f: readers[f].generator_sumw(f) for f in sample.files}
    have = [f for f, s in sums.items() if s is not None]
    if have and len(have) != len(sums):
        lacking = [f for f, s in sums.items() if s is None]
        raise InputFileError(
            f"sample {name!r}: {len(have)} files have the sum of generator weights (Runs tree) and "
            f"{len(lacking)} do not (e.g. {lacking[0]}); normalise them separately or together"
        )
    if have:
        sum_w, source = sum(sums.values()), "Runs/genEventSumw summed over the sample's files"
    else:
        sum_w = sum(readers[f].sum_weights(f) for f in sample.files)
        source = "event weights (genWeight) summed over the sample's files"
    if not (math.isfinite(sum_w) and sum_w > 0):
        raise InputFileError(f"sample {name!r}: the sum of generator weights ({source}) is "
                             f"{sum_w!r}; a positive sum is needed to normalise to xsec_pb")
    return Normalisation(sample.xsec_pb, float(sum_w), source, sample.xsec_pb / sum_w)


class SampleReader(Reader):
    """A reader of one sample's files: the inner reader's events with the sample's process label
    and weights scaled by the sample's normalisation factor."""

    def __init__(self, inner: Reader, sample: str, process: str, factor: float):
        super().__init__(inner.branch_map, inner.options)
        self.inner, self.sample, self.process, self.factor = inner, sample, process, factor
        self.name = inner.name

    def num_entries(self, path) -> int:
        """Entries of ``path`` (from the inner reader)."""
        return self.inner.num_entries(path)

    def read(self, path, start=0, stop=None, fields=None) -> EventBatch:
        """Entries ``[start, stop)`` read by the inner reader, labelled and normalised."""
        batch = self.inner.read(path, start, stop, fields)
        batch.weight = batch.weight * self.factor
        batch.process = batch.process.copy()
        batch.process.fill(self.process)
        batch.defaults = tuple(d for d in batch.defaults if not d.startswith("process"))
        return batch

    def describe(self, path) -> dict:
        """The inner reader's description plus the sample, label and weight factor."""
        return {**self.inner.describe(path), "sample": self.sample, "process": self.process,
                "weight_factor": self.factor}

    def sum_weights(self, path) -> float:
        """Sum of the normalised weights of ``path``."""
        return self.inner.sum_weights(path) * self.factor

    def generator_sumw(self, path) -> float | None:
        """The inner reader's sum of generator weights (not normalised)."""
        return self.inner.generator_sumw(path)


@dataclass
class Input:
    """One input file, the reader that reads it and the sample it belongs to (None: no list)."""

    path: str
    reader: Reader
    sample: str | None = None


class SampleSet:
    """A sample list opened for reading: per sample its files, readers and normalisation.

    Parameters
    ----------
    path : str or Path
        The sample-list YAML.
    reader : str
        Reader used for samples that do not name one (``auto``: detected per file).
    branch_map : str, optional
        Branch map for samples that do not name one.
    options : ReadOptions, optional
        Reader options.
    """

    def __init__(self, path: str | Path, reader: str = "auto", branch_map: str | None = None,
                 options: ReadOptions | None = None):
        self.path = str(path)
        self.samples = load_sample_list(path)
        self.reader, self.branch_map = reader, branch_map
        self.options = options or ReadOptions()
        self.norms: dict[str, Normalisation] = {}
        self._made: dict[tuple, Reader] = {}

    def names(self, role: Role = "all") -> list[str]:
        """Sample names of a role (``background``: not signal; ``signal``; ``all``)."""
        return [n for n, s in self.samples.items()
                if role == "all" or s.is_signal == (role == "signal")]

    def _reader(self, sample: Sample, path: str) -> Reader:
        from triggerad.io.registry import detect_reader, make_reader

        kind = sample.reader if sample.reader != "auto" else self.reader
        kind = detect_reader(path) if kind == "auto" else kind
        bmap = sample.branch_map or self.branch_map
        if bmap and sample.branch_map and not Path(bmap).is_absolute():
            bmap = str(Path(self.path).parent / bmap)
        key = (kind, bmap)
        if key not in self._made:
            self._made[key] = made = make_reader(kind, bmap, self.options)
            made.quiet_defaults = ("process",)  # the sample names the process
        return self._made[key]

    def inputs(self, role: Role = "all") -> list[Input]:
        """The files of the samples of ``role``, each with its (normalising) reader."""
        out = []
        for name in self.names(role):
            sample = self.samples[name]
            readers = {f: self._reader(sample, f) for f in sample.files}
            if name not in self.norms:
                self.norms[name] = normalise(name, sample, readers)
            factor = self.norms[name].factor
            label = sample.process or name
            out += [Input(f, SampleReader(readers[f], name, label, factor), name)
                    for f in sample.files]
        return out

    def describe(self) -> dict:
        """The sample list as recorded in provenance: files, xsec, label, role, normalisation."""
        return {"sample_list": self.path, "samples": {
            name: {"files": s.files, "xsec_pb": s.xsec_pb, "process": s.process or name,
                   "is_signal": s.is_signal,
                   "normalisation": vars(self.norms[name]) if name in self.norms else None}
            for name, s in self.samples.items()}}


def resolve_inputs(
    inputs: list[str], reader: str = "auto", branch_map: str | None = None,
    options: ReadOptions | None = None, role: Role = "all",
) -> tuple[list[Input], list[SampleSet]]:
    """Expand command-line inputs (files, globs, ``@lists``, sample lists) into readable inputs.

    Plain files get the reader ``reader`` (``auto``: detected per file) with ``branch_map``;
    the files of a sample list's samples of ``role`` get normalising :class:`SampleReader` s.

    Returns
    -------
    inputs : list of Input
        In command-line order, then sample-list order.
    sets : list of SampleSet
        The sample lists opened (for provenance).

    Raises
    ------
    InputFileError
        If nothing is left to read, or a file appears twice.
    ConfigError
        If ``branch_map`` is given and the plain inputs need several readers.
    """
    from triggerad.io.registry import detect_reader, expand_inputs, make_reader

    options = options or ReadOptions()
    plain = [i for i in inputs if not is_sample_list(i)]
    sets = [SampleSet(i, reader, branch_map, options) for i in inputs if is_sample_list(i)]
    out: list[Input] = []
    if plain:
        kinds = {p: detect_reader(p) if reader == "auto" else reader for p in expand_inputs(plain)}
        if branch_map and len(set(kinds.values())) > 1:
            raise ConfigError(
                f"--branch-map {branch_map}: the inputs need several readers "
                f"({', '.join(sorted(set(kinds.values())))}); pass --reader explicitly"
            )
        made = {k: make_reader(k, branch_map, options) for k in dict.fromkeys(kinds.values())}
        out += [Input(path, made[kind]) for path, kind in kinds.items()]
    for sset in sets:
        out += sset.inputs(role)
    if not out:
        raise InputFileError(f"no input files in {inputs!r}"
                             + (f" (no {role} sample in the sample list)" if sets else ""))
    seen: dict[str, str | None] = {}
    for item in out:
        if item.path in seen:
            raise InputFileError(f"{item.path}: listed twice (samples {seen[item.path]!r} and "
                                 f"{item.sample!r}); each file belongs to one sample")
        seen[item.path] = item.sample
    return out, sets


class ReaderTable:
    """Path -> reader of resolved inputs, usable where a reader chooser is expected (picklable)."""

    def __init__(self, inputs: list[Input]):
        self.table = {i.path: i.reader for i in inputs}

    def __call__(self, path: str) -> Reader:
        """The reader of ``path``."""
        return self.table[path]
