"""The input files a sweep names (a base ``config``, a ``corpus``, a ``workload`` file): a run
is resumed only when it was measured with the same contents, and a workload file the bench's
reader refuses is refused with the sweep file, before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hwzswap.cli import main
from hwzswap.sweep.execute import run_sweep
from hwzswap.sweep.plan import expand
from hwzswap.sweep.spec import SweepSpecError, load_sweep
from sweep_helpers import write_sweep


def test_an_edited_base_config_runs_again(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep resumed a record measured with max_pool_percent 20 after base.yaml said 1."""
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"zswap": {"max_pool_percent": 20}}))
    sweep = write_sweep(tmp_path, {"axes": {"backend": ["lz4"]},
                                   "fixed": {"config": "base.yaml", "pages": 64, "repeat": 1,
                                             "seed": 1}})
    out = tmp_path / "out"
    first = run_sweep(load_sweep(sweep), expand(load_sweep(sweep)), out, timeout=300,
                      plots=False)
    (rid,) = first.ran
    before = json.loads((out / "runs" / f"{rid}.json").read_text())
    assert before["status"] == "ok", before["reason"]
    assert before["runspec"]["config"]["zswap"]["max_pool_percent"] == 20

    base.write_text(yaml.safe_dump({"zswap": {"max_pool_percent": 1},
                                    "memory": {"total_ram_mb": 1}}))
    spec = load_sweep(sweep)
    plan = expand(spec)
    assert [r.run_id for r in plan.runs] == [rid]  # same id: the settings did not change
    assert main(["sweep", str(sweep), "-o", str(out), "--dry-run"]) == 0
    assert "input changed" in capsys.readouterr().out
    again = run_sweep(spec, plan, out, timeout=300, plots=False, console=None)
    assert again.ran == [rid] and again.resumed == [] and again.changed == [rid]
    runs = again.doc["runs"]
    assert (runs["ran"], runs["resumed"], runs["input_changed"]) == (1, 0, 1)
    after = json.loads((out / "runs" / f"{rid}.json").read_text())
    assert after["runspec"]["config"]["zswap"]["max_pool_percent"] == 1
    assert after["runspec"]["config"]["memory"]["total_ram_mb"] == 1
    assert after["runspec"]["inputs"]["config"] != before["runspec"]["inputs"]["config"]
    assert after["pool_limit_pages"] < before["pool_limit_pages"]

    third = run_sweep(spec, plan, out, timeout=300, plots=False)  # unchanged now: resumed
    assert third.ran == [] and third.resumed == [rid] and third.changed == []


def _workload(path: Path, seed: int = 1) -> Path:
    from hwzswap.bench.corpus import load_bundled
    from hwzswap.bench.workload import build_workload, save_workload

    save_workload(build_workload("roundtrip", load_bundled(max_pages=16), seed=seed), path)
    return path


def test_a_rerecorded_workload_or_corpus_changes_the_fingerprint_not_the_id(
        tmp_path: Path) -> None:
    wl = _workload(tmp_path / "w.hwzw")
    pages = tmp_path / "p.pages"
    pages.write_bytes(bytes(4096 * 2))
    sweep = write_sweep(tmp_path, {"axes": {"backend": ["lz4"], "corpus": ["p.pages"]},
                                   "fixed": {"workload": "w.hwzw"}})
    (run,) = expand(load_sweep(sweep)).runs
    assert set(run.inputs) == {"corpus", "workload"}
    assert all(v.startswith("sha256:") and len(v) == 71 for v in run.inputs.values())
    assert run.runspec()["inputs"] == run.inputs
    _workload(wl, seed=2)
    (rerecorded,) = expand(load_sweep(sweep)).runs
    assert rerecorded.run_id == run.run_id
    assert rerecorded.inputs["workload"] != run.inputs["workload"]
    assert rerecorded.inputs["corpus"] == run.inputs["corpus"]
    pages.write_bytes(bytes(4096) + b"\1" * 4096)
    (edited,) = expand(load_sweep(sweep)).runs
    assert edited.inputs["corpus"] != run.inputs["corpus"]


def test_a_record_without_input_hashes_is_kept_only_by_a_run_without_input_files(
        tmp_path: Path) -> None:
    """Records written before records kept ``inputs``: their contents are unknown."""
    from hwzswap.sweep.execute import resumable

    _workload(tmp_path / "w.hwzw")
    sweep = write_sweep(tmp_path, {"axes": {"backend": ["lz4"],
                                            "workload": ["roundtrip", "w.hwzw"]}})
    plan = expand(load_sweep(sweep))
    old = {r.run_id: {"run_id": r.run_id, "status": "ok",
                      "runspec": {k: v for k, v in r.runspec().items() if k != "inputs"}}
           for r in plan.runs}
    kept, changed = resumable(plan, old)
    assert list(kept) == [plan.runs[0].run_id] and changed == [plan.runs[1].run_id]


@pytest.mark.parametrize("damage", ["truncated", "version 3"])
def test_a_damaged_workload_file_is_refused_before_anything_runs(
        damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run said ok (exit 0) for a truncated or newer-version file; every run then failed
    'pages section is truncated'."""
    data = bytearray(_workload(tmp_path / "good.hwzw").read_bytes())
    if damage == "truncated":
        data = data[: len(data) - 64]
        why = "truncated"
    else:
        data[8:12] = (3).to_bytes(4, "little")
        why = "workload file version 3; this hwzswap reads versions"
    bad = tmp_path / "bad.hwzw"
    bad.write_bytes(bytes(data))
    sweep = write_sweep(tmp_path, {"axes": {"backend": ["lz4"]},
                                   "fixed": {"workload": "bad.hwzw"}})
    with pytest.raises(SweepSpecError, match=rf"s\.yaml: fixed\.workload: {bad}: .*{why}"):
        load_sweep(sweep)
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--dry-run", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fixed.workload" in err and why in err and "Traceback" not in err
    assert main(["sweep", str(sweep), "-o", str(out), "--quiet"]) == 2
    assert not out.exists()
    # the good file, as an axis value, passes the same check
    write_sweep(tmp_path, {"axes": {"backend": ["lz4"], "workload": ["good.hwzw"]}})
    load_sweep(sweep)
