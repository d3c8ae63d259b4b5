"""The swap device: a real file, 0600, a header page, no symlinks, counts, modelled time, faults."""

from __future__ import annotations

import errno
import os
import stat

import numpy as np
import pytest

from hwzswap.errors import InvalidParameterError, SwapDeviceError
from hwzswap.frontswap.swapdev import (
    HDD_LATENCY_US,
    HDD_MB_S,
    SWAP_HEADER_MAGIC,
    DeviceModel,
    SwapDevice,
    is_swap_header,
    swap_header,
)

from fsutil import random_page, sized_page


def test_creates_a_private_file_of_the_right_size_with_a_header_page(tmp_path):
    path = tmp_path / "swap.img"
    with SwapDevice(path, 64) as dev:
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_size == 65 * 4096  # the header page, then 64 slots
        assert dev.nr_pages == 64 and not dev.temporary_file and dev.unlinked_with is None
    assert dev.closed
    assert path.exists()  # closing keeps the file
    head = path.read_bytes()[:4096]
    assert head.startswith(SWAP_HEADER_MAGIC) and is_swap_header(head)
    assert head == swap_header(64) and len(swap_header(64)) == 4096
    assert not is_swap_header(b"HWZSWAP") and not is_swap_header(bytes(4096))


def test_an_existing_empty_private_file_is_used(tmp_path):
    path = tmp_path / "swap.img"
    path.write_bytes(b"")
    os.chmod(path, 0o600)
    with SwapDevice(path, 8) as dev:
        dev.write_page(0, sized_page(30))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.path.getsize(path) == 9 * 4096
    with SwapDevice(path, 8):  # now marked as ours: reused without asking
        pass


def test_refuses_to_follow_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = tmp_path / "swap.img"
    link.symlink_to(victim)
    with pytest.raises(SwapDeviceError, match="symbolic link; refusing to follow"):
        SwapDevice(link, 16)
    assert victim.read_bytes() == b"precious"  # not truncated, not chmodded
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(SwapDeviceError, match="symbolic link"):
        SwapDevice(dangling, 16)
    assert not (tmp_path / "nowhere").exists()


def test_refuses_a_directory_and_a_too_small_existing_file(tmp_path):
    with pytest.raises(SwapDeviceError, match="cannot open|not a regular file"):
        SwapDevice(tmp_path, 16)
    small = tmp_path / "small.img"
    SwapDevice(small, 2).close()
    with pytest.raises(SwapDeviceError, match="holds 2 pages, 16 needed"):
        SwapDevice(small, 16, create=False)
    with SwapDevice(small, 2, create=False):
        pass
    with pytest.raises(SwapDeviceError, match="cannot open swap file"):
        SwapDevice(tmp_path / "missing.img", 16, create=False)
    with pytest.raises(InvalidParameterError, match="nr_pages"):
        SwapDevice(tmp_path / "x.img", 0)


def test_pages_round_trip_at_offset_plus_one_times_4096_and_are_counted(tmp_path):
    path = tmp_path / "swap.img"
    pages = {3: sized_page(100, 1), 0: random_page(2), 15: sized_page(4000, 3)}
    with SwapDevice(path, 16) as dev:
        for off, page in pages.items():
            dev.write_page(off, page)
        dev.write_page(np.int64(7), np.frombuffer(pages[3], np.uint8))  # numpy forms too
        for off, page in pages.items():
            assert dev.read_page(off) == page
        assert dev.read_page(7) == pages[3]
        assert (dev.pswpout, dev.pswpin) == (4, 4)
        assert dev.io_us > 0
        raw = path.read_bytes()
        for off, page in pages.items():
            assert raw[(off + 1) * 4096 : (off + 2) * 4096] == page
        stats = dev.stats()
        assert stats["pswpin"] == 4 and stats["pswpout"] == 4 and stats["swap_model_us"] == 0


