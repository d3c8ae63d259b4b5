"""``hwzswap bench`` and ``hwzswap record`` end to end, through hwzswap.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import lz4.block
import numpy as np
import pytest

from hwzswap.backends.contract import PAGE_SIZE
from hwzswap.bench.corpus import load_bundled, save_pages
from hwzswap.bench.results import schema_problems
from hwzswap.bench.runner import comparable_counters, same_filled_mask
from hwzswap.bench.workload import load_workload
from hwzswap.cli import main

from helpers import unavailable_backend

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .pages file (uncompressed) of real pages plus a zero page and a random page."""
    real = load_bundled(max_pages=150)
    zero = np.zeros((1, PAGE_SIZE), np.uint8)
    rand = np.random.default_rng(0).integers(0, 256, (1, PAGE_SIZE), dtype=np.uint8)
    path = tmp_path_factory.mktemp("corpus") / "x.pages"
    save_pages(path, np.concatenate([real, zero, rand]))
    return path


def test_bench_on_a_page_file_verifies_everything(page_file: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    rc = main(["bench", "--corpus", str(page_file), "--backends", "lz4,lzo,zstd,deflate",
               "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr()
    assert "hwzswap bench" in printed.out and "deflate" in printed.out
    doc = json.loads(out.read_text())
    assert schema_problems(doc) == []
    assert doc["workload"]["corpus"]["files"] == ["x.pages"]
    assert doc["workload"]["pages"] == 152
    assert doc["workload"]["params"] == {}  # nothing given: the defaults, recorded in full
    assert doc["workload"]["structure"] == {"reclaim_batch": 32, "load_batch": 8,
                                            "folio_mix": [[1, 0.75], [16, 0.25]]}
    assert doc["workload"]["counts"]["load_ops"] == 19  # 152 pages in clusters of 8
    assert doc["batching"] == ["reclaim"]  # the config's zswap.batching
    for r in doc["results"]:
        assert r["mismatches"] == 0
        assert r["verified_pages"] == r["pages"] == 152
    # the lz4 ratio is lz4.block's on the same pages, same-filled pages excluded
    pages = np.fromfile(page_file, dtype=np.uint8).reshape(-1, PAGE_SIZE)
    keep = pages[~same_filled_mask(pages)]
    comp = sum(min(len(lz4.block.compress(p.tobytes(), store_size=False)), PAGE_SIZE)
               for p in keep)
    lz4_result = next(r for r in doc["results"] if r["backend"] == "lz4")
    assert lz4_result["ratio"] == round(len(keep) * PAGE_SIZE / comp, 4)


def test_record_then_replay_twice_is_identical(page_file: Path, tmp_path: Path) -> None:
    wl_path = tmp_path / "p.hwzwl"
    assert main(["record", "--workload", "pressure", "--corpus", str(page_file),
                 "--pages", "120", "--seed", "3", "-o", str(wl_path)]) == 0
    wl = load_workload(wl_path)
    assert (wl.name, wl.seed, wl.nr_pages) == ("pressure", 3, 120)
    assert wl.corpus["files"] == ["x.pages"]
    docs = []
    for i in range(2):
        out = tmp_path / f"r{i}.json"
        png = tmp_path / f"r{i}.png"
        md = tmp_path / f"r{i}.md"
        rc = main(["bench", "--workload", str(wl_path), "--backends", "lz4,zstd", "--json",
                   str(out), "--plot", str(png), "--markdown", str(md), "--quiet"])
        assert rc == 0
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert "| lz4 |" in md.read_text()
        docs.append(json.loads(out.read_text()))
    a, b = docs
    assert a["workload"]["file"] == str(wl_path)
    assert a["workload"]["page_sha256"] == b["workload"]["page_sha256"]
    for ra, rb in zip(a["results"], b["results"]):
        assert ra["ratio_bytes"] == rb["ratio_bytes"]
        assert ra["compressed_bytes_at_peak"] == rb["compressed_bytes_at_peak"]
        assert comparable_counters(ra) == comparable_counters(rb)
        assert ra["written_back_pages"] > 0 and ra["mismatches"] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--workload", "nosuch"], "neither a built-in workload"),
        (["bench", "--backends", "lz4,nosuch", "--pages", "4"], "no backend named 'nosuch'"),
        (["bench", "--corpus", "/nonexistent.pages"], "no such page file"),
        (["record", "--workload", "nosuch", "-o", "x"], "built-in workload name"),
    ],
)
def test_usage_errors_are_clear(argv: list[str], message: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_recorded_workload_refuses_options_it_fixes(page_file: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    wl_path = tmp_path / "r.hwzwl"
    assert main(["record", "--corpus", str(page_file), "--pages", "8", "-o", str(wl_path)]) == 0
    assert main(["bench", "--workload", str(wl_path), "--seed", "4"]) == 2
    assert "drop --seed" in capsys.readouterr().err
    assert main(["bench", "--workload", str(page_file)]) == 2
    assert "not a workload file" in capsys.readouterr().err


def test_too_many_pages_asked(page_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--corpus", str(page_file), "--pages", "1000"]) == 2
    assert "fewer than the 1000 asked for" in capsys.readouterr().err


def test_bench_with_load_batches_verifies_every_page(tmp_path: Path) -> None:
    out = tmp_path / "rb.json"
    md = tmp_path / "rb.md"
    rc = main(["bench", "--backends", "lz4,lz4-opencl", "--load-batch", "32", "--pages", "512",
               "--json", str(out), "--markdown", str(md), "--quiet"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert schema_problems(doc) == []
    assert doc["workload"]["params"] == {"load_batch": 32}
    assert doc["workload"]["counts"]["loads"] == 512
    assert doc["workload"]["counts"]["load_ops"] == 16
    assert [r["backend"] for r in doc["results"]] == ["lz4", "lz4-opencl"]
    assert not doc["failed"] and not doc["skipped"]
    for r in doc["results"]:
        assert r["verified_pages"] == r["pages"] == 512
        assert r["mismatches"] == r["raw_mismatches"] == 0
        assert r["load_pages_per_s"] > 0 and r["raw_load_pages_per_s"] > 0


def test_record_with_load_batches_and_replay(page_file: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    wl_path = tmp_path / "rb.hwzwl"
    assert main(["record", "--corpus", str(page_file), "--pages", "100", "--load-batch", "8",
                 "-o", str(wl_path)]) == 0
    wl = load_workload(wl_path)
    assert wl.params == {"load_batch": 8} and wl.counts()["load_ops"] == 13
    out = tmp_path / "r.json"
    assert main(["bench", "--workload", str(wl_path), "--backends", "zstd", "--quiet",
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["workload"]["params"] == {"load_batch": 8}
    assert doc["results"][0]["verified_pages"] == 100
    capsys.readouterr()
    assert main(["bench", "--workload", str(wl_path), "--load-batch", "4"]) == 2
    assert "drop --load-batch" in capsys.readouterr().err
    assert main(["bench", "--workload", str(wl_path), "--folio-pages", "16"]) == 2
    assert "drop --folio-pages" in capsys.readouterr().err
    assert main(["bench", "--folio-pages", "3", "--pages", "8"]) == 2
    assert "--folio-pages: folio size 3 is not a power of two" in capsys.readouterr().err
    assert main(["bench", "--batching", "page,turbo", "--pages", "8"]) == 2
    assert "--batching: no engine mode 'turbo'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--load-batch", "0"])
    assert exc.value.code == 2
    assert "--load-batch: must be a whole number 1..1048576, got 0" in capsys.readouterr().err


def test_a_broken_backend_gets_a_failed_row_and_exit_1(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13 item 4: a constructor raising anything -> FAILED row naming the exception, the
    others still run, the JSON is still written, exit status 1."""
    from hwzswap.backends import registry
    from hwzswap.backends.lz4 import Lz4Backend

    class Broken(Lz4Backend):
        name = "test-broken"

        def __init__(self, **params: object) -> None:
            raise OSError("libvendor.so: cannot open shared object file")

    monkeypatch.setitem(registry._registered, Broken.name, Broken)
    out = tmp_path / "b.json"
    rc = main(["bench", "--backends", "test-broken,lz4", "--pages", "48", "--repeat", "1",
               "--batching", "page,async", "--reclaim-batch", "4", "--folio-pages", "1:1,4:1",
               "--json", str(out)])
    assert rc == 1
    printed = capsys.readouterr().out
    assert "FAILED (constructor)" in printed and "libvendor.so" in printed
    doc = json.loads(out.read_text())
    assert schema_problems(doc) == []
    (f,) = doc["failed"]
    assert f["backend"] == "test-broken" and f["phase"] == "constructor"
    assert "OSError" in f["error"]
    assert [(r["backend"], r["batching"]) for r in doc["results"]] == [("lz4", "page"),
                                                                       ("lz4", "async")]
    assert doc["workload"]["structure"] == {"reclaim_batch": 4, "load_batch": 8,
                                            "folio_mix": [[1, 0.5], [4, 0.5]]}
    assert all(r["verified_pages"] == r["pages"] == 48 for r in doc["results"])


def test_quiet_still_names_a_backend_that_did_not_run(
        capsys: pytest.CaptureFixture[str]) -> None:
    """--quiet drops the progress bar and the table, not the news that a requested backend
    was skipped (it used to say nothing at all)."""
    from hwzswap.backends.registry import registered

    with registered(unavailable_backend("test-no-card", "no accelerator card found")):
        code = main(["bench", "--pages", "16", "--repeat", "1", "--quiet",
                     "--backends", "lz4,test-no-card", "--batching", "page"])
    out, err = capsys.readouterr()
    assert code == 0 and out == ""
    assert err.strip() == ("hwzswap bench: skipped test-no-card: backend 'test-no-card' cannot "
                           "run here: no accelerator card found")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backends", "lz4,nosuch"], "no backend named 'nosuch'"),
        (["--backends", " , "], "--backends names no backend"),
        (["--batching", "reclaim,turbo"], "--batching: no engine mode 'turbo'"),
        (["--folio-pages", "3"], "--folio-pages: folio size 3 is not a power of two"),
    ],
)
def test_bad_arguments_are_refused_before_the_workload_is_built(
        argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """docs/bench.md: an unknown backend or mode "is an error before anything runs". They were
    reported only after the workload had been built and its summary printed."""
    from hwzswap.bench import cli as bench_cli

    built: list[str] = []
    real = bench_cli.make_workload

    def watched(*a: object, **kw: object) -> object:
        built.append("make_workload")
        return real(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(bench_cli, "make_workload", watched)
    assert main(["bench", "--pages", "16", "--repeat", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "workload roundtrip" not in err  # the summary printed once the workload is built
    assert built == []


def test_a_fifo_as_workload_is_named_as_a_fifo(tmp_path, capsys):
    """Given to --corpus a FIFO was "not a regular file (a FIFO)", to --workload "not a
    workload file"; both now say what it is (and neither blocks on it)."""
    import os

    from hwzswap.cli import main as cli_main

    fifo = tmp_path / "w.fifo"
    os.mkfifo(fifo)
    assert cli_main(["bench", "--workload", str(fifo), "--backends", "lz4"]) == 2
    assert "not a regular file (a FIFO)" in capsys.readouterr().err
