"""The limit on a reclaim pass and a readahead window (``MAX_STRUCTURE``) is one rule, applied
at every entry point: ``record`` once wrote files that ``bench`` then refused to replay, and
``bench --reclaim-batch 99999999999999999999`` was taken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.workload import (
    MAX_STRUCTURE,
    build_workload,
    load_workload,
    save_workload,
    structure_problem,
)
from hwzswap.cli import main
from hwzswap.errors import WorkloadError
from hwzswap.sweep.spec import SweepSpecError, parse_sweep

TOO_BIG = ["1048577", "99999999999999999999"]


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return load_bundled(max_pages=16)


def test_the_limit_is_the_one_the_reader_applies() -> None:
    assert MAX_STRUCTURE == 1 << 20
    assert structure_problem(MAX_STRUCTURE) is None and structure_problem(1) is None
    for bad in (0, MAX_STRUCTURE + 1, 10**20, 2.0, "8", True, None):
        assert structure_problem(bad) is not None, bad
    # past Python's int-to-text digit limit: still a message, not a ValueError
    assert "too large to show" in structure_problem(10**5000)  # type: ignore[operator]


@pytest.mark.parametrize("command", ["bench", "record"])
@pytest.mark.parametrize("flag", ["--reclaim-batch", "--load-batch"])
@pytest.mark.parametrize("value", TOO_BIG)
def test_a_flag_past_the_limit_is_a_usage_error_naming_it(
        command: str, flag: str, value: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.hwzwl"
    extra = ["-o", str(out)] if command == "record" else ["--repeat", "1"]
    with pytest.raises(SystemExit) as exc:  # argparse's usage error
        main([command, "--pages", "8", flag, value, *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be a whole number 1..{MAX_STRUCTURE}, got {value}" in err
    assert not out.exists()  # nothing was written


def test_record_at_the_limit_writes_a_file_bench_reads_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.hwzwl"
    assert main(["record", "--pages", "8", "--reclaim-batch", str(MAX_STRUCTURE),
                 "--load-batch", str(MAX_STRUCTURE), "-o", str(out)]) == 0
    wl = load_workload(out)  # what bench --workload FILE reads first
    assert wl.structure["reclaim_batch"] == wl.structure["load_batch"] == MAX_STRUCTURE


@pytest.mark.parametrize("what", ["reclaim_batch", "load_batch"])
def test_building_and_saving_apply_the_same_limit(what: str, pages: np.ndarray,
                                                  tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match=rf"{what} must be a whole number 1\.\.{MAX_STRUCTURE}"):
        build_workload("roundtrip", pages, **{what: MAX_STRUCTURE + 1})
    wl = build_workload("roundtrip", pages)
    wl.structure = {**wl.structure, what: MAX_STRUCTURE + 1}  # a Workload made in code
    target = tmp_path / "w.hwzwl"
    with pytest.raises(WorkloadError, match=rf"structure\.{what} must be a whole number"):
        save_workload(wl, target)
    assert not target.exists()


@pytest.mark.parametrize("what", ["reclaim_batch", "load_batch"])
def test_a_sweep_file_applies_the_same_limit(what: str) -> None:
    with pytest.raises(SweepSpecError, match=rf"s\.yaml: axes\.{what}\[1\]: must be a whole "
                                             rf"number 1\.\.{MAX_STRUCTURE}"):
        parse_sweep({"axes": {"backend": ["lz4"], what: [8, MAX_STRUCTURE + 1]}}, "s.yaml")
    parse_sweep({"axes": {"backend": ["lz4"], what: [MAX_STRUCTURE]}}, "s.yaml")
