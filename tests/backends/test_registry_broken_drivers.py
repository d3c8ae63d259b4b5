"""Misbehaving third-party drivers, installed for real as entry points (a ``.dist-info`` folder
on ``PYTHONPATH``): each is one row saying what is wrong, a BackendLoadError when selected, and
never takes down ``hwzswap backends`` for the others. An entry point named like a built-in is
ignored with a warning; a name two packages declare is refused."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

DRIVER = '''
from hwzswap.backends.lz4 import Lz4Backend


class AvailRaise(Lz4Backend):
    name = "availraise"

    @classmethod
    def availability(cls):
        raise RuntimeError("boom")


class AvailBad(Lz4Backend):
    name = "availbad"

    @classmethod
    def availability(cls):
        return True


class AvailExit(Lz4Backend):
    name = "availexit"

    @classmethod
    def availability(cls):
        raise SystemExit(4)


class BadParams(Lz4Backend):
    name = "badparams"
    PARAMS = None


class Shadow(Lz4Backend):
    name = "lz4"


class Fine(Lz4Backend):
    name = "fine-drv"
'''


def _dist(site: Path, dist: str, entry_points: dict[str, str]) -> None:
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[hwzswap.backends]\n{lines}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    (site / "brokendrv.py").write_text(DRIVER)
    (site / "exitdrv.py").write_text("import sys\nsys.exit(3)\n")
    (site / "otherdrv.py").write_text(DRIVER.replace('"fine-drv"', '"twice"'))
    _dist(site, "brokendrv", {
        "availraise": "brokendrv:AvailRaise", "availbad": "brokendrv:AvailBad",
        "availexit": "brokendrv:AvailExit", "badparams": "brokendrv:BadParams",
        "lz4": "brokendrv:Shadow", "fine-drv": "brokendrv:Fine",
        "exits": "exitdrv:Gone", "twice": "brokendrv:Fine"})
    _dist(site, "otherdrv", {"twice": "otherdrv:Fine"})
    return site


@pytest.fixture(scope="module")
def odd_name_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An entry point whose name is no backend name (and rich markup, for the JSON listing)."""
    site = tmp_path_factory.mktemp("oddsite")
    _dist(site, "odddrv", {"[/b]": "brokendrv:Fine"})
    return site


def _run(site: Path | list[Path], args: list[str]) -> subprocess.CompletedProcess[str]:
    sites = site if isinstance(site, list) else [site]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, sites), str(ROOT)])}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_backends_lists_every_driver_with_what_is_wrong(site: Path, odd_name_site: Path) -> None:
    res = _run([site, odd_name_site], ["-m", "hwzswap", "backends", "--json"])
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["lz4"]["available"] is True and rows["lz4"]["source"] == "builtin"
    assert rows["fine-drv"]["available"] is True
    reasons = {name: rows[name]["reason"] for name in
               ("availraise", "availbad", "availexit", "badparams", "exits", "[/b]", "twice")}
    assert all(rows[name]["available"] is False for name in reasons)
    assert "availability() raised RuntimeError: boom" in reasons["availraise"]
    assert "availability() must return (bool, reason or None), got True" in reasons["availbad"]
    assert "availability() raised SystemExit: 4" in reasons["availexit"]
    assert "BadParams.PARAMS must be a mapping of parameter names" in reasons["badparams"]
    assert "got NoneType" in reasons["badparams"]
    assert reasons["exits"] == "SystemExit: 3"
    assert "'[/b]' is not a backend name" in reasons["[/b]"]
    assert ("2 installed packages declare a backend named 'twice' (brokendrv:Fine, "
            "otherdrv:Fine); uninstall or rename all but one") in reasons["twice"]
    # the built-in keeps its name, and the user is told their entry point is ignored
    assert ("entry-point brokendrv:Shadow is ignored: 'lz4' is a built-in backend's name"
            in res.stderr)
    assert res.stderr.count("brokendrv:Shadow is ignored") == 1


def test_the_backends_table_shows_them_too(site: Path, odd_name_site: Path) -> None:
    res = _run([site, odd_name_site], ["-m", "hwzswap", "backends"])
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    for name in ("availraise", "badparams", "exits", "[/b]", "fine-drv", "zstd"):
        assert name in res.stdout


