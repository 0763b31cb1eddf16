"""Accepted rate per lumi block with and without the threshold controller on a drifting stream.

A synthetic ADC2021 stream whose pile-up falls from 60 to 20 over the fill (object pT scale with
pile-up, so the score distribution shifts) is scored twice with ``trigger-ad score`` machinery:
at the stored threshold, and with ``--rate-control rate-control``. Prints, for each, the
fraction of lumi blocks whose rate is inside the target band, the number of flagged blocks, the
overall rate and the worst block.

Usage::

    python benchmarks/rate_control.py --events 200000 --lumi-size 5000 [--model MODEL]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> dict:
    """Run both configurations and print/return the figures."""
    import pandas as pd
    from scoring_throughput import build_model
    from stream_samples import write_stream

    from triggerad.stream.config import control_from_file, load_score_config
    from triggerad.stream.runner import run_stream

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--lumi-size", type=int, default=5000)
    p.add_argument("--model", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    work = Path(args.out or tempfile.mkdtemp(prefix="rate_control_"))
    work.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else build_model(work / "model")
    files = write_stream(work, args.files, args.events // args.files, pileup=(60, 20),
                         lumi_size=args.lumi_size)
    results = {}
    for name, control in (("fixed", None), ("controlled", "rate-control")):
        config = load_score_config(None, {"monitor": {"plots": True}})
        if control:
            config.control = control_from_file(control)
        summary = run_stream(str(model), [str(f) for f in files], work / name, config=config,
                             scores=["mu2_q"], progress=False)
        blocks = pd.read_csv(work / name / "blocks.csv")
        ratio = blocks["rate_hz"] / summary["target_rate_hz"]
        results[name] = {
            "blocks": len(blocks),
            "fraction_in_band": summary["monitor"]["fraction_blocks_in_band"],
            "blocks_flagged": summary["monitor"]["blocks_flagged"],
            "accepted_rate_hz": summary["accepted_rate_hz"],
            "target_rate_hz": summary["target_rate_hz"],
            "rate_over_target_first_block": float(ratio.iloc[0]),
            "rate_over_target_min": float(ratio.min()),
            "rate_over_target_max": float(ratio.max()),
            "rms_rate_over_target_minus_1": float(((ratio - 1) ** 2).mean() ** 0.5),
            "threshold_changes": summary["controller"]["threshold_changes"],
        }
    print(json.dumps(results, indent=2))
    (work / "rate_control.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
