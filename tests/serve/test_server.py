"""SwapFile behind the real FUSE file and a real loop device with direct I/O: writes are
swap-outs, reads swap-ins, discards swap_free; every page comes back byte-exact; the
recorded stream replays to the same pages."""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwzswap
from hwzswap.bench.workload import INVALIDATE, LOAD, STORE, load_workload
from hwzswap.serve.fuse import FuseServer
from hwzswap.serve.server import Recorder, SwapFile

PAGE = 4096
BLKDISCARD = 0x1277


def _config(tmp_path: Path, **swap: object) -> dict:
    return {
        "zswap": {"compressor": "lz4", "max_compression_ratio": 100},
        "memory": {"total_ram_mb": 64},
        "swap": {"nr_pages": 1024, "model": "none", **swap},
    }


def _pages(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pages = np.zeros((n, PAGE), np.uint8)
    pages[:, :700] = rng.integers(0, 256, (n, 700), dtype=np.uint8)  # compressible
    pages[:, 700:708] = np.arange(n, dtype="<u8").view(np.uint8).reshape(n, 8)
    return pages


@pytest.fixture
def loopdev(tmp_path: Path):
    """(loop device path, SwapFile, FuseServer, Recorder) on an lz4 engine; all undone after."""
    system = hwzswap.open_zswap(_config(tmp_path))
    rec = Recorder()
    sf = SwapFile(system, device_time="modelled", recorder=rec)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    srv = FuseServer(sf, str(mnt), threads=2)
    loop = None
    try:
        srv.open()
        srv.start()
        loop = subprocess.run(["losetup", "--direct-io=on", "--show", "-f", srv.path],
                              check=True, capture_output=True, text=True).stdout.strip()
        assert Path(f"/sys/block/{Path(loop).name}/loop/dio").read_text().strip() == "1"
        yield loop, sf, srv, rec
    finally:
        if loop:
            subprocess.run(["losetup", "-d", loop], check=True)
        srv.stop()
        system.close()


def _dio_write(loop: str, offset: int, data: bytes) -> None:
    buf = mmap.mmap(-1, len(data))
    buf.write(data)
    fd = os.open(loop, os.O_RDWR | os.O_DIRECT)
    try:
        assert os.pwritev(fd, [buf], offset) == len(data)
    finally:
        os.close(fd)


def _dio_read(loop: str, offset: int, n: int) -> bytes:
    buf = mmap.mmap(-1, n)
    fd = os.open(loop, os.O_RDONLY | os.O_DIRECT)
    try:
        assert os.preadv(fd, [buf], offset) == n
    finally:
        os.close(fd)
    return bytes(buf)


def test_writes_reads_and_discards_through_the_loop_device(loopdev) -> None:
    loop, sf, srv, rec = loopdev
    pages = _pages(64, 1)
    _dio_write(loop, 8 * PAGE, pages[:32].tobytes())  # one request: one reclaim batch
    _dio_write(loop, 100 * PAGE, pages[32:].tobytes())
    s = sf.stats()
    assert s["write_pages"] == 64 and s["engine"]["stored_pages"] == 64
    assert _dio_read(loop, 8 * PAGE, 32 * PAGE) == pages[:32].tobytes()
    assert _dio_read(loop, 100 * PAGE, 32 * PAGE) == pages[32:].tobytes()
    # A slot never written reads as zeros, as a fresh sparse file would.
    assert _dio_read(loop, 500 * PAGE, PAGE) == bytes(PAGE)
    # A discard (what swapon --discard=pages sends for freed clusters) frees the entries.
    fd = os.open(loop, os.O_RDWR)
    try:
        fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", 8 * PAGE, 32 * PAGE))
    finally:
        os.close(fd)
    s = sf.stats()
    assert s["discarded_pages"] == 32 and s["engine"]["stored_pages"] == 32
    assert s["live_pages"] == 32
    assert _dio_read(loop, 8 * PAGE, PAGE) == bytes(PAGE)
    assert _dio_read(loop, 100 * PAGE, 32 * PAGE) == pages[32:].tobytes()
    assert not srv.errors


def test_rewrites_and_unaligned_writes_stay_exact(loopdev) -> None:
    loop, sf, srv, _ = loopdev
    a, b = _pages(16, 2), _pages(16, 3)
    _dio_write(loop, 0, a.tobytes())
    _dio_write(loop, 4 * PAGE, b[:8].tobytes())  # slots 4..11 rewritten without a discard
    want = a.copy()
    want[4:12] = b[:8]
    assert _dio_read(loop, 0, 16 * PAGE) == want.tobytes()
    # Through the FUSE file itself a write need not be page-aligned (a tool patching a
    # header): the server reads, patches and rewrites the pages it covers.
    with open(srv.path, "r+b", buffering=0) as f:
        f.seek(2 * PAGE + 100)
        f.write(b"x" * 5000)
    want_b = bytearray(want.tobytes())
    want_b[2 * PAGE + 100:2 * PAGE + 5100] = b"x" * 5000
    assert _dio_read(loop, 0, 16 * PAGE) == bytes(want_b)


def test_recorded_stream_replays_to_the_same_pages(loopdev, tmp_path: Path) -> None:
    loop, sf, srv, rec = loopdev
    pages = _pages(48, 4)
    _dio_write(loop, 16 * PAGE, pages[:32].tobytes())
    _dio_write(loop, 64 * PAGE, pages[32:].tobytes())
    _dio_read(loop, 16 * PAGE, 8 * PAGE)
    _dio_read(loop, 64 * PAGE, 16 * PAGE)
    fd = os.open(loop, os.O_RDWR)
    try:
        fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", 16 * PAGE, 32 * PAGE))
    finally:
        os.close(fd)
    path = rec.save(tmp_path / "rec.hwzwl", {"name": "t", "command": "test"})
    wl = load_workload(path)
    kinds = [op.kind for op in wl.ops]
    assert kinds == [STORE, STORE, LOAD, LOAD] + [INVALIDATE] * 32
    assert wl.ops[0].offsets == tuple(range(16, 48)) and wl.ops[3].offsets == tuple(range(64, 80))
    # the header states the structure the loader requires: the largest request of each kind
    assert wl.structure == {"reclaim_batch": 32, "load_batch": 16, "folio_mix": [[1, 1.0]]}
    # Replay through a fresh engine: every load returns what its slot's last store held.
    with hwzswap.open_zswap(_config(tmp_path)) as system:
        held: dict[int, bytes] = {}
        for op in wl.ops:
            if op.kind == STORE:
                system.swap_out_batch(op.type, list(op.offsets), wl.pages[list(op.pages)])
                held.update({o: wl.pages[p].tobytes() for o, p in zip(op.offsets, op.pages)})
            elif op.kind == LOAD:
                got = system.swap_in_batch(op.type, list(op.offsets))
                assert [bytes(g) for g in got] == [held[o] for o in op.offsets]
            else:
                system.swap_free(op.type, op.offsets[0])
    assert held[16] == pages[0].tobytes()


def test_device_time_is_waited_out(tmp_path: Path) -> None:
    """With zswap off every page goes to the swap file; with device_time real, the modelled
    time (58 MB/s) is slept, and the clock's wait adds up to the device's model time."""
    cfg = _config(tmp_path, model="custom", read_mb_s=58.0, write_mb_s=58.0, latency_us=0.0)
    cfg["zswap"]["enabled"] = False
    with hwzswap.open_zswap(cfg) as system:
        sf = SwapFile(system, device_time="real")
        data = _pages(64, 5).tobytes()
        sf.write(0, memoryview(data))
        assert sf.read(0, 64 * PAGE) == data
        s = sf.stats()
        assert s["engine"]["pswpout"] == 64 and s["engine"]["pswpin"] == 64
        model_s = s["engine"]["swap_model_us"] / 1e6
        assert model_s == pytest.approx(2 * 64 * PAGE / 58e6, rel=0.01)
        assert s["device_wait_s"] == pytest.approx(model_s, rel=0.05)


PAGES = 24


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["w", "r", "p"]),
                          st.integers(0, PAGES * PAGE - 1), st.integers(1, 6 * PAGE),
                          st.integers(0, 255)), min_size=1, max_size=40))
