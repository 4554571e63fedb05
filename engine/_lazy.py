"""Package attributes imported on first use (PEP 562), so `import engine` and the CLI's start-up
load no module a command does not need.

A package lists `{public name: module that defines it}` and binds what `exports` returns:

    if TYPE_CHECKING:            # the type checker (and a reader) sees the plain imports
        from engine.runtime import Runtime
    else:
        __getattr__, __dir__ = exports(__name__, {"Runtime": "engine.runtime"})

`from engine import Runtime`, `engine.Runtime` and `from engine import *` all work; the first use
imports the module and keeps the value in the package, so the second use costs nothing. A name
not in the table raises `AttributeError`, which is what lets `from engine import durable` fall
back to importing the submodule.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def exports(
    package: str, table: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`, importing each name of `table` from its
    module on first access."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}", name=name)
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
