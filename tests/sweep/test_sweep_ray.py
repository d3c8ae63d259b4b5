"""The same sweeps on a real local Ray cluster, started by the test (2 CPUs, no GPU, and one
unit of a custom resource ``testdev``), shut down and removed afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from hwzswap.backends import Backend, register_backend, registry
from hwzswap.cli import main
from hwzswap.sweep.execute import run_sweep
from hwzswap.sweep.merge import document_problems
from hwzswap.sweep.plan import expand
from hwzswap.sweep.spec import load_sweep, parse_sweep

from sweep_helpers import SMALL_SWEEP, same_fields, write_sweep


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, Any]]:
    """A local Ray cluster for the module; its session files live in a temporary directory
    (short: Ray's socket paths must fit in 107 bytes) that is removed with it."""
    temp = tempfile.mkdtemp(prefix="hwzray", dir="/tmp")
    old_auth = os.environ.get("RAY_AUTH_MODE")
    old_term = signal.getsignal(signal.SIGTERM)  # ray.init installs its own: put back after
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a local test cluster writes no token to ~/.ray
    try:
        ray.init(num_cpus=2, num_gpus=0, resources={"testdev": 1}, include_dashboard=False,
                 object_store_memory=100 << 20,  # records are small; keep CI's /dev/shm free
                 log_to_driver=False, _temp_dir=temp)
        yield {"resources": ray.cluster_resources()}
    finally:
        ray.shutdown()
        signal.signal(signal.SIGTERM, old_term)
        if old_auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = old_auth
        shutil.rmtree(temp, ignore_errors=True)


def test_same_records_on_ray_and_locally(cluster: dict[str, Any], swept: dict[str, Any],
                                         tmp_path: Path) -> None:
    spec = load_sweep(write_sweep(tmp_path, SMALL_SWEEP))
    plan = expand(spec)
    on_ray = run_sweep(spec, plan, tmp_path / "ray", ray="auto", timeout=300, plots=False)
    here = swept["outcome"]  # the same sweep, run locally
    assert document_problems(on_ray.doc) == []
    assert on_ray.doc["executor"]["executor"] == "ray"
    assert [h["host"] for h in on_ray.doc["executor"]["nodes"]] == [socket.gethostname()]
    assert [same_fields(r) for r in on_ray.doc["records"]] == \
        [same_fields(r) for r in here.doc["records"]]
    statuses = [r["status"] for r in on_ray.doc["records"]]
    assert statuses == ["ok", "failed", "ok"]  # the failing run did not stop the others
    for rec in on_ray.doc["records"]:
        assert rec["host"] == socket.gethostname()
        if rec["status"] == "ok":
            assert rec["verified_pages"] == rec["pages"] == 48
    assert ray.is_initialized()  # the caller's connection is left as it was
    # resume on Ray: nothing runs again
    again = run_sweep(spec, plan, tmp_path / "ray", ray="auto", timeout=300, plots=False)
    assert again.ran == [] and again.doc["runs"]["resumed"] == 3


def test_resources_are_honoured(cluster: dict[str, Any], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", {})

    @register_backend
    class Nx842Card(Backend):
        """A driver for a real NX-842 card: it declares the resource its hosts offer."""

        name = "test-nx842-card"
        resources = {"nx842": 1}

        def compress(self, page: Any) -> bytes | None:  # pragma: no cover - never scheduled
            raise AssertionError("no node has an nx842: this run must never start")

        def decompress(self, data: Any) -> bytes:  # pragma: no cover
            raise AssertionError("never scheduled")

    spec = parse_sweep({
        "axes": {"backend": ["lz4", "zstd", "test-nx842-card", "lz4-opencl"]},
        "fixed": {"pages": 48, "repeat": 1, "params.device_type": "gpu"},
        "resources": {"zstd": {"testdev": 1}},
    })
    plan = expand(spec)
    assert [r.resources for r in plan.runs] == [
        {"CPU": 1.0}, {"CPU": 1.0, "testdev": 1.0}, {"CPU": 1.0, "nx842": 1.0},
        {"CPU": 1.0, "GPU": 1.0}]
    outcome = run_sweep(spec, plan, tmp_path / "res", ray="auto", timeout=300, plots=False)
    recs = {r["backend"]: r for r in outcome.doc["records"]}
    assert recs["lz4"]["status"] == "ok"
    assert recs["zstd"]["status"] == "ok"  # placed on the node that declares testdev
    assert recs["zstd"]["host"] == socket.gethostname()
    for name, want in (("test-nx842-card", "nx842=1"), ("lz4-opencl", "GPU=1")):
        rec = recs[name]
        assert rec["status"] == "unschedulable" and rec["host"] is None
        assert f"no node of the cluster has CPU=1, {want}" in rec["reason"]
        assert "testdev=1" in rec["reason"]  # the nodes' offer is listed
    assert outcome.doc["runs"]["unschedulable"] == 2


def test_timeout_and_command_line_on_ray(cluster: dict[str, Any], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    spec = parse_sweep({"axes": {"backend": ["lz4"]}, "fixed": {"pages": 48, "repeat": 1}})
    outcome = run_sweep(spec, expand(spec), tmp_path / "t", ray="auto", timeout=0.05,
                        plots=False)
    rec = outcome.doc["records"][0]
    assert (rec["status"], rec["failure"]) == ("failed", "timeout")
    assert rec["host"] == socket.gethostname()
    path = write_sweep(tmp_path, {"axes": {"backend": ["lz4", "deflate"]},
                                  "fixed": {"pages": 48, "repeat": 1}})
    assert main(["sweep", str(path), "--ray", "auto", "--jobs", "2"]) == 2
    assert "--jobs is for the local executor" in capsys.readouterr().err
    assert main(["sweep", str(path), "--ray", "auto", "-o", str(tmp_path / "c"),
                 "--group-by", "backend"]) == 0
    out = capsys.readouterr().out
    assert "2 runs, 2 ok" in out and socket.gethostname() in out
    assert (tmp_path / "c" / "speedup_vs_lz4.png").exists()
