"""Typed configuration of ``trigger-ad generate``: one dataclass per YAML section.

A generation config (``configs/generate.yaml``) has the sections ``beam``, ``processes``,
``detector``, ``trigger``, ``pileup``, ``qcd_model`` and ``output``; see ``docs/generation.md``
for the meaning of every parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from triggerad import config as tconfig

#: Cocktail groups of Cerri et al. 2019 (arXiv:1811.10276): fraction after the single-lepton
#: trigger, cross-section, acceptance and trigger efficiency as published.
PUBLISHED_PROCESSES = {
    "W": {"fraction": 0.592, "sigma_nb": 58.0, "acceptance": 0.556, "trigger_efficiency": 0.68},
    "QCD": {"fraction": 0.338, "sigma_nb": 1.6e5, "acceptance": 0.0008,
            "trigger_efficiency": 0.096},
    "Z": {"fraction": 0.067, "sigma_nb": 20.0, "acceptance": 0.16, "trigger_efficiency": 0.77},
    "ttbar": {"fraction": 0.003, "sigma_nb": 0.7, "acceptance": 0.37, "trigger_efficiency": 0.49},
}
PUBLISHED_FRACTIONS = {group: p["fraction"] for group, p in PUBLISHED_PROCESSES.items()}

#: The four BSM benchmarks of the anomaly-detection literature (signal file stems).
SIGNAL_NAMES = ("LQ_btau", "A_4l", "h0_tautau", "hplus_taunu")


@dataclass
class BeamConfig:
    """Beams and settings common to every process.

    Attributes
    ----------
    ecm : float
        Centre-of-mass energy in GeV (pp).
    settings : list of str
        Pythia settings applied to every process (e.g. ``PartonLevel:MPI = off``).
    """

    ecm: float = 13000.0
    settings: list[str] = field(default_factory=list)


@dataclass
class ProcessConfig:
    """One generated process.

    Attributes
    ----------
    settings : list of str
        Pythia settings selecting the process (``WeakSingleBoson:ffbar2W = on``, ...).
    kind : {"sm", "signal"}
        SM processes go into the background cocktail, signals into ``signal_<name>.h5``.
    group : str
        Cocktail group used for the comparison with Cerri et al. (``W``, ``Z``, ``ttbar``,
        ``QCD``); stored as the per-event ``process`` label. Defaults to the process name.
    events_fraction : float
        Generated events = ``--events`` x this fraction.
    qcd_model : {"none", "jet_fake"}
        ``jet_fake`` applies the parametrised jet -> lepton fake weight of
        :class:`QcdModelConfig` (ordinary QCD).
    forced_decays : list of int
        Particles (e.g. B hadrons 511, 521, 531, 5122 for the heavy-flavour QCD sample, or the
        tau for a signal whose trigger needs a leptonic tau) whose decays are forced to the
        channels containing one of ``forced_products``; each event is weighted by the
        probability that at least one of them decays into an accepted (triggering) lepton,
        1 - prod(1 - BR_i) over the forced particles whose lepton is accepted (see
        docs/generation.md).
    forced_products : list of int
        Decay products selecting the forced channels (default electron and muon).
    particle : int, optional
        PDG id of the BSM resonance whose ``mass`` and ``decay`` are set.
    mass : float, optional
        Mass of ``particle`` in GeV.
    decay : list of int, optional
        Decay products of ``particle``.
    decay_mode : {"onIfMatch", "oneChannel"}
        ``onIfMatch`` switches off every other channel of ``particle`` (widths stay computed, the
        cross-section is multiplied by the branching fraction); ``oneChannel`` replaces the decay
        table by this channel with a fixed branching fraction of 1.
    """

    settings: list[str] = field(default_factory=list)
    kind: Literal["sm", "signal"] = "sm"
    group: str = ""
    events_fraction: float = 1.0
    qcd_model: Literal["none", "jet_fake"] = "none"
    forced_decays: list[int] = field(default_factory=list)
    forced_products: list[int] = field(default_factory=lambda: [11, 13])
    particle: int | None = None
    mass: float | None = None
    decay: list[int] | None = None
    decay_mode: Literal["onIfMatch", "oneChannel"] = "onIfMatch"

    def __post_init__(self) -> None:
        if self.events_fraction <= 0:
            raise ValueError(f"events_fraction must be positive, found {self.events_fraction!r}")
        if (self.mass is not None or self.decay) and self.particle is None:
            raise ValueError("'mass' and 'decay' need 'particle' (the PDG id of the resonance)")

    def pythia_settings(self) -> list[str]:
        """The process settings plus those implied by ``particle``, ``mass`` and ``decay``."""
        out = list(self.settings)
        if self.mass is not None:
            out.append(f"{self.particle}:m0 = {self.mass}")
        if self.decay:
            products = " ".join(str(p) for p in self.decay)
            if self.decay_mode == "oneChannel":
                out.append(f"{self.particle}:oneChannel = 1 1.0 100 {products}")
            else:
                out += [f"{self.particle}:onMode = off", f"{self.particle}:onIfMatch = {products}"]
        return out


@dataclass
class LeptonConfig:
    """Electron or muon reconstruction.

    Efficiency: ``plateau / (1 + exp(-(pT - eff_pt50) / eff_width))`` inside ``|eta| < eta_max``.
    Resolution: ``sigma(pT)/pT = res_stochastic/sqrt(pT) (+) res_constant (+) res_linear * pT``
    (added in quadrature), times ``forward_factor`` for ``|eta| > forward_eta``.
    """

    eta_max: float = 3.0
    pt_min: float = 3.0
    eff_plateau: float = 0.95
    eff_pt50: float = 4.0
    eff_width: float = 1.0
    res_stochastic: float = 0.1
    res_constant: float = 0.01
    res_linear: float = 0.0
    forward_eta: float = 1.5
    forward_factor: float = 1.5


@dataclass
class IsolationConfig:
    """Lepton isolation: pT sums of visible particles in a cone, relative to the lepton pT.

    Charged particles (tracks) enter above ``charged_pt_min``, photons and neutral hadrons
    (calorimeter deposits) above ``neutral_pt_min``. ``object_max``: leptons with total relative
    isolation above this are not reconstructed as leptons (they stay in the jets).
    """

    cone: float = 0.5
    charged_pt_min: float = 0.2
    neutral_pt_min: float = 0.5
    object_max: float = 1.0


@dataclass
class JetConfig:
    """Anti-kT jets from visible particles (the reconstructed leptons excluded).

    Constituents: pT > ``constituent_pt_min`` and |eta| < ``eta_max`` + ``radius`` (softer or
    more forward particles cannot change a jet inside the acceptance noticeably; dropping them
    saves ~40 % of the clustering time). Resolution:
    ``sigma(pT)/pT = res_stochastic/sqrt(pT) (+) res_constant``.
    """

    radius: float = 0.4
    pt_min: float = 15.0
    eta_max: float = 4.0
    constituent_pt_min: float = 0.1
    res_stochastic: float = 1.0
    res_constant: float = 0.05


@dataclass
class BTagConfig:
    """b-tagging by DR matching of b (c) hadrons to jets, then efficiency / mistag rates."""

    eta_max: float = 2.5
    match_dr: float = 0.4
    hadron_pt_min: float = 5.0
    eff_b: float = 0.7
    eff_c: float = 0.1
    eff_light: float = 0.01


@dataclass
class DetectorConfig:
    """The parametric trigger-level detector.

    Attributes
    ----------
    calo_eta_max : float
        Visible particles beyond this |eta| are lost (MET, jets, isolation).
    unclustered_res_stochastic : float
        Resolution of the unclustered deposits (visible particles in neither a reconstructed
        lepton nor a reconstructed jet): each is measured with a Gaussian error of this x
        sqrt(pT) GeV per transverse component, so their sum with this x sqrt(sum pT).
    muon_mip_deposit : float
        Energy (GeV) a muon deposits in the calorimeters (minimum ionising): muons that are not
        reconstructed as muons enter jets and the unclustered sum with at most this energy.
    hadron_pt_min : float
        pT threshold of the charged / neutral hadron counts.
    charged_eta_max, neutral_eta_max : float
        |eta| range of the charged (tracker) / neutral (calorimeter) hadron counts.
    """

    electron: LeptonConfig = field(default_factory=LeptonConfig)
    muon: LeptonConfig = field(
        default_factory=lambda: LeptonConfig(
            eta_max=2.1, eff_plateau=0.97, res_stochastic=0.0, res_constant=0.01,
            res_linear=1e-4,
        )
    )
    isolation: IsolationConfig = field(default_factory=IsolationConfig)
    jet: JetConfig = field(default_factory=JetConfig)
    btag: BTagConfig = field(default_factory=BTagConfig)
    calo_eta_max: float = 5.0
    unclustered_res_stochastic: float = 1.0
    muon_mip_deposit: float = 3.0
    hadron_pt_min: float = 1.0
    charged_eta_max: float = 2.5
    neutral_eta_max: float = 3.0


@dataclass
class TriggerConfig:
    """Single-lepton trigger: one electron or muon above ``lepton_pt_min`` with total relative
    isolation below ``iso_max``."""

    lepton_pt_min: float = 23.0
    iso_max: float = 0.45


@dataclass
class HgmmConfig:
    """The hierarchical Gaussian-mixture model of the ``hgmm`` pile-up route
    (:mod:`triggerad.generation.hgmm`).

    Attributes
    ----------
    events : int
        Pool events fitted (level 1: one mixture per event and particle class).
    max_components : int
        Largest number of components of every mixture (chosen by BIC).
    cov_floor : float
        Floor of the level-1 covariances (added in quadrature to their diagonal, in units of
        the standardised features): no narrow "speckle" components.
    """

    events: int = 500
    max_components: int = 4
    cov_floor: float = 0.05

    def __post_init__(self) -> None:
        if self.events <= 0 or self.max_components <= 0 or self.cov_floor <= 0:
            raise ValueError(
                "pileup.hgmm: events, max_components and cov_floor must be positive, found "
                f"{self.events!r}, {self.max_components!r}, {self.cov_floor!r}"
            )


@dataclass
class PileupConfig:
    """Pile-up: N ~ Poisson(mu) minimum-bias events added to each event (``mu`` 0 = off).

    Attributes
    ----------
    mu : float
        Mean number of pile-up interactions per event.
    settings : list of str
        Pythia settings of the minimum-bias generator (with the beam energy; not
        ``beam.settings``).
    route : {"overlay", "library", "hgmm"}
        Where the minimum-bias events come from (:mod:`triggerad.generation.pileup`):
        ``overlay`` generates new ones for every event, ``library`` draws them from a pool
        generated once (cached on disk) with a random rotation in phi and a random z vertex,
        ``hgmm`` samples synthetic events from a hierarchical Gaussian-mixture model fitted to
        the pool.
    pool_size : int
        Minimum-bias events in the pool (``library``, ``hgmm``).
    max_reuse : float
        Largest allowed reuse factor of the pool, overlays / ``pool_size`` (``library``): a run
        that would exceed it is refused before it starts.
    cache_dir : str
        Folder of the cached pools (``~`` expanded); a pool's file name is the hash of its
        settings, size and seed.
    seed : int or None
        Seed of the pool (None: the run's ``--seed``).
    beamspot_sigma_z : float
        Gaussian spread (mm) of the z position of each pile-up interaction.
    hgmm : HgmmConfig
        The model of the ``hgmm`` route.
    """

    mu: float = 0.0
    settings: list[str] = field(default_factory=lambda: ["SoftQCD:inelastic = on"])
    route: Literal["overlay", "library", "hgmm"] = "overlay"
    pool_size: int = 5000
    max_reuse: float = 250.0
    cache_dir: str = "~/.cache/trigger-ad/pileup"
    seed: int | None = None
    beamspot_sigma_z: float = 35.0
    hgmm: HgmmConfig = field(default_factory=HgmmConfig)

    def __post_init__(self) -> None:
        if self.mu < 0 or self.pool_size <= 0 or self.max_reuse <= 0 or self.beamspot_sigma_z < 0:
            raise ValueError(
                "pileup: mu and beamspot_sigma_z must be >= 0, pool_size and max_reuse > 0, "
                f"found mu={self.mu!r}, pool_size={self.pool_size!r}, "
                f"max_reuse={self.max_reuse!r}, beamspot_sigma_z={self.beamspot_sigma_z!r}"
            )


@dataclass
class QcdModelConfig:
    """The jet -> lepton fake model of ordinary QCD (see docs/generation.md).

    Heavy-flavour QCD is configured per process with ``forced_decays`` (B or D hadrons forced
    to semileptonic channels). Fakes (``qcd_model: jet_fake``): each jet of
    pT > ``fake_jet_pt_min`` is misidentified as an electron (muon) with probability
    ``fake_ele_rate (fake_mu_rate) x (pT / fake_pt_ref)^fake_power`` inside the electron (muon)
    acceptance; the fake lepton carries a fraction f ~ Beta(``fake_fraction_a``,
    ``fake_fraction_b``) of the jet's momentum, the rest of the jet stays in the event.
    """

    fake_ele_rate: float = 2e-4
    fake_mu_rate: float = 1e-4
    fake_pt_ref: float = 30.0
    fake_power: float = -1.0
    fake_fraction_a: float = 2.5
    fake_fraction_b: float = 2.2
    fake_jet_pt_min: float = 20.0

    def __post_init__(self) -> None:
        if min(self.fake_fraction_a, self.fake_fraction_b) <= 0:
            raise ValueError(
                "fake_fraction_a and fake_fraction_b (Beta parameters) must be positive, found "
                f"{self.fake_fraction_a!r}, {self.fake_fraction_b!r}"
            )


@dataclass
class OutputConfig:
    """Output formats and job granularity.

    Attributes
    ----------
    events : int
        Default generated events per process (``--events`` overrides it).
    formats : list of {"h5", "root"}
        Files written for the background cocktail and each signal.
    job_size : int
        Events per job. Jobs (not workers) carry the seeds, so the output does not depend on the
        number of workers.
    batch_size : int
        Events per ``pythia.nextBatch`` call.
    """

    events: int = 10_000
    formats: list[Literal["h5", "root"]] = field(default_factory=lambda: ["h5", "root"])
    job_size: int = 2000
    batch_size: int = 250

    def __post_init__(self) -> None:
        if min(self.events, self.job_size, self.batch_size) <= 0:
            raise ValueError(
                f"events, job_size and batch_size must be positive, found {self.events!r}, "
                f"{self.job_size!r}, {self.batch_size!r}"
            )


@dataclass
class GenerateConfig:
    """The whole generation config (top level of ``configs/generate.yaml``)."""

    processes: dict[str, ProcessConfig]
    beam: BeamConfig = field(default_factory=BeamConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    pileup: PileupConfig = field(default_factory=PileupConfig)
    qcd_model: QcdModelConfig = field(default_factory=QcdModelConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        if not self.processes:
            raise ValueError("'processes' is empty: configure at least one process")
        for name, proc in self.processes.items():
            if not proc.group:
                proc.group = name


def load_config(path: str | Path) -> GenerateConfig:
    """Load a generation config from a file or a packaged name (``generate-fast``).

    Raises
    ------
    ConfigError
        On an unknown or misspelt key, a wrong type or a missing section.
    """
    return tconfig.load(GenerateConfig, tconfig.resolve_config(path))
