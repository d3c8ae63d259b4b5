"""Every result file names its command, machine and commit: the bench's Markdown names the
command line (it had machine and commit only), its figure carries the commit in its text and
in the image file's metadata, and the scripts under ``benchmarks/`` write the same head
(``density_bound.md`` had no commit)."""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from hwzswap.bench.provenance import commit_words, figure_metadata, header_lines, provenance
from hwzswap.bench.report import markdown, plot
from hwzswap.bench.results import git_state

ROOT = Path(__file__).resolve().parents[2]


def test_markdown_names_the_command(real: dict[str, Any]) -> None:
    md = markdown(real)
    assert f"Command: `{real['command']}`" in md
    assert f"commit {commit_words(real['machine']['hwzswap'])}" in md


def test_plot_carries_the_commit_in_text_and_metadata(real: dict[str, Any],
                                                      tmp_path: Path) -> None:
    commit = commit_words(real["machine"]["hwzswap"])
    png = plot(real, tmp_path / "b.png")
    comment = Image.open(png).text["Comment"]
    assert comment.startswith(f"commit {commit}") and real["command"] in comment
    svg = plot(real, tmp_path / "b.svg").read_text()
    assert f"commit {commit}" in svg  # in the figure's text and its <dc:description>
    assert figure_metadata("x.pdf", {"git_commit": "abc"})["Subject"].startswith("commit abc")


def test_header_lines_name_command_machine_commit() -> None:
    before = git_state()
    prov = provenance("python x.py --n 1")
    lines = header_lines(prov)
    assert lines[0] == "Command: `python x.py --n 1`  "
    assert lines[1].startswith(f"Machine: {prov['machine']['cpu']}")
    assert lines[2].startswith(f"Commit: {commit_words(prov)} · measured ")
    # (another commit may land meanwhile in a shared checkout: either state is right)
    assert (prov["git_commit"], prov["git_dirty"]) in (before, git_state())
    assert commit_words({}) == "unknown (not a git checkout)"


def test_density_bound_script_names_its_commit(tmp_path: Path) -> None:
    """``benchmarks/density_bound.py`` on a few pages: its Markdown and JSON name the command
    (as a shell would take it), the machine and the commit."""
    import numpy as np

    from hwzswap.bench.corpus import load_bundled, save_pages

    corpus = tmp_path / "few.pages"
    save_pages(corpus, np.ascontiguousarray(load_bundled(max_pages=24)))
    before = git_state()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(
            "density_bound_under_test", ROOT / "benchmarks" / "density_bound.py")
        mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
        argv = ["--corpus", str(corpus), "--scales", "1", "--max-pages", "4",
                "--md", str(tmp_path / "d b.md"), "--json", str(tmp_path / "d.json")]
        assert mod.main(argv) == 0
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    md = (tmp_path / "d b.md").read_text()
    doc = json.loads((tmp_path / "d.json").read_text())
    assert shlex.split(doc["command"])[-len(argv):] == argv  # quoted: "d b.md" stays one
    assert f"Command: `{doc['command']}`" in md
    assert (doc["git_commit"], doc["git_dirty"]) in (before, git_state())
    assert f"Commit: {commit_words(doc)} · computed {doc['created']}" in md
