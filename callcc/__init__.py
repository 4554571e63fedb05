"""`import callcc`: callcc's public API under the distribution's own name.

The code lives in the `engine` package (the project's layout requires that name); this module
only re-exports `engine.__all__`, so the API is defined once, in `engine/__init__.py`. It does
not lift the name clash: the interpreter still holds callcc's code as `engine`, so an
application with its own top-level `engine` package must rename or nest it (see the README).
"""

import typing as _typing
from pathlib import Path as _Path

import engine as _engine
from engine._lazy import exports as _exports

if _typing.TYPE_CHECKING:
    from engine import *  # noqa: F403  (the one definition of the public API)

if (
    _Path(_engine.__file__ or "").resolve().parent
    != _Path(__file__).resolve().parent.parent / "engine"
):
    raise ImportError(
        f"callcc's code is the package 'engine', but 'engine' was imported from "
        f"{_engine.__file__}, which is another package of the same name; rename or nest that "
        "package (for example myapp.engine), or run callcc in its own process (the CLI)",
        name="engine",
    )

__all__ = list(_engine.__all__)

if not _typing.TYPE_CHECKING:  # each name from engine on first use, as engine imports them
    __getattr__, __dir__ = _exports(__name__, dict.fromkeys(__all__, "engine"))
