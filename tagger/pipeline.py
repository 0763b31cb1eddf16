"""The training input pipeline: jet files -> shuffled, resampled, normalised batches (``tf.data``).

1. **Chunks**: every file is cut into entry ranges of ``data.chunk_entries`` (jets for the jet
   HDF5 files, events for PFNano ROOT); each pass visits them in a fresh random order, read
   ahead by ``data.read_workers`` threads through the core readers (:mod:`triggerad.io`), which
   check schema and NaN/inf on the way; ``data.interleave_chunks`` consecutive chunks are
   merged and permuted (so a buffer fill mixes several files).
2. **Split**: a jet belongs to the validation split when a hash of its (file stem, event)
   falls below ``data.validation_fraction`` (all jets of an event in the same split, stable
   across runs, and the same for the HDF5 and PFNano files of a sample).
3. **Shuffle buffer** (:class:`ShuffleBuffer`): a fixed-size reservoir of jets; each drawn jet
   is replaced by the next one read, as ``tf.data.Dataset.shuffle`` does. Memory is bounded by
   ``data.shuffle_buffer`` jets per stream, not by the sample size.
4. **Batch** (:func:`assemble`): of the labelled simulation jets drawn, the SM jets (b, c, uds,
   g) are resampled with replacement to the LLP jets' histogram in (log10 pT, eta)
   (``resampling`` bin edges) and receive c-tau values drawn from that batch's LLP jets; LLP
   jets keep their own. With domain adaptation, ``domain_batch_size`` jets of the shifted
   simulation (domain 1) and as many SM simulation jets before resampling (domain 0) are
   appended, with c-tau values drawn from the batch's LLP jets too. Targets: one-hot class
   and class-loss weight (1 on the class jets, 0 on the domain jets), domain label and
   domain-loss weight (1 on the domain jets only): the class loss sees labelled simulation
   only, the domain loss both domains.
5. **tf.data**: ``Dataset.from_generator(...).prefetch(AUTOTUNE)``: the next batches are
   prepared by the CPU while the current one trains.
"""

from __future__ import annotations

import concurrent.futures
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tagger import inputs as tin
from triggerad.errors import ConfigError, StatisticsError, TriggerADError
from triggerad.jets import GLOBAL_FEATURES, LABELS

#: JetBatch fields the pipeline keeps per jet.
KEEP = ("charged", "neutral", "sv", "globals", "ctau", "label", "domain")
PT = GLOBAL_FEATURES.index("pt")
ETA = GLOBAL_FEATURES.index("eta")


@dataclass
class ResamplingConfig:
    """The ``resampling`` section: histogram bin edges of the per-batch (pT, eta) resampling.

    Attributes
    ----------
    log10_pt_edges : list of float
        Edges in log10(pT / GeV) (increasing).
    eta_edges : list of float
        Edges in eta (increasing).
    """

    log10_pt_edges: list[float] = field(
        default_factory=lambda: [1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.2, 2.4, 2.7, 3.0, 4.0])
    eta_edges: list[float] = field(
        default_factory=lambda: [-2.4, -2.0, -1.6, -1.2, -0.8, -0.4, 0.0, 0.4, 0.8, 1.2, 1.6,
                                 2.0, 2.4])

    def __post_init__(self) -> None:
        for name in ("log10_pt_edges", "eta_edges"):
            edges = np.asarray(getattr(self, name))
            if len(edges) < 2 or np.any(np.diff(edges) <= 0):
                raise ValueError(f"{name} must hold >= 2 strictly increasing edges, found "
                                 f"{getattr(self, name)!r}")


# Reading -------------------------------------------------------------------------------------
class Readers:
    """The core jet reader of every file (one per reader name), dispatched by path."""

    def __init__(self, readers: dict[str, object]):
        self.by_path = readers

    def num_entries(self, path: str) -> int:
        return self.by_path[path].num_entries(path)

    def read(self, path: str, start: int, stop: int):
        return self.by_path[path].read(path, start, stop)


def chunk_index(reader, paths: list[str], chunk_entries: int) -> list[tuple[str, int, int]]:
    """(path, start, stop) entry ranges covering every file."""
    out = []
    for path in paths:
        total = reader.num_entries(path)
        out.extend((path, s, min(s + chunk_entries, total)) for s in range(0, total, chunk_entries))
    return out


def validation_mask(batch, fraction: float) -> np.ndarray:
    """(n,) bool: jets of the validation split: a hash of the file's stem (``signal`` of
    ``signal.h5`` and ``signal.root``: the same jets get the same split in both formats) and the
    event number."""
    if fraction <= 0:
        return np.zeros(len(batch), bool)
    files, inverse = np.unique(batch.source_file.astype(str), return_inverse=True)
    crc = np.array([zlib.crc32(Path(f).stem.encode()) for f in files], dtype=np.uint64)
    salt = crc[inverse]
    h = (batch.event.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + salt) & np.uint64(2**32 - 1)
    h = (h * np.uint64(2654435761)) & np.uint64(2**32 - 1)
    return h.astype(np.float64) / 2**32 < fraction


def read_chunks(reader, chunks: list[tuple[str, int, int]], *, rng: np.random.Generator,
                split: str | None, fraction: float, workers: int, loop: bool,
                interleave: int = 4) -> Iterator[dict[str, np.ndarray]]:
    """Jets of ``chunks`` as dicts of the :data:`KEEP` arrays, restricted to ``split``
    (``train``, ``val`` or None: all).

    Each pass visits the chunks in a fresh random order, read ahead by ``workers`` threads;
    ``interleave`` consecutive chunks (of any files) are merged and permuted before they are
    yielded, so that even the first fill of a shuffle buffer mixes several files.
    """
    def load(chunk):
        batch = reader.read(*chunk)
        if split is not None:
            val = validation_mask(batch, fraction)
            batch = batch.take(val if split == "val" else ~val)
        return {f: getattr(batch, f) for f in KEEP}

    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        while True:
            order = rng.permutation(len(chunks))
            ahead = max(workers, interleave)
            pending = [pool.submit(load, chunks[i]) for i in order[:ahead]]
            group: list[dict] = []
            for k in range(len(order)):
                jets = pending[k].result()
                if k + ahead < len(order):
                    pending.append(pool.submit(load, chunks[order[k + ahead]]))
                if len(jets["label"]):
                    group.append(jets)
                if group and (len(group) == interleave or k == len(order) - 1):
                    merged = {f: np.concatenate([g[f] for g in group]) for f in KEEP}
                    perm = rng.permutation(len(merged["label"]))
                    yield {f: v[perm] for f, v in merged.items()}
                    group = []
            if not loop:
                return


class ShuffleBuffer:
    """A fixed-size reservoir of jets: :meth:`draw` returns random jets and refills their slots
    from the source (``tf.data`` shuffle semantics, done on whole arrays).

    Parameters
    ----------
    source : iterator of dict
        Chunks of jets (:func:`read_chunks`).
    size : int
        Jets held.
    rng : numpy Generator
    """

    def __init__(self, source: Iterator[dict], size: int, rng: np.random.Generator):
        self.source, self.size, self.rng = source, size, rng
        self.pending: dict | None = None
        self.buf: dict | None = None
        self.n = 0
        self.exhausted = False

    def _next_rows(self, k: int) -> dict | None:
        """Up to ``k`` jets from the source (None when it is exhausted)."""
        parts, got = [], 0
        while got < k:
            if self.pending is None:
                try:
                    self.pending = next(self.source)
                except StopIteration:
                    self.exhausted = True
                    break
            take = min(k - got, len(self.pending["label"]))
            parts.append({f: v[:take] for f, v in self.pending.items()})
            rest = {f: v[take:] for f, v in self.pending.items()}
            self.pending = rest if len(rest["label"]) else None
            got += take
        if not parts:
            return None
        return {f: np.concatenate([p[f] for p in parts]) for f in parts[0]}

    def _fill(self) -> None:
        if self.buf is None:
            first = self._next_rows(self.size)
            if first is None:
                self.buf, self.n = {}, 0
                return
            self.n = len(first["label"])
            self.buf = {f: np.empty((self.size, *v.shape[1:]), v.dtype) for f, v in first.items()}
            for f, v in first.items():
                self.buf[f][:self.n] = v

    def draw(self, k: int) -> dict | None:
        """``k`` random jets (fewer at the end of a finite source; None when empty)."""
        self._fill()
        if self.n == 0:
            return None
        k = min(k, self.n)
        idx = self.rng.choice(self.n, k, replace=False)
        out = {f: v[idx] for f, v in self.buf.items()}
        new = None if self.exhausted else self._next_rows(k)
        m = 0 if new is None else len(new["label"])
        if m:
            for f, v in new.items():
                self.buf[f][idx[:m]] = v
        if m < k:  # finite source ran dry: move the last jets into the remaining holes
            holes = np.sort(idx[m:])
            keep = np.setdiff1d(np.arange(self.n - len(holes), self.n), holes)
            targets = holes[holes < self.n - len(holes)]
            for f in self.buf:
                self.buf[f][targets] = self.buf[f][keep]
            self.n -= len(holes)
        return out


