"""``hwzswap sweep`` with user mistakes on the command line: refused with exit status 2 and a
message naming the option, before any run; the user's files are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwzswap.cli import main
from sweep_helpers import SMALL_SWEEP, write_sweep


def test_output_into_a_directory_with_the_users_table_is_refused(
        small_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "table.md").write_text("my notes\n")
    assert main(["sweep", str(small_sweep), "-o", str(mine), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"-o {mine}" in err and "table.md" in err and "Traceback" not in err
    assert (mine / "table.md").read_text() == "my notes\n"
    assert sorted(p.name for p in mine.iterdir()) == ["table.md"]  # no runs/ made either


def test_output_that_is_a_file_is_refused(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    sweep = write_sweep(tmp_path, SMALL_SWEEP)
    assert main(["sweep", str(sweep), "-o", str(sweep), "--quiet"]) == 2
    assert "cannot create the output directory" in capsys.readouterr().err
    assert "axes" in sweep.read_text()


def test_a_misspelt_config_key_stops_the_dry_run(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_sweep(tmp_path, {"axes": {"backend": ["lz4"],
                                          "zswap.max_pool_percnt": [10, 20]}})
    out = tmp_path / "out"
    assert main(["sweep", str(bad), "--dry-run", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "s.yaml: axes.zswap.max_pool_percnt: unknown config key; did you mean " \
           "'zswap.max_pool_percent'?" in err
    good = write_sweep(tmp_path, {"axes": {"backend": ["lz4"],
                                           "zswap.max_pool_percent": [10, 20]}}, "g.yaml")
    assert main(["sweep", str(good), "--dry-run", "-o", str(out)]) == 0
    assert "2 runs" in capsys.readouterr().out and not out.exists()


def _closed_port() -> int:
    """A local TCP port where nothing listens (bound once, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_ray_address_where_nothing_listens_is_refused_at_once(
        small_sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import ray

    assert not ray.is_initialized()  # else the sweep would use that connection
    port = _closed_port()
    out = tmp_path / "out"
    assert main(["sweep", str(small_sweep), "--ray", f"127.0.0.1:{port}", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hwzswap sweep: error: --ray 127.0.0.1:{port}: cannot join the Ray "
                          f"cluster: nothing answers at 127.0.0.1:{port} within 5 s")
    assert not out.exists()  # nothing created
    monkeypatch.setenv("RAY_ADDRESS", f"ray://127.0.0.1:{port}")
    assert main(["sweep", str(small_sweep), "--ray", "auto", "-o", str(out), "--quiet"]) == 2
    assert f"nothing answers at ray://127.0.0.1:{port} (RAY_ADDRESS)" in capsys.readouterr().err
    assert not out.exists() and not ray.is_initialized()


def test_a_ray_address_with_a_bad_port_is_refused_before_anything(
        small_sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``localhost:99999`` passed unchecked to ray.init, which hung past 30 s and left the
    output directory behind."""
    out = tmp_path / "out"
    assert main(["sweep", str(small_sweep), "--ray", "localhost:99999", "-o", str(out)]) == 2
    assert ("hwzswap sweep: error: --ray localhost:99999: the port '99999' is not a number "
            "1..65535" in capsys.readouterr().err)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:0")
    assert main(["sweep", str(small_sweep), "--ray", "auto", "-o", str(out), "--quiet"]) == 2
    assert "--ray auto: RAY_ADDRESS=127.0.0.1:0: the port '0'" in capsys.readouterr().err
    assert not out.exists()


def test_the_address_check(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from hwzswap.sweep.ray_exec import RayUnavailableError, check_reachable, host_port

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert host_port("10.0.0.1:6379") == ("10.0.0.1", 6379)
    assert host_port("ray://head.example:10001") == ("head.example", 10001)
    assert host_port("[::1]:6379") == ("::1", 6379)
    for resolved_by_ray in ("auto", "local"):
        assert host_port(resolved_by_ray) is None
        check_reachable(resolved_by_ray)  # left to Ray: no error here
    for odd, why in ((":", "no host before the port"), ("nohost.invalid", "no port"),
                     ("head", "no port"), ("ray://head", "no port"), (" :6379", "no host"),
                     ("anyscale://x", "not a Ray cluster address"),
                     ("ray://h:1/path", "not a Ray cluster address")):
        with pytest.raises(RayUnavailableError, match=rf"^--ray .*: {why}.*; give the "
                                                      r"cluster's address as HOST:6379"):
            check_reachable(odd)  # Ray would fail with its own traceback, or a ValueError
    for bad_port in ("head:port", "h:0", "localhost:99999", "ray://h:65536", "h:", "h:٣"):
        with pytest.raises(RayUnavailableError, match=r"^--ray .*: the port .* is not a number "
                                                      r"1\.\.65535; give the cluster's address"):
            check_reachable(bad_port)  # Ray would try it for minutes
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_reachable("127.0.0.1:%d" % server.getsockname()[1], timeout=2)
    with pytest.raises(RayUnavailableError, match="Connection refused"):
        check_reachable(f"127.0.0.1:{_closed_port()}", timeout=2)


@pytest.mark.parametrize("address", [":", "nohost.invalid", "ray://", "auto-typo"])
def test_an_odd_ray_address_is_refused_before_anything(
        address: str, small_sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--ray ":"`` printed Ray's traceback and ``--ray nohost.invalid`` Ray's ValueError,
    each after creating the output directory: the form is checked first, without Ray."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "out"
    assert main(["sweep", str(small_sweep), "-o", str(out), "--ray", address, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hwzswap sweep: error: --ray {address}: ")
    assert "HOST:6379 or ray://HOST:10001" in err and "Traceback" not in err
    assert not out.exists()


def test_an_odd_ray_address_in_ray_address_is_refused(
        small_sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "headnode")
    out = tmp_path / "out"
    assert main(["sweep", str(small_sweep), "-o", str(out), "--ray", "auto", "--quiet"]) == 2
    assert "--ray auto: RAY_ADDRESS=headnode: no port" in capsys.readouterr().err
    assert not out.exists()

def test_a_dry_run_checks_the_ray_address_too(
        small_sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--dry-run --ray nohost.invalid`` exited 0: the dry run never looked at ``--ray``."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "out"
    assert main(["sweep", str(small_sweep), "-o", str(out), "--ray", "nohost.invalid",
                 "--dry-run"]) == 2
    assert "--ray nohost.invalid: no port" in capsys.readouterr().err
    assert not out.exists()
