"""Hostile or careless sweep input: each is a clear error naming the file and the key (or the
run), never a hang, a traceback or a sweep that silently does something else."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from hwzswap.cli import main
from hwzswap.sweep import report, store
from hwzswap.sweep.execute import run_sweep
from hwzswap.sweep.plan import expand
from hwzswap.sweep.spec import MAX_COMBINATIONS, SweepSpec, SweepSpecError, load_sweep, parse_sweep
from sweep_helpers import write_sweep


def _refusal(doc: dict[str, Any]) -> str:
    with pytest.raises(SweepSpecError) as exc:
        parse_sweep(doc, "s.yaml")
    return str(exc.value)


def test_too_many_combinations_are_counted_not_expanded(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """5 axes of 40 values (102 million runs) made --dry-run expand without a word for hours."""
    axes = {"backend": ["lz4", "zstd"], **{f"zswap.{k}": list(range(1, 41)) for k in (
        "max_pool_percent", "accept_threshold_percent", "max_compression_ratio",
        "writeback_batch")}, "seed": list(range(40))}
    sweep = write_sweep(tmp_path, {"axes": axes})
    assert main(["sweep", str(sweep), "--dry-run", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert (f"s.yaml: axes: 204800000 combinations (2 backend x 40 zswap.max_pool_percent x "
            f"40 zswap.accept_threshold_percent x 40 zswap.max_compression_ratio x 40 "
            f"zswap.writeback_batch x 40 seed), more than the {MAX_COMBINATIONS} a sweep runs: "
            "narrow the axes") in err
    assert not (tmp_path / "out").exists()
    # exactly the limit is a sweep (checked, not run); a spec made in code is refused by expand
    assert math.prod([2, 50, 100]) == MAX_COMBINATIONS
    parse_sweep({"axes": {"backend": ["lz4", "zstd"], "seed": list(range(50)),
                          "pages": list(range(1, 101))}}, "s.yaml")
    big = SweepSpec(axes={"backend": ["lz4"], "seed": list(range(MAX_COMBINATIONS + 1))})
    with pytest.raises(SweepSpecError, match=r"<dict>: axes: 10001 combinations \(1 backend x "
                                             r"10001 seed\)"):
        expand(big)


@pytest.mark.parametrize(("doc", "key"), [
    ({"axes": {"backend": ["lz4"], "zswap.max_pool_percent": [float("nan"), float("nan")]}},
     "axes.zswap.max_pool_percent[0]"),
    ({"axes": {"backend": ["lz4"], "params.acceleration": [1, float("nan")]}},
     "axes.params.acceleration[1]"),
    ({"axes": {"backend": ["lz4"]}, "fixed": {"zswap.max_pool_percent": float("nan")}},
     "fixed.zswap.max_pool_percent"),
])
def test_nan_is_no_value_of_a_setting(doc: dict[str, Any], key: str) -> None:
    """Two .nan values of an axis silently collapsed into one run (NaN equals nothing)."""
    msg = _refusal(doc)
    assert f"s.yaml: {key}: NaN (.nan) is no setting's value" in msg


def test_an_exclude_matches_as_the_check_compares() -> None:
    """``{seed: 1.0}`` and ``{bool_axis: 1}`` passed the check (``==``) but never matched
    (the plan compares types): "0 excluded" without a word. Both now compare by type."""
    msg = _refusal({"axes": {"backend": ["lz4"], "seed": [1, 2],
                             "zswap.same_filled_pages": [True, False]},
                    "exclude": [{"seed": 1.0}, {"zswap.same_filled_pages": 1}]})
    assert ("s.yaml: exclude[0].seed: 1.0 is not one of the axis's values, so this never "
            "matches (the axis has 1, a whole number, and this is a decimal number: write it "
            "as the axis does)") in msg
    assert ("exclude[1].zswap.same_filled_pages: 1 is not one of the axis's values, so this "
            "never matches (the axis has True, true/false") in msg
    spec = parse_sweep({"axes": {"backend": ["lz4"], "seed": [1, 2],
                                 "zswap.same_filled_pages": [True, False]},
                        "exclude": [{"seed": 1}, {"zswap.same_filled_pages": True}]}, "s.yaml")
    plan = expand(spec)
    assert (plan.combinations, plan.excluded, len(plan.runs)) == (4, 3, 1)
    assert plan.runs[0].coords == {"backend": "lz4", "seed": 2, "zswap.same_filled_pages": False}


@pytest.mark.parametrize("mix", ["1:1e308,16:1e308", "1:1.5e308,4:1e308,16:1"])
def test_folio_weights_whose_sum_overflows_are_refused(mix: str) -> None:
    """Each weight is finite, so the check passed; their sum is not, every share came out 0
    and every run failed with "every weight is 0"."""
    msg = _refusal({"axes": {"backend": ["lz4"]}, "fixed": {"folio_pages": mix}})
    assert ("s.yaml: fixed.folio_pages: the weights add up past the largest float; use "
            "smaller weights") in msg
    parse_sweep({"axes": {"backend": ["lz4"]}, "fixed": {"folio_pages": "1:1e300,16:1"}}, "s")


@pytest.fixture(scope="module")
def workload_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hwzswap.bench.corpus import load_bundled
    from hwzswap.bench.workload import build_workload, save_workload

    path = tmp_path_factory.mktemp("wl") / "w.hwzw"
    save_workload(build_workload("roundtrip", load_bundled(max_pages=16), seed=1), path)
    return path


def test_a_file_given_as_the_wrong_kind_is_refused(workload_file: Path, tmp_path: Path) -> None:
    """A workload file given as a corpus, or a page file as a workload: every run failed."""
    pages = tmp_path / "p.pages"
    pages.write_bytes(bytes(4096))
    msg = _refusal({"axes": {"backend": ["lz4"], "corpus": [str(workload_file)]},
                    "fixed": {"workload": str(pages)}})
    assert (f"axes.corpus: {workload_file}: a recorded workload file, not a page file: give it "
            "as the setting workload") in msg
    assert (f"fixed.workload: {pages}: not a workload file (one written by `hwzswap record`); "
            "built-in workloads are roundtrip") in msg


def test_dry_run_refuses_the_runs_of_a_workload_file_with_settings_it_fixes(
        workload_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run said "ok" for runs the bench then refused, one by one."""
    sweep = write_sweep(tmp_path, {"axes": {"backend": ["lz4"],
                                            "workload": ["roundtrip", str(workload_file)]},
                                   "fixed": {"pages": 16, "seed": 3}})
    assert main(["sweep", str(sweep), "--dry-run", "-o", str(tmp_path / "out")]) == 1
    out, err = capsys.readouterr()
    assert ("run 2 (lz4_w.hwzw-" in out and "): the bench would refuse it: the workload w.hwzw "
            "is a recorded workload file" in out and "refuses pages, seed with it" in out)
    assert "run 1 " not in out  # roundtrip takes them
    assert "1 of 2 runs would fail: the bench would refuse their settings" in err
    # the same file alone is fine
    sweep = write_sweep(tmp_path, {"axes": {"backend": ["lz4", "zstd"]},
                                   "fixed": {"workload": str(workload_file)}})
    assert main(["sweep", str(sweep), "--dry-run", "-o", str(tmp_path / "out")]) == 0


