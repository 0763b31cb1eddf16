"""``trigger-ad tagger``: the LLP jet tagger's command group.

Each module of this package is one subcommand (``trigger-ad tagger NAME``) and defines
``register(subparsers)``, like the top-level commands of :mod:`triggerad.cli`.
"""

from __future__ import annotations

import importlib
import pkgutil

from triggerad.cli import add_command

#: Order in which the subcommands are listed in ``trigger-ad tagger --help`` (the data flow).
#: Module names; ``tracks_generate`` is the subcommand ``tracks-generate``.
ORDER = ("quickstart", "generate", "train", "evaluate", "score", "tracks_quickstart",
         "tracks_generate", "tracks_train", "tracks_evaluate")

#: The packaged track-classification configs (``configs/tracks*.yaml``), named in the help of
#: the tracks-* commands.
TRACKS_CONFIGS = ("tracks", "tracks-fast", "tracks-hgmm", "tracks-beamspot", "tracks-reference")


def register(subparsers) -> None:
    """Add the ``tagger`` command group and every subcommand module of this package."""
    parser = add_command(
        subparsers, "tagger", "LLP jet tagger: generate samples, train, evaluate, score",
        example="trigger-ad tagger generate tagger-generate-fast --out llp_samples/\n"
                "trigger-ad tagger SUBCOMMAND --help",
        description="The long-lived-particle (LLP) jet tagger: generate displaced-jet samples, "
                    "train the c-tau-parametrised tagger, evaluate it and score jet files "
                    "(docs/tagger.md); track-level LLP event classification under pile-up "
                    "with an MLP or a Transformer, supervised or CWoLa, tracks-* "
                    "(docs/tracks.md).",
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    sub = parser.add_subparsers(dest="tagger_command", metavar="SUBCOMMAND")
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    for name in [n for n in ORDER if n in found] + sorted(found - set(ORDER)):
        importlib.import_module(f"{__name__}.{name}").register(sub)
