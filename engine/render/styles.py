"""Colours and shapes of the pictures, and the legend that explains them.

Each style is a dict of Graphviz attributes that the graph builders copy onto nodes; the DOT
and Mermaid exporters read them back, so re-styling a node in the graph re-styles it in both.
"""

from __future__ import annotations

import networkx as nx

AGENT = {"shape": "box", "style": "rounded,filled", "fillcolor": "#e3f2fd", "color": "#1565c0"}
FADED = {
    "style": "rounded,filled,dashed",
    "fillcolor": "#f5f5f5",
    "color": "#9e9e9e",
    "fontcolor": "#9e9e9e",
}
PYTHON = {"shape": "ellipse", "style": "filled", "fillcolor": "#f1f8e9", "color": "#558b2f"}
EXTERNAL = {
    "shape": "ellipse",
    "style": "filled,dashed",
    "fillcolor": "#ede7f6",
    "color": "#5e35b1",
    "penwidth": "2",
}
APPROVAL = {
    "shape": "hexagon",
    "style": "filled,bold",
    "fillcolor": "#ffe0b2",
    "color": "#e65100",
    "penwidth": "2",
}
MCP = {"shape": "component", "style": "filled", "fillcolor": "#e0f2f1", "color": "#00695c"}
"""An MCP server: one node, a row per tool marked by its approval."""
MCP_APPROVAL = dict(MCP, color="#e65100", penwidth="2")
"""An MCP server some of whose tools need approval."""
FRAME = {"shape": "plain", "fillcolor": "#e3f2fd", "color": "#1565c0"}
STOPPED = {"shape": "plain", "fillcolor": "#eeeeee", "color": "#616161", "fontcolor": "#616161"}
"""A frame of a run a `stop` decision ended: grey, like a call that will not run."""
WAITING = {
    "shape": "box",
    "style": "filled,bold",
    "fillcolor": "#ffcc80",
    "color": "#e65100",
    "penwidth": "3",
}
DECIDED = {
    "shape": "box",
    "style": "filled,bold",
    "fillcolor": "#fff3e0",
    "color": "#2e7d32",
    "penwidth": "3",
}
STATUS = {
    "done": {
        "shape": "box",
        "style": "rounded,filled",
        "fillcolor": "#c8e6c9",
        "color": "#2e7d32",
        "fontsize": "10",
    },
    "rejected": {
        "shape": "box",
        "style": "rounded,filled",
        "fillcolor": "#e0e0e0",
        "color": "#757575",
        "fontcolor": "#616161",
        "fontsize": "10",
    },
    "failed": {
        "shape": "box",
        "style": "rounded,filled",
        "fillcolor": "#ffcdd2",
        "color": "#c62828",
        "fontsize": "10",
    },
    "running": {
        "shape": "box",
        "style": "rounded,filled,dashed",
        "fillcolor": "#e1f5fe",
        "color": "#0277bd",
        "fontsize": "10",
    },
}


def add_legend(graph: nx.DiGraph[str], kind: str, *, servers: bool = False) -> None:
    """Add the legend nodes (cluster `legend`) explaining the styles of a spec or stack graph
    (`servers`: the spec has MCP servers)."""
    if kind == "spec":
        items = [
            ("agent", AGENT),
            ("python tool", PYTHON),
            ("external tool", EXTERNAL),
            ("needs approval", APPROVAL),
            ("unreachable agent", dict(AGENT, **FADED)),
        ]
        if servers:
            items.insert(3, ("MCP server", MCP))
    else:
        items = [
            ("frame (agent call)", dict(FRAME, shape="box", style="filled")),
            ("waiting for a decision", WAITING),
            ("decided, not resumed", DECIDED),
            ("done", STATUS["done"]),
            ("rejected", STATUS["rejected"]),
            ("failed", STATUS["failed"]),
        ]
    for i, (text, style) in enumerate(items):
        graph.add_node(
            f"legend:{i}",
            kind="legend",
            title=text,
            rows=(),
            cluster="legend",
            strike=text == "rejected",
            **style,
        )
