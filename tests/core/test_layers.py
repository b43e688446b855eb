"""Layers (DESIGN.md §2): `rkdsc` (the command) on top of `rkdsc_gr` and `rkdsc_train`, both on top
of `rkdsc_core`. The core never reaches GNU Radio or an upper layer, directly or through anything
it imports, at module level or lazily inside a function."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# package name -> its folder (pyproject's package-dir)
PACKAGES = {
    "rkdsc": REPO / "rkdsc",
    "rkdsc_core": REPO / "rkdsc_core",
    "rkdsc_gr": REPO / "gr-rkdsc" / "python" / "rkdsc_gr",
    "rkdsc_train": REPO / "rkdsc_train",
}
ABOVE_CORE = ("gnuradio", "pmt", "rkdsc_gr", "rkdsc_train", "rkdsc")


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the four packages."""
    mods = {}
    for pkg, root in PACKAGES.items():
        for f in root.rglob("*.py"):
            parts = [pkg, *f.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


def _walk_runtime(tree: ast.AST):
    """ast.walk, less the bodies of `if TYPE_CHECKING:` (annotations only; never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            test = getattr(child, "test", None) if isinstance(child, ast.If) else None
            if test is not None and "TYPE_CHECKING" in ast.unparse(test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imported_names(name: str, path: Path) -> set[str]:
    """Every module `path` imports anywhere in its body (lazy imports too), absolute names."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in _walk_runtime(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return out


def import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports, plus outside top-level names it imports
    (as `<top>`, e.g. `gnuradio`), so that reachability answers both questions."""
    mods = project_modules()
    graph = {}
    for name, path in mods.items():
        edges = set()
        for imp in imported_names(name, path):
            if imp in mods:
                edges.add(imp)
            elif imp.split(".")[0] not in PACKAGES:
                edges.add(imp.split(".")[0])
        graph[name] = edges - {name}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every node reachable from `start` -> the node it was first reached from (for a chain)."""
    seen, stack = {start: ""}, [start]
    while stack:
        node = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen[nxt] = node
                stack.append(nxt)
    return seen


def chain(seen: dict[str, str], end: str) -> str:
    path = [end]
    while seen[path[-1]]:
        path.append(seen[path[-1]])
    return " -> ".join(reversed(path))


def test_graph_sees_the_known_arrows():
    """The scanner itself: it must find arrows that exist, lazy ones included."""
    g = import_graph()
    assert "rkdsc_core.runtime" in g["rkdsc.cli"] or "rkdsc_core.eval.report" in g["rkdsc.cli"]
    assert "rkdsc_gr.digital_baselines" in g["rkdsc.cli"]  # a lazy import inside a function
    assert "gnuradio" in g["rkdsc_gr.digital_baselines"]
    seen = reachable(g, "rkdsc.cli")
    assert "gnuradio" in seen and chain(seen, "gnuradio").startswith("rkdsc.cli -> ")


def test_core_reaches_nothing_above_it():
    g = import_graph()
    offenders = []
    for mod in (m for m in g if m.split(".")[0] == "rkdsc_core"):
        seen = reachable(g, mod)
        # name the arrow that leaves the core, with the path to it
        offenders += [
            chain(seen, n)
            for n in seen
            if n.split(".")[0] in ABOVE_CORE and seen[n].split(".")[0] == "rkdsc_core"
        ]
    assert not offenders, "\n".join(sorted(set(offenders)))


def test_importing_all_of_core_loads_nothing_above_it():
    """Run time, through third-party packages too: import every core module, then look."""
    code = (
        "import importlib, pkgutil, sys, rkdsc_core\n"
        "for m in pkgutil.walk_packages(rkdsc_core.__path__, 'rkdsc_core.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {ABOVE_CORE!r})\n"
        "print('loaded:', len(sys.modules), 'above core:', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("above core: []"), out.stdout


def test_no_import_cycles():
    """No module of the four packages reaches itself again through its imports (lazy ones too):
    the strongly connected components of the project's import graph are single modules."""
    import networkx as nx

    g = import_graph()
    graph = nx.DiGraph([(a, b) for a, edges in g.items() for b in edges if b in g])
    graph.add_nodes_from(g)
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert graph.number_of_nodes() > 90 and graph.number_of_edges() > 150  # the scan saw the tree
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_middle_layers_reach_neither_the_app_nor_each_other():
    """`rkdsc_gr` (GNU Radio) and `rkdsc_train` (training) sit side by side on the core; only the
    `rkdsc` command above them joins them."""
    g = import_graph()
    offenders = []
    for mod in (m for m in g if m.split(".")[0] in ("rkdsc_gr", "rkdsc_train")):
        top = mod.split(".")[0]
        banned = {"rkdsc", "rkdsc_gr", "rkdsc_train"} - {top}
        seen = reachable(g, mod)
        offenders += [chain(seen, n) for n in seen if n.split(".")[0] in banned]
    assert not offenders, "\n".join(sorted(set(offenders)))
