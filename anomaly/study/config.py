"""The study config (``configs/study.yaml``, ``configs/study-fast.yaml``): one class per section.

Sections ``generation`` (which cocktail, how many events, per-process event fractions that make
the SM weights near equal), ``training`` (the HLF and L1 training configs), ``evaluation`` (the
operating points and what makes one measurable), optional ``contamination`` (signal-contaminated
training, :mod:`anomaly.study.contamination`). Unknown keys are refused with the nearest valid
key (:func:`triggerad.config.build`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from triggerad.config import load, resolve_config
from triggerad.errors import ConfigError, did_you_mean


@dataclass
class GenerationSection:
    """The cocktail: generated with ``trigger-ad generate``'s API, or read from a folder.

    Attributes
    ----------
    config : str
        Generation config (YAML file or packaged name, e.g. ``generate``, ``generate-fast``).
    events : int
        Generated events per process, times each process' ``events_fraction``.
    events_fraction : dict of str to float
        Per-process ``events_fraction`` replacing the generation config's: chosen so that every
        SM process gets about the same weight per selected event (the Kish effective size then
        approaches the number of events; see docs/reference_study.md).
    seed : int
        Master seed of the generation.
    workers : int
        Generation worker processes.
    executor : str or None
        ``local``, ``process``, ``dask`` (None: process if workers > 1).
    data : str or None
        An existing ``trigger-ad generate`` folder to use instead of generating.
    """

    config: str = "generate"
    events: int = 10000
    events_fraction: dict[str, float] = field(default_factory=dict)
    seed: int = 1
    workers: int = 2
    executor: str | None = None
    data: str | None = None

    def __post_init__(self) -> None:
        if self.events <= 0 or self.workers <= 0:
            raise ValueError(f"events and workers must be positive, found {self.events!r}, "
                             f"{self.workers!r}")
        for name, value in self.events_fraction.items():
            if not value > 0:
                raise ValueError(f"events_fraction.{name}: expected a positive number, found "
                                 f"{value!r}")


@dataclass
class TrainingSection:
    """The two VAEs: a training config each (``trigger-ad train``'s), optional epoch cap.

    Attributes
    ----------
    hlf, l1 : str
        Training configs of the HLF and the L1 VAE (YAML file or packaged name).
    epochs : int or None
        Overrides ``training.epochs`` of both (None: the configs' own).
    fractions : list of float or None
        Overrides ``data.fractions`` (train / validation / test) of both: a larger evaluation
        (test) split measures smaller SM fractions (None: the configs' own).
    """

    hlf: str = "train-hlf"
    l1: str = "train-l1"
    epochs: int | None = None
    fractions: list[float] | None = None

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs <= 0:
            raise ValueError(f"epochs must be positive, found {self.epochs!r}")
        if self.fractions is not None and (
                len(self.fractions) != 3 or min(self.fractions) <= 0
                or abs(sum(self.fractions) - 1) > 1e-6):
            raise ValueError("fractions: expected three positive numbers (train, val, test) "
                             f"summing to 1, found {self.fractions!r}")


@dataclass
class EvaluationSection:
    """Operating points, thresholds and the statistics a number needs.

    Attributes
    ----------
    config : str
        Evaluation config whose ``rates`` and baseline sections are used (``evaluate``).
    fprs : list of float
        Operating points: weighted SM fractions (false-positive rates) the table reports.
    threshold_fpr : float
        Fraction at which ``threshold.json`` of each VAE is set (on its validation split).
    min_effective_events : float
        An operating point is measurable when at least this many *effective* SM events of the
        evaluation split pass the cut (Kish); otherwise the table says "not measurable".
    max_signal_events : int or None
        Use at most this many events per signal file.
    headline : str
        The method of the summary line (wins against the best single-variable cut, ratio to
        the supervised bound): ``<model>:<score>`` or a baseline name.
    """

    config: str = "evaluate"
    fprs: list[float] = field(default_factory=lambda: [1e-2, 1e-3, 1e-4])
    threshold_fpr: float = 1e-3
    min_effective_events: float = 50.0
    max_signal_events: int | None = None
    headline: str = "hlf_vae:nll"

    def __post_init__(self) -> None:
        if not self.fprs:
            raise ValueError("fprs: expected at least one operating point, found []")
        for value in [*self.fprs, self.threshold_fpr]:
            if not 0 < value < 1:
                raise ValueError(f"fprs and threshold_fpr must be in (0, 1), found {value!r}")
        if self.min_effective_events <= 0:
            raise ValueError("min_effective_events must be positive, found "
                             f"{self.min_effective_events!r}")


#: The two VAEs of the study: name -> the training-section attribute holding its config.
MODELS = {"hlf_vae": "hlf", "l1_vae": "l1"}


@dataclass
class ContaminationSection:
    """Signal-contamination robustness: retrain with part of the training split replaced by a signal.

    For each signal and fraction f, ``round(f x N_train)`` events of the SM training split are
    replaced by events of that signal (seeded; the validation and evaluation splits stay the SM
    events they were); the model is retrained with the study's training config, and its default
    score is cut on the *clean* SM evaluation split at each ``fprs`` value. Signal events used
    for the contamination are never used to measure an efficiency (the signal is halved).

    Attributes
    ----------
    fractions : list of float
        Fractions of the training split replaced by signal, each in [0, 0.5); 0 reuses the
        study's own (clean) model.
    signals : "all" or list of str
        Signals to inject (each one in its own training).
    fprs : list of float
        SM fractions (of the clean evaluation split) at which efficiencies are reported.
    models : list of str
        Which VAEs are retrained (``hlf_vae``, ``l1_vae``).
    seed : int
        Seed of the replaced events, the injected events and the signal halves.
    """

    fractions: list[float] = field(default_factory=lambda: [0.0, 0.001, 0.01])
    signals: str | list[str] = "all"
    fprs: list[float] = field(default_factory=lambda: [1e-2])
    models: list[str] = field(default_factory=lambda: ["hlf_vae"])
    seed: int = 7

    def __post_init__(self) -> None:
        if not self.fractions or not self.fprs or not self.models:
            raise ValueError("fractions, fprs and models need at least one value each")
        for value in self.fractions:
            if not 0 <= value < 0.5:
                raise ValueError(f"fractions: expected values in [0, 0.5), found {value!r}")
        for value in self.fprs:
            if not 0 < value < 1:
                raise ValueError(f"fprs: expected values in (0, 1), found {value!r}")
        if len(set(self.fractions)) != len(self.fractions):
            raise ValueError(f"fractions: expected distinct values, found {self.fractions!r}")
        if isinstance(self.signals, str) and self.signals != "all":
            raise ValueError(f"signals: expected 'all' or a list of signal names, found "
                             f"{self.signals!r}")
        for name in self.models:
            if name not in MODELS:
                raise ValueError(f"models: unknown model {name!r}; "
                                 + did_you_mean(name, MODELS))


@dataclass
class StudyConfig:
    """A study config file: sections ``generation``, ``training``, ``evaluation`` and the optional
    ``contamination`` (absent or null: no contamination stages)."""

    generation: GenerationSection = field(default_factory=GenerationSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    contamination: ContaminationSection | None = None


def load_study(path: str | Path) -> StudyConfig:
    """Load and check a study config (a YAML file or a packaged name such as ``study-fast``).

    Also checks that the configs it names exist and that ``events_fraction`` names processes of
    the generation config, so a typo fails before hours of work.
    """
    from triggerad.generation.config import load_config

    where = resolve_config(path)
    cfg = load(StudyConfig, where)
    for key, name in (("training.hlf", cfg.training.hlf), ("training.l1", cfg.training.l1),
                      ("evaluation.config", cfg.evaluation.config)):
        try:
            resolve_config(name)
        except ConfigError as err:
            raise ConfigError(f"{where}: {key}: {err}") from err
    if cfg.generation.data is None:
        gen = load_config(cfg.generation.config)
        for name in cfg.generation.events_fraction:
            if name not in gen.processes:
                raise ConfigError(
                    f"{where}: generation.events_fraction: unknown process {name!r} of "
                    f"{cfg.generation.config}; " + did_you_mean(name, list(gen.processes)))
    if cfg.contamination is not None and cfg.contamination.signals != "all":
        signals = study_signals(cfg)
        for name in cfg.contamination.signals:
            if name not in signals:
                raise ConfigError(
                    f"{where}: contamination.signals: unknown signal {name!r} of "
                    f"{cfg.generation.data or cfg.generation.config}; "
                    + did_you_mean(name, signals))
    return cfg


def study_signals(cfg: StudyConfig) -> list[str]:
    """Every signal of the study: the signal processes of the generation config, or the signals
    of ``generation.data`` (its ``signal_<name>.h5`` files, or a sample list's signals)."""
    if cfg.generation.data:
        from triggerad.samples import SampleSet, is_sample_list

        if is_sample_list(cfg.generation.data):
            return sorted({i.sample for i in SampleSet(cfg.generation.data).inputs("signal")})
        return sorted(f.stem.removeprefix("signal_")
                      for f in Path(cfg.generation.data).glob("signal_*.h5"))
    from triggerad.generation.config import load_config

    gen = load_config(cfg.generation.config)
    return sorted(n for n, p in gen.processes.items() if p.kind == "signal")


def data_dir(cfg: StudyConfig, out: Path) -> Path:
    """The generated-data folder the study uses."""
    return Path(cfg.generation.data) if cfg.generation.data else out / "data"


def train_config(cfg: StudyConfig, model: str, background: str | Path):
    """The training config of ``model`` (``training.hlf`` / ``training.l1``) on ``background``,
    with the study's ``training.epochs`` and ``training.fractions`` overrides; and its file."""
    from anomaly.train import TrainConfig
    from triggerad.config import load, resolve_config

    path = resolve_config(getattr(cfg.training, MODELS[model]))
    overrides: dict = {"data": {"background": [str(background)]}}
    if cfg.training.fractions is not None:
        overrides["data"]["fractions"] = list(cfg.training.fractions)
    if cfg.training.epochs is not None:
        overrides["training"] = {"epochs": cfg.training.epochs}
    return load(TrainConfig, path, overrides), path


def train_step(model: str) -> str:
    """Marker name of the training stage of ``model`` (``train_hlf``, ``train_l1``)."""
    return f"train_{model.split('_')[0]}"
