"""The few graph algorithms the spec check runs on the sub-agent graph, in plain Python.

`callcc validate` checks every spec for sub-agent cycles and unreachable agents; importing
networkx for that took about 130 ms of a validate that otherwise takes about 100 ms. This
module has the same names and results as the networkx calls it replaces (`DiGraph` with
`add_nodes_from`, `add_edge`, `has_edge`, `subgraph`, `edges[u, v]`;
`strongly_connected_components`, `find_cycle`, `descendants`), so the check reads as it did;
tests/test_startup.py holds it to networkx on random graphs. The pictures (`render/`) still
build networkx graphs: those are public.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from itertools import pairwise
from typing import Any, Generic, TypeVar

N = TypeVar("N", bound=Hashable)


class DiGraph(Generic[N]):
    """A directed graph: nodes and successors kept in insertion order, one attribute dict per
    edge (adding an edge again updates it, as in networkx)."""

    def __init__(self) -> None:
        self.succ: dict[N, dict[N, dict[str, Any]]] = {}

    def add_nodes_from(self, nodes: Iterable[N]) -> None:
        for node in nodes:
            self.succ.setdefault(node, {})

    def add_edge(self, u: N, v: N, **attr: Any) -> None:
        self.succ.setdefault(v, {})
        self.succ.setdefault(u, {}).setdefault(v, {}).update(attr)

    def has_edge(self, u: N, v: N) -> bool:
        return v in self.succ.get(u, {})

    def subgraph(self, nodes: Iterable[N]) -> DiGraph[N]:
        """The graph on `nodes` alone (a copy; networkx returns a view)."""
        keep = set(nodes)
        sub: DiGraph[N] = DiGraph()
        sub.succ = {
            u: {v: attr for v, attr in out.items() if v in keep}
            for u, out in self.succ.items()
            if u in keep
        }
        return sub

    @property
    def edges(self) -> _Edges[N]:
        """`graph.edges[u, v]`: the attributes of the edge u -> v."""
        return _Edges(self)


class _Edges(Generic[N]):
    def __init__(self, graph: DiGraph[N]) -> None:
        self.graph = graph

    def __getitem__(self, edge: tuple[N, N]) -> dict[str, Any]:
        return self.graph.succ[edge[0]][edge[1]]


def strongly_connected_components(graph: DiGraph[N]) -> Iterator[set[N]]:
    """Each strongly connected component once (Tarjan's algorithm, without recursion)."""
    index: dict[N, int] = {}
    low: dict[N, int] = {}
    stack: list[N] = []
    on_stack: set[N] = set()
    for root in graph.succ:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(graph.succ[root]))]
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(graph.succ[succ])))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: set[N] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    yield component


def find_cycle(graph: DiGraph[N], source: N) -> list[tuple[N, N]]:
    """The edges of the first cycle a depth-first walk from `source` meets (successors in
    insertion order), starting at the node the walk came back to: networkx's answer."""
    path: list[N] = [source]
    on_path = {source}
    seen = {source}
    work = [iter(graph.succ[source])]
    while work:
        for succ in work[-1]:
            if succ in on_path:
                start = path.index(succ)
                cycle = path[start:]
                return [*pairwise(cycle), (cycle[-1], succ)]
            if succ not in seen:
                seen.add(succ)
                path.append(succ)
                on_path.add(succ)
                work.append(iter(graph.succ[succ]))
                break
        else:
            work.pop()
            on_path.discard(path.pop())
    raise ValueError(f"no cycle is reachable from {source!r}")


def descendants(graph: DiGraph[N], source: N) -> set[N]:
    """Every node reachable from `source`, never `source` itself (as in networkx)."""
    found: set[N] = set()
    todo = [source]
    while todo:
        for succ in graph.succ[todo.pop()]:
            if succ not in found:
                found.add(succ)
                todo.append(succ)
    found.discard(source)
    return found
