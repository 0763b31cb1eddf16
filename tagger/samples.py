"""Configuration of the LLP jet samples (``configs/tagger-generate*.yaml``) and the signal models.

Sections: ``beam`` and ``pileup`` (as in ``trigger-ad generate``), ``signals`` (LLP models),
``processes`` (SM backgrounds, :class:`~triggerad.generation.config.ProcessConfig`), ``ctau``,
``tracking``, ``calorimeter``, ``vertexing``, ``jets``, ``labels``, ``inputs``, ``domain`` (the
shifted, "data-like" simulation) and ``output``. Every key is documented in ``docs/tagger.md``.

Signal models (Pythia 8, the LLP decays inside the detector volume at its true, displaced vertex;
its c-tau is set per batch of ``ctau.batch_events`` events through Pythia's particle data):

- ``higgs_portal_scalar``: gg -> h(125) -> S S, S (PDG 9000006, scalar, mass ``mass``) -> q q~ for
  the quark flavours ``quarks`` (equal branching fractions), decayed and hadronised by Pythia.
- ``gluino_rhadron``: split-SUSY gluino pairs (``SUSY:gg2gluinogluino``, ``qqbar2gluinogluino``)
  of mass ``mass`` hadronising into R-hadrons, which decay as gluino -> q q~ neutralino
  (neutralino mass ``lsp_mass``; quark flavours ``quarks``, equal fractions). Pythia's SUSY setup
  reads an SLHA spectrum, which each job writes to a temporary file from these values.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tagger.features import JetSelectionConfig
from tagger.labels import LabelConfig
from triggerad import config as tconfig
from triggerad.generation.config import BeamConfig, OutputConfig, PileupConfig, ProcessConfig
from triggerad.generation.tracking import CalorimeterConfig, TrackingConfig
from triggerad.generation.vertexing import VertexingConfig
from triggerad.jets import DEFAULT_SIZES

#: PDG id of the long-lived scalar of the Higgs-portal model.
SCALAR_ID = 9000006
GLUINO_ID, NEUTRALINO_ID = 1000021, 1000022
#: c-tau range (mm) the samples cover: 10 um to 10 m.
CTAU_LIMITS = (0.01, 10_000.0)


@dataclass
class SignalConfig:
    """One LLP signal sample (module docstring).

    Attributes
    ----------
    model : {"higgs_portal_scalar", "gluino_rhadron"}
    mass : float
        Mass (GeV) of the scalar S or of the gluino.
    lsp_mass : float
        Neutralino mass (GeV) of the gluino model.
    quarks : list of int
        Quark flavours (1-5) of the LLP decay.
    events_fraction : float
        Generated events = ``--events`` x this fraction.
    settings : list of str
        Extra Pythia settings of this sample.
    """

    model: Literal["higgs_portal_scalar", "gluino_rhadron"] = "higgs_portal_scalar"
    mass: float = 40.0
    lsp_mass: float = 100.0
    quarks: list[int] = field(default_factory=lambda: [5])
    events_fraction: float = 1.0
    settings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.quarks or any(q not in (1, 2, 3, 4, 5) for q in self.quarks):
            raise ValueError(f"quarks must be flavours 1-5, found {self.quarks!r}")
        if self.events_fraction <= 0 or self.mass <= 0:
            raise ValueError("mass and events_fraction must be positive")
        if self.model == "gluino_rhadron" and not 0 < self.lsp_mass < self.mass:
            raise ValueError(
                f"lsp_mass must be between 0 and the gluino mass {self.mass!r}, found "
                f"{self.lsp_mass!r}"
            )

    @property
    def llp_id(self) -> int:
        """PDG id whose lifetime is the sample's c-tau."""
        return SCALAR_ID if self.model == "higgs_portal_scalar" else GLUINO_ID

    @property
    def rhadrons(self) -> bool:
        return self.model == "gluino_rhadron"

    def pythia_settings(self, ctau: float, slha: str | None = None) -> list[str]:
        """Pythia settings of the model with lifetime ``ctau`` (mm) and SLHA file ``slha``."""
        br = 1.0 / len(self.quarks)
        if self.model == "higgs_portal_scalar":
            out = [
                "HiggsSM:gg2H = on", "25:m0 = 125.0", "25:onMode = off",
                f"25:addChannel = 1 1.0 100 {SCALAR_ID} {SCALAR_ID}",
                f"{SCALAR_ID}:all = S void 1 0 0 {self.mass} 0.0 0.0 0.0 {ctau}",
                f"{SCALAR_ID}:mayDecay = on", f"{SCALAR_ID}:isResonance = off",
            ]
            for i, q in enumerate(self.quarks):
                verb = "oneChannel" if i == 0 else "addChannel"
                out.append(f"{SCALAR_ID}:{verb} = 1 {br} 91 {q} -{q}")
        else:
            out = [
                "SUSY:gg2gluinogluino = on", "SUSY:qqbar2gluinogluino = on",
                f"SLHA:file = {slha}", "SLHA:verbose = 0", "RHadrons:allow = on",
                "RHadrons:allowDecay = on", "RHadrons:setMasses = on",
                f"{GLUINO_ID}:tau0 = {ctau}",
            ]
        return out + list(self.settings)

    def slha(self) -> str:
        """The SLHA spectrum of the gluino model (masses and the gluino decay table)."""
        width = 1e-15  # GeV; only needs to be narrow (R-hadrons form below 0.2 GeV): tau0 is set
        lines = [
            "BLOCK MODSEL", "    1    1", "BLOCK MASS",
            f"   {GLUINO_ID}   {self.mass:.6e}", f"   {NEUTRALINO_ID}   {self.lsp_mass:.6e}",
            f"DECAY   {GLUINO_ID}   {width:.6e}",
        ]
        lines += [f"    {1.0 / len(self.quarks):.6e}   3   {NEUTRALINO_ID}   {q}   -{q}"
                  for q in self.quarks]
        lines.append(f"DECAY   {NEUTRALINO_ID}   0.0")
        return "\n".join(lines) + "\n"


