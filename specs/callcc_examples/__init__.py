"""Tool functions of the example specs: deterministic, no I/O, plain dicts and strings back."""
