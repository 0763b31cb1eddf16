"""``trigger-ad quickstart``: the whole chain, small, on the built-in generated data.

generate (the physics config, with the underlying event, at a reduced event count) -> train the
HLF VAE and the quantized L1 VAE -> thresholds at a rate the sample supports -> evaluation reports
-> HLS project of the quantized L1 encoder, validated in C simulation -> score the generated
stream. Each step is the corresponding subcommand run in-process,
so the quickstart exercises exactly what a user runs by hand.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from triggerad.cli import add_command, count, positive_int
from triggerad.errors import TriggerADError

log = logging.getLogger(__name__)

#: The generation config and its generated events per process (x events_fraction): the physics
#: default with multiparton interactions, so the report is computed on events with an underlying
#: event (``generate-fast``, without it, is only a smoke test).
GENERATE_CONFIG = "generate"
DEFAULT_EVENTS = 5000

DEFAULT_RATE = "1kHz"
DEFAULT_INPUT_RATE = "100kHz"


def register(subparsers) -> None:
    """Add the ``quickstart`` subcommand."""
    p = add_command(
        subparsers,
        "quickstart",
        "run the whole chain, small, on built-in generated data (~10 min on 2 cores)",
        "trigger-ad quickstart --out quickstart/\n"
        "trigger-ad quickstart --out qs/ --events 2000 --epochs 2   # smaller, faster",
        description=__doc__,
    )
    p.add_argument("--out", default="quickstart", help="output folder")
    p.add_argument("--events", type=positive_int, default=None,
                   help=f"generated events per process x events_fraction (default "
                        f"{DEFAULT_EVENTS})")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="training epochs (default: the fast training configs' own)")
    p.add_argument("--seed", type=int, default=1, help="generation seed")
    p.add_argument("--workers", type=positive_int, default=2, help="generation worker processes")
    p.add_argument("--rate", default=DEFAULT_RATE, help="target trigger rate")
    p.add_argument("--input-rate", default=DEFAULT_INPUT_RATE, help="rate of the input stream")
    p.add_argument("--firmware-events", type=count, default=0,
                   help="events for the C simulation (default 0: every generated background and "
                        "signal event)")
    p.set_defaults(func=run)


def run_step(name: str, argv: list[str]) -> None:
    """Run one subcommand in-process; stop the quickstart if it fails."""
    from triggerad.cli import main

    print(f"\n=== {name}: trigger-ad {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    code = main(argv)
    if code != 0:
        raise TriggerADError(f"step {name!r} failed with exit code {code} (command above)")
    print(f"=== {name}: done in {time.perf_counter() - start:.0f} s", flush=True)


def run(args) -> int:
    """Run the quickstart chain and print where everything is."""
    out = Path(args.out)
    data, models, reports = out / "data", out / "models", out / "reports"
    events = str(args.events or DEFAULT_EVENTS)
    epochs = ["--epochs", str(args.epochs)] if args.epochs else []
    start = time.perf_counter()

    run_step("generate", ["generate", GENERATE_CONFIG, "--out", str(data), "--seed", str(args.seed),
                       "--workers", str(args.workers), "--events", events])
    for kind in ("hlf", "l1"):
        model = models / f"{kind}_vae"
        run_step(f"train {kind}", ["train", f"train-{kind}-fast", "--data", str(data),
                                "--out", str(model), *epochs])
        run_step(f"threshold {kind}", ["threshold", str(model), "--rate", args.rate,
                                    "--input-rate", args.input_rate])
        run_step(f"evaluate {kind}", ["evaluate", str(model), "--data", str(data),
                                   "--out", str(reports / f"{kind}_vae")])
    firmware = ["--events", str(args.firmware_events)]
    run_step("firmware", ["firmware", str(models / "l1_vae"), "--config", "firmware",
                       "--out", str(out / "hls_l1_vae"), "--data", str(data / "background.h5"),
                       str(data / "signal_*.h5"), *firmware])
    run_step("score", ["score", str(models / "l1_vae"), str(data / "background.h5"),
                    "--out", str(out / "stream")])

    summary = json.loads((out / "stream" / "summary.json").read_text())
    fw = json.loads((out / "hls_l1_vae" / "firmware_report.json").read_text())
    print(f"\nquickstart finished in {time.perf_counter() - start:.0f} s. Outputs in {out}/:")
    for path, what in (
        (data, "generated cocktail and signals (ADC2021 HDF5 + ROOT), summary.json"),
        (models, "trained models with threshold.json"),
        (reports, "evaluation reports (report.md, report.json, plots)"),
        (out / "hls_l1_vae", "HLS project of the quantized L1 encoder + firmware_report.json"),
        (out / "stream", "stream scores, anomalies, rate monitor, summary.json"),
    ):
        print(f"  {path}/  {what}")
    print(f"firmware C simulation vs mu2_q: decision agreement {fw['decision_agreement']:.5f} "
          f"on {fw['n_events']} events (max score diff {fw['max_score_diff_lsb']} LSB)")
    print(f"stream: {summary['events']} events scored, {summary['accepted']} accepted "
          f"({summary.get('accepted_rate_hz', float('nan')):.1f} Hz at the input rate), "
          f"{summary['events_per_s']:.0f} events/s")
    print("The quickstart's statistics are a smoke test (a few thousand events): for efficiencies "
          "with intervals at fixed SM rates run `trigger-ad study study-fast --out DIR` "
          "(docs/reference_study.md)")
    return 0
