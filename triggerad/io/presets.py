"""NanoAOD branch-map presets: one per CMS NanoAOD era / flavour, detected from the branches.

Each preset is a complete branch map in ``configs/branch_maps/nanoaod-<name>.yaml``:

========================  ==================================================================
preset                    source
========================  ==================================================================
``triggerad``             trigger-ad's own NanoAOD-style files (``nChHad``, ``nNeuHad``)
``v15``                   CMS NanoAODv15, 2024+ (``PFMET_*`` instead of ``MET_*``; UParTAK4)
``run3``                  CMS Run-3 2022-23, NanoAODv11-v12 (RobustParTAK4 / PNet taggers)
``run2-ul``               CMS Run-2 Ultra-Legacy NanoAODv9 (DeepJet, DeepCSV)
``scouting-2024``         Run-3 scouting NanoAOD from 2024 (``ScoutingMuonVtx_*``)
``scouting``              Run-3 scouting NanoAOD 2022-23 (``ScoutingMuon_*``)
``l1``                    the Level-1 trigger objects (``L1EG_*``, ...); never detected
========================  ==================================================================

Detection (:func:`detect_preset`) takes the first preset, in the order above, whose ``detect``
section matches the file's branches: all of ``all_of``, at least one of ``any_of`` (if given),
none of ``none_of``. A user branch map (``--branch-map``) overrides any key of the preset and may
fix the preset with ``preset: NAME``.

b-tagging: ``taggers`` lists per tagger its branch and working points per campaign (the cut on
the discriminant; the source of each is in the YAML comment); ``btag: {tagger, campaign, wp}``
chooses one by name, or ``wp`` is a number (a custom cut). A jet is b-tagged when its
discriminant exceeds the cut.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from triggerad.config import build, read_yaml
from triggerad.errors import ConfigError, did_you_mean
from triggerad.io.common import default_branch_map_path, merge_maps
from triggerad.io.objects import Names, ObjectBranchMap
from triggerad.io.rootio import find_branch

#: Presets in detection order (``l1`` has no detection signature: chosen explicitly only).
PRESETS = ("triggerad", "v15", "run3", "run2-ul", "scouting-2024", "scouting", "l1")
#: The value of ``preset`` that asks for detection from the branches.
AUTO = "auto"


@dataclass
class Detect:
    """Branches identifying a preset (all empty: never detected automatically)."""

    all_of: list[str] = field(default_factory=list)
    any_of: list[str] = field(default_factory=list)
    none_of: list[str] = field(default_factory=list)

    @property
    def automatic(self) -> bool:
        """Whether the preset can be detected at all."""
        return bool(self.all_of or self.any_of)

    def matches(self, branches: set[str]) -> bool:
        """Whether a file with ``branches`` is of this preset."""
        def has(name: str) -> bool:
            return find_branch(name, branches) is not None

        return (
            self.automatic
            and all(has(b) for b in self.all_of)
            and (not self.any_of or any(has(b) for b in self.any_of))
            and not any(has(b) for b in self.none_of)
        )

    def describe(self) -> str:
        """The signature in words, for error messages."""
        parts = []
        if self.all_of:
            parts.append("all of " + ", ".join(self.all_of))
        if self.any_of:
            parts.append("one of " + ", ".join(self.any_of))
        if self.none_of:
            parts.append("none of " + ", ".join(self.none_of))
        return "; ".join(parts) or "never detected (choose it with preset:)"


@dataclass
class Tagger:
    """A b-tagger: its discriminant branch and working points per campaign (name -> cut)."""

    branch: str
    working_points: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class BTagChoice:
    """The b-tag decision: ``tagger`` (None: no b-tag), ``campaign`` and ``wp`` (name or cut)."""

    tagger: str | None = None
    campaign: str | None = None
    wp: str | float = "medium"


@dataclass
class RunsBranches:
    """The per-run tree with the sum of generator weights (first present branch of ``sumw``)."""

    tree: str = "Runs"
    sumw: Names = field(default_factory=lambda: ["genEventSumw", "genEventSumw_"])


@dataclass
class NanoAODBranchMap(ObjectBranchMap):
    """Branch map of the NanoAOD reader: a preset, possibly with user overrides.

    Attributes
    ----------
    preset : str
        The preset's name (``auto`` in a user file: detect it).
    description : str
        The era / flavour in words (logged and stored in provenance).
    detect : Detect
        The branches that identify the preset.
    taggers : dict of Tagger
        The b-taggers of the era with their working points.
    btag : BTagChoice
        The chosen tagger, campaign and working point.
    runs : RunsBranches
        Where the sum of generator weights is (``Runs/genEventSumw``).
    btag_cut : float or None
        The resolved cut (set from ``btag``; None: no b-tag).
    """

    preset: str = AUTO
    description: str = ""
    detect: Detect = field(default_factory=Detect)
    taggers: dict[str, Tagger] = field(default_factory=dict)
    btag: BTagChoice = field(default_factory=BTagChoice)
    runs: RunsBranches = field(default_factory=RunsBranches)
    btag_cut: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        choice = self.btag
        if choice.tagger is None:
            self.jet.btag = None
            return
        if choice.tagger not in self.taggers:
            raise ValueError(
                f"btag.tagger: no tagger {choice.tagger!r} in preset {self.preset!r}; "
                + did_you_mean(choice.tagger, self.taggers)
            )
        tagger = self.taggers[choice.tagger]
        self.jet.btag = tagger.branch
        if isinstance(choice.wp, (int, float)):
            self.btag_cut = float(choice.wp)
            return
        if choice.campaign not in tagger.working_points:
            known = ", ".join(tagger.working_points) or "none: give btag.wp as a number"
            raise ValueError(
                f"btag.campaign: tagger {choice.tagger!r} of preset {self.preset!r} has no working "
                f"points for campaign {choice.campaign!r}; campaigns: {known}"
            )
        points = tagger.working_points[choice.campaign]
        if choice.wp not in points:
            raise ValueError(
                f"btag.wp: no working point {choice.wp!r} of {choice.tagger} in "
                f"{choice.campaign}; " + did_you_mean(str(choice.wp), points)
                + " (or a number: the cut on the discriminant)"
            )
        self.btag_cut = float(points[choice.wp])

    def summary(self) -> dict:
        """Preset, era, MET branches and b-tag choice: what provenance records per input."""
        return {
            "preset": self.preset, "description": self.description,
            "met": {"pt": self.met.pt, "phi": self.met.phi},
            "btag": {"tagger": self.btag.tagger, "branch": self.jet.btag,
                     "campaign": self.btag.campaign, "wp": self.btag.wp, "cut": self.btag_cut},
        }


@functools.cache
def preset_mapping(name: str) -> dict:
    """The packaged YAML mapping of preset ``name`` (read once)."""
    return read_yaml(default_branch_map_path(f"nanoaod-{name}"))


def build_preset(name: str, user: dict, where: str) -> NanoAODBranchMap:
    """Preset ``name`` with the user's overrides merged in, typed and checked.

    Raises
    ------
    ConfigError
        On an unknown key, a wrong type, or a tagger / campaign / working point the preset lacks.
    """
    mapping = merge_maps(preset_mapping(name), {k: v for k, v in user.items() if k != "preset"})
    mapping["preset"] = name
    return build(NanoAODBranchMap, mapping, where=f"{where} (NanoAOD preset {name!r})")


def check_preset_name(name: str, where: str) -> None:
    """Refuse an unknown preset name (with the nearest valid one)."""
    if name != AUTO and name not in PRESETS:
        raise ConfigError(f"{where}: preset: unknown preset {name!r}; "
                          + did_you_mean(name, (AUTO, *PRESETS)))


def signature(name: str) -> Detect:
    """The packaged detection signature of preset ``name``."""
    return build(Detect, preset_mapping(name).get("detect"), where=f"nanoaod-{name}.yaml:detect")


def detect_preset(branches: set[str], detectors: dict[str, Detect]) -> str | None:
    """The first preset of :data:`PRESETS` whose signature matches ``branches`` (None: none)."""
    return next((name for name in PRESETS if detectors[name].matches(branches)), None)


def no_preset_message(where: str, detectors: dict[str, Detect]) -> str:
    """Why no preset matched: each automatic preset's signature, and how to choose one."""
    lines = "; ".join(f"{name} needs {d.describe()}" for name, d in detectors.items()
                      if d.automatic)
    return (f"{where}: no NanoAOD preset matches the file's branches ({lines}); choose one with "
            f"`preset: NAME` in --branch-map (presets: {', '.join(PRESETS)})")
