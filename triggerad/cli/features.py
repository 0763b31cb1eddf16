"""``trigger-ad features``: the 21 high-level features of every event of the inputs, as parquet.

Inputs are read chunk by chunk (constant memory) by the chosen reader; ``--reader auto`` picks it
per file from the suffix (``.h5``/``.hdf5`` adc2021, ``.parquet`` parquet, ``.root`` from the tree
names: ``Events`` nanoaod, ``Delphes`` delphes, else flat). The output parquet file has exactly the
21 feature columns (``triggerad.schema.FEATURE_NAMES`` order) then ``event``, ``process``,
``weight``; it is written to a temporary file and renamed only when complete, and its provenance
goes next to it: ``OUT.parquet`` -> ``OUT.provenance.json``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from triggerad.cli import add_command

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
        "--out nano_features.parquet --nonfinite drop",
        description=__doc__,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="input files, glob patterns, or @list.txt / list.txt (one path per line)")
    p.add_argument("--reader", choices=READER_CHOICES, default="auto", help="input format")
    p.add_argument("--branch-map", default=None, metavar="YAML",
                   help="YAML overriding keys of the reader's default branch map "
                   "(configs/branch_maps/<reader>.yaml)")
    p.add_argument("--out", required=True, metavar="FILE.parquet", help="output parquet file")
    p.add_argument("--chunk-size", type=int, default=100_000, help="events read per chunk")
    p.add_argument("--nonfinite", choices=("error", "drop"), default="error",
                   help="events with NaN/inf inputs: stop with an error, or drop them (counted)")
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


def _readers(paths: list[str], kind: str, branch_map: str | None, options) -> dict:
    """The reader of each input path (one reader object per kind, shared across files)."""
    from triggerad.errors import ConfigError
    from triggerad.io.registry import detect_reader, make_reader

    kinds = {p: (detect_reader(p) if kind == "auto" else kind) for p in paths}
    if branch_map and len(set(kinds.values())) > 1:
        raise ConfigError(
            f"--branch-map {branch_map}: the inputs need several readers "
            f"({', '.join(sorted(set(kinds.values())))}); pass --reader explicitly"
        )
    made = {k: make_reader(k, branch_map, options) for k in set(kinds.values())}
    return {p: made[k] for p, k in kinds.items()}


def run(args) -> int:
    """Compute the features of every input event and write them to ``args.out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from anomaly.features import feature_frame
    from triggerad import atomic, config, provenance
    from triggerad.errors import InputFileError
    from triggerad.io.base import ReadOptions
    from triggerad.io.registry import expand_inputs

    options = config.build(
        ReadOptions, {"chunk_size": args.chunk_size, "nonfinite": args.nonfinite},
        where="trigger-ad features options",
    )
    paths = expand_inputs(args.inputs)
    readers = _readers(paths, args.reader, args.branch_map, options)
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
    n_written = sum(written.values())
    n_dropped = sum(totals.values()) - n_written
    extra = {
        "inputs": [
            {"path": p, "reader": readers[p].name, "entries": totals[p], "written": written[p],
             "defaults": defaults.get(p, [])} for p in paths
        ],
        "output": str(out),
        "columns": schema.names,
        "events_written": n_written,
        "events_dropped_nonfinite": n_dropped,
        "options": {"reader": args.reader, "branch_map": args.branch_map,
                    "chunk_size": options.chunk_size, "nonfinite": options.nonfinite},
        "branch_maps": {r.name: config.to_dict(r.branch_map) for r in readers.values()},
    }
    atomic.write_json(provenance_path(out), provenance.provenance("features", extra))
    log.info("wrote %d events (%d dropped for NaN/inf) from %d files to %s",
             n_written, n_dropped, len(paths), out)
    return 0
