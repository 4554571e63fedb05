"""The spec layer: YAML in, a validated and typed `Spec` out (it knows no HTTP and runs nothing).

Ownership, one line a module:
- `yamlload`: safe YAML with line/column of every node, refusing tags, aliases bombs, deep trees.
- `env`: `${env:NAME}` substitution in string values.
- `schema`: the JSON Schema file of the format and its one validator.
- `check`: runs env substitution, `_schema_pass` and `_semantic` over a loaded document.
- `_digraph`: the sub-agent graph's cycle and reachability checks without networkx.
- `_resolve`: `--resolve`, importing python refs and checking their signatures.
- `signature`: a python tool's function held to its parameters (`--resolve` and `Runtime`).
- `_build`: data to the frozen dataclasses of `model`, and the spec digest.
- `load`: `load_spec`, `load_stored_spec` (a spec a run store kept), `validate_file(s)`.
"""

from typing import TYPE_CHECKING

from engine._lazy import exports

if TYPE_CHECKING:
    from engine.spec.load import load_spec, load_stored_spec, validate_file, validate_files
    from engine.spec.model import (
        Agent,
        AgentTool,
        Approval,
        ExternalTool,
        Limits,
        Model,
        OpenAIModel,
        PythonTool,
        ScriptedModel,
        Spec,
        SpecSource,
        SuspendRules,
        Tool,
    )
__all__ = [
    "Agent",
    "AgentTool",
    "Approval",
    "ExternalTool",
    "Limits",
    "Model",
    "OpenAIModel",
    "PythonTool",
    "ScriptedModel",
    "Spec",
    "SpecSource",
    "SuspendRules",
    "Tool",
    "load_spec",
    "load_stored_spec",
    "validate_file",
    "validate_files",
]

if not TYPE_CHECKING:  # on first use: `engine.spec.model` alone (for a state file) loads no checks
    _LOADERS = {"load_spec", "load_stored_spec", "validate_file", "validate_files"}
    __getattr__, __dir__ = exports(
        __name__,
        {n: "engine.spec.load" if n in _LOADERS else "engine.spec.model" for n in __all__},
    )
