"""The CLI's output streams: whatever a run holds, writing it never raises.

Text from a model or a document may hold a lone surrogate (JSON `"\\ud800"` reads as one); a
UTF-8 terminal or pipe refuses to encode it (`sys.stdout` is strict), which would turn a
finished run into a traceback. Every write goes through `Escaping`, which writes such a code
point as its JSON escape `\\ud800`: inside `--format json` output that is the same string,
lossless; in text output it is at least visible.
"""

from __future__ import annotations

from typing import Any, TextIO, cast

from engine._json import escape_surrogates


class Escaping:
    """A text stream that writes to `stream` with lone surrogates escaped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        """Where the text goes."""

    def write(self, text: str) -> int:
        """Write `text`, escaped; return the length of `text` (as `TextIO.write` does)."""
        self.stream.write(escape_surrogates(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)  # flush, isatty, encoding, getvalue, ...


def escaping(stream: TextIO) -> TextIO:
    """`stream` wrapped in `Escaping` (once)."""
    return stream if isinstance(stream, Escaping) else cast(TextIO, Escaping(stream))
