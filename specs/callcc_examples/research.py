"""Tools of the research example (`research.yaml`)."""

from __future__ import annotations

_NOTES = {
    "continuations": "A continuation captures the rest of a computation as a value.",
    "call/cc": "call/cc passes the current continuation to a function.",
    "coroutines": "Coroutines suspend and resume cooperatively.",
}


def search_notes(query: str, limit: int = 3) -> list[dict[str, str]]:
    """Return notes whose topic or text mentions the query, best first."""
    q = query.lower()
    hits = [
        {"topic": topic, "text": text}
        for topic, text in sorted(_NOTES.items())
        if q in topic or q in text.lower()
    ]
    return hits[:limit]