@dataclass
class CtauConfig:
    """c-tau (mm) of the generated LLPs, one value per batch of ``batch_events`` events.

    ``mode: log_uniform`` draws log10(c-tau) uniformly in ``range``; ``mode: grid`` cycles through
    ``values``. Both must lie within 10 um - 10 m.
    """

    mode: Literal["log_uniform", "grid"] = "log_uniform"
    range: list[float] = field(default_factory=lambda: list(CTAU_LIMITS))
    values: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0,
                                                         10000.0])
    batch_events: int = 25

    def __post_init__(self) -> None:
        lo, hi = CTAU_LIMITS
        if len(self.range) != 2 or not lo <= self.range[0] < self.range[1] <= hi:
            raise ValueError(f"range must be [min, max] within [{lo}, {hi}] mm, found {self.range!r}")
        bad = [v for v in self.values if not lo <= v <= hi]
        if bad or not self.values:
            raise ValueError(f"values must be non-empty and within [{lo}, {hi}] mm, found {bad!r}")
        if self.batch_events <= 0:
            raise ValueError(f"batch_events must be positive, found {self.batch_events!r}")

    def draw(self, rng, batch: int) -> float:
        """The c-tau of the ``batch``-th batch of a job (``rng`` for ``log_uniform``)."""
        if self.mode == "grid":
            return float(self.values[batch % len(self.values)])
        lo, hi = (math.log10(v) for v in self.range)
        return float(10 ** rng.uniform(lo, hi))


@dataclass
class InputsConfig:
    """Fixed numbers of charged candidates, neutral candidates and secondary vertices per jet."""

    charged: int = DEFAULT_SIZES["charged"]
    neutral: int = DEFAULT_SIZES["neutral"]
    sv: int = DEFAULT_SIZES["sv"]

    def sizes(self) -> dict[str, int]:
        return {"charged": self.charged, "neutral": self.neutral, "sv": self.sv}


@dataclass
class DomainConfig:
    """The shifted simulation standing in for collision data (never real data).

    The SM ``processes`` (default all) are generated again, unlabelled, with ``settings`` appended
    to their Pythia settings (e.g. another tune or parton-shower parameters), ``tracking`` and
    ``calorimeter`` keys overriding those sections (e.g. ``ip_smear_scale``,
    ``efficiency_scale``, ``energy_scale``), pile-up ``pileup_mu`` (null: as the simulation) and
    the jet energy scale ``jes``. ``events_fraction`` scales the events of each process.
    """

    enabled: bool = True
    processes: list[str] | None = None
    events_fraction: float = 1.0
    settings: list[str] = field(default_factory=list)
    tracking: dict[str, Any] = field(default_factory=dict)
    calorimeter: dict[str, Any] = field(default_factory=dict)
    pileup_mu: float | None = None
    jes: float = 1.0


