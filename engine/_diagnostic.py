"""`Diagnostic`, one located finding of validation (`engine.errors.Diagnostic`, the name to use).

Its own module so that importing `engine.errors`, which every command does, loads no
`dataclasses`: the commands that never validate a spec start without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, kw_only=True, slots=True)
class Diagnostic:
    """One finding of validation, pointing at the exact place in a file."""

    code: str
    """Stable machine-readable code, such as `unknown-field` or `undefined-tool`."""
    message: str
    """What is wrong, in one sentence."""
    file: str
    """Path of the file the finding is in."""
    line: int
    """1-based line number."""
    col: int
    """1-based column number."""
    pointer: str
    """JSON pointer of the offending node inside the document (`""` for the root)."""
    suggestion: str | None = None
    """How to fix it, when a likely fix is known."""
    severity: Literal["error", "warning"] = "error"
    """Errors make the spec invalid; warnings do not."""

    def location(self) -> str:
        """`file:line:col`, as compilers and editors print it."""
        return f"{self.file}:{self.line}:{self.col}"

    def to_dict(self) -> dict[str, object]:
        """A plain dict for `--format json`."""
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "pointer": self.pointer,
            "suggestion": self.suggestion,
        }