MARKUP = ["[/b]", "[red]x", "a\\", "[link=file:///etc]y[/link]"]


def test_markup_in_user_strings_is_shown_as_written(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """An axis value '[/b]' raised rich's MarkupError in --dry-run; '[red]' vanished."""
    sweep = write_sweep(tmp_path, {"axes": {"backend": ["lz4"], "workload": ["roundtrip"],
                                            "zswap.max_pool_percent": MARKUP}},
                        name="[red]s.yaml")
    assert main(["sweep", str(sweep), "--dry-run", "-o", str(tmp_path / "o[b]")]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "MarkupError" not in out + err
    for i, value in enumerate(MARKUP):  # the config loader's message quotes each, as written
        assert (f"s.yaml: axes.zswap.max_pool_percent[{i}]: must be an integer 1..100, got "
                f"{value!r}") in out
    cells = [line.split("│")[5].strip() for line in out.splitlines() if "│ lz4 " in line]
    assert cells[:3] == ["[/b]", "[red]x", "a\\"]  # shown, not read as markup
    assert "[red]s.yaml: 4 runs" in out and "output: " + str(tmp_path / "o[b]") in out


def test_markup_in_a_record_is_shown_as_written(tmp_path: Path) -> None:
    """A record's status or reason with '[/b]' raised MarkupError in the table."""
    from rich.console import Console

    rec = {"run_id": "r[/b]", "status": "failed", "failure": "[/i]", "reason": "bad [/b] [red]",
           "coords": {"backend": "[/b]"}, "settings": {}, "backend": "lz4", "host": "h[/b]",
           "overridden": {"zswap.x": {"asked": "[/b]", "used": None}}}
    doc = {"axes": ["backend"], "sweep": {"source": "[/b].yaml", "axes": {"backend": ["[/b]"]}},
           "runs": {"planned": 1, "ok": 0, "failed": 1, "unschedulable": 0, "missing": 0},
           "records": [rec]}
    console = Console(record=True, width=200)
    report.print_table(doc, None, console)
    text = console.export_text()
    assert "sweep [/b].yaml: 1 runs" in text and "r[/b]: failed ([/i]): bad [/b] [red]" in text
    assert "h[/b]" in text and "asked '[/b]'" in text


def _records_dir(tmp_path: Path) -> tuple[SweepSpec, Any, Path]:
    spec = load_sweep(write_sweep(tmp_path, {"axes": {"backend": ["lz4"]},
                                             "fixed": {"pages": 16, "repeat": 1}}))
    return spec, expand(spec), tmp_path / "out"


@pytest.mark.parametrize("bad", [
    {"status": "ok"},                                        # the resumed record of the review
    {"status": "ok", "backend": "lz4", "coords": {}, "settings": {}, "failure": None,
     "reason": None, "host": "h"},                           # ok without its figures
    {"status": "done", "backend": "lz4", "coords": {}, "settings": {}, "failure": None,
     "reason": None, "host": "h"},
    {"status": "failed", "backend": 3, "coords": {}, "settings": {}, "failure": "exit",
     "reason": "x", "host": None},
    {"status": "failed", "backend": "lz4", "coords": [], "settings": {}, "failure": "exit",
     "reason": "x", "host": None},
    {"status": "failed", "backend": "lz4", "coords": {}, "settings": {}, "failure": "exit",
     "reason": "x", "host": None, "overridden": {"k": 1}},
    {"status": "failed", "backend": "lz4", "coords": {}, "settings": {}, "failure": "exit",
     "reason": "x", "host": None, "deep": json.loads("[" * 900 + "]" * 900)},
    "[" * 5000 + "]" * 5000,                                 # past json's recursion limit
])
def test_a_record_the_report_cannot_read_is_no_record(tmp_path: Path, bad: Any) -> None:
    """``{"run_id": ..., "status": "ok"}`` in runs/ was resumed, then the report failed with
    KeyError 'backend'. Such a file is no record: the run is done again and the file
    replaced."""
    spec, plan, out = _records_dir(tmp_path)
    (run,) = plan.runs
    path = store.record_path(out, run.run_id)
    path.parent.mkdir(parents=True)
    path.write_text(bad if isinstance(bad, str) else json.dumps({"run_id": run.run_id, **bad}))
    assert store.read_record(out, run.run_id) is None
    outcome = run_sweep(spec, plan, out, timeout=300, plots=False)
    assert outcome.ran == [run.run_id] and outcome.all_ok
    assert json.loads(path.read_text())["status"] == "ok"
    report.markdown(outcome.doc, None)


def test_a_record_path_that_is_a_directory_is_refused_before_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``runs/<id>.json`` a directory: the run ran, then IsADirectoryError lost its record."""
    spec, plan, out = _records_dir(tmp_path)
    (run,) = plan.runs
    path = store.record_path(out, run.run_id)
    path.mkdir(parents=True)
    with pytest.raises(store.SweepOutputError,
                       match=rf"^-o {out}: {path} is a directory, where the run's record goes; "
                             "remove it, or give another directory$"):
        run_sweep(spec, plan, out, timeout=300, plots=False)
    assert sorted(p.name for p in out.iterdir()) == ["runs"]  # no run, nothing merged
    sweep = Path(spec.source)
    assert main(["sweep", str(sweep), "-o", str(out), "--quiet"]) == 2
    assert "is a directory, where the run's record goes" in capsys.readouterr().err


def test_the_shipped_sweeps_stay_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "configs" / "sweeps"
    for path in sorted(root.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        assert expand(load_sweep(path)).combinations <= MAX_COMBINATIONS, raw


def test_a_fifo_in_place_of_a_record_is_not_read(tmp_path: Path) -> None:
    """A FIFO at ``runs/<id>.json`` blocked the resume's read forever; it is refused unread
    (and, as any non-file there, before the run)."""
    import os

    spec, plan, out = _records_dir(tmp_path)
    (run,) = plan.runs
    path = store.record_path(out, run.run_id)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    assert store.read_record(out, run.run_id) is None
    with pytest.raises(store.SweepOutputError, match=rf"{path} is a FIFO, where the run's "):
        run_sweep(spec, plan, out, timeout=300, plots=False)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), 1e308, "60"])
def test_run_sweep_refuses_a_timeout_that_is_no_duration(tmp_path: Path, timeout: Any) -> None:
    from hwzswap.errors import HwzswapError

    spec, plan, out = _records_dir(tmp_path)
    with pytest.raises(HwzswapError, match=r"^timeout: must be a number of seconds > 0 and at "
                                           r"most 604800 \(a week\)"):
        run_sweep(spec, plan, out, timeout=timeout, plots=False)
    assert not out.exists()
