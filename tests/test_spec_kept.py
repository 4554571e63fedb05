"""The store keeps every spec's text by digest, with the absolute folder it came from, so a run
resumes (and recovers) by its id from any directory, even once the spec file is gone."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from store_fixtures import query

from engine.cli import main
from engine.store import RunRecord, open_store

TOOL = '''
def refund(amount: int) -> str:
    """Refund an amount."""
    return f"refunded {amount}"
'''


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def refund_project(root: Path, module: str) -> Path:
    """A spec with an instructions file, a scripted model and a tool module beside it."""
    folder = root / "project"
    folder.mkdir()
    (folder / f"{module}.py").write_text(TOOL)
    (folder / "refund.md").write_text("You refund orders.")
    script = {"agents": {"main": [
        {"tool_calls": [{"id": "c1", "name": "refund", "arguments": {"amount": 60}}]},
        {"text": "done"},
    ]}}  # fmt: skip
    (folder / "refund.script.yaml").write_text(json.dumps(script))
    spec = {
        "spec_version": 1,
        "name": "refunds",
        "models": {"s": {"kind": "scripted", "script": "refund.script.yaml"}},
        "tools": {"refund": {"kind": "python", "ref": f"{module}:refund",
                             "description": "Refund.", "approval": True}},
        "agents": {"main": {"description": "refunds", "model": "s",
                            "instructions_file": "refund.md", "tools": ["refund"]}},
        "entrypoint": "main",
    }  # fmt: skip
    (folder / "refund.yaml").write_text(json.dumps(spec, indent=2))
    return folder


def test_a_run_resumes_by_id_from_another_directory_after_its_spec_file_is_gone(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"refund_tools_{tmp_path.name.replace('-', '_')}"
    folder = refund_project(tmp_path, module)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(folder)
    code, out, err = cli("run", "refund.yaml", "-p", "refund bob", "--store", store_url,
                         "--run-id", "bob")  # fmt: skip
    assert code == 3, (out, err)
    kept = query(store_url, "SELECT name, path, text FROM specs")
    assert kept == [("refunds", str(folder / "refund.yaml"), (folder / "refund.yaml").read_text())]
    assert query(store_url, "SELECT spec_path FROM runs") == [(str(folder / "refund.yaml"),)]

    (folder / "refund.yaml").unlink()  # the spec and its instructions file are gone;
    (folder / "refund.md").unlink()  # the script and the tool module stay in its folder
    monkeypatch.delitem(sys.modules, module)  # the module must be found in that folder again
    monkeypatch.chdir(elsewhere)
    code, out, err = cli("resume", "bob", "--store", store_url, "--approve", "c1")
    assert code == 0, (out, err)
    assert out.splitlines()[0] == (
        f"· spec refunds: the copy kept in the store (from {folder / 'refund.yaml'})"
    )
    assert out.splitlines()[-1] == "done"
    store = open_store(store_url)
    try:
        from engine.journal import rebuild

        run = store.get_run("bob")
        messages = rebuild(run, store.events("bob")).frames()[0][1].messages
    finally:
        store.close()
    assert [m.get("content") for m in messages if m["role"] == "tool"] == ["refunded 60"]


def test_an_edited_instructions_file_does_not_change_a_resume_the_kept_copy_is_used(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"refund_tools_{tmp_path.name.replace('-', '_')}"
    folder = refund_project(tmp_path, module)
    monkeypatch.chdir(folder)
    assert cli("run", "refund.yaml", "-p", "go", "--store", store_url, "--run-id", "r")[0] == 3
    (folder / "refund.md").write_text("You refund orders, politely.")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("resume", "r", "--store", store_url, "--approve", "c1")
    assert code == 0, (out, err)  # the kept copy: the edit does not matter
    assert "the copy kept in the store" in out


def test_a_relative_spec_path_without_a_kept_copy_says_where_it_came_from(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(store_url)
    try:  # a run as an older callcc recorded it: the path as typed, no copy of the spec
        store.create_run(RunRecord(
            run_id="old", spec_name="refunds", spec_digest="sha256:old", spec_path="refund.yaml",
            agent="main", status="running", version=0, nonce=None, output=None,
            created_at=1.0, updated_at=1.0,
        ))  # fmt: skip
    finally:
        store.close()
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("resume", "old", "--store", store_url, "--approve", "c1")
    assert code == 2
    assert err.endswith(
        "the path 'refund.yaml' was recorded with run 'old' when it started, relative to the"
        " folder `callcc run` ran in, and the store keeps no copy of its spec; pass --spec SPEC\n"
    )
    code, _, err = cli("recover", "old", "--store", store_url)
    assert code == 2
    assert "the path 'refund.yaml' was recorded with run 'old'" in err
