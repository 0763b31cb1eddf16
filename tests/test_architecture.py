"""The import graph of the installed packages: dependencies point one way, no cycles.

Layers, bottom to top: the core (every ``triggerad`` module except ``triggerad.cli``), then
``anomaly`` and ``tagger`` (siblings: neither imports the other), then ``firmware``, then the
command line ``triggerad.cli``. A module may import its own package and the layers below it.
Every ``import`` statement counts, also those inside functions (lazy imports).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

#: The distribution's packages, as installed (pyproject.toml, [tool.setuptools] packages).
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PACKAGES = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"]

#: (group, level) of each layer; groups on the same level are siblings.
LAYERS = {"core": 0, "anomaly": 1, "tagger": 1, "firmware": 2, "cli": 3}


def layer_of(module: str) -> str:
    """The layer (group name) of a module of the distribution."""
    if module == "triggerad.cli" or module.startswith("triggerad.cli."):
        return "cli"
    top = module.split(".")[0]
    return "core" if top == "triggerad" else top


@functools.cache
def module_files() -> dict[str, Path]:
    """Every module of the installed packages -> its source file."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin, f"package {package} is not installed"
        found[package] = Path(spec.origin)
        for path in sorted(Path(spec.origin).parent.glob("*.py")):
            if path.name != "__init__.py":
                found[f"{package}.{path.stem}"] = path
    return found


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (None: outside the distribution)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, source: str, modules: set[str], is_package: bool) -> set[str]:
    """Modules of the distribution that ``source`` imports anywhere (functions included)."""
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from pkg import sub" imports the module pkg.sub when there is one
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                     for alias in node.names]
        else:
            continue
        out.update(t for t in (_resolve(n, modules) for n in names) if t and t != module)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> modules of the distribution it imports."""
    files = module_files()
    modules = set(files)
    return {m: imports_of(m, p.read_text(), modules, p.name == "__init__.py")
            for m, p in files.items()}


def third_party(module: str) -> set[str]:
    """Top-level names of the packages outside the distribution that ``module`` imports."""
    path = module_files()[module]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found - set(p.split(".")[0] for p in PACKAGES)


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Modules ``start`` may import, directly or through others (lazy imports included)."""
    seen, todo = {start}, [start]
    while todo:
        for dst in graph.get(todo.pop(), ()):
            if dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return seen


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a higher layer or from a sibling, as ``"a -> b (cli -> core)"`` lines."""
    bad = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            a, b = layer_of(src), layer_of(dst)
            if a != b and LAYERS[b] >= LAYERS[a]:
                bad.append(f"{src} -> {dst} ({a} imports {b})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_checker_finds_planted_violations_and_cycles():
    planted = {
        "triggerad.events": {"anomaly.model"},            # core -> anomaly
        "anomaly.model": {"tagger.model"},                # sibling
        "tagger.model": set(),
        "firmware.emit": {"firmware.report", "anomaly.model"},
        "firmware.report": {"firmware.emit"},             # cycle, same layer
        "triggerad.cli.score": {"firmware.emit", "triggerad.events"},
    }
    assert layer_violations(planted) == [
        "anomaly.model -> tagger.model (anomaly imports tagger)",
        "triggerad.events -> anomaly.model (core imports anomaly)",
    ]
    assert cycles(planted) == [["firmware.emit", "firmware.report"]]
    modules = {"anomaly", "anomaly.stream", "anomaly.stream.fastpath", "triggerad",
               "triggerad.errors"}
    source = ("from . import fastpath\nfrom ..stream.fastpath import NumpyNet\n"
              "def f():\n    from triggerad.errors import ConfigError\n    import anomaly\n")
    assert imports_of("anomaly.stream.scoring", source, modules, False) == {
        "anomaly.stream.fastpath", "triggerad.errors", "anomaly"}


def test_every_source_package_is_installed():
    """A folder with an __init__.py under a top-level package is listed in pyproject.toml."""
    root = PYPROJECT.parent
    listed = set(PACKAGES)
    for top in ("triggerad", "anomaly", "tagger", "firmware"):
        for init in sorted((root / top).rglob("__init__.py")):
            name = ".".join(init.parent.relative_to(root).parts)
            assert name in listed, f"{name} is missing from [tool.setuptools] packages"


def test_graph_covers_every_package(graph):
    layers = {layer_of(m) for m in graph}
    assert {"core", "anomaly", "firmware", "cli"} <= layers
    assert "triggerad.configs" in graph and len(graph) > 60
    # lazy imports count: the CLI reaches the anomaly and firmware packages only inside functions
    assert any(layer_of(t) == "firmware" for t in graph["triggerad.cli.firmware"])


def test_dependencies_point_one_way(graph):
    assert layer_violations(graph) == []


def test_no_import_cycles(graph):
    assert cycles(graph) == []


@pytest.mark.parametrize(("start", "heavy"), [
    ("firmware.report", "tensorflow"),       # reads hls4ml types, no Keras layers
    ("triggerad.cli.threshold", "matplotlib"),  # a cut on scores, no plots
    ("triggerad.cli.threshold", "tensorflow"),  # models come through the kind registry
    ("triggerad.stream.runner", "tensorflow"),
])
def test_light_modules_do_not_reach_heavy_libraries(graph, start, heavy):
    culprits = sorted(m for m in reachable(graph, start) if heavy in third_party(m))
    assert culprits == []


def test_importing_the_plots_keeps_the_users_matplotlib_backend_and_style():
    code = ("import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot as plt; "
            "size = plt.rcParams['font.size']; import anomaly.plots; "
            "print(matplotlib.get_backend(), plt.rcParams['font.size'] == size)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["svg", "True"]
