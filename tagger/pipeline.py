"""The training input pipeline: jet files -> shuffled, resampled, normalised batches (``tf.data``).

1. **Chunks**: every file is cut into entry ranges of ``data.chunk_entries`` (jets for the jet
   HDF5 files, events for PFNano ROOT); each pass visits them in a fresh random order, read
   ahead by ``data.read_workers`` threads through the core readers (:mod:`triggerad.io`), which
   check schema and NaN/inf on the way; ``data.interleave_chunks`` consecutive chunks are
   merged and permuted (so a buffer fill mixes several files).
2. **Split and preparation** (:mod:`tagger.reading`): a jet belongs to the validation split
   when a hash of its (file stem, event) falls below ``data.validation_fraction`` (all jets of
   an event in the same split, stable across runs, and the same for the HDF5 and PFNano files
   of a sample). Each chunk's jets of the split are normalised once, in the reader threads
   (float32; :func:`tagger.reading.prepare_rows`). **Cache**: the prepared rows of every
   (chunk, split) are kept in memory while they fit ``data.cache_mb`` (:class:`ChunkCache`,
   shared by the training and validation streams): from the second pass on, a cached chunk is
   neither decompressed nor normalised again; chunks beyond the budget are read on every pass.
   A cached and a streamed chunk give the same rows: the batches of a seed do not depend on
   the budget.
3. **Shuffle buffer** (:class:`ShuffleBuffer`): a fixed-size reservoir of jets; each drawn jet
   is replaced by the next one read, as ``tf.data.Dataset.shuffle`` does. Memory is bounded by
   ``data.shuffle_buffer`` jets per stream plus the cache (at most ``data.cache_mb``; about
   2.6 kB per jet with the default 25, 25, 4 candidates), not by the sample size.
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

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from tagger import inputs as tin
from tagger.reading import (
    KEEP,
    ChunkCache,
    Readers,
    ShuffleBuffer,
    chunk_index,
    prepare_rows,
    read_chunks,
    validation_mask,
)
from triggerad.errors import ConfigError, StatisticsError, TriggerADError
from triggerad.jets import LABELS

#: Reading names used through this module (tests, trainsample, evaluate).
__all__ = ["KEEP", "ChunkCache", "Readers", "ResamplingConfig", "ShuffleBuffer", "Streams",
           "assemble", "batches", "chunk_index", "dataset", "read_chunks", "resample_to",
           "signature", "validation_mask"]


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


def assemble(sim: dict, dom: dict | None, *, edges: ResamplingConfig,
             rng: np.random.Generator, norm: dict | None = None,
             where: str = "batch") -> tuple[dict, dict]:
    """One training batch from drawn simulation jets ``sim`` and shifted-simulation jets
    ``dom`` (None: no domain part) (module docstring, step 4).

    ``sim`` and ``dom`` are prepared rows (:func:`tagger.reading.prepare_rows`, already
    normalised), or with ``norm`` the raw :data:`KEEP` arrays, prepared here.

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
    if norm is not None:
        sim = prepare_rows(sim, norm)
        dom = None if dom is None else prepare_rows(dom, norm)
    label = sim["label"]
    labelled = label >= 0
    llp = np.flatnonzero(labelled & (label == 0))
    sm = np.flatnonzero(labelled & (label > 0))
    if len(llp) == 0 or len(sm) == 0:
        raise StatisticsError(
            f"{where}: {len(llp)} LLP and {len(sm)} SM (b, c, uds, g) jets among {len(labelled)} "
            "drawn: a batch needs both; raise training.batch_size or data.shuffle_buffer")
    pt, eta = sim["pt"], sim["eta"]
    pick = sm[resample_to((pt[llp], eta[llp]), (pt[sm], eta[sm]), len(sm), edges, rng)]
    llp_ctau = sim["ctau"][llp]
    rows = [llp, pick]
    ctau = [llp_ctau, rng.choice(llp_ctau, len(pick))]
    n_class = len(llp) + len(pick)
    n_dom = 0 if dom is None else len(dom["label"])
    if n_dom:
        rows.append(rng.choice(sm, n_dom))
        ctau += [rng.choice(llp_ctau, n_dom), rng.choice(llp_ctau, n_dom)]
    index = np.concatenate(rows)
    n = len(index) + n_dom
    x = {}
    for f in ("charged", "neutral", "sv", "globals"):  # one copy: simulation rows, domain jets
        out = np.empty((n, *sim[f].shape[1:]), np.float32)
        np.take(sim[f], index, axis=0, out=out[:len(index)])
        if n_dom:
            out[len(index):] = dom[f]
        x[f] = out
    x["log10_ctau"] = tin.log10_ctau(np.concatenate(ctau), where).reshape(-1, 1)
    onehot = np.zeros((n, len(LABELS)), np.float32)
    onehot[np.arange(n_class), label[index[:n_class]]] = 1.0
    class_weight = np.zeros(n, np.float32)
    class_weight[:n_class] = 1.0
    domain_weight = 1.0 - class_weight
    domain = np.zeros((n, 1), np.float32)
    domain[n_class + n_dom:] = 1.0
    return x, {"class": onehot, "class_weight": class_weight, "domain": domain,
               "domain_weight": domain_weight}


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
    cache: ChunkCache | None = None


def batches(s: Streams, *, split: str, seed: int, domain: bool) -> Iterator[tuple[dict, dict]]:
    """Training (``split="train"``, endless) or validation (``"val"``, one pass) batches.

    A validation batch without LLP or SM jets (at the end of the pass) is skipped; a training
    batch without them is an error (:func:`assemble`).
    """
    rng = np.random.default_rng(seed)
    loop = split == "train"
    sim = ShuffleBuffer(read_chunks(s.readers, s.sim_chunks, rng=rng, split=split,
                                    fraction=s.validation_fraction, workers=s.read_workers,
                                    loop=loop, interleave=s.interleave, norm=s.norm,
                                    cache=s.cache), s.shuffle_buffer, rng)
    dom = None
    if domain:
        if not s.dom_chunks:
            raise ConfigError("domain adaptation needs the shifted-simulation sample (data.domain)")
        dom = ShuffleBuffer(read_chunks(s.readers, s.dom_chunks, rng=rng, split=split,
                                        fraction=s.validation_fraction, workers=s.read_workers,
                                        loop=True, interleave=s.interleave, norm=s.norm,
                                        cache=s.cache), s.shuffle_buffer, rng)
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
        yield assemble(jets, d, edges=s.edges, rng=rng, where=f"{split} batch {k}")


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
