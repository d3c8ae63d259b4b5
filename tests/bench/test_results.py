"""The results document (schema version 1), the machine description, table and plot."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from rich.console import Console

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.report import COLUMNS, markdown, plot, print_table, rows
from hwzswap.bench.results import (
    RESULT_FIELDS,
    SCHEMA_VERSION,
    machine_info,
    read_json,
    schema_problems,
    write_json,
)
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def doc() -> dict:
    pages = load_bundled(max_pages=128)
    wl = build_workload("pressure", pages, seed=1)
    d = run_bench(wl, BenchRun(backends=["lz4", "zstd", "842-nx", "lz4-opencl"]))
    d["skipped"].append({"backend": "imaginary", "reason": "for the table test"})
    return d


def test_document_conforms_to_the_schema(doc: dict, tmp_path) -> None:
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert schema_problems(doc) == []
    path = write_json(doc, tmp_path / "sub" / "r.json")
    back = read_json(path)
    assert back == json.loads(json.dumps(doc))
    assert schema_problems(back) == []


def test_a_json_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    """The results file used to go through a fixed NAME.tmp left behind on any error."""
    import pytest

    path = write_json({"a": 1}, tmp_path / "r.json")
    with pytest.raises(TypeError):
        write_json({"a": object()}, path)  # not JSON (the old code left r.json.tmp)
    assert read_json(path) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_every_documented_result_key_present_with_its_type(doc: dict) -> None:
    names = [r["backend"] for r in doc["results"]]
    assert {"lz4", "zstd", "842-nx"} <= set(names)
    for r in doc["results"]:
        for key, types in RESULT_FIELDS.items():
            assert isinstance(r[key], types), (r["backend"], key, r[key])
        for key in ("store_us", "load_us"):
            assert set(r[key]) >= {"p50", "p99"}
        # null (with its reason) where the stack skipped work the codec alone did
        for kind in ("store", "load"):
            if r[f"{kind}_vs_raw"] is None:
                assert r[f"{kind}_vs_raw_note"]
            else:
                assert r[f"{kind}_vs_raw"] == pytest.approx(
                    r[f"{kind}_pages_per_s"] / r[f"raw_{kind}_pages_per_s"], rel=1e-3)
    nx = next(r for r in doc["results"] if r["backend"] == "842-nx")
    assert nx["time_basis"] == "modeled" and nx["device_us_per_page"] > 0
    w = doc["workload"]
    assert w["name"] == "pressure" and w["pages"] == 128 and w["seed"] == 1
    assert len(w["page_sha256"]) == 64


def test_schema_checker_finds_what_is_missing_or_wrong(doc: dict) -> None:
    bad = copy.deepcopy(doc)
    del bad["results"][0]["ratio"]
    bad["results"][0]["mismatches"] = "none"
    bad["results"][0]["store_us"] = {"p50": 1.0}
    bad["results"][0]["rejects"].pop("alloc_fail")
    bad["skipped"].append({"backend": "x"})
    problems = schema_problems(bad)
    for fragment in ("missing 'ratio'", "mismatches", "store_us.p99", "rejects.alloc_fail",
                     "skipped["):
        assert any(fragment in p for p in problems), (fragment, problems)
    assert schema_problems({"schema_version": 1}) != []
    assert schema_problems([]) == ["document: not a JSON object"]
    modelled = copy.deepcopy(doc)
    r = next(r for r in modelled["results"] if r["time_basis"] == "modeled")
    r["device_us_per_page"] = None
    assert any("device_us_per_page" in p for p in schema_problems(modelled))


def test_machine_info_describes_the_host() -> None:
    m = machine_info()
    assert m["cores"] >= 1 and m["cpu"]
    for lib in ("numpy", "lz4", "python-lzo", "zstandard", "pyopencl", "numba"):
        assert lib in m["libraries"]
    assert m["libraries"]["numpy"] == np.__version__
    assert m["codec_libraries"]["liblz4"] and m["codec_libraries"]["libzstd"]
    assert isinstance(m["opencl_devices"], list)
    for dev in m["opencl_devices"]:
        assert dev["name"] and dev["compute_units"] >= 1
    json.dumps(m)  # plain JSON


def test_plot_writes_a_png(doc: dict, tmp_path) -> None:
    out = plot(doc, tmp_path / "deep" / "bench.png")
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 20_000  # six panels, not an empty canvas


def test_plot_with_no_results_still_writes(doc: dict, tmp_path) -> None:
    empty = dict(doc, results=[])
    assert plot(empty, tmp_path / "e.png").read_bytes()[:8] == PNG_MAGIC


def test_table_and_markdown_show_every_backend(doc: dict) -> None:
    console = Console(record=True, width=240)
    print_table(doc, console)
    text = console.export_text()
    narrow = Console(record=True, width=100)
    print_table(doc, narrow)
    narrow_text = narrow.export_text()
    md = markdown(doc)
    for r in doc["results"]:
        assert r["backend"] in text and r["backend"] in narrow_text
        assert f"| {r['backend']} |" in md
    assert "skipped imaginary: for the table test" in text
    assert md.count("\n|") == len(doc["results"]) + 2  # header, rule, one row per backend
    assert all(len(row) == len(COLUMNS) for row in rows(doc))
    assert "emulated device" in md  # 842-nx's host CPU excludes the emulation


def test_titles_say_the_stream_structure(doc: dict) -> None:
    assert ("reclaim 32 folios · readahead 8 · folio pages 1:75% 16:25%"
            in markdown(doc))
    old = copy.deepcopy(doc)  # a document from before the structure was recorded
    del old["workload"]["structure"]
    assert "readahead" not in markdown(old)
    old["workload"]["params"] = {"load_batch": 32}
    assert "loads in readahead batches of 32" in markdown(old)


def test_failed_backends_get_a_row_and_no_writeback_a_note(doc: dict) -> None:
    d = copy.deepcopy(doc)
    d["failed"].append({"backend": "broken", "phase": "constructor",
                        "error": "RuntimeError: no device"})
    d["results"][0]["saw_writeback"] = False
    table = rows(d)
    assert table[-1][0] == "broken" and table[-1][-1] == "FAILED (constructor)"
    md = markdown(d)
    assert "FAILED broken [constructor]: RuntimeError: no device" in md
    assert f"no writeback: {d['results'][0]['backend']} (reclaim) never wrote a page back" in md
    assert "!" in table[0][COLUMNS.index(("written\nback", "right"))]


def test_git_state_says_whether_tracked_files_differ_from_the_commit(tmp_path) -> None:
    """A result measured on a modified checkout said only ``git rev-parse HEAD``: it claimed
    a clean commit. ``git_dirty`` is true when a tracked file differs (untracked files do not
    count), None outside a git checkout, and the Markdown heading says ``(modified)``."""
    import subprocess

    from hwzswap.bench.results import git_state

    assert git_state(tmp_path) == (None, None)  # not a checkout
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, env=env,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "r.json").write_text("{}\n")
    (tmp_path / "README.md").write_text("figures\n")
    git("add", "a.py", "benchmarks", "README.md")
    git("commit", "-q", "-m", "one")
    commit, dirty = git_state(tmp_path)
    assert commit and len(commit) == 12 and dirty is False
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert git_state(tmp_path) == (commit, False)
    # results a series of runs writes (run_all.py), and the docs holding its figures, are
    # not the code the figures depend on
    (tmp_path / "benchmarks" / "results" / "r.json").write_text('{"new": 1}\n')
    (tmp_path / "README.md").write_text("new figures\n")
    assert git_state(tmp_path) == (commit, False)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state(tmp_path) == (commit, True)
    git("add", "a.py")  # staged, not committed: still not the commit's code
    assert git_state(tmp_path) == (commit, True)


def test_markdown_heading_marks_a_modified_checkout(doc: dict) -> None:
    info = machine_info()["hwzswap"]
    assert info["git_dirty"] in (True, False, None) and "git_dirty" in info
    d = copy.deepcopy(doc)
    d["machine"]["hwzswap"].update(git_commit="0123456789ab", git_dirty=True)
    assert "commit 0123456789ab (modified))." in markdown(d)
    d["machine"]["hwzswap"]["git_dirty"] = False
    assert "commit 0123456789ab)." in markdown(d)
    assert "(modified)" not in markdown(d)