def test_selecting_a_broken_driver_is_a_backend_load_error_naming_it(site: Path) -> None:
    code = '''
import json
import re
import hwzswap
from hwzswap.errors import BackendLoadError
out = {}
for name in ("availraise", "availbad", "availexit", "badparams", "exits", "twice", "lz4"):
    try:
        out[name] = ["ok", hwzswap.get_backend(name).name, type(hwzswap.get_backend(name)).__name__]
    except BackendLoadError as exc:
        out[name] = ["BackendLoadError", str(exc)]
print(json.dumps(out))
'''
    res = _run(site, ["-W", "ignore::RuntimeWarning", "-c", code])
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["lz4"] == ["ok", "lz4", "Lz4Backend"]  # the built-in, not the shadowing class
    for name in ("availraise", "availbad", "availexit", "badparams", "exits", "twice"):
        assert out[name][0] == "BackendLoadError" and f"backend {name!r}" in out[name][1], out
    assert "a bug in the driver" in out["availraise"][1]
    assert "SystemExit: 3" in out["exits"][1]


def test_a_config_selecting_a_broken_driver_fails_cleanly_in_stats(
        site: Path, tmp_path: Path) -> None:
    for name, why in (("availraise", "availability() raised RuntimeError: boom"),
                      ("exits", "SystemExit: 3"), ("badparams", "PARAMS must be a mapping")):
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(f"zswap: {{compressor: {name}}}\n")
        res = _run(site, ["-m", "hwzswap", "stats", "--config", str(cfg), "--pages", "4"])
        assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
        assert f"{cfg}: zswap.compressor" in res.stderr and why in res.stderr, res.stderr


def test_a_class_registered_at_run_time_with_bad_params_is_one_broken_row() -> None:
    import hwzswap
    from hwzswap.backends.lz4 import Lz4Backend
    from hwzswap.backends.registry import available_backends, registered
    from hwzswap.errors import BackendLoadError

    class ListParams(Lz4Backend):
        name = "test-list-params"
        PARAMS = ["acceleration"]  # type: ignore[assignment]

    with registered(ListParams):
        rows = {r.name: r for r in available_backends()}
        assert rows["test-list-params"].available is False
        assert "ListParams.PARAMS must be a mapping" in rows["test-list-params"].reason
        assert rows["lz4"].available is True
        with pytest.raises(BackendLoadError, match="got list"):
            hwzswap.get_backend("test-list-params")


@pytest.mark.parametrize(("answer", "available", "reason"), [
    ((True, None), True, None),
    ([True, None], True, None),
    ((False, "no card"), False, "no card"),
    ((False, None), False, "its availability() says it cannot run here and gives no reason"),
    ((1, None), None, "must return (bool, reason or None), got (1, None)"),
    # as loosely as before: numpy's bool, and a reason of any kind shown as text
    ((np.bool_(True), None), True, None),
    ((False, ImportError("no module named cuda")), False, "no module named cuda"),
    ((False, 42), False, "42"),
    ((True, None, "extra"), None, "must return (bool, reason or None)"),
    (None, None, "must return (bool, reason or None), got None"),
])
def test_what_availability_may_answer(answer: object, available: bool | None,
                                      reason: str) -> None:
    import hwzswap
    from hwzswap.backends.lz4 import Lz4Backend
    from hwzswap.backends.registry import available_backends, registered
    from hwzswap.errors import BackendLoadError, BackendUnavailableError

    class Answering(Lz4Backend):
        name = "test-answering"

        @classmethod
        def availability(cls):  # type: ignore[override]
            return answer

    with registered(Answering):
        row = {r.name: r for r in available_backends()}["test-answering"]
        if available is True:
            assert row.available is True and row.reason is None
            assert hwzswap.get_backend("test-answering").name == "test-answering"
        elif available is False:
            assert row.available is False and row.reason == reason
            with pytest.raises(BackendUnavailableError, match=re.escape(reason)):
                hwzswap.get_backend("test-answering")
        else:
            assert row.available is False and reason in row.reason
            with pytest.raises(BackendLoadError, match=re.escape(reason)):
                hwzswap.get_backend("test-answering")
