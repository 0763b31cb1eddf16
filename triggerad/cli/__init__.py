"""The ``trigger-ad`` command line: one console script, one module per subcommand.

Each module in this package defines ``register(subparsers)``, which adds its subparser (with a
description and an example in the epilog) and sets ``func`` to a ``run(args) -> int`` function.
Heavy libraries (TensorFlow, hls4ml, Pythia) are imported inside ``run`` so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import re
import sys

from triggerad.errors import TriggerADError
from triggerad.provenance import package_version

#: Order in which subcommands are listed in ``trigger-ad --help`` (the data flow).
ORDER = (
    "quickstart", "generate", "features", "train", "threshold", "evaluate", "firmware", "export",
    "score", "study",
)

EPILOG = """examples:
  trigger-ad quickstart --out quickstart/        # everything, small, on the built-in data
  trigger-ad generate configs/generate.yaml --events 10000 --out cocktail/
  trigger-ad features cocktail/*.h5 --reader adc2021 --out features.parquet
  trigger-ad <command> --help                    # details and an example for each command
"""


#: A negative number, also in exponent notation (argparse's own pattern misses "-1e34").
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

#: Errors of writing outputs that the user fixes (full disk, read-only or forbidden folder).
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the examples' line breaks and show defaults."""


def add_command(subparsers, name: str, summary: str, example: str, description: str = ""):
    """Add a subcommand parser with a summary, a description and an example epilog.

    Parameters
    ----------
    subparsers : argparse action
        The object returned by ``add_subparsers``.
    name : str
        Subcommand name.
    summary : str
        One line shown in ``trigger-ad --help``.
    example : str
        One or more example command lines, shown under ``example:`` in the subcommand's help.
    description : str
        Longer text shown at the top of the subcommand's help.
    """
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=description or summary,
        epilog="example:\n" + "\n".join("  " + line for line in example.strip().splitlines()),
        formatter_class=HelpFormatter,
    )
    # Python < 3.13 takes "-1e34" for an option ("expected one argument"): let the option's own
    # check refuse the negative number with a message.
    parser._negative_number_matcher = NEGATIVE_NUMBER
    return parser


def add_executor_options(parser, *, default: str | None, workers: int | None,
                         default_text: str = "") -> None:
    """``--executor {local,process,dask}``, ``--scheduler ADDRESS`` and ``--workers K``.

    The names are checked by :func:`triggerad.executor.make_executor` (an unknown one exits 2
    listing the valid ones).
    """
    from triggerad.executor import EXECUTORS

    names = ",".join(EXECUTORS)
    parser.add_argument("--executor", default=default, metavar=f"{{{names}}}",
                        help="where the work runs: in this process (local), in --workers "
                        "processes of this machine (process) or on a Dask cluster (dask)"
                        + default_text)
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="address of an existing Dask scheduler (tcp://host:8786; "
                        "--executor dask); without it a local cluster of --workers is started")
    parser.add_argument("--workers", type=positive_int, default=workers,
                        help="worker processes (--executor process) or workers of a local Dask "
                        "cluster (--executor dask)")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--workers``, ``--chunk-size``, ...)."""
    return _integer(text, 1, "a positive integer")


def count(text: str) -> int:
    """argparse type: an integer >= 0 (a number of events where 0 means all)."""
    return _integer(text, 0, "an integer >= 0 (0: all)")


def _integer(text: str, lowest: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < lowest:
        raise argparse.ArgumentTypeError(f"expected {expected}, found {text!r}")
    return value


def add_policy_options(parser) -> None:
    """``--nonfinite`` and ``--unphysical``: events with NaN/inf or impossible inputs."""
    parser.add_argument("--nonfinite", choices=("error", "drop"), default="error",
                        help="events with NaN/inf inputs: stop with an error, or drop them "
                        "(counted)")
    parser.add_argument("--unphysical", choices=("error", "drop"), default="error",
                        help="events with physically impossible objects (pT < 0, pT above the "
                        "collision energy, |phi| > pi): stop with an error, or drop them (counted)")


def add_out_option(parser, help: str, *, required: bool = True, metavar: str | None = None,
                   default: str | None = None) -> None:
    """``--out`` and ``--force``/``--overwrite`` (replace an output this command did not write).

    The command checks the target with :func:`check_out` before any work.
    """
    parser.add_argument("--out", required=required, default=default, metavar=metavar,
                        help=help + " (an existing, non-empty one is refused unless this command "
                        "wrote it, or --force)")
    parser.add_argument("--force", "--overwrite", dest="force", action="store_true",
                        help="replace an existing --out even if another command (or no "
                        "trigger-ad command) wrote it; its content is lost")


def check_out(args, command: str, *, file: bool = False, own_markers: tuple[str, ...] = (),
              out=None) -> None:
    """Refuse ``args.out`` (or ``out``) if it exists and ``command`` did not write it.

    See :func:`triggerad.provenance.check_output_dir` (folders) and
    :func:`~triggerad.provenance.check_output_file` (``file=True``).
    """
    from triggerad.provenance import check_output_dir, check_output_file

    target = args.out if out is None else out
    force = getattr(args, "force", False)
    if file:
        check_output_file(target, command, force=force)
    else:
        check_output_dir(target, command, force=force, own_markers=own_markers)


def _command_modules() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="trigger-ad",
        description="Trigger-level anomaly detection at the LHC: generate or read events, train "
        "VAEs, set thresholds at a target rate, emit FPGA firmware and score data streams.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"trigger-ad {package_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_modules():
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``trigger-ad`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    # TensorFlow's C++ start-up chatter (CUDA plugin registration on CPU-only machines); problems
    # that matter still raise Python exceptions. -v shows everything.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if args.verbose else "3")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    try:
        return int(args.func(args) or 0)
    except TriggerADError as err:
        print(f"trigger-ad {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        where = err.filename or "the output"
        print(f"trigger-ad {args.command}: error: cannot write {where}: {err.strerror} (outputs "
              "are written atomically: nothing half-written is left; re-run once it is fixed)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"trigger-ad {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
