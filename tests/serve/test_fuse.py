"""The raw FUSE server against the real kernel (/dev/fuse): one file, direct I/O, punch-hole,
errors, concurrent readers, clean unmount."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import threading
from pathlib import Path

import pytest

from hwzswap.serve.fuse import FuseServer

PAGE = 4096
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2


class BytesFile:
    """The file's contents in a bytearray (what a FileBackend is asked to do, done plainly)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data = bytearray(size)
        self.holes: list[tuple[int, int]] = []
        self.threads: set[str] = set()
        self.fail_write_at: int | None = None
        self.lock = threading.Lock()

    def read(self, offset: int, size: int) -> bytes:
        self.threads.add(threading.current_thread().name)
        return bytes(self.data[offset:offset + size])

    def write(self, offset: int, data: memoryview) -> None:
        self.threads.add(threading.current_thread().name)
        if offset == self.fail_write_at:
            raise OSError(errno.ENOSPC, "full")
        self.data[offset:offset + len(data)] = data

    def punch_hole(self, offset: int, length: int) -> None:
        self.holes.append((offset, length))
        self.data[offset:offset + length] = bytes(length)


@pytest.fixture
def served(tmp_path: Path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    backend = BytesFile(64 * PAGE)
    srv = FuseServer(backend, str(mnt), threads=3)
    srv.open()
    try:
        srv.start()
        yield srv, backend
    finally:
        srv.stop()
        assert str(mnt) not in Path("/proc/self/mountinfo").read_text()


def _aligned(n: int, fill: int) -> mmap.mmap:
    buf = mmap.mmap(-1, n)
    buf.write(bytes([fill]) * n)
    return buf


def test_direct_io_roundtrip_and_attributes(served) -> None:
    srv, backend = served
    assert os.listdir(srv.mountpoint) == ["swap"]
    assert os.stat(srv.path).st_size == 64 * PAGE
    fd = os.open(srv.path, os.O_RDWR | os.O_DIRECT)
    try:
        assert os.pwritev(fd, [_aligned(8 * PAGE, 0xA5)], 4 * PAGE) == 8 * PAGE
        assert backend.data[4 * PAGE:12 * PAGE] == bytes([0xA5]) * (8 * PAGE)
        out = mmap.mmap(-1, 16 * PAGE)
        assert os.preadv(fd, [out], 0) == 16 * PAGE
        assert out[:4 * PAGE] == bytes(4 * PAGE) and out[4 * PAGE:12 * PAGE] == backend.data[
            4 * PAGE:12 * PAGE]
    finally:
        os.close(fd)
    assert srv.counts["WRITE"] == 1 and srv.counts["READ"] >= 1
    assert srv.counts["OPEN"] >= 1 and srv.counts["INIT"] == 1


def test_punch_hole_reaches_the_backend(served) -> None:
    srv, backend = served
    backend.data[:] = b"\x01" * len(backend.data)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    fd = os.open(srv.path, os.O_RDWR)
    try:
        rc = libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8 * PAGE, 4 * PAGE)
        assert rc == 0, os.strerror(ctypes.get_errno())
    finally:
        os.close(fd)
    assert backend.holes == [(8 * PAGE, 4 * PAGE)]
    assert backend.data[8 * PAGE:12 * PAGE] == bytes(4 * PAGE)
    assert backend.data[12 * PAGE] == 1


def test_errors_reach_the_caller(served) -> None:
    srv, backend = served
    backend.fail_write_at = 0
    fd = os.open(srv.path, os.O_RDWR | os.O_DIRECT)
    try:
        with pytest.raises(OSError) as exc:
            os.pwritev(fd, [_aligned(PAGE, 1)], 0)
        assert exc.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(srv.mountpoint, "other"))
    with pytest.raises(OSError) as exc:
        os.mkdir(os.path.join(srv.mountpoint, "d"))
    assert exc.value.errno in (errno.ENOSYS, errno.EPERM, errno.EROFS)
    assert not srv.errors


def test_requests_are_served_by_several_threads(served) -> None:
    srv, backend = served

    def hammer(k: int) -> None:
        fd = os.open(srv.path, os.O_RDWR | os.O_DIRECT)
        try:
            buf = _aligned(PAGE, k)
            for _ in range(200):
                os.pwritev(fd, [buf], k * PAGE)
                os.preadv(fd, [buf], k * PAGE)
        finally:
            os.close(fd)

    workers = [threading.Thread(target=hammer, args=(k,)) for k in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for k in range(6):
        assert backend.data[k * PAGE:(k + 1) * PAGE] == bytes([k]) * PAGE
    assert len(backend.threads) >= 2