def test_unwritten_discarded_and_out_of_range_slots_raise(tmp_path):
    with SwapDevice(tmp_path / "s.img", 8) as dev:
        with pytest.raises(SwapDeviceError, match="slot 2, which holds no page"):
            dev.read_page(2)
        dev.write_page(2, sized_page(10))
        assert dev.is_written(2)
        dev.discard(2)
        assert not dev.is_written(2)
        with pytest.raises(SwapDeviceError, match="holds no page"):
            dev.read_page(2)
        for bad in (-1, 8, 10**9):
            with pytest.raises(SwapDeviceError, match=r"slots are 0\.\.7"):
                dev.write_page(bad, sized_page(10))
        with pytest.raises(SwapDeviceError, match="a slot is an int"):
            dev.read_page("1")  # type: ignore[arg-type]
        with pytest.raises(SwapDeviceError, match="a page is 4096 bytes, got 10"):
            dev.write_page(1, b"x" * 10)
        assert dev.pswpout == 1
    with pytest.raises(SwapDeviceError, match="closed"):
        dev.write_page(1, sized_page(10))


def test_models_report_time_beside_the_measured_time(tmp_path):
    hdd = DeviceModel.preset("hdd")
    assert hdd.write_us() == pytest.approx(HDD_LATENCY_US + 4096 / HDD_MB_S)
    with SwapDevice(tmp_path / "h.img", 8, model=hdd) as dev:
        for off in range(3):
            dev.write_page(off, sized_page(50, off))
        dev.read_page(1)
        assert dev.model_us == pytest.approx(4 * (HDD_LATENCY_US + 4096 / 58.0))
        assert dev.io_us < dev.model_us  # a page cache is faster than the seed's disk
    ssd = DeviceModel.preset("ssd")
    assert 0 < ssd.read_us() < hdd.read_us()
    custom = DeviceModel.preset("custom", latency_us=10, read_mb_s=4096, write_mb_s=1024)
    assert (custom.read_us(), custom.write_us()) == (11.0, 14.0)
    assert DeviceModel.preset("none").read_us() == 0
    with pytest.raises(InvalidParameterError, match="unknown swap device model 'tape'"):
        DeviceModel.preset("tape")
    with pytest.raises(InvalidParameterError, match="needs read_mb_s and write_mb_s"):
        DeviceModel.preset("custom", latency_us=1)
    with pytest.raises(InvalidParameterError, match="must be > 0"):
        DeviceModel("x", 0, 0, 1)


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_injected_write_faults_fail_before_touching_the_file(tmp_path, code):
    with SwapDevice(tmp_path / "s.img", 8) as dev:
        dev.write_page(1, sized_page(20, 1))
        dev.inject("write", code, count=2)
        for _ in range(2):
            with pytest.raises(SwapDeviceError) as info:
                dev.write_page(1, sized_page(20, 2))
            assert info.value.errno == code
            assert f"[Errno {code}]" in str(info.value) and "injected" in str(info.value)
        assert dev.read_page(1) == sized_page(20, 1)  # old contents intact
        dev.inject("write", code, 1)
        with pytest.raises(SwapDeviceError, match="write of slot 5 failed"):
            dev.write_page(5, sized_page(20))
        assert not dev.is_written(5)
        with pytest.raises(SwapDeviceError, match="holds no page"):
            dev.read_page(5)
        dev.write_page(5, sized_page(20))  # the fault was used up
        assert dev.read_page(5) == sized_page(20)
        assert (dev.failed_writes, dev.pswpout) == (3, 2)


def test_injected_read_faults_and_clear(tmp_path):
    with SwapDevice(tmp_path / "s.img", 8) as dev:
        dev.write_page(0, sized_page(20))
        dev.inject("read", errno.EIO, count=5)
        with pytest.raises(SwapDeviceError, match=r"read of slot 0 failed: \[Errno 5\]"):
            dev.read_page(0)
        dev.clear_faults()
        assert dev.read_page(0) == sized_page(20)
        assert dev.failed_reads == 1
        with pytest.raises(InvalidParameterError):
            dev.inject("erase")
        with pytest.raises(InvalidParameterError):
            dev.inject("read", errno.EIO, count=-1)