def test_swap_file_behaves_like_a_file(ops) -> None:
    """Any mix of writes (aligned or not), reads and punch-holes gives the bytes a plain file
    would (a punch-hole frees the whole pages it covers; the pages at its edges keep theirs),
    through a pool small enough to reject and write back."""
    cfg = {"zswap": {"compressor": "lz4", "max_pool_percent": 1},
           "memory": {"total_ram_mb": 1}, "swap": {"nr_pages": PAGES, "model": "none"}}
    model = bytearray(PAGES * PAGE)
    rng = np.random.default_rng(len(ops))
    with hwzswap.open_zswap(cfg) as system:
        sf = SwapFile(system, device_time="modelled")
        for kind, off, n, fill in ops:
            n = min(n, PAGES * PAGE - off)
            if kind == "w":
                data = bytes([fill]) * (n // 2) + rng.integers(0, 256, n - n // 2,
                                                               dtype=np.uint8).tobytes()
                sf.write(off, memoryview(data))
                model[off:off + n] = data
            elif kind == "r":
                assert sf.read(off, n) == bytes(model[off:off + n])
            else:
                first, last = -(-off // PAGE), (off + n) // PAGE
                sf.punch_hole(off, n)
                if last > first:
                    model[first * PAGE:last * PAGE] = bytes((last - first) * PAGE)
        assert sf.read(0, PAGES * PAGE) == bytes(model)


def test_a_partly_failed_write_leaves_its_landed_slots_to_the_discard(tmp_path: Path) -> None:
    """A WRITE whose device writes partly fail is EIO to the kernel, but its pages that did
    land (in zswap, on the swap file) hold slots: the kernel's later discard frees them."""
    import errno as _errno

    system = hwzswap.open_zswap(_config(tmp_path))
    try:
        sf = SwapFile(system, device_time="modelled")
        rng = np.random.default_rng(5)
        rows = _pages(4, 1)
        rows[1] = rng.integers(0, 256, PAGE, dtype=np.uint8)  # incompressible: to the device
        rows[3] = rng.integers(0, 256, PAGE, dtype=np.uint8)
        system.devices[0].inject("write", _errno.ENOSPC, 1)
        with pytest.raises(OSError) as info:
            sf.write(8 * PAGE, memoryview(rows.tobytes()))
        assert info.value.errno == _errno.EIO
        landed = [o for o in range(8, 12) if system.slot_in_use(0, o)]
        assert len(landed) == 3 and sf.live_pages() == 3
        sf.punch_hole(8 * PAGE, 4 * PAGE)
        assert sf.live_pages() == 0
        assert not any(system.slot_in_use(0, o) for o in range(8, 12))
    finally:
        system.close()
