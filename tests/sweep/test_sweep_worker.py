"""One run of a sweep repeated by hand, as docs/sweep.md says: ``python -m hwzswap.sweep.worker
DIR/runs/RUN_ID.json``; a file that is no run's record is a clear error (exit status 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hwzswap.errors import HwzswapError
from hwzswap.sweep import store
from hwzswap.sweep.worker import main as worker_main
from hwzswap.sweep.worker import read_runspec

from sweep_helpers import install_driver, same_fields


def _record_path(swept: dict[str, Any], backend: str, ratio: int) -> Path:
    run = next(r for r in swept["plan"].runs
               if r.backend == backend and r.coords["zswap.max_compression_ratio"] == ratio)
    return store.record_path(swept["out"], run.run_id)


def test_a_run_is_repeated_from_its_record(swept: dict[str, Any], tmp_path: Path) -> None:
    path = _record_path(swept, "lz4", 90)
    old = json.loads(path.read_text())
    out, keep = tmp_path / "again.json", tmp_path / "keep"
    assert worker_main([str(path), "-o", str(out), "--keep", str(keep), "--timeout", "300"]) == 0
    new = json.loads(out.read_text())
    assert same_fields(new) == same_fields(old) and new["status"] == "ok"
    assert new["runspec"] == old["runspec"] and new["settings"] == old["settings"]
    # the record's command names the run's files in the kept directory: it runs there by hand
    cmd = new["command"]
    assert cmd[:2] == ["hwzswap", "bench"]
    assert cmd[cmd.index("--config") + 1] == "config.yaml"
    assert yaml.safe_load((keep / "config.yaml").read_text()) == old["runspec"]["config"]
    assert json.loads((keep / "result.json").read_text())["results"][0]["backend"] == "lz4"
    (keep / "result.json").unlink()
    done = subprocess.run([sys.executable, "-m", "hwzswap", *cmd[1:]], cwd=keep,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((keep / "result.json").read_text())["results"][0]["verified_pages"] == 48
    # --keep never writes into a directory that holds something
    assert worker_main([str(path), "--keep", str(keep)]) == 2


def test_a_failed_run_fails_again_with_its_reason(swept: dict[str, Any],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = _record_path(swept, "lz4", 250)
    assert worker_main([str(path), "--timeout", "300"]) == 1
    rec = json.loads(capsys.readouterr().out)
    assert (rec["status"], rec["failure"], rec["exit_code"]) == ("failed", "exit", 2)
    assert (f"{swept['spec'].source}: axes.zswap.max_compression_ratio[1]: must be an "
            "integer 1..100, got 250") in rec["reason"]
    assert "hwzswap-sweep-" not in rec["reason"] + rec["stderr_tail"]


def test_a_file_that_is_no_runs_record_is_refused(swept: dict[str, Any], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    record = json.loads(_record_path(swept, "zstd", 90).read_text())
    older = {k: v for k, v in record.items() if k != "runspec"}  # before records kept it
    broken = {**record, "runspec": {k: v for k, v in record["runspec"].items()
                                    if k != "bench_args"}}
    cases = {
        "sweep.json": (swept["out"] / "sweep.json").read_text(),
        "s.yaml": "axes: {backend: [lz4]}\n",
        "older.json": json.dumps(older),
        "broken.json": json.dumps(broken),
        "list.json": "[1, 2]",
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "deepspec.json": json.dumps({**record["runspec"], "config": {
            "a": json.loads("[" * 900 + "]" * 900)}}),
    }
    expected = {
        "sweep.json": "a sweep's merged document, not one run; give one run's record: "
                      "DIR/runs/RUN_ID.json",
        "s.yaml": "s.yaml: not JSON",
        "older.json": "a run record without its runspec",
        "broken.json": "broken.json: the record's runspec: no 'bench_args'",
        "list.json": "list.json: not a run's record or runspec: a runspec is a JSON object",
        "deep.json": "deep.json: JSON nested too deeply to be a run's record",
        "deepspec.json": "deepspec.json: not a run's record or runspec: values nested more "
                         "than 40 levels deep",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert worker_main([str(tmp_path / name), "-o", str(tmp_path / "r.json")]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("python -m hwzswap.sweep.worker: error: ") and expected[name] in err
        assert "\n" not in err.rstrip("\n") and "Traceback" not in err
    assert worker_main([str(tmp_path / "gone.json")]) == 2
    assert "gone.json: cannot read it: No such file" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()  # nothing ran, nothing was written


def test_a_file_larger_than_any_record_is_refused_unread(tmp_path: Path) -> None:
    """A file past the limit is refused after reading one byte more; a device that never ends
    (/dev/zero) or a FIFO (which would block the worker forever) is refused unread."""
    import os

    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate((16 << 20) + 1)
    with pytest.raises(HwzswapError, match=rf"^{big}: larger than 16 MiB, so not a run's "
                                           r"record; give DIR/runs/RUN_ID\.json of a sweep$"):
        read_runspec(big)
    with pytest.raises(HwzswapError, match=r"^/dev/zero: cannot read it: a character device, "
                                           r"not a regular file"):
        read_runspec("/dev/zero")
    fifo = tmp_path / "rec.json"
    os.mkfifo(fifo)
    with pytest.raises(HwzswapError, match=rf"^{fifo}: cannot read it: a FIFO, not a regular"):
        read_runspec(fifo)


@pytest.mark.parametrize("timeout", ["nan", "inf", "1e308", "0", "604801"])
def test_a_timeout_that_is_no_duration_is_refused(timeout: str, swept: dict[str, Any],
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``--timeout 1e308`` was taken, and every run then FAILED with ``[worker]
    OverflowError``; ``nan`` and ``inf`` went to the worker as they were."""
    from hwzswap.cli import main

    path = _record_path(swept, "lz4", 90)
    with pytest.raises(SystemExit) as exc:
        worker_main([str(path), "--timeout", timeout, "--keep", str(tmp_path / "k")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --timeout: must be" in err and "Traceback" not in err
    assert not (tmp_path / "k").exists()  # nothing ran
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(tmp_path / "s.yaml"), "--timeout", timeout])
    assert exc.value.code == 2 and "argument --timeout: must be" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_refused_before_the_run(
        swept: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``-o /tmp`` (a directory) was found out after the run: a traceback, the record lost."""
    path = _record_path(swept, "lz4", 90)
    keep = tmp_path / "k"
    (tmp_path / "file").write_text("x")
    for out, why in ((tmp_path, "is a directory"),
                     (tmp_path / "file" / "r.json", "is not a directory")):
        assert worker_main([str(path), "-o", str(out), "--keep", str(keep)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"python -m hwzswap.sweep.worker: error: -o {out}: ")
        assert why in err and "Traceback" not in err
        assert not keep.exists()  # refused before the run


def _bench_document(backend: str, config: dict[str, Any]) -> dict[str, Any]:
    """A real results document of the bench for one backend (48 pages, reclaim mode)."""
    from hwzswap.bench.corpus import load_bundled
    from hwzswap.bench.runner import BenchRun, run_bench
    from hwzswap.bench.workload import build_workload

    return run_bench(build_workload("roundtrip", load_bundled(max_pages=48), seed=0),
                     BenchRun(backends=[backend], config=config, warm_up=False,
                              batching="reclaim"))


def test_a_run_whose_device_was_marked_failed_says_so(tmp_path: Path) -> None:
    """The bench exits 1 when its device was marked failed during the run; the record said
    "mismatch: 0 pages mismatched ..." for it. It now gives the bench's own reason, and keeps
    "mismatch" for pages that came back wrong or not at all."""
    import threading
    import time
    from typing import ClassVar

    from hwzswap.backends.contract import Capabilities
    from hwzswap.backends.lz4 import Lz4Backend
    from hwzswap.backends.registry import registered
    from hwzswap.bench.runner import bench_failed
    from hwzswap.sweep.worker import _from_document, base_record

    class Stalls(Lz4Backend):
        """Its first two batch calls from the engine's thread hang past the deadline."""

        name = "test-sweep-stalls"
        stalls: ClassVar[int] = 2

        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(batch=True, preferred_batch=32)

        def compress_batch(self, pages: Any) -> Any:
            if threading.current_thread().name.startswith("hwzswap-watchdog") and Stalls.stalls:
                Stalls.stalls -= 1
                time.sleep(0.2)
            return super().compress_batch(pages)

    with registered(Stalls):
        # fail_after 1: calls refused while the stalled one is stuck are not timeouts
        doc = _bench_document(Stalls.name, {"zswap": {"device_timeout_ms": 50,
                                                      "device_fail_after": 1}})
    assert bench_failed(doc) and doc["results"][0]["device_failed"] is True
    spec = {"run_id": "r", "coords": {}, "settings": {}, "backend": Stalls.name, "config": {},
            "bench_args": []}
    rec = base_record(spec)
    _from_document(rec, doc, 1, "stderr text\n")
    assert (rec["status"], rec["failure"]) == ("failed", "error")
    assert rec["reason"].startswith("device: the device was marked failed during the run (")
    assert "mismatched" not in rec["reason"]
    # pages that came back wrong or were lost are named with their counts, the device too
    doc["results"][0].update(mismatches=0, raw_mismatches=0, load_failures=3)
    rec = base_record(spec)
    _from_document(rec, doc, 1, "")
    assert rec["failure"] == "mismatch"
    assert rec["reason"].startswith("3 pages did not come back (load failures); device: the "
                                    "device was marked failed")
    # an exit 1 the document does not explain: the bench's last line
    ok = _bench_document("lz4", {})
    assert not bench_failed(ok)
    rec = base_record({**spec, "backend": "lz4"})
    _from_document(rec, ok, 1, "hwzswap bench: error: something else\n")
    assert (rec["failure"], rec["reason"]) == ("exit", "exit status 1: hwzswap bench: error: "
                                                       "something else")


STALLING_DRIVER = '''
import threading, time
from hwzswap.backends.contract import Capabilities
from hwzswap.backends.lz4 import Lz4Backend


class Stalls(Lz4Backend):
    """Its batch calls from the engine's thread hang past zswap's deadline."""

    name = "stallsdrv"
    stalls = 10 ** 6

    @property
    def capabilities(self):
        return Capabilities(batch=True, preferred_batch=32)

    def compress_batch(self, pages):
        if threading.current_thread().name.startswith("hwzswap-watchdog") and Stalls.stalls:
            Stalls.stalls -= 1
            time.sleep(0.2)
        return super().compress_batch(pages)
'''


def test_a_run_whose_device_fails_is_recorded_with_the_benchs_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: a third-party driver installed as an entry point, whose device the engine
    marks failed during the run; the bench process exits 1 and the worker's record gives the
    bench's reason (it said "0 pages mismatched through the stack")."""
    from hwzswap.sweep.worker import execute_run

    install_driver(tmp_path, monkeypatch, "stallsdrv", STALLING_DRIVER, "Stalls")
    runspec = {"run_id": "stallsdrv-1", "coords": {"backend": "stallsdrv"},
               "settings": {"backend": "stallsdrv"}, "backend": "stallsdrv",
               "config": {"zswap": {"compressor": {"name": "stallsdrv", "params": {}},
                                    "batching": "reclaim", "device_timeout_ms": 50,
                                    "device_fail_after": 1}},
               "bench_args": ["--backends", "stallsdrv", "--workload", "roundtrip",
                              "--pages", "48", "--repeat", "1"]}
    rec = execute_run(runspec, 300)
    assert rec["exit_code"] == 1, rec["stderr_tail"]
    assert (rec["status"], rec["failure"]) == ("failed", "error"), rec["reason"]
    assert rec["reason"].startswith("device: the device was marked failed during the run")
    assert rec["device_failed"] is True and rec["verified_pages"] == 48
