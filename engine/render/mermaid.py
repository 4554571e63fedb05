"""Mermaid flowchart text from a render graph, for READMEs and GitHub issues.

Node ids are `n0`, `n1`, ... in graph order. Label text is one line per field, escaped with
Mermaid entity codes (`#quot;`, `#60;`, ...), so no character of a message can close a label,
start a shape or inject HTML; our own `<b>` and `<br/>` are the only markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from engine.render._text import FIELD_WIDTH, shorten

_CODES = {
    '"': "#quot;",
    "#": "#35;",
    "&": "#38;",
    "<": "#60;",
    ">": "#62;",
    "{": "#123;",
    "}": "#125;",
    "|": "#124;",
    "[": "#91;",
    "]": "#93;",
    "`": "#96;",
    ";": "#59;",
    "\\": "#92;",
}
_TABLE = str.maketrans(_CODES)
_SHAPES = {
    "box": ('["', '"]'),
    "ellipse": ('(["', '"])'),
    "hexagon": ('{{"', '"}}'),
    "plain": ('["', '"]'),
}


def text(value: Any, width: int = FIELD_WIDTH * 2) -> str:
    """`value` as one shortened line, safe inside a quoted Mermaid label."""
    return shorten(str(value), width).translate(_TABLE)


def to_mermaid(graph: nx.DiGraph[str]) -> str:
    """`flowchart TD` (or LR) text for a graph built by `spec_graph` or `stack_graph`."""
    ids = {node: f"n{i}" for i, node in enumerate(graph.nodes)}
    direction = "LR" if graph.graph.get("rankdir") == "LR" else "TD"
    out = [f"flowchart {direction}"]
    title = graph.graph.get("title")
    if title:
        out.append(f"  %% {text(title)}")
    clusters: dict[str, list[str]] = {}
    styles: list[str] = []
    for node, data in graph.nodes(data=True):
        line = f"{ids[node]}{_shape(data)}"
        cluster = data.get("cluster")
        if cluster:
            clusters.setdefault(str(cluster), []).append(line)
        else:
            out.append("  " + line)
        styles.append(f"  style {ids[node]} {_style(data)}")
    for source, target, data in graph.edges(data=True):
        arrow = {"dashed": "-.->", "bold": "==>", "invis": "~~~"}.get(data.get("style", ""), "-->")
        label = f'|"{text(data["label"])}"|' if data.get("label") else ""
        out.append(f"  {ids[source]} {arrow}{label} {ids[target]}")
    for cluster, lines in clusters.items():
        out.append(f'  subgraph {_cluster_id(cluster)}["{text(cluster.capitalize())}"]')
        out.extend("    " + line for line in lines)
        out.append("  end")
    out.extend(styles)
    return "\n".join(out) + "\n"


def _cluster_id(name: str) -> str:
    return "cluster_" + "".join(ch if ch.isalnum() else "_" for ch in name)


def _shape(data: Mapping[str, Any]) -> str:
    shape = str(data.get("shape", "box"))
    opening, closing = _SHAPES.get(shape, _SHAPES["box"])
    if shape == "box" and "rounded" in str(data.get("style", "")):
        opening, closing = '("', '")'
    title = text(data.get("title", ""))
    strike = bool(data.get("strike"))
    parts = [f"<b>{'<s>' + title + '</s>' if strike else title}</b>"]
    for caption, body in data.get("rows", ()):
        row = f"{text(caption)}: {text(body)}" if caption else text(body)
        parts.append(f"<s>{row}</s>" if strike else row)
    return opening + "<br/>".join(parts) + closing


def _style(data: Mapping[str, Any]) -> str:
    parts = [f"fill:{_color(data.get('fillcolor', '#ffffff'))}"]
    parts.append(f"stroke:{_color(data.get('color', '#333333'))}")
    if data.get("penwidth"):
        parts.append(f"stroke-width:{_number(data['penwidth'])}px")
    if data.get("fontcolor"):
        parts.append(f"color:{_color(data['fontcolor'])}")
    if "dashed" in str(data.get("style", "")):
        parts.append("stroke-dasharray:5 3")
    return ",".join(parts)


def _color(value: Any) -> str:
    value = str(value)
    ok = value.startswith("#") and all(c in "0123456789abcdefABCDEF" for c in value[1:])
    return value if ok else "#cccccc"


def _number(value: Any) -> str:
    try:
        return f"{float(value):g}"
    except ValueError:
        return "1"
