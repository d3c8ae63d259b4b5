"""``hwzswap run``'s argument checks, refused (exit 2) before any chain is set up: memory
limits too small to run anything, shown exactly otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from serveutil import hwzswap_cli, small_config

from hwzswap.errors import HwzswapError
from hwzswap.serve import kernelzswap, run


def test_sizes_are_shown_exactly() -> None:
    assert run.format_size(32 << 20) == "32 MiB"
    assert run.format_size(3 << 19) == "1.5 MiB"
    assert run.format_size(10_000_000) == "9.53674 MiB (10000000 bytes)"
    assert run.format_size(1023 << 20) == "1023 MiB"
    assert run.format_size(1000 << 30) == "1000 GiB"  # --memory-limit 1000G
    assert run.format_size(3 << 29) == "1.5 GiB"
    assert run.format_size(2 << 40) == "2 TiB"
    assert run.check_memory_limit("8M") == 8 << 20
    assert run.check_memory_limit("12.5M") == 12.5 * (1 << 20)


@pytest.mark.parametrize("limit, shown", [("1K", "1 KiB"),
                                          ("1.5M", "1.5 MiB"),
                                          ("8388607", "8 MiB (8388607 bytes)")])
def test_a_limit_below_the_floor_is_refused(limit: str, shown: str) -> None:
    with pytest.raises(HwzswapError, match="below the minimum of 8 MiB") as err:
        run.check_memory_limit(limit)
    assert f"--memory-limit {limit}: {shown} is below" in str(err.value)


def test_the_cli_refuses_a_tiny_limit_before_anything_runs(tmp_path: Path) -> None:
    p = hwzswap_cli("run", "--memory-limit", "1.5M", "--config", small_config(tmp_path), "--",
                    "true", timeout=60)
    assert p.returncode == 2, p.stderr
    assert "--memory-limit 1.5M: 1.5 MiB is below the minimum of 8 MiB" in p.stderr
    assert "cannot swap out" in p.stderr and "hwzswap run: config:" not in p.stderr


def test_a_config_the_server_refuses_is_named_with_its_key(state_dir: Path,
                                                          tmp_path: Path) -> None:
    """The server reads a temporary copy of the config; its refusal names the user's file
    (and the key), and the server log it cites is kept."""
    import re

    import yaml

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # writable by others, not sticky: the swap-file check refuses it
    cfg = tmp_path / "mine.yaml"
    cfg.write_text(yaml.safe_dump({"swap": {"nr_pages": 4096,
                                            "path": str(shared / "swapfile")}}))
    p = hwzswap_cli("run", "--memory-limit", "32M", "--config", str(cfg), "--", "true",
                    timeout=60)
    assert p.returncode == 2, p.stderr
    assert f"{cfg}: swap.path: {shared}: the swap file's directory" in p.stderr, p.stderr
    assert "hwzswap-config-" not in p.stderr
    log = re.search(r"\(log: (\S+)\)", p.stderr)
    assert log and Path(log.group(1)).is_file(), p.stderr


def test_a_kernel_compressor_the_kernel_lacks_is_refused_first(tmp_path: Path) -> None:
    """kernel-<comp> is checked before the first run (it failed after base had run): exit 2,
    nothing run, and the kernel's zswap compressor is left as it was."""
    param = Path("/sys/module/zswap/parameters/compressor")
    before = param.read_text() if param.exists() else None
    p = hwzswap_cli("run", "--memory-limit", "32M", "--config", small_config(tmp_path),
                    "--compare", "base,kernel-nosuchcomp", "--json", str(tmp_path / "r.json"),
                    "--", "true", timeout=60)
    assert p.returncode == 2, p.stderr
    assert "--compare kernel-nosuchcomp:" in p.stderr
    assert ("cannot use nosuchcomp" in p.stderr
            or "kernel zswap is not built into this kernel" in p.stderr), p.stderr
    assert "hwzswap run: base:" not in p.stderr
    assert (param.read_text() if param.exists() else None) == before


def _proc_crypto_compressor() -> str:
    """A compressor /proc/crypto lists (read here as a person would: name and type)."""
    name = None
    for line in Path("/proc/crypto").read_text().splitlines():
        key, _, value = (x.strip() for x in line.partition(":"))
        if key == "name":
            name = value
        elif key == "type" and value in ("scomp", "acomp", "compression") and name:
            return name
    raise AssertionError("the kernel's crypto API lists no compressor")


