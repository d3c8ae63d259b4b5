"""The sweep's merged outputs (``table.md``, the plots) and the worker's ``-o`` record are
written whole or not at all: a write interrupted half-way (an error, Ctrl-C) leaves the
previous file as it was and no temporary file beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from hwzswap.sweep import store
from hwzswap.sweep.execute import run_sweep
from hwzswap.sweep.plan import expand
from hwzswap.sweep.spec import parse_sweep
from hwzswap.sweep.worker import main as worker_main

from sweep_helpers import interrupt_writes_of, partial_files

PNG = b"\x89PNG\r\n\x1a\n"
EARLIER = {store.TABLE_MD: b"an earlier sweep's table\n",
           store.PLOT_RATIO: PNG + b"an earlier sweep's plot",
           store.PLOT_SPEEDUP: PNG + b"an earlier sweep's other plot"}
INTERRUPTIONS = [KeyboardInterrupt(), OSError(28, "No space left on device")]


@pytest.fixture
def resumed(swept: dict[str, Any], tmp_path: Path) -> Path:
    """A copy of the small sweep's output (every run recorded) holding earlier reports."""
    out = tmp_path / "out"
    shutil.copytree(swept["out"], out)
    for name, data in EARLIER.items():
        (out / name).write_bytes(data)
    return out


@pytest.mark.parametrize("exc", INTERRUPTIONS, ids=type)
@pytest.mark.parametrize("name", list(EARLIER))
def test_an_interrupted_report_leaves_the_earlier_file(
        swept: dict[str, Any], resumed: Path, monkeypatch: pytest.MonkeyPatch, name: str,
        exc: BaseException) -> None:
    interrupt_writes_of(monkeypatch, name, exc)
    with pytest.raises(type(exc)):
        run_sweep(swept["spec"], swept["plan"], resumed, timeout=300)
    assert (resumed / name).read_bytes() == EARLIER[name]
    assert partial_files(resumed) == []


def test_the_reports_replace_the_earlier_ones_whole(swept: dict[str, Any],
                                                    resumed: Path) -> None:
    outcome = run_sweep(swept["spec"], swept["plan"], resumed, timeout=300)
    assert outcome.ran == [] and len(outcome.resumed) == 3
    assert "## backend = lz4" in (resumed / store.TABLE_MD).read_text(encoding="utf-8")
    for name in (store.PLOT_RATIO, store.PLOT_SPEEDUP):
        data = (resumed / name).read_bytes()
        assert data[:8] == PNG and data != EARLIER[name] and data.endswith(b"IEND\xaeB`\x82")
    assert partial_files(resumed) == []


def _runspec(tmp_path: Path) -> Path:
    """A run that ends at once (timed out before the interpreter starts), as the worker reads it."""
    spec = parse_sweep({"axes": {"backend": ["lz4"]}, "fixed": {"pages": 48, "repeat": 1}})
    path = tmp_path / "runspec.json"
    path.write_text(json.dumps(expand(spec).runs[0].runspec()), encoding="utf-8")
    return path


@pytest.mark.parametrize("exc", INTERRUPTIONS, ids=type)
def test_the_workers_record_is_written_whole_or_not_at_all(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException,
        capsys: pytest.CaptureFixture[str]) -> None:
    runspec = _runspec(tmp_path)
    out = tmp_path / "rec" / "run.json"
    out.parent.mkdir()
    out.write_text("{\"earlier\": true}\n")
    args = [str(runspec), "-o", str(out), "--timeout", "0.05"]
    with monkeypatch.context() as m:
        interrupt_writes_of(m, out.name, exc)
        if isinstance(exc, OSError):  # a failed write: the record goes to stdout, exit 2
            capsys.readouterr()
            assert worker_main(args) == 2
            outerr = capsys.readouterr()
            assert json.loads(outerr.out)["failure"] == "timeout"
            assert f"-o {out}: cannot write the record: " in outerr.err
            assert "it is on standard output instead" in outerr.err
        else:
            with pytest.raises(type(exc)):
                worker_main(args)
    assert out.read_text() == "{\"earlier\": true}\n" and partial_files(out.parent) == []
    assert worker_main(args) == 1  # the timed-out run's record, in full
    rec = json.loads(out.read_text())
    assert (rec["status"], rec["failure"]) == ("failed", "timeout")
    assert partial_files(out.parent) == []
