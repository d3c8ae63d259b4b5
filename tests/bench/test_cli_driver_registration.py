"""A driver installed through a real entry point (a ``.dist-info`` on ``sys.path``, as an
installed distribution is found) that the registry cannot load: a packaging bug is a FAILED
row and exit 1, a missing module is a skipped backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hwzswap.bench.results import schema_problems

ROOT = Path(__file__).resolve().parents[2]

DRIVER = '''\
from hwzswap.backends.deflate import DeflateBackend


class DeflateOther(DeflateBackend):
    """A real deflate driver whose class name differs from its entry point's."""

    name = "deflate-other"
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory holding one distribution with two ``hwzswap.backends`` entry points:
    ``deflate-wrongname`` (a class named ``deflate-other``) and ``absent-driver`` (a module
    that is not installed)."""
    site = tmp_path_factory.mktemp("site")
    (site / "hwzswap_test_wrongname.py").write_text(DRIVER)
    info = site / "hwzswap_test_wrongname-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: hwzswap-test-wrongname\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[hwzswap.backends]\n"
        "deflate-wrongname = hwzswap_test_wrongname:DeflateOther\n"
        "absent-driver = hwzswap_test_not_installed:Driver\n")
    (info / "RECORD").write_text("")
    return site


def _bench(site: Path, tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess[str],
                                                             dict]:
    out = tmp_path / "r.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    res = subprocess.run(
        [sys.executable, "-m", "hwzswap", "bench", "--pages", "16", "--repeat", "1",
         "--batching", "page", "--json", str(out), *argv],
        env=env, capture_output=True, text=True, check=False, timeout=300)
    doc = json.loads(out.read_text()) if out.exists() else {}
    return res, doc


def test_an_entry_point_whose_class_has_another_name_is_a_failed_row(
        site: Path, tmp_path: Path) -> None:
    """It printed an empty table and exited 0, the backend "skipped" as if a device were
    missing; docs/bench.md says exit 0 means every requested backend ran."""
    res, doc = _bench(site, tmp_path, "--backends", "deflate-wrongname,lz4,absent-driver")
    assert res.returncode == 1, res.stderr
    assert "FAILED (registration)" in res.stdout
    assert schema_problems(doc) == []
    (f,) = doc["failed"]
    assert f["backend"] == "deflate-wrongname" and f["phase"] == "registration"
    # what is wrong and how to fix it
    assert "its class attribute 'name' is 'deflate-other'" in f["error"]
    assert "make the entry point's name and the class's 'name' the same" in f["error"]
    # a driver whose module is not installed cannot run here: skipped, as before
    (s,) = doc["skipped"]
    assert s["backend"] == "absent-driver" and "ModuleNotFoundError" in s["reason"]
    assert [r["backend"] for r in doc["results"]] == ["lz4"]  # the others still ran


def test_a_missing_driver_module_alone_is_skipped_and_exit_0(site: Path,
                                                             tmp_path: Path) -> None:
    res, doc = _bench(site, tmp_path, "--backends", "lz4,absent-driver", "--quiet")
    assert res.returncode == 0, res.stderr
    assert doc["failed"] == [] and [s["backend"] for s in doc["skipped"]] == ["absent-driver"]
    assert "hwzswap bench: skipped absent-driver:" in res.stderr


def test_every_backend_skipped_measures_nothing_and_exits_1(site: Path, tmp_path: Path) -> None:
    """A bench whose every requested backend was skipped exited 0 with an empty table: a
    script could not tell that it measured nothing. It exits 1 saying so; the document is
    still written, with the skipped backend and its reason."""
    res, doc = _bench(site, tmp_path, "--backends", "absent-driver", "--quiet")
    assert res.returncode == 1, res.stderr
    assert ("hwzswap bench: error: nothing was measured: every requested backend was skipped"
            in res.stderr)
    assert doc["results"] == [] and doc["failed"] == []
    assert [s["backend"] for s in doc["skipped"]] == ["absent-driver"]
    assert schema_problems(doc) == []
