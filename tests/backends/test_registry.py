"""The registry: built-ins, entry-point plugins, availability reporting, the backends CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hwzswap
from hwzswap.backends import Backend, available_backends, backend_from_config, register_backend
from hwzswap.backends import registry
from hwzswap.cli import main
from hwzswap.errors import BackendLoadError, BackendUnavailableError, UnknownBackendError

from helpers import unavailable_backend

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hwzswap-xz-driver"
SOFTWARE = {"lzo", "lz4", "lz4hc", "zstd", "deflate"}


def test_software_backends_listed_available() -> None:
    rows = {r.name: r for r in hwzswap.available_backends()}
    for name in SOFTWARE:
        assert rows[name].available, rows[name].reason
        assert rows[name].capabilities["time_basis"] == "measured"
    assert {"842", "842-nx", "lz4-opencl"} <= set(rows)


def test_unknown_backend_lists_known_names() -> None:
    with pytest.raises(UnknownBackendError, match="no backend named 'nope'.*lz4"):
        hwzswap.get_backend("nope")


def test_backend_from_config_roundtrip() -> None:
    b = hwzswap.get_backend("zstd", level=5)
    assert backend_from_config(b.get_config()).get_config() == {"name": "zstd", "level": 5}
    with pytest.raises(UnknownBackendError, match="no 'name'"):
        backend_from_config({"level": 1})


def test_unavailable_backend_reports_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    no_device = unavailable_backend("test-nodevice", "no accelerator card found")
    monkeypatch.setitem(registry._registered, "test-nodevice", no_device)
    monkeypatch.setitem(registry._BUILTINS, "test-broken", "hwzswap.no_such_module:Thing")
    rows = {r.name: r for r in available_backends()}
    assert rows["test-nodevice"].available is False
    assert rows["test-nodevice"].reason == "no accelerator card found"
    assert rows["test-broken"].available is False
    assert "ModuleNotFoundError" in rows["test-broken"].reason
    with pytest.raises(BackendUnavailableError, match="no accelerator card found"):
        hwzswap.get_backend("test-nodevice")
    with pytest.raises(BackendUnavailableError, match="could not be loaded"):
        hwzswap.get_backend("test-broken")


def test_register_backend_decorator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", {})

    @register_backend
    class Identityish(Backend):
        name = "test-lz4-alias"

        def compress(self, page):
            return hwzswap.get_backend("lz4").compress(page)

        def decompress(self, data):
            return hwzswap.get_backend("lz4").decompress(data)

    from hwzswap.testing import check_backend

    check_backend("test-lz4-alias")


class _Renamed(Backend):
    """A class that reports a name other than the one it is registered under."""

    name = "test-reported-name"

    def compress(self, page):  # pragma: no cover - never built
        raise AssertionError

    def decompress(self, data):  # pragma: no cover
        raise AssertionError


def test_a_class_found_under_another_name_is_refused_naming_both(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry point named 'deflate-tiny' loading a class named 'tiny-other' used to list and
    pass the kit, then fail in the bench ("no backend named 'tiny-other'"). The registry now
    refuses it where it is loaded, naming both names; ``backends`` shows why."""
    import types

    mod = types.ModuleType("hwzswap_test_renamed")
    mod.Renamed = _Renamed  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hwzswap_test_renamed", mod)
    monkeypatch.setitem(registry._BUILTINS, "test-listed-name", "hwzswap_test_renamed:Renamed")
    with pytest.raises(BackendLoadError,
                       match="registered as 'test-listed-name' but its class attribute 'name' "
                             "is 'test-reported-name'.*a bug in the driver's package"):
        hwzswap.get_backend("test-listed-name")
    row = {r.name: r for r in available_backends()}["test-listed-name"]
    assert row.available is False and "test-reported-name" in row.reason


def test_register_backend_refuses_a_name_the_class_does_not_report(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", {})
    with pytest.raises(ValueError, match=r"cannot register _Renamed as 'test-alias': its name is "
                                         r"'test-reported-name'.*register_backend\(_Renamed\) alone"):
        register_backend(_Renamed, "test-alias")
    assert not registry._registered
    register_backend(_Renamed)  # under its own name: fine
    assert registry._registered == {"test-reported-name": _Renamed}


def test_the_deprecated_name_argument_still_registers_a_driver_that_passes_its_own_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver written when ``name`` was the key keeps working (its own name), and is told
    to drop the argument."""
    monkeypatch.setattr(registry, "_registered", {})
    with pytest.warns(DeprecationWarning, match=r"call register_backend\(_Renamed\) alone"):
        assert register_backend(_Renamed, "test-reported-name") is _Renamed
    assert registry._registered == {"test-reported-name": _Renamed}


def test_a_class_without_a_name_cannot_be_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", {})

    class Nameless(_Renamed):
        name = ""

    for args in ((Nameless,), (Nameless, "test-given")):
        with pytest.raises(ValueError, match="Nameless has no name; set the class attribute 'name'"):
            register_backend(*args)
    assert not registry._registered


def test_backends_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name in SOFTWARE:
        assert rows[name]["available"] is True
        assert rows[name]["time_basis"] == "measured"
        assert rows[name]["reason"] is None


def test_backends_cli_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "lzo" in out and "deflate" in out and "time basis" in out


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the example third-party package for real (pip, no network) into a target dir."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--no-index", "--target", str(target), str(EXAMPLE)],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert any(p.name.endswith(".dist-info") for p in target.iterdir())
    return target


def _run_with_plugin(target: Path, code: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_third_party_plugin_appears_in_backends(installed_plugin: Path) -> None:
    out = _run_with_plugin(
        installed_plugin, "import sys; from hwzswap.cli import main; sys.exit(main(['backends', '--json']))"
    )
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["xz"]["available"] is True
    assert rows["xz"]["source"].startswith("entry-point hwzswap_xz_driver")
    assert rows["xz"]["params"] == {"preset": 1}


def test_third_party_plugin_passes_conformance(installed_plugin: Path) -> None:
    out = _run_with_plugin(
        installed_plugin,
        "from hwzswap.testing import check_backend; check_backend('xz', preset=2); print('ok')",
    )
    assert out.strip() == "ok"


def test_third_party_plugin_selectable_in_config(installed_plugin: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "xz.yaml"
    cfg.write_text("zswap:\n  compressor:\n    name: xz\n    params: {preset: 3}\n")
    out = _run_with_plugin(
        installed_plugin,
        "import numpy as np, hwzswap\n"
        f"sys_ = hwzswap.open_zswap({str(cfg)!r})\n"
        "page = (np.arange(4096) % 13).astype(np.uint8).tobytes()\n"
        "assert sys_.swap_out(0, 5, page) is True\n"
        "assert sys_.swap_in(0, 5) == page\n"
        "print(sys_.backend.get_config())\n"
        "sys_.close()\n",
    )
    assert "'name': 'xz'" in out and "'preset': 3" in out


def test_register_backend_refuses_a_builtin_name_and_a_bad_name():
    """A config naming ``lz4`` always means the built-in: registering a class under that name
    at run time silently replaced it (an entry point so named is ignored, with a warning)."""
    from hwzswap.backends.lz4 import Lz4Backend
    from hwzswap.backends.registry import get_backend, register_backend

    class Shadow(Lz4Backend):
        name = "lz4"

    class Spaced(Lz4Backend):
        name = "my codec"

    with pytest.raises(ValueError, match="'lz4'.* built-in backend's name"):
        register_backend(Shadow)
    assert type(get_backend("lz4")) is Lz4Backend
    with pytest.raises(ValueError, match="'my codec' is not a backend name"):
        register_backend(Spaced)