@dataclass
class TaggerGenerateConfig:
    """The whole LLP-sample config (module docstring)."""

    signals: dict[str, SignalConfig]
    processes: dict[str, ProcessConfig]
    beam: BeamConfig = field(default_factory=BeamConfig)
    ctau: CtauConfig = field(default_factory=CtauConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    calorimeter: CalorimeterConfig = field(default_factory=CalorimeterConfig)
    vertexing: VertexingConfig = field(default_factory=VertexingConfig)
    jets: JetSelectionConfig = field(default_factory=JetSelectionConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    inputs: InputsConfig = field(default_factory=InputsConfig)
    pileup: PileupConfig = field(default_factory=PileupConfig)
    domain: DomainConfig = field(default_factory=DomainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        if not self.signals and not self.processes:
            raise ValueError("configure at least one signal or SM process")
        for name, proc in self.processes.items():
            if proc.kind != "sm":
                raise ValueError(f"processes.{name}: background processes must be kind sm "
                                 f"(signals go under 'signals'), found {proc.kind!r}")
            proc.group = proc.group or name
        unknown = set(self.domain.processes or ()) - set(self.processes)
        if unknown:
            raise ValueError(f"domain.processes: unknown process(es) {sorted(unknown)}; "
                             f"configured: {sorted(self.processes)}")


@dataclass
class Sample:
    """One generated sample: a signal, an SM process, or an SM process of the shifted simulation.

    ``kind`` is ``signal``, ``background`` or ``shifted``; ``events_fraction`` scales
    ``--events``; ``tracking``/``calorimeter``/``jes``/``pileup_mu`` are the detector settings the
    sample is simulated with.
    """

    name: str
    kind: Literal["signal", "background", "shifted"]
    events_fraction: float
    settings: list[str]
    tracking: TrackingConfig
    calorimeter: CalorimeterConfig
    jes: float
    pileup_mu: float
    signal: SignalConfig | None = None
    process_name: str = ""

    @property
    def domain(self) -> int:
        return 1 if self.kind == "shifted" else 0


def samples(cfg: TaggerGenerateConfig, where: str = "config") -> dict[str, Sample]:
    """Every sample to generate, by job name (``shifted:<process>`` for the shifted simulation)."""
    out = {}
    for name, sig in cfg.signals.items():
        out[name] = Sample(name, "signal", sig.events_fraction, [], cfg.tracking,
                           cfg.calorimeter, 1.0, cfg.pileup.mu, signal=sig, process_name=name)
    for name, proc in cfg.processes.items():
        out[name] = Sample(name, "background", proc.events_fraction, proc.pythia_settings(),
                           cfg.tracking, cfg.calorimeter, 1.0, cfg.pileup.mu,
                           process_name=proc.group)
    dom = cfg.domain
    if dom.enabled:
        tracking = _override(TrackingConfig, cfg.tracking, dom.tracking, f"{where}:domain.tracking")
        calo = _override(CalorimeterConfig, cfg.calorimeter, dom.calorimeter,
                         f"{where}:domain.calorimeter")
        mu = cfg.pileup.mu if dom.pileup_mu is None else dom.pileup_mu
        for name in dom.processes or list(cfg.processes):
            proc = cfg.processes[name]
            out[f"shifted:{name}"] = Sample(
                f"shifted:{name}", "shifted", proc.events_fraction * dom.events_fraction,
                proc.pythia_settings() + list(dom.settings), tracking, calo, dom.jes, mu,
                process_name=proc.group,
            )
    return out


def _override(cls, base, overrides: dict, where: str):
    """``base`` (a config dataclass) with the keys of ``overrides`` replaced, fully re-checked."""
    if not overrides:
        return base
    return tconfig.build(cls, {**tconfig.to_dict(base), **overrides}, where=where)


def load_config(path: str | Path) -> TaggerGenerateConfig:
    """Load an LLP-sample config from a file or a packaged name (``tagger-generate-fast``).

    Raises
    ------
    triggerad.errors.ConfigError
        On an unknown or misspelt key, a wrong type or an inconsistent value.
    """
    resolved = tconfig.resolve_config(path)
    cfg = tconfig.load(TaggerGenerateConfig, resolved)
    samples(cfg, where=str(resolved))  # check the domain overrides now, naming the file
    return cfg


def with_pileup(cfg: TaggerGenerateConfig, mu: float) -> TaggerGenerateConfig:
    """The config with pile-up ``mu`` (for a sample simulated with another pile-up)."""
    return dataclasses.replace(cfg, pileup=dataclasses.replace(cfg.pileup, mu=mu))
