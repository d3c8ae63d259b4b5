"""A named swap file serves one swap system at a time (the kernel's swapon: EBUSY): a second
user is refused, naming the file and its holder, and the lock goes with its holder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hwzswap.errors import SwapDeviceError
from hwzswap.frontswap.swapdev import SwapDevice


def test_a_second_device_on_one_file_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "shared.swap"
    first = SwapDevice(path, 64)
    try:
        with pytest.raises(SwapDeviceError, match="in use by another swap system of this "
                           "process") as info:
            SwapDevice(path, 64)
        assert str(path) in str(info.value)
        first.write_page(3, b"a" * 4096)
    finally:
        first.close()
    with SwapDevice(path, 64) as again:  # the lock went with the first's descriptor
        assert again.nr_pages == 64


def test_temporary_files_never_collide(tmp_path: Path) -> None:
    with SwapDevice.temporary(16, dir=tmp_path), SwapDevice.temporary(16, dir=tmp_path):
        pass


def test_another_process_holding_the_file_is_named_and_its_death_frees_it(
        tmp_path: Path) -> None:
    path = tmp_path / "held.swap"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom hwzswap.frontswap.swapdev import SwapDevice\n"
         f"d = SwapDevice({str(path)!r}, 64)\nprint('held', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SwapDeviceError, match=rf"in use by pid {holder.pid} ") as info:
            SwapDevice(path, 64)
        assert str(path) in str(info.value)
    finally:
        holder.kill()  # as a crash: nothing runs in it
        holder.wait()
        holder.stdout.close()
    with SwapDevice(path, 64):
        pass


def test_two_chains_cannot_share_a_named_swap_file(state_dir: Path, tmp_path: Path) -> None:
    """The reviewer's case: both came up on one ``swap.path`` and a program swapping through
    them got its memory back corrupted. The second is refused, naming the first."""
    import yaml

    from serveutil import hwzswap_cli, small_config

    cfg = Path(small_config(tmp_path))
    data = yaml.safe_load(cfg.read_text())
    data["swap"]["path"] = str(tmp_path / "shared.swap")
    cfg.write_text(yaml.safe_dump(data))
    a = hwzswap_cli("swap", "on", "--config", str(cfg), "--name", "lk1", "--coexist")
    assert a.returncode == 0, a.stderr + a.stdout
    try:
        b = hwzswap_cli("swap", "on", "--config", str(cfg), "--name", "lk2", "--coexist")
        assert b.returncode == 2, b.stderr + b.stdout
        assert f"{tmp_path / 'shared.swap'}: this swap file is in use by swap chain 'lk1'" \
            in b.stderr, b.stderr
        from hwzswap.serve import chain

        assert chain.read_state("lk2") is None
    finally:
        off = hwzswap_cli("swap", "off", "--name", "lk1")
    assert off.returncode == 0, off.stderr
