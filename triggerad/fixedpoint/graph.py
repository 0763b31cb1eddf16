"""A fixed-point network as a graph of integer layers: evaluation, types, description, digest."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json

import numpy as np

from triggerad import spare
from triggerad.errors import did_you_mean
from triggerad.fixedpoint.layers import Input, Layer, layer_from_dict
from triggerad.fixedpoint.types import FixedPointError


class FixedGraph:
    """Layers in evaluation order (each reads the outputs of earlier ones) and the output names.

    Build one with :func:`triggerad.fixedpoint.from_keras` (and :meth:`extend`). Evaluation is
    exact integer arithmetic, so its result does not depend on the batch size, the CPU or the
    number of threads.

    Parameters
    ----------
    layers : list of Layer
        In evaluation order; the :class:`~triggerad.fixedpoint.layers.Input` layers first take
        the arguments of :meth:`run`, in order.
    outputs : list of str
        Names of the output layers.
    """

    def __init__(self, layers: list[Layer], outputs: list[str]):
        self.layers = list(layers)
        self._by_name = {layer.name: layer for layer in self.layers}
        if len(self._by_name) != len(self.layers):
            raise FixedPointError(f"layer names are not unique: {[la.name for la in self.layers]}")
        seen: set[str] = set()
        for layer in self.layers:
            missing = [s for s in layer.inputs if s not in seen]
            if missing:
                raise FixedPointError(f"layer {layer.name!r} reads {missing}, not computed before it")
            seen.add(layer.name)
        self.outputs = [self.layer(name).name for name in outputs]

    @property
    def inputs(self) -> list[Input]:
        """The input layers, in the order :meth:`run` takes its arguments."""
        return [layer for layer in self.layers if isinstance(layer, Input)]

    def layer(self, name: str) -> Layer:
        """The layer called ``name``."""
        if name not in self._by_name:
            raise FixedPointError(f"no layer {name!r} in the fixed-point graph; "
                                  + did_you_mean(name, list(self._by_name)))
        return self._by_name[name]

    #: Events evaluated at a time: small enough for the intermediate arrays to stay in the CPU
    #: cache (several times faster than whole chunks; a float64 (2048, 57) block is ~1 MB, which
    #: stays in L2 when a reader thread shares the core); results do not depend on it.
    BLOCK = 2048

    def run(self, *x, keep: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """Raw values (exact integers, float64) of the outputs (and of the layers named in
        ``keep``) for inputs ``x``.

        Parameters
        ----------
        *x : float arrays
            One array per input layer, e.g. ``(n, d)`` physical inputs; converted exactly to
            the input type.
        keep : tuple of str
            Further layers whose values to return.
        """
        inputs = self.inputs
        if len(x) != len(inputs):
            raise FixedPointError(f"expected {len(inputs)} input arrays "
                                  f"({[i.name for i in inputs]}), found {len(x)}")
        wanted = set(self.outputs) | {self.layer(name).name for name in keep}
        n = len(x[0])
        with single_threaded_blas():
            if n <= self.BLOCK:
                return {name: np.asarray(values, dtype=np.float64)
                        for name, values in self._run_block(x, wanted).items()}
            out: dict[str, np.ndarray] = {}

            def fill(starts) -> None:
                for start in starts:
                    block = self._run_block([a[start:start + self.BLOCK] for a in x], wanted)
                    for name, values in block.items():
                        if name not in out:
                            out[name] = np.empty((n, *values.shape[1:]), dtype=np.float64)
                        out[name][start:start + len(values)] = values

            starts = range(0, n, self.BLOCK)
            fill(starts[:1])  # allocates the outputs
            helpers = min(spare.threads(), len(starts) // 2) - 1
            if helpers < 1:
                fill(starts[1:])
                return out
            # lent cores (the last unit of a stream): the blocks are shared out one at a time,
            # so a helper that gets no CPU (a busy machine) delays the result by one block at most
            following = itertools.count(1)

            def share() -> None:
                fill(itertools.takewhile(lambda start: start < n,
                                         (i * self.BLOCK for i in following)))

            jobs = [spare.pool(helpers).submit(share) for _ in range(helpers)]
            try:
                share()
            finally:
                for job in jobs:
                    job.result()
        return out

    def _run_block(self, x, wanted: set[str]) -> dict[str, np.ndarray]:
        readers: dict[str, int] = {}
        for layer in self.layers:
            for source in layer.inputs:
                readers[source] = readers.get(source, 0) + 1
        values: dict[str, np.ndarray] = {}
        arguments = iter(x)
        for layer in self.layers:
            args = [next(arguments)] if isinstance(layer, Input) else [values[s] for s in layer.inputs]
            values[layer.name] = layer.forward(*args)
            for source in layer.inputs:  # free what nothing reads any more
                readers[source] -= 1
                if readers[source] == 0 and source not in wanted:
                    del values[source]
        return {name: values[name] for name in wanted}

    def __call__(self, *x) -> list[np.ndarray]:
        """Raw values of the outputs, in :attr:`outputs` order."""
        values = self.run(*x)
        return [values[name] for name in self.outputs]

    def value(self, name: str, raw: np.ndarray) -> np.ndarray:
        """Float64 values of the raw output ``raw`` of layer ``name`` (exact)."""
        return self.layer(name).result.from_raw(raw)

    def subgraph(self, outputs: list[str]) -> FixedGraph:
        """The graph computing only ``outputs`` (the layers they depend on; same arithmetic)."""
        needed = {self.layer(name).name for name in outputs}
        for layer in reversed(self.layers):
            if layer.name in needed:
                needed.update(layer.inputs)
        return FixedGraph([la for la in self.layers if la.name in needed], list(outputs))

    def extend(self, layer: Layer) -> FixedGraph:
        """A new graph with ``layer`` appended as a further output."""
        return FixedGraph([*self.layers, layer], [*self.outputs, layer.name])

    def hls_precisions(self) -> dict[str, dict[str, str]]:
        """``{layer: {precision key: HLS type}}``: the hls4ml ``Precision`` entries of every layer."""
        return {layer.name: {k: t.hls() for k, t in layer.precisions().items()}
                for layer in self.layers}

    def to_dict(self) -> dict:
        """JSON-ready description of every layer (types and raw constants) and the outputs."""
        return {"layers": [layer.to_dict() for layer in self.layers], "outputs": self.outputs}

    @classmethod
    def from_dict(cls, description: dict) -> FixedGraph:
        """Rebuild a graph from :meth:`to_dict` (same arithmetic, hence the same digest).

        Raises
        ------
        FixedPointError
            For a malformed description (naming the layer and what is wrong).
        """
        if not isinstance(description, dict) or not isinstance(description.get("layers"), list):
            raise FixedPointError("fixed-point graph description: expected a dict with a "
                                  f"'layers' list, found {type(description).__name__}")
        layers: list[Layer] = []
        results: dict = {}
        for spec in description["layers"]:
            sources = spec.get("inputs", []) if isinstance(spec, dict) else []
            missing = [s for s in sources if s not in results]
            if missing:
                raise FixedPointError(f"layer {spec.get('name')!r} reads {missing}, not "
                                      "described before it")
            layer = layer_from_dict(spec, results[sources[0]] if sources else None)
            layers.append(layer)
            results[layer.name] = layer.result
        return cls(layers, list(description.get("outputs", [])))

    def digest(self) -> str:
        """SHA-256 of :meth:`to_dict`: equal digests mean bit-identical arithmetic."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def table(self) -> list[dict[str, str]]:
        """One row per layer: ``name``, ``kind`` and its types (for reports and documentation)."""
        return [{"name": layer.name, "kind": layer.kind,
                 **{k: t.hls() for k, t in layer.precisions().items()}} for layer in self.layers]


@functools.cache
def _blas_controller():
    """threadpoolctl controller of the BLAS libraries loaded with numpy (built once)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread: the matrix products of small networks gain nothing from threads,
    and a read-ahead thread needs the other core. (Results are exact either way.)"""
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield
