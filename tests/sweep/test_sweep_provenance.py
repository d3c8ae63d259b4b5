"""A sweep's outputs name their command, machine and commit (``table.md``'s head, the plots'
text and metadata), and a sweep that merges records measured with different code (resumed
after a commit or an edit) says so: in the resume's output, in ``table.md`` and in
``sweep.json`` (``code``: which commits, which runs)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from rich.console import Console

from hwzswap.bench.provenance import commit_words
from hwzswap.bench.results import cpu_model, git_state
from hwzswap.sweep import store
from hwzswap.sweep.execute import other_code_warning, run_sweep
from hwzswap.sweep.plan import expand
from hwzswap.sweep.spec import load_sweep

from sweep_helpers import write_sweep


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """lz4 against zstd, 32 pages: two runs of a second."""
    d = tmp_path_factory.mktemp("prov")
    spec = load_sweep(write_sweep(d, {
        "axes": {"backend": ["lz4", "zstd"]},
        "fixed": {"workload": "roundtrip", "pages": 32, "repeat": 1}}))
    plan = expand(spec)
    out = run_sweep(spec, plan, d / "out", timeout=300, command="hwzswap sweep s.yaml -o out")
    assert out.doc["runs"]["ok"] == 2, [r.get("reason") for r in out.doc["records"]]
    return {"spec": spec, "plan": plan, "out": d / "out", "doc": out.doc}


def test_table_names_command_machine_and_commit(swept: dict[str, Any]) -> None:
    table = (swept["out"] / "table.md").read_text()
    head = table.split("\n\n")[1]
    assert "Command: `hwzswap sweep s.yaml -o out`" in head
    assert f"Machine: {cpu_model()}" in head
    recs = swept["doc"]["records"]
    code = {(r["machine"]["hwzswap"]["git_commit"], r["machine"]["hwzswap"]["git_dirty"])
            for r in recs}
    if len(code) == 1:  # (a commit landing between the two runs makes them two)
        assert f"Commit: {commit_words(recs[0]['machine']['hwzswap'])}" in head
        assert "MIXED CODE" not in table
    checkout = swept["doc"]["checkout"]  # the code that merged them (HEAD may move since)
    assert set(checkout) == {"git_commit", "git_dirty"}
    if git_state()[0] is not None:
        assert len(checkout["git_commit"]) == 12 and isinstance(checkout["git_dirty"], bool)
    for png in ("throughput_vs_ratio.png", "speedup_vs_lz4.png"):
        comment = Image.open(swept["out"] / png).text["Comment"]
        assert comment.startswith("commit ") and "hwzswap sweep s.yaml -o out" in comment


def test_resume_over_records_of_other_code_says_which(swept: dict[str, Any]) -> None:
    out: Path = swept["out"]
    lz4 = next(r for r in swept["plan"].runs if r.backend == "lz4")
    path = store.record_path(out, lz4.run_id)
    rec = json.loads(path.read_text())
    rec["machine"]["hwzswap"].update(git_commit="deadbeef", git_dirty=True)
    path.write_text(json.dumps(rec))
    buf = io.StringIO()
    again = run_sweep(swept["spec"], swept["plan"], out, timeout=300,
                      console=Console(file=buf, width=400))
    assert again.ran == []  # kept, not run again: the researcher decides
    said = buf.getvalue()
    assert "WARNING" in said and "deadbeef (modified): 1 run" in said and lz4.run_id in said
    code = again.doc["code"]
    assert len(code) == 2
    assert {"git_commit": "deadbeef", "git_dirty": True, "runs": [lz4.run_id]} in code
    table = (out / "table.md").read_text()
    assert "MIXED CODE" in table and f"deadbeef (modified): 1 run: {lz4.run_id}" in table
    assert "Commit: several" in table
    merged = json.loads((out / "sweep.json").read_text())
    assert merged["code"] == code
    comment = Image.open(out / "speedup_vs_lz4.png").text["Comment"]
    assert "MIXED CODE" in comment and "deadbeef (modified)" in comment


def test_other_code_warning_is_quiet_for_this_clean_checkout() -> None:
    rec = {"run_id": "a", "machine": {"hwzswap": {"git_commit": "abc", "git_dirty": False}}}
    assert other_code_warning([rec], ("abc", False)) is None
    warned = other_code_warning([rec], ("def", False))
    assert warned is not None and "abc: 1 run (a)" in warned and "(def)" in warned
    dirty = {**rec, "machine": {"hwzswap": {"git_commit": "abc", "git_dirty": True}}}
    assert "abc (modified)" in (other_code_warning([dirty], ("abc", True)) or "")
