"""`engine.spec._digraph` answers as networkx does, on any graph the spec check could build.

The sub-agent check (`agent-cycle`, `unreachable-agent`) runs on it instead of networkx, so
`callcc validate` need not import networkx; its messages name the cycle networkx would find.
"""

from __future__ import annotations

import networkx as nx
from hypothesis import given
from hypothesis import strategies as st

from engine.spec import _digraph

NODES = st.sampled_from("abcdefg")
EDGES = st.lists(st.tuples(NODES, NODES, st.integers(0, 3)), max_size=25)


def both(
    nodes: list[str], edges: list[tuple[str, str, int]]
) -> tuple[_digraph.DiGraph[str], nx.DiGraph[str]]:
    """The same graph built twice, ours and networkx's."""
    ours: _digraph.DiGraph[str] = _digraph.DiGraph()
    theirs: nx.DiGraph[str] = nx.DiGraph()
    for graph in (ours, theirs):
        graph.add_nodes_from(nodes)
        for u, v, index in edges:
            graph.add_edge(u, v, index=index)
    return ours, theirs


@given(st.lists(NODES, max_size=7, unique=True), EDGES)
def test_the_same_components_cycles_and_descendants_as_networkx(
    nodes: list[str], edges: list[tuple[str, str, int]]
) -> None:
    ours, theirs = both(nodes, edges)
    components = list(_digraph.strongly_connected_components(ours))
    expected = list(nx.strongly_connected_components(theirs))
    assert sorted(map(sorted, components)) == sorted(map(sorted, expected))
    assert sum(len(c) for c in components) == len(theirs)  # each node in exactly one
    for component in components:
        first = min(component)
        assert ours.has_edge(first, first) == theirs.has_edge(first, first)
        if len(component) == 1 and not theirs.has_edge(first, first):
            continue
        cycle = _digraph.find_cycle(ours.subgraph(component), source=first)
        assert cycle == nx.find_cycle(theirs.subgraph(component), source=first)
        u, v = cycle[0]
        assert ours.edges[u, v] == theirs.edges[u, v]  # the last add_edge's attributes
    for node in theirs:
        assert _digraph.descendants(ours, node) == nx.descendants(theirs, node)


def test_a_spec_cycle_is_reported_at_the_tool_networkx_would_name() -> None:
    """Two edges between the same agents: the later tool's attributes win, as in networkx."""
    ours, theirs = both(["a", "b"], [("a", "b", 0), ("b", "a", 1), ("a", "b", 2)])
    assert _digraph.find_cycle(ours, source="a") == [("a", "b"), ("b", "a")]
    assert ours.edges["a", "b"] == theirs.edges["a", "b"] == {"index": 2}