def test_the_kernel_compressor_check_reads_proc_crypto_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Until zswap is first enabled after boot, the kernel's ``compressor`` parameter stores
    any name unchecked, so writing it proves nothing: the check asks /proc/crypto instead and
    never writes the parameter. A plain file stands in for that parameter (it takes any name,
    as the uninitialised kernel's does): a missing compressor is still refused, one the
    kernel has is taken, and the file is never written."""
    fake = tmp_path / "parameters"
    fake.mkdir()
    (fake / "compressor").write_text("lzo\n")
    (fake / "enabled").write_text("N\n")
    before = (fake / "compressor").stat().st_mtime_ns
    monkeypatch.setattr(kernelzswap, "ZSWAP_SYS", fake)
    why = run.kernel_compressor_problem("nosuchcomp")
    assert why is not None and "cannot use nosuchcomp" in why and "/proc/crypto" in why
    assert run.kernel_compressor_problem(_proc_crypto_compressor()) is None
    with pytest.raises(HwzswapError, match="--compare kernel-nosuchcomp: the kernel's zswap "
                                           "cannot use nosuchcomp"):
        run.check_labels(["base", "kernel-nosuchcomp"], run.load_config_dict(None))
    assert (fake / "compressor").read_text() == "lzo\n"
    assert (fake / "compressor").stat().st_mtime_ns == before


def test_kernel_zswap_refuses_a_compressor_it_does_not_get() -> None:
    """Enabling the kernel's zswap with a compressor it lacks is refused whether zswap was set
    up since boot (the write fails) or not (the kernel stores the name, falls back to its
    default when enabled, and the read-back finds that): every parameter is as before."""
    params = Path("/sys/module/zswap/parameters")
    before = {p.name: p.read_text() for p in params.iterdir()}
    with pytest.raises(run.RunError, match="cannot enable kernel zswap with nosuchcomp"):
        with run.KernelZswap("nosuchcomp"):
            raise AssertionError("not reached: the kernel has no nosuchcomp")
    assert {p.name: p.read_text() for p in params.iterdir()} == before


def test_plot_without_a_comparison_is_refused(tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    for extra in ((), ("--compare", "lz4")):
        p = hwzswap_cli("run", "--memory-limit", "32M", "--config", small_config(tmp_path),
                        "--plot", str(png), *extra, "--", "true", timeout=60)
        assert p.returncode == 2, p.stderr
        assert "needs --compare with two or more" in p.stderr and not png.exists()
    helptext = " ".join(hwzswap_cli("run", "--help").stdout.split())
    assert "needs --compare with two or more (refused, exit 2, without)" in helptext


def test_an_engine_compressor_that_cannot_run_here_is_refused_first(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every --compare entry's backend is asked whether it can run here before the first run
    (a device backend without its device failed only when its server started)."""
    from typing import Any

    from hwzswap.backends import Backend, register_backend, registry

    monkeypatch.setattr(registry, "_registered", {})

    @register_backend
    class Absent(Backend):
        name = "test-absent-card"

        @classmethod
        def availability(cls) -> tuple[bool, str | None]:
            return False, "no test card in this machine"

        def compress(self, page: Any) -> bytes | None:  # pragma: no cover - never run
            return None

        def decompress(self, data: Any) -> bytes:  # pragma: no cover
            raise NotImplementedError

    base = run.load_config_dict(None)
    assert len(run.check_labels(["base", "lz4"], base)) == 2
    with pytest.raises(HwzswapError, match="--compare test-absent-card: backend "
                                           "'test-absent-card' cannot run here: no test card"):
        run.check_labels(["base", "lz4", "test-absent-card"], base)
    # no --compare: the config file's own compressor, named by file and key
    mine = tmp_path / "mine.yaml"
    mine.write_text("zswap:\n  enabled: true\n  compressor: test-absent-card\n")
    with pytest.raises(HwzswapError) as err:
        run.check_labels(["config"], run.load_config_dict(str(mine)), source=str(mine))
    assert str(err.value) == (f"{mine}: zswap.compressor: backend 'test-absent-card' cannot "
                              "run here: no test card in this machine")


def _fake_zswap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Plain files in place of zswap's parameters (machine-wide ones must not be played
    with): what they hold."""
    fake = tmp_path / "zswap"
    fake.mkdir()
    before = {"enabled": "N\n", "compressor": "lzo\n", "max_pool_percent": "20\n",
              "shrinker_enabled": "N\n"}
    for key, value in before.items():
        (fake / key).write_text(value)
    monkeypatch.setattr(kernelzswap, "ZSWAP_SYS", fake)
    return before


def _params() -> dict[str, str]:
    return {p.name: p.read_text() if p.is_file() else "<dir>"
            for p in kernelzswap.ZSWAP_SYS.iterdir()}


def test_kernel_zswap_is_restored_on_every_path(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine-wide parameters KernelZswap sets are back as they were after a run, after
    Ctrl-C in the run, and after a Ctrl-C that comes while they are being restored (held off
    until they are)."""
    import os
    import signal

    before = _fake_zswap(tmp_path, monkeypatch)
    with run.KernelZswap("zstd"):
        assert {k: v.strip() for k, v in _params().items()} == {
            "enabled": "Y", "compressor": "zstd", "max_pool_percent": "20",
            "shrinker_enabled": "Y"}
    assert {k: v.strip() for k, v in _params().items()} == {
        k: v.strip() for k, v in before.items()}
    with pytest.raises(KeyboardInterrupt):
        with run.KernelZswap("zstd"):
            raise KeyboardInterrupt
    assert _params()["enabled"].strip() == "N" and _params()["compressor"].strip() == "lzo"
    write = kernelzswap.write
    calls = []

    def ctrl_c_midway(key: str, value: str) -> None:
        calls.append(key)
        if len(calls) == 4:  # the first write of the restore
            os.kill(os.getpid(), signal.SIGINT)
        write(key, value)

    monkeypatch.setattr(kernelzswap, "write", ctrl_c_midway)
    with pytest.raises(KeyboardInterrupt):
        with run.KernelZswap("zstd"):
            pass
    assert len(calls) == 6  # every write of the restore was made
    assert _params()["enabled"].strip() == "N" and _params()["compressor"].strip() == "lzo"
    assert _params()["shrinker_enabled"].strip() == "N"


def test_a_kernel_zswap_parameter_not_restored_fails_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A parameter that cannot be put back is said (which one, its old value), not ignored;
    the others are still restored."""
    _fake_zswap(tmp_path, monkeypatch)
    with pytest.raises(run.RunFailedError, match=r"shrinker_enabled is not back to 'N'"):
        with run.KernelZswap("zstd"):
            (kernelzswap.ZSWAP_SYS / "shrinker_enabled").unlink()
            (kernelzswap.ZSWAP_SYS / "shrinker_enabled").mkdir()  # cannot be written now
    assert _params()["enabled"].strip() == "N" and _params()["compressor"].strip() == "lzo"
