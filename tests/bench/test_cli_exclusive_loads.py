"""``zswap.exclusive_loads: true`` with a stream that loads a slot again: the bench refuses it
before running anything (exit 2, naming the config file and the key). It used to run it and
report pages LOST (and exit 1): the first load had freed the slot, so the second found nothing,
though no page was lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwzswap.bench import runner
from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.workload import (
    EXCLUSIVE_LOAD_WORKLOADS,
    INVALIDATE,
    LOAD,
    STORE,
    WORKLOADS,
    Op,
    Workload,
    build_workload,
)
from hwzswap.cli import main


@pytest.fixture()
def exclusive(tmp_path: Path) -> Path:
    path = tmp_path / "ex.yaml"
    path.write_text("zswap: {exclusive_loads: true}\n")
    return path


@pytest.fixture()
def runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the workloads the bench went on to run."""
    seen: list[str] = []
    real = runner.run_bench

    def watched(wl: Workload, *a: object, **kw: object) -> object:
        seen.append(wl.name)
        return real(wl, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "run_bench", watched)
    return seen


@pytest.mark.parametrize("name", ["mixed", "pressure"])
def test_a_stream_that_loads_again_is_refused_before_it_runs(
        name: str, exclusive: Path, runs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "--config", str(exclusive), "--backends", "lz4", "--workload", name,
               "--pages", "256", "--batching", "page", "--repeat", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"error: {exclusive}: zswap.exclusive_loads: true frees a slot" in err
    assert f"workload {name} loads slots again" in err
    assert "(roundtrip)" in err and "zswap.exclusive_loads: false" in err
    assert "LOST" not in err and runs == []


def test_a_recorded_stream_that_loads_again_is_refused_too(
        exclusive: Path, runs: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    wl = tmp_path / "p.hwzwl"
    assert main(["record", "--workload", "pressure", "--pages", "128", "-o", str(wl)]) == 0
    assert main(["bench", "--config", str(exclusive), "--workload", str(wl),
                 "--backends", "lz4", "--repeat", "1", "--quiet"]) == 2
    assert "zswap.exclusive_loads: true" in capsys.readouterr().err and runs == []


def test_roundtrip_runs_with_exclusive_loads(exclusive: Path, runs: list[str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--config", str(exclusive), "--backends", "lz4", "--workload",
                 "roundtrip", "--pages", "64", "--batching", "page", "--repeat", "1",
                 "--quiet"]) == 0, capsys.readouterr().err
    assert runs == ["roundtrip"]


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_the_list_of_workloads_that_work_with_exclusive_loads_is_true(name: str) -> None:
    pages = load_bundled(max_pages=192)
    for n, seed, load_batch in ((192, 0, 8), (64, 5, 1), (100, 9, 4)):
        wl = build_workload(name, pages[:n], seed=seed, load_batch=load_batch)
        assert (wl.reload_op() is None) == (name in EXCLUSIVE_LOAD_WORKLOADS), (n, seed)


def test_reload_op_finds_the_first_second_load_of_a_slot() -> None:
    pages = np.zeros((4, 4096), np.uint8)
    store = Op(STORE, 0, (0, 1, 2), (0, 1, 2))
    once = [store, Op(LOAD, 0, (0, 1)), Op(LOAD, 0, (2,)), Op(INVALIDATE, 0, (0,))]
    assert Workload("x", 0, pages, once).reload_op() is None
    restored = [store, Op(LOAD, 0, (1,)), Op(STORE, 0, (1,), (3,)), Op(LOAD, 0, (1,))]
    assert Workload("x", 0, pages, restored).reload_op() is None  # new content between
    again = [store, Op(LOAD, 0, (0, 1)), Op(INVALIDATE, 0, (2,)), Op(STORE, 0, (2,), (3,)),
             Op(LOAD, 0, (2, 1))]
    assert Workload("x", 0, pages, again).reload_op() == (4, (0, 1))  # slot 1, not the first


def test_run_bench_from_python_refuses_it_too(exclusive: Path) -> None:
    """The rule lives in the runner, so a caller of ``run_bench`` (not the CLI) gets the same
    refusal before anything runs, naming the config file."""
    from hwzswap.errors import ConfigError

    wl = build_workload("mixed", load_bundled(max_pages=128))
    with pytest.raises(ConfigError, match=r"zswap\.exclusive_loads: true frees a slot"):
        runner.run_bench(wl, runner.BenchRun(backends=["lz4"], config=str(exclusive),
                                             batching="page"))


def test_a_built_in_kind_that_loads_again_is_refused_even_when_too_short_to(
        exclusive: Path, runs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """``pressure`` at 8 pages happens not to load a slot twice; it is refused by its kind all
    the same, as a sweep's plan refuses it, so the two never disagree."""
    from hwzswap.bench.workload import loads_slots_again

    wl = build_workload("pressure", load_bundled(max_pages=8))
    assert wl.reload_op() is None and loads_slots_again("pressure")
    assert not loads_slots_again("roundtrip") and not loads_slots_again("some/file.hwzwl")
    rc = main(["bench", "--config", str(exclusive), "--backends", "lz4", "--workload",
               "pressure", "--pages", "8", "--batching", "page", "--repeat", "1", "--quiet"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "too short to" in err and runs == []
