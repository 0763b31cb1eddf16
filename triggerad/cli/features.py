"""``trigger-ad features``: the 21 high-level features of every event of the inputs, as parquet.

Inputs are read chunk by chunk (constant memory) by the chosen reader; ``--reader auto`` picks it
per file from the suffix (``.h5``/``.hdf5`` adc2021, ``.parquet`` parquet, ``.root`` from the tree
names: ``Events`` nanoaod, ``Delphes`` delphes, else flat). The NanoAOD reader picks a preset per
file from its branches (Run-2 UL, Run-3, v15, scouting; ``preset: l1`` in --branch-map reads the
Level-1 objects). A sample list (``samples.yaml``: per sample files, cross-section in pb, process
label, is-signal) reads every sample, labels its events with the process and normalises the
generator weights: ``weight = xsec * genWeight / sum(genWeight)``. The output parquet file has exactly the
21 feature columns (``triggerad.schema.FEATURE_NAMES`` order) then ``event``, ``process``,
``weight``; it is written to a temporary file and renamed only when complete, and its provenance
goes next to it: ``OUT.parquet`` -> ``OUT.provenance.json``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from triggerad.cli import (
    add_command,
    add_out_option,
    add_policy_options,
    check_out,
    positive_int,
)

log = logging.getLogger(__name__)

#: Reader names accepted by ``--reader`` (besides ``auto``); see :mod:`triggerad.io.registry`.
READER_CHOICES = ("auto", "adc2021", "delphes", "nanoaod", "flat", "parquet")


def register(subparsers) -> None:
    """Add the ``features`` subcommand."""
    p = add_command(
        subparsers,
        "features",
        "compute the 21 high-level features of every event into a parquet file",
        "trigger-ad features cocktail/*.h5 --reader adc2021 --out features.parquet\n"
        "trigger-ad features @files.txt --reader nanoaod --branch-map my_nano.yaml "
        "--out nano_features.parquet --nonfinite drop\n"
        "trigger-ad features samples.yaml --out cms_features.parquet   # a sample list",
        description=__doc__,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="input files, glob patterns, @list.txt / list.txt (one path per line), or "
                   "sample lists (*.yaml)")
    p.add_argument("--reader", choices=READER_CHOICES, default="auto", help="input format")
    p.add_argument("--branch-map", default=None, metavar="YAML",
                   help="YAML overriding keys of the reader's default branch map "
                   "(configs/branch_maps/<reader>.yaml; NanoAOD: the preset detected per file, "
                   "configs/branch_maps/nanoaod-<preset>.yaml, or `preset: NAME` to choose one)")
    add_out_option(p, "output parquet file", metavar="FILE.parquet")
    p.add_argument("--chunk-size", type=positive_int, default=100_000, help="events read per chunk")
    add_policy_options(p)
    p.set_defaults(func=run)


def provenance_path(out: str | Path) -> Path:
    """Sidecar provenance file of a feature file: ``X.parquet`` -> ``X.provenance.json``."""
    out = Path(out)
    return out.with_name(out.stem + ".provenance.json")


def output_schema():
    """The pyarrow schema of a feature file: 21 float32 features, event, process, weight."""
    import pyarrow as pa

    from triggerad import schema

    return pa.schema(
        [pa.field(name, pa.float32()) for name in schema.FEATURE_NAMES]
        + [pa.field("event", pa.int64()), pa.field("process", pa.string()),
           pa.field("weight", pa.float64())]
    )


def run(args) -> int:
    """Compute the features of every input event and write them to ``args.out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from anomaly.features import feature_frame
    from triggerad import atomic, config, provenance
    from triggerad.errors import InputFileError
    from triggerad.io.base import ReadOptions
    from triggerad.samples import resolve_inputs

    check_out(args, "features", file=True)
    options = config.build(
        ReadOptions, {"chunk_size": args.chunk_size, "nonfinite": args.nonfinite,
                      "unphysical": args.unphysical},
        where="trigger-ad features options",
    )
    inputs, sample_sets = resolve_inputs(args.inputs, args.reader, args.branch_map, options)
    readers = {i.path: i.reader for i in inputs}
    paths = list(readers)
    totals = {p: readers[p].num_entries(p) for p in paths}
    for path, total in totals.items():
        if total == 0:
            raise InputFileError(f"{path}: file holds no events")

    out = Path(args.out)
    schema = output_schema()
    written: dict[str, int] = {}
    defaults: dict[str, list[str]] = {}
    with atomic.atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer, tqdm(
        total=sum(totals.values()), unit="ev", desc="features", file=sys.stderr,
        disable=True if args.quiet else None,
    ) as bar:
        for path in paths:
            written[path] = 0
            for batch in readers[path].iter_chunks(path):
                frame = feature_frame(batch)
                writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
                written[path] += len(batch)
                defaults.setdefault(path, list(batch.defaults))
                bar.update(len(batch))
    described, branch_maps = {}, {}
    for path in paths:  # the resolved branch map once per reader (and NanoAOD preset)
        info = readers[path].describe(path)
        key = info["reader"] + (f":{info['preset']}" if "preset" in info else "")
        branch_maps[key] = info.pop("branch_map")
        described[path] = info
    n_written = sum(written.values())
    n_dropped = sum(totals.values()) - n_written
    dropped = {"unphysical": sum({id(r): r.dropped["unphysical"]
                                  for r in readers.values()}.values())}
    extra = {
        "inputs": [
            {"path": p, **described[p], "entries": totals[p], "written": written[p],
             "defaults": defaults.get(p, [])} for p in paths
        ],
        "sample_lists": [s.describe() for s in sample_sets],
        "branch_maps": branch_maps,
        "output": str(out),
        "columns": schema.names,
        "events_written": n_written,
        "events_dropped_nonfinite": n_dropped - dropped["unphysical"],
        "events_dropped_unphysical": dropped["unphysical"],
        "options": {"reader": args.reader, "branch_map": args.branch_map,
                    "chunk_size": options.chunk_size, "nonfinite": options.nonfinite,
                    "unphysical": options.unphysical},
    }
    atomic.write_json(provenance_path(out), provenance.provenance("features", extra))
    log.info("wrote %d events (%d dropped for NaN/inf, %d as physically impossible) from %d "
             "files to %s", n_written, n_dropped - dropped["unphysical"], dropped["unphysical"],
             len(paths), out)
    return 0