# Batch assembly ------------------------------------------------------------------------------
def resample_to(pt_eta_ref: tuple[np.ndarray, np.ndarray], pt_eta: tuple[np.ndarray, np.ndarray],
                n: int, edges: ResamplingConfig, rng: np.random.Generator) -> np.ndarray:
    """Indices (with replacement) of ``n`` jets of the second set whose (log10 pT, eta)
    histogram follows the first set's: jet weight = H_ref / H in its bin.

    Raises
    ------
    StatisticsError
        If no jet of the second set shares a bin with the reference.
    """
    bins = (np.asarray(edges.log10_pt_edges), np.asarray(edges.eta_edges))
    h_ref, _, _ = np.histogram2d(np.log10(pt_eta_ref[0]), pt_eta_ref[1], bins=bins)
    h, _, _ = np.histogram2d(np.log10(pt_eta[0]), pt_eta[1], bins=bins)
    ix = np.clip(np.digitize(np.log10(pt_eta[0]), bins[0]) - 1, 0, len(bins[0]) - 2)
    iy = np.clip(np.digitize(pt_eta[1], bins[1]) - 1, 0, len(bins[1]) - 2)
    inside = ((np.log10(pt_eta[0]) >= bins[0][0]) & (np.log10(pt_eta[0]) <= bins[0][-1])
              & (pt_eta[1] >= bins[1][0]) & (pt_eta[1] <= bins[1][-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(h > 0, h_ref / h, 0.0)
    w = np.where(inside, ratio[ix, iy], 0.0)
    if not w.sum() > 0:
        raise StatisticsError(
            "resampling: no SM jet of the batch lies in a (log10 pT, eta) bin holding LLP jets; "
            "check resampling.log10_pt_edges / eta_edges against the samples, or raise "
            "training.batch_size")
    return rng.choice(len(w), n, replace=True, p=w / w.sum())


def assemble(sim: dict, dom: dict | None, *, norm: dict, edges: ResamplingConfig,
             rng: np.random.Generator, where: str = "batch") -> tuple[dict, dict]:
    """One training batch from drawn simulation jets ``sim`` and shifted-simulation jets
    ``dom`` (None: no domain part) (module docstring, step 4).

    Returns
    -------
    (x, targets)
        ``x``: the normalised model inputs (:func:`tagger.inputs.arrays`); ``targets``:
        ``class`` (n, 5) one-hot, ``class_weight`` (n,), ``domain`` (n, 1),
        ``domain_weight`` (n,), all float32.

    Raises
    ------
    StatisticsError
        If the batch holds no LLP or no SM jet.
    """
    labelled = sim["label"] >= 0
    llp = np.flatnonzero(labelled & (sim["label"] == 0))
    sm = np.flatnonzero(labelled & (sim["label"] > 0))
    if len(llp) == 0 or len(sm) == 0:
        raise StatisticsError(
            f"{where}: {len(llp)} LLP and {len(sm)} SM (b, c, uds, g) jets among {len(labelled)} "
            "drawn: a batch needs both; raise training.batch_size or data.shuffle_buffer")
    g = sim["globals"]
    pick = sm[resample_to((g[llp, PT], g[llp, ETA]), (g[sm, PT], g[sm, ETA]), len(sm), edges, rng)]
    llp_ctau = sim["ctau"][llp]
    rows = [llp, pick]
    ctau = [llp_ctau, rng.choice(llp_ctau, len(pick))]
    n_class = len(llp) + len(pick)
    n_dom = 0 if dom is None else len(dom["label"])
    fields = ("charged", "neutral", "sv", "globals", "label")
    if n_dom:
        rows.append(rng.choice(sm, n_dom))
        ctau += [rng.choice(llp_ctau, n_dom), rng.choice(llp_ctau, n_dom)]
    index = np.concatenate(rows)
    jets = {}
    for f in fields:   # one copy of every selected jet: simulation rows, then the domain jets
        out = np.empty((len(index) + n_dom, *sim[f].shape[1:]), sim[f].dtype)
        np.take(sim[f], index, axis=0, out=out[:len(index)])
        if n_dom:
            out[len(index):] = dom[f]
        jets[f] = out
    domain = np.zeros(len(index) + n_dom)
    domain[n_class + n_dom:] = 1.0
    ctau = np.concatenate(ctau)
    n = len(ctau)
    onehot = np.zeros((n, len(LABELS)), np.float32)
    onehot[np.arange(n_class), jets["label"][:n_class]] = 1.0
    class_weight = np.zeros(n, np.float32)
    class_weight[:n_class] = 1.0
    domain_weight = np.zeros(n, np.float32)
    domain_weight[n_class:] = 1.0
    x = tin.arrays(_Jets(jets), norm, tin.log10_ctau(ctau, where))
    return x, {"class": onehot, "class_weight": class_weight,
               "domain": domain.astype(np.float32).reshape(-1, 1),
               "domain_weight": domain_weight}


class _Jets:
    """Attribute access to a dict of jet arrays (what :func:`tagger.inputs.arrays` reads)."""

    def __init__(self, arrays: dict):
        self.__dict__.update(arrays)


# The streams ---------------------------------------------------------------------------------
@dataclass
class Streams:
    """Everything the batch generators need (built once by :func:`tagger.train.train`)."""

    readers: object
    sim_chunks: list
    dom_chunks: list
    norm: dict
    edges: ResamplingConfig
    batch_size: int
    domain_batch_size: int
    shuffle_buffer: int
    validation_fraction: float
    read_workers: int
    interleave: int = 4


def batches(s: Streams, *, split: str, seed: int, domain: bool) -> Iterator[tuple[dict, dict]]:
    """Training (``split="train"``, endless) or validation (``"val"``, one pass) batches.

    A validation batch without LLP or SM jets (at the end of the pass) is skipped; a training
    batch without them is an error (:func:`assemble`).
    """
    rng = np.random.default_rng(seed)
    loop = split == "train"
    sim = ShuffleBuffer(read_chunks(s.readers, s.sim_chunks, rng=rng, split=split,
                                    fraction=s.validation_fraction, workers=s.read_workers,
                                    loop=loop, interleave=s.interleave), s.shuffle_buffer, rng)
    dom = None
    if domain:
        if not s.dom_chunks:
            raise ConfigError("domain adaptation needs the shifted-simulation sample (data.domain)")
        dom = ShuffleBuffer(read_chunks(s.readers, s.dom_chunks, rng=rng, split=split,
                                        fraction=s.validation_fraction, workers=s.read_workers,
                                        loop=True, interleave=s.interleave), s.shuffle_buffer,
                           rng)
    k = 0
    while True:
        jets = sim.draw(s.batch_size)
        if jets is None:
            return
        k += 1
        d = dom.draw(s.domain_batch_size) if dom is not None else None
        labelled = jets["label"] >= 0
        if not loop and not (np.any(labelled & (jets["label"] == 0))
                             and np.any(labelled & (jets["label"] > 0))):
            continue
        yield assemble(jets, d, norm=s.norm, edges=s.edges, rng=rng,
                       where=f"{split} batch {k}")


def signature(sizes: dict[str, int]):
    """The ``tf.TensorSpec`` structure of a batch (first dimension free)."""
    import tensorflow as tf

    from triggerad.jets import FEATURES

    x = {b: tf.TensorSpec((None, sizes[b], len(FEATURES[b])), tf.float32)
         for b in ("charged", "neutral", "sv")}
    x["globals"] = tf.TensorSpec((None, len(FEATURES["globals"])), tf.float32)
    x["log10_ctau"] = tf.TensorSpec((None, 1), tf.float32)
    t = {"class": tf.TensorSpec((None, len(LABELS)), tf.float32),
         "class_weight": tf.TensorSpec((None,), tf.float32),
         "domain": tf.TensorSpec((None, 1), tf.float32),
         "domain_weight": tf.TensorSpec((None,), tf.float32)}
    return x, t


def dataset(s: Streams, sizes: dict[str, int], *, split: str, seed: int, domain: bool,
            errors: list | None = None):
    """The ``tf.data.Dataset`` of :func:`batches`, prefetched.

    A :class:`~triggerad.errors.TriggerADError` raised while preparing a batch (bad file,
    empty class, ...) ends the stream and is appended to ``errors`` (so that the caller can
    raise it with its message instead of TensorFlow's wrapped one); without ``errors`` it
    propagates.
    """
    import tensorflow as tf

    def generate():
        try:
            yield from batches(s, split=split, seed=seed, domain=domain)
        except TriggerADError as err:
            if errors is None:
                raise
            errors.append(err)

    ds = tf.data.Dataset.from_generator(generate, output_signature=signature(sizes))
    return ds.prefetch(tf.data.AUTOTUNE)
