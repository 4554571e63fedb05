"""Graphviz DOT text from a render graph: deterministic, every label an escaped HTML label.

The same graph gives byte-identical text: nodes and edges in insertion order, attributes in a
fixed order, no timestamps. Every piece of text goes through `html` (so `<`, `>`, `&`, quotes
and braces can never end a label early) and arrives already shortened by the graph builder;
`html` shortens again as a last guard, so even a 100 kB field stays one short line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from engine.render._text import FIELD_WIDTH, shorten

STYLE_ATTRS = ("shape", "style", "fillcolor", "color", "penwidth", "fontcolor", "fontsize")
"""Graphviz attributes copied from node and edge data, in this order."""
FONT = "Helvetica"
_HTML = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#39;",
    "{": "&#123;",
    "}": "&#125;",
    "|": "&#124;",
    "[": "&#91;",
    "]": "&#93;",
}
_HTML_TABLE = str.maketrans(_HTML)


def html(text: Any, width: int = FIELD_WIDTH * 2) -> str:
    """`text` as one shortened line, safe inside a Graphviz HTML-like label."""
    return shorten(str(text), width).translate(_HTML_TABLE)


def quote(text: Any) -> str:
    """A DOT double-quoted string (for ids and attribute values)."""
    value = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + value.replace("\n", " ").replace("\r", " ") + '"'


def to_dot(graph: nx.DiGraph[str]) -> str:
    """DOT text for a graph built by `spec_graph` or `stack_graph` (or shaped like one)."""
    name = graph.graph.get("kind", "callcc")
    out = [f"digraph {quote(name)} {{"]
    title = graph.graph.get("title")
    label = f", label=<<B>{html(title)}</B>>, labelloc=t" if title else ""
    out.append(
        f"  graph [rankdir={quote(graph.graph.get('rankdir', 'TB'))}, "
        f"fontname={quote(FONT)}, nodesep=0.3, ranksep=0.45{label}];"
    )
    out.append(f'  node [fontname={quote(FONT)}, fontsize=11, margin="0.12,0.06"];')
    out.append(f'  edge [fontname={quote(FONT)}, fontsize=9, color="#616161"];')
    clusters: dict[str, list[str]] = {}
    legend: list[Mapping[str, Any]] = []
    for node, data in graph.nodes(data=True):
        line = f"{quote(node)} [{_node_attrs(data)}];"
        cluster = data.get("cluster")
        if cluster == "legend":
            legend.append(data)
        elif cluster:
            clusters.setdefault(str(cluster), []).append(line)
        else:
            out.append("  " + line)
    for source, target, data in graph.edges(data=True):
        attrs = _style(data)
        if data.get("label"):
            attrs.append(f"label=<{html(data['label'])}>")
        joined = f" [{', '.join(attrs)}]" if attrs else ""
        out.append(f"  {quote(source)} -> {quote(target)}{joined};")
    for cluster, lines in clusters.items():
        out.append(f"  subgraph {quote('cluster_' + cluster)} {{")
        out.append(
            f'    label=<<B>{html(cluster.capitalize())}</B>>; style="rounded,dashed"; '
            'color="#bdbdbd"; fontsize=10;'
        )
        # dot lays a row of unconnected nodes out right to left: reversed, they read in order
        out.extend("    " + line for line in reversed(lines))
        out.append("  }")
    if legend:
        out.append(f'  "legend" [shape="plain", label=<{_legend(legend)}>];')
    out.append("}")
    return "\n".join(out) + "\n"


LEGEND_COLUMNS = 3
"""Swatches per row of the legend."""


def _legend(items: list[Mapping[str, Any]]) -> str:
    """The legend as one small table of coloured swatches (a node per item made it as wide as
    the picture): each swatch has the fill, border and text colour of what it explains."""
    columns = min(LEGEND_COLUMNS, len(items))
    head = (
        f'<TR><TD COLSPAN="{columns}" BORDER="0" ALIGN="LEFT">'
        '<FONT POINT-SIZE="8" COLOR="#757575"><B>Legend</B></FONT></TD></TR>'
    )
    rows = []
    for start in range(0, len(items), columns):
        cells = []
        for data in items[start : start + columns]:
            text = html(data.get("title", ""))
            if data.get("strike"):
                text = f"<S>{text}</S>"
            border = "2" if float(data.get("penwidth") or 1) >= 2 else "1"
            cells.append(
                f"<TD BGCOLOR={quote(data.get('fillcolor', '#ffffff'))} "
                f"COLOR={quote(data.get('color', '#000000'))} BORDER={quote(border)}>"
                f'<FONT POINT-SIZE="8" COLOR={quote(data.get("fontcolor", "#000000"))}>'
                f"{text}</FONT></TD>"
            )
        rows.append("<TR>" + "".join(cells) + "</TR>")
    return (
        '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3" CELLPADDING="2">'
        + head
        + "".join(rows)
        + "</TABLE>"
    )


def _style(data: Mapping[str, Any]) -> list[str]:
    return [f"{key}={quote(data[key])}" for key in STYLE_ATTRS if data.get(key) is not None]


def _node_attrs(data: Mapping[str, Any]) -> str:
    label = _table(data) if data.get("table") else _plain(data)
    return ", ".join([*_style(data), f"label=<{label}>"])


def _rows(data: Mapping[str, Any]) -> list[str]:
    out = []
    for caption, text in data.get("rows", ()):
        body = html(text)
        if data.get("strike"):
            body = f"<S>{body}</S>"
        out.append(f"<I>{html(caption)}</I> {body}" if caption else body)
    return out


def _plain(data: Mapping[str, Any]) -> str:
    title = html(data.get("title", ""))
    if data.get("strike"):
        title = f"<S>{title}</S>"
    parts = [f"<B>{title}</B>"]
    parts += [f'<FONT POINT-SIZE="9">{row}</FONT>' for row in _rows(data)]
    return "<BR/>".join(parts)


def _table(data: Mapping[str, Any]) -> str:
    fill = quote(data.get("fillcolor", "#ffffff"))
    color = quote(data.get("color", "#000000"))
    head = (
        f'<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="0" CELLPADDING="3" '
        f'STYLE="ROUNDED" BGCOLOR={fill} COLOR={color}>'
    )
    cells = [f'<TR><TD ALIGN="CENTER"><B>{html(data.get("title", ""))}</B></TD></TR>']
    cells += [
        f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="9">{row}</FONT></TD></TR>' for row in _rows(data)
    ]
    return head + "".join(cells) + "</TABLE>"
