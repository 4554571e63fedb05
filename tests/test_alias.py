"""`import callcc`: the same public API as `engine`, defined once, and a clear error on a clash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import callcc
import engine


def test_import_callcc_exposes_exactly_engines_public_api() -> None:
    assert callcc.__all__ == engine.__all__
    public = {name for name in dir(callcc) if not name.startswith("_")}  # loaded or not yet
    assert public == set(engine.__all__)
    for name in engine.__all__:
        assert getattr(callcc, name) is getattr(engine, name), name


def test_an_applications_own_engine_package_gives_a_clear_import_error(tmp_path: Path) -> None:
    """Start-up import order is the point: a fresh interpreter with the clash on its path."""
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "__init__.py").write_text("APP = True\n", encoding="utf-8")
    shadow = tmp_path / "engine" / "__init__.py"
    proc = subprocess.run(
        [sys.executable, "-c", "import callcc"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        f"ImportError: callcc's code is the package 'engine', but 'engine' was imported from "
        f"{shadow}, which is another package of the same name; rename or nest that package (for "
        "example myapp.engine), or run callcc in its own process (the CLI)"
    )
