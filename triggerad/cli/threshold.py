"""``trigger-ad threshold``: the score cut of a model at a target trigger rate.

The cut is set on the weighted SM validation split of the model's background (or on --data
files, all events) so that the weighted fraction above it matches the target, never exceeding
it by more than one event's weight; events with score > cut are selected. It is written to
MODEL/threshold.json with the achieved rate, its Clopper-Pearson interval (on Kish effective
counts, n_eff = (sum w)^2 / sum w^2) and the number of background events above the cut. Fewer
than rates.min_events_above (10) events above the cut is refused.

Targets (exactly one):
  --rate RATE            trigger rate, e.g. 1kHz, '100 kHz', 5Hz, 30/day, 250 (Hz)
  --events-per-day N     the same as --rate N/day
  --fpr F                weighted fraction of the input stream (SM efficiency), e.g. 5.4e-6

Input rate: --input-rate if given; otherwise sigma_total x L, where sigma_total is the sum of the
event weights (sigma x eff / N, in pb) of the whole background sample and L is --luminosity in
cm^-2 s^-1 (default: the average over a 30-day month of rates.luminosity_fb_per_month of the
config, 5 fb^-1/month -> 1.93e33). With the Cerri et al. cocktail (~37 nb after the trigger)
that is ~71 Hz, and --events-per-day 33 gives their SM efficiency of 5.4e-6.
"""

from __future__ import annotations

import logging

from triggerad.cli import add_command

log = logging.getLogger(__name__)

#: Largest accepted --luminosity in cm^-2 s^-1 (100 times any collider's design).
MAX_LUMINOSITY = 1e37


def register(subparsers) -> None:
    """Add the ``threshold`` subcommand."""
    p = add_command(
        subparsers,
        "threshold",
        "set a model's score cut at a target trigger rate (writes MODEL/threshold.json)",
        "trigger-ad threshold models/hlf_vae --rate 1kHz --input-rate 100kHz\n"
        "trigger-ad threshold models/hlf_vae --events-per-day 33      # Cerri et al. working point\n"
        "trigger-ad threshold models/l1_vae --fpr 1e-3 --score mu2_q\n"
        "trigger-ad threshold models/hlf_vae --rate 5Hz --data samples.yaml --luminosity 2e34",
        description=__doc__,
    )
    p.add_argument("model", help="model artifact folder (from trigger-ad train)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--rate", help="target trigger rate (e.g. 1kHz, 5Hz, 30/day)")
    target.add_argument("--events-per-day", type=float, help="target number of events per day")
    target.add_argument("--fpr", type=float, help="target weighted SM fraction (false-positive rate)")
    p.add_argument("--input-rate", help="rate of the input stream (e.g. 100kHz); if not given, "
                   "sigma_total x luminosity")
    p.add_argument("--luminosity", type=float, default=None,
                   help="instantaneous luminosity in cm^-2 s^-1 used when --input-rate is not "
                   "given; if not given either, the average of rates.luminosity_fb_per_month")
    p.add_argument("--score", default=None,
                   help="score name (loss, nll, kl, mu2, mu2_q, kl_q); if not given, the model's "
                   "default (nll for hlf_vae, mu2_q for l1_vae)")
    p.add_argument("--data", nargs="+", default=None, metavar="FILE",
                   help="background files or sample lists (*.yaml: their is_signal: false "
                   "samples) to set the cut on (all events) instead of the model's validation "
                   "split")
    p.add_argument("--reader", default="auto", help="reader for --data files")
    p.add_argument("--config", default="evaluate", help="config with the 'rates' section")
    p.set_defaults(func=run)


def run(args) -> int:
    """Compute and write the threshold; print the achieved rate."""
    from triggerad import rates
    from triggerad.config import load_section, resolve_config, to_dict
    from triggerad.data import load_sample
    from triggerad.errors import ConfigError
    from triggerad.models import kind_of, load_model
    from triggerad.threshold import RatesConfig, Target, input_rate_from_luminosity, set_threshold

    if args.luminosity is not None and not 0 < args.luminosity < MAX_LUMINOSITY:
        raise ConfigError(f"--luminosity: expected an instantaneous luminosity in cm^-2 s^-1 in "
                          f"(0, {MAX_LUMINOSITY:.0e}) (LHC: ~2e34), found {args.luminosity:.4g}")
    cfg = load_section(RatesConfig, resolve_config(args.config), "rates")
    target = Target(
        rate=None if args.rate is None else rates.parse_rate(args.rate, "--rate"),
        events_per_day=args.events_per_day,
        fpr=args.fpr,
    )
    art = load_model(args.model)
    info = art.data_info
    if args.data:
        batch = load_sample(args.data, args.reader)
        data = {"source": "files", "background": list(args.data), "reader": args.reader}
    else:
        batch = kind_of(art).load_split(art, "val")
        data = {"source": "model validation split", "background": info["background"],
                "split": "val", "split_seed": info["split_seed"], "fractions": info["fractions"]}
    data["n_events"] = len(batch)
    extra = {"rates_config": to_dict(cfg)}
    if args.input_rate is not None:
        input_rate = rates.parse_rate(args.input_rate, "--input-rate")
    else:
        full = batch if args.data else load_sample(
            info["background"], info["reader"], chunk_size=info.get("chunk_size", 100_000),
            max_events=info.get("max_events"),
        )
        sigma = float(full.weight.sum())
        lumi = (rates.mean_luminosity_cm2s(cfg.luminosity_fb_per_month)
                if args.luminosity is None else args.luminosity)
        input_rate = input_rate_from_luminosity(sigma, lumi)
        extra.update(sigma_total_pb=sigma, luminosity_cm2s=lumi)
        log.info("input rate %.4g Hz = %.4g pb x %.4g cm^-2 s^-1", input_rate, sigma, lumi)
    record = set_threshold(
        art, batch, target, input_rate, score=args.score, data=data, cl=cfg.cl,
        min_events=cfg.min_events_above, extra=extra,
    )
    print(
        f"threshold on {record['score']}: select score > {record['value']:.6g}\n"
        f"  target   {record['target_rate_hz']:.4g} Hz of {input_rate:.4g} Hz input "
        f"(fraction {record['fpr']:.4g})\n"
        f"  achieved {record['achieved_rate_hz']:.4g} Hz, {100 * cfg.cl:.4g}% CL "
        f"[{record['rate_ci_low_hz']:.4g}, {record['rate_ci_high_hz']:.4g}] Hz "
        f"(Clopper-Pearson, n_eff = {record['n_eff']:.1f})\n"
        f"  background events above the cut: {record['n_background_above']} of "
        f"{record['n_background_total']}\n"
        f"wrote {art.path / 'threshold.json'}"
    )
    return 0
