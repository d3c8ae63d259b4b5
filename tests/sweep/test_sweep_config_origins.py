"""A run whose config is refused is named by where the sweep set the value (the sweep file's
axis or fixed setting, or the base config file's key), not by the ``config.yaml`` the sweep
generated for the run's bench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwzswap.cli import main
from hwzswap.sweep.plan import config_origins, expand, origin_of
from hwzswap.sweep.spec import load_sweep
from hwzswap.sweep.worker import execute_run, named_by_origin, read_runspec

from sweep_helpers import install_driver, write_sweep


def test_every_config_key_of_a_run_knows_its_origin(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("zswap:\n  max_pool_percent: 30\n  async_max_batches: 8\n"
                    "memory:\n  total_ram_mb: 64\n")
    path = write_sweep(tmp_path, {
        "axes": {"backend": ["lz4"], "zswap.async_max_batches": [2, 4],
                 "params.acceleration": [1]},
        "fixed": {"config": "base.yaml", "batching": "async", "pages": 16}})
    spec = load_sweep(path)
    run = expand(spec).runs[1]
    assert run.origins == config_origins(spec, run.coords, run.settings)
    assert run.runspec()["origins"] == run.origins
    src = str(path)
    assert run.origins["zswap.async_max_batches"] == f"{src}: axes.zswap.async_max_batches[1]"
    assert run.origins["zswap.compressor.params.acceleration"] == (
        f"{src}: axes.params.acceleration[0]")
    assert run.origins["zswap.compressor.name"] == f"{src}: axes.backend[0]"
    assert run.origins["zswap.batching"] == f"{src}: fixed.batching"
    assert run.origins["zswap.max_pool_percent"] == f"{base}: zswap.max_pool_percent"
    assert run.origins["memory.total_ram_mb"] == f"{base}: memory.total_ram_mb"
    assert "pages" not in run.origins  # a bench option, not a config key
    # a problem of a whole setting or of what lies under one
    assert origin_of("zswap.compressor.name", {"zswap.compressor": "b.yaml: zswap.compressor"}
                     ) == "b.yaml: zswap.compressor"
    assert origin_of("zswap.compressor.params", {"zswap.compressor.params.a": "s: axes.params.a"}
                     ) == "zswap.compressor.params (set by s: axes.params.a)"
    assert origin_of("swap.nr_pages", {}) is None


@pytest.fixture()
def refused(tmp_path: Path) -> Path:
    return write_sweep(tmp_path, {"axes": {"backend": ["lz4"],
                                           "zswap.async_max_batches": [0, 4]},
                                  "fixed": {"workload": "roundtrip", "pages": 16,
                                            "repeat": 1}})


def test_dry_run_names_the_axis_that_set_the_refused_value(
        refused: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", str(refused), "--dry-run", "-o", str(tmp_path / "o")]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert (f"the config loader here refuses it: {refused}: axes.zswap.async_max_batches[0]: "
            "must be auto or an integer 1..4096, got 0") in out


def test_a_run_refused_by_its_bench_is_named_by_the_axis(refused: Path, tmp_path: Path) -> None:
    run = expand(load_sweep(refused)).runs[0]
    rec = execute_run(run.runspec(), timeout=120)
    assert (rec["status"], rec["failure"], rec["exit_code"]) == ("failed", "exit", 2)
    assert rec["reason"] == (f"exit status 2: the run's config is refused: {refused}: "
                             "axes.zswap.async_max_batches[0]: must be auto or an integer "
                             "1..4096, got 0")
    assert "config.yaml: zswap.async_max_batches" in rec["stderr_tail"]  # the bench's words
    # a record written before runspecs kept origins is still read and run: the bench's words
    spec = run.runspec()
    del spec["origins"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"status": "failed", "runspec": spec}))
    rec = execute_run(read_runspec(old), timeout=120)
    assert "config.yaml: zswap.async_max_batches: must be auto" in rec["reason"]


def test_an_exclusive_loads_refusal_is_named_by_the_fixed_setting(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"axes": {"backend": ["lz4"]},
                                  "fixed": {"zswap.exclusive_loads": True, "workload": "mixed",
                                            "pages": 64, "repeat": 1}})
    rec = execute_run(expand(load_sweep(path)).runs[0].runspec(), timeout=120)
    assert rec["exit_code"] == 2, rec
    assert (f"{path}: fixed.zswap.exclusive_loads: true frees a slot when it is loaded"
            in rec["reason"])
    assert "config.yaml" not in rec["reason"]


def test_dry_run_refuses_exclusive_loads_with_a_workload_that_loads_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_sweep(tmp_path, {"axes": {"backend": ["lz4"],
                                           "workload": ["roundtrip", "pressure"]},
                                  "fixed": {"zswap.exclusive_loads": True, "pages": 16}})
    assert main(["sweep", str(path), "--dry-run", "-o", str(tmp_path / "o")]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert (f"): the bench would refuse it: {path}: fixed.zswap.exclusive_loads: true frees a "
            "slot when it is loaded, and the workload pressure loads slots again; use roundtrip "
            "with it") in out
    assert "run 1 (" not in out  # roundtrip loads each page once


def test_a_runspec_whose_origins_are_not_text_is_refused_as_input(tmp_path: Path) -> None:
    """``origins`` must map setting names to text: a hand-edited record with a number there
    is refused when read (it crashed the worker's refusal naming with a TypeError)."""
    from hwzswap.errors import HwzswapError

    path = write_sweep(tmp_path, {"axes": {"backend": ["lz4"]},
                                  "fixed": {"zswap.exclusive_loads": True, "workload": "mixed",
                                            "pages": 64, "repeat": 1}})
    spec = expand(load_sweep(path)).runs[0].runspec()
    spec["origins"] = {"zswap.exclusive_loads": 5}
    rec = tmp_path / "rec.json"
    rec.write_text(json.dumps({"status": "failed", "runspec": spec}))
    with pytest.raises(HwzswapError, match="'origins' must map setting names to strings"):
        read_runspec(rec)


def test_a_drivers_parameter_error_is_named_by_the_axis(tmp_path: Path) -> None:
    """A parameter the config loader accepts but the driver refuses when built (an OpenCL
    device that is not here) fails the run with the bench's ``failed`` entry; its message
    named the run's generated ``config.yaml``, removed when the run ends: it is named by the
    sweep file's axis instead, as for the loader's refusals."""
    path = write_sweep(tmp_path, {"axes": {"backend": ["lz4", "lz4-opencl"],
                                           "params.device": ["no-such-opencl-device-zz"]},
                                  "fixed": {"pages": 16, "repeat": 1}})
    runs = expand(load_sweep(path)).runs
    (run,) = [r for r in runs if r.backend == "lz4-opencl"]
    rec = execute_run(run.runspec(), timeout=120)
    assert (rec["status"], rec["failure"], rec["exit_code"]) == ("failed", "error", 1), rec
    assert "config.yaml" not in rec["reason"]
    assert (f"{path}: axes.params.device[0]: lz4-opencl: parameter 'device'"
            in rec["reason"]), rec["reason"]


#: lz4 whose first capabilities read fails: the bench cannot ask the engine's rule before the
#: run (its skip of a design the device cannot take), so the engine refuses the design when the
#: run builds it, and ``open_zswap``'s ConfigError names the config the bench built for the row.
LATE_CAPS_DRIVER = '''
from hwzswap.backends.contract import Capabilities
from hwzswap.backends.lz4 import Lz4Backend


class LateCaps(Lz4Backend):
    name = "latecaps"
    reads = 0

    @property
    def capabilities(self):
        LateCaps.reads += 1
        if LateCaps.reads == 1:
            raise RuntimeError("not ready yet")
        return Capabilities()
'''


def test_a_config_error_of_the_engine_is_named_by_the_axis(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ConfigError raised when the engine is built (``open_zswap``: ``zswap.async_submit:
    queue`` on a device without a queue) names the bench's row config, ``config.yaml +
    workload 'roundtrip' overrides``; it was left as it was, naming the run's generated file,
    gone once the run ends. It is named by the sweep file's axis, as the loader's refusals."""
    name = install_driver(tmp_path, monkeypatch, "latecaps", LATE_CAPS_DRIVER, "LateCaps")
    path = write_sweep(tmp_path, {"axes": {"backend": [name], "zswap.async_submit": ["queue"]},
                                  "fixed": {"batching": "async", "workload": "roundtrip",
                                            "pages": 16, "repeat": 1}})
    rec = execute_run(expand(load_sweep(path)).runs[0].runspec(), timeout=120)
    assert (rec["status"], rec["failure"], rec["exit_code"]) == ("failed", "error", 1), rec
    assert (f"{path}: axes.zswap.async_submit[0]: queue needs an asynchronous device"
            in rec["reason"]), rec["reason"]
    assert "config.yaml" not in rec["reason"] and "overrides" not in rec["reason"]
    # any workload's name, as Python writes it; another text before the key is not the run's
    origins = {"zswap.async_submit": "s.yaml: fixed.zswap.async_submit"}
    for workload in ("w", "it's", 'say "x"', "a: b"):
        text = f"config.yaml + workload {workload!r} overrides: zswap.async_submit: no queue"
        assert named_by_origin(origins, text) == "s.yaml: fixed.zswap.async_submit: no queue"
    for text in ("config.yaml + another: zswap.async_submit: x",
                 "/tmp/r/config.yaml + workload 'w' overrides: zswap.async_submit: x",
                 "config.yaml + workload 'w' overrides: zswap.max_pool_percent: x"):
        assert named_by_origin(origins, text) == text
