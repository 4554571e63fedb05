"""No import cycles among engine's modules: each layer imports only the layers beneath it.

Two graphs. The first has the imports a module runs when it is imported: at its top, in a
class body, under a module-level `if`/`try`; a cycle there makes the import order matter, and
none is allowed. The second adds the deferred imports, those inside a function (run on first
use, once every module has loaded): a deferred import may close a cycle only where `DEFERRED`
lists it with its reason. Neither counts an import under `if TYPE_CHECKING:` (never run). An
edge `from engine.x import y` goes to `engine.x.y` when that is a module, else to `engine.x`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "callcc")

DEFERRED: dict[frozenset[str], str] = {
    # a spec shown in a notebook draws itself: `Spec._repr_svg_` imports the renderer, which
    # reads specs; only that method, only when Jupyter calls it
    frozenset(
        {"engine.spec.model", "engine.render", "engine.render.dot", "engine.render._text"}
    ): "Jupyter display of a spec",
}
"""Cycles that deferred imports close, by their set of modules, each with its reason."""


def module_files() -> dict[str, Path]:
    """Dotted module name -> its file, for every module of the packages."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(body: list[ast.stmt], *, deferred: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of `body` that run when the module is imported, and with
    `deferred` those in its functions too; never those under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                found += _imports(node.body, deferred=deferred)
            found += _imports(node.orelse, deferred=deferred)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                found += _imports(block, deferred=deferred)
            for handler in node.handlers:
                found += _imports(handler.body, deferred=deferred)
        elif isinstance(node, ast.With | ast.ClassDef | ast.For | ast.While) or (
            deferred and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        ):
            found += _imports(node.body, deferred=deferred)
    return found


def import_graph(*, deferred: bool = False) -> nx.DiGraph[str]:
    """Module -> the package modules it imports when it is imported (with `deferred`, also
    those its functions import)."""
    files = module_files()
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(files)
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _imports(tree.body, deferred=deferred):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                    for alias in node.names
                ]
            for target in targets:
                if target in files and target != name:
                    graph.add_edge(name, target)
    return graph


def cycles(graph: nx.DiGraph[str], allowed: dict[frozenset[str], str]) -> list[str]:
    """One cycle of each strongly connected component that `allowed` does not list."""
    found = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1 and frozenset(component) not in allowed:
            cycle = nx.find_cycle(graph.subgraph(component))
            found.append(" -> ".join([u for u, _ in cycle] + [cycle[0][0]]))
    return sorted(found)


def test_the_graphs_see_the_imports_they_should() -> None:
    """The walker itself: a top-level import is an edge, a TYPE_CHECKING one never is, and
    one inside a function is an edge of the deferred graph only."""
    graph, deferred = import_graph(), import_graph(deferred=True)
    for edges in (graph, deferred):
        assert edges.has_edge("engine.runtime", "engine.loop")  # at the top
        assert edges.has_edge("engine.continuation", "engine._json")  # from engine import _json
        assert not edges.has_edge("engine.cli.render", "engine.spec.model")  # TYPE_CHECKING
    assert not graph.has_edge("engine.continuation", "engine.render")  # inside _repr_svg_
    assert deferred.has_edge("engine.continuation", "engine.render")
    assert deferred.has_edge("engine.cli._output", "engine.runtime")  # inside report()


def test_no_import_cycle_runs_at_import_time() -> None:
    found = cycles(import_graph(), {})
    assert found == [], "import cycles (break an edge with a leaf module):\n" + "\n".join(found)


def test_deferred_imports_close_only_the_listed_cycles() -> None:
    found = cycles(import_graph(deferred=True), DEFERRED)
    assert found == [], (
        "a function-level import closes a cycle: move what both sides need to a leaf module, "
        "or list the cycle in DEFERRED with its reason:\n" + "\n".join(found)
    )


def test_every_listed_cycle_still_exists() -> None:
    """An entry of DEFERRED whose cycle is gone goes too, so the list never hides a new one."""
    graph = import_graph(deferred=True)
    components = {frozenset(c) for c in nx.strongly_connected_components(graph)}
    assert [sorted(c) for c in DEFERRED if c not in components] == []
