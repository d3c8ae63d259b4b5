"""The software decoder a device falls back on is called from several threads at once.

``Compressor.software_decompress`` decodes, with one software backend instance of the driver's
format, every page the device failed on: for loads and reclaim (under zswap's tree lock), the
writeback thread and async completions (outside it), all at once. It used to call that one
instance with no lock: with the built-in zstd (python-zstandard's decompressor is not
thread-safe) accepted pages came back wrong and the process segfaulted. Now zstd keeps one
context per thread, and the compressor serialises a software decoder whose capabilities do
not say ``concurrent``, so a third-party format that keeps state in its instance is safe too.

``test-sharedbuf-lz4`` is such a format: real LZ4 blocks, decoded into one buffer of the
instance and copied out after a thread switch, as a C decoder with one workspace does. Called
from two threads at once it hands one thread the other's page.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import lz4.block
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from hwzswap.backends.contract import (
    PAGE_SIZE,
    Backend,
    Capabilities,
    check_page,
    compressed_input,
)
from hwzswap.backends.registry import registered
from hwzswap.errors import DeviceError
from hwzswap.frontswap.compressor import Compressor

from fsutil import compressible_pages


class SharedBufferLz4(Backend):
    """A software LZ4 format whose decoder keeps its output buffer in the instance (not
    ``concurrent``, as its capabilities say)."""

    name = "test-sharedbuf-lz4"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._buf = bytearray(PAGE_SIZE)

    def compress(self, page: Any) -> bytes | None:
        out = lz4.block.compress(bytes(check_page(page)), store_size=False)
        return out if len(out) < PAGE_SIZE else None

    def decompress(self, data: Any) -> bytes:
        data = compressed_input(self.name, data)
        page = lz4.block.decompress(data, uncompressed_size=PAGE_SIZE)
        buf = self._buf
        for i in range(0, PAGE_SIZE, 1024):  # the workspace filled in steps, as C code does
            buf[i:i + 1024] = page[i:i + 1024]
            time.sleep(0)
        return bytes(buf)


def zstd_compress(page: bytes) -> bytes | None:
    out = zstandard.ZstdCompressor(level=3, write_content_size=False,
                                   write_checksum=False).compress(page)
    return out if len(out) < PAGE_SIZE else None


def lz4_compress(page: bytes) -> bytes | None:
    out = lz4.block.compress(page, store_size=False)
    return out if len(out) < PAGE_SIZE else None


class OfflineDevice(Backend):
    """A device whose compressor works and whose decompression engine is offline: every load
    and writeback decodes in software, in the device's ``format``."""

    name = "test-offline-decoder-device"
    fmt = "zstd"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="test-offline", format=self.fmt, concurrent=True)

    def compress(self, page: Any) -> bytes | None:
        page = bytes(check_page(page))
        return zstd_compress(page) if self.fmt == "zstd" else lz4_compress(page)

    def decompress(self, data: Any) -> bytes:
        raise DeviceError("decompression engine offline")


class OfflineSharedBufDevice(OfflineDevice):
    name = "test-offline-sharedbuf-device"
    fmt = "test-sharedbuf-lz4"


def decode_from_threads(comp: Compressor, objs: list[bytes], pages: list[bytes],
                        threads: int, rounds: int) -> list[str]:
    """Every thread decodes every object ``rounds`` times through the fallback, at once;
    returns what came back wrong (empty: every page byte-exact)."""
    bad: list[str] = []
    start = threading.Barrier(threads)
    cause = DeviceError("decompression engine offline")

    def run(k: int) -> None:
        start.wait()
        try:
            for r in range(rounds):
                for i in range(len(objs)):
                    j = (i + k + r) % len(objs)
                    if comp.software_decompress(objs[j], cause) != pages[j]:
                        bad.append(f"thread {k}: page {j} wrong")
        except Exception as exc:  # noqa: BLE001 - reported by the test
            bad.append(f"thread {k}: {type(exc).__name__}: {exc}")

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts)
    return bad


page_parts = st.lists(
    st.tuples(st.integers(0, 255), st.integers(1, 64), st.binary(min_size=1, max_size=24)),
    min_size=1, max_size=40)


def build_page(parts: list[tuple[int, int, bytes]]) -> bytes:
    """A compressible page from runs of a byte and repeated short strings."""
    out = bytearray()
    for byte, run, chunk in parts:
        out += bytes([byte]) * run + chunk * (run // 8 + 1)
    return bytes((out * (PAGE_SIZE // max(len(out), 1) + 1))[:PAGE_SIZE])


@settings(max_examples=12, deadline=None)
@given(contents=st.lists(page_parts, min_size=2, max_size=8),
       threads=st.integers(2, 5),
       fmt=st.sampled_from(["zstd", "test-sharedbuf-lz4"]))
def test_fallback_decodes_every_page_exactly_from_several_threads(
        contents: list[list[tuple[int, int, bytes]]], threads: int, fmt: str) -> None:
    pages = [build_page(p) for p in contents]
    dev = OfflineDevice() if fmt == "zstd" else OfflineSharedBufDevice()
    with registered(SharedBufferLz4):
        comp = Compressor(dev, watchdog="off")
        objs = [dev.compress(p) for p in pages]
        keep = [(o, p) for o, p in zip(objs, pages) if o is not None]
        if not keep:
            return
        objs, pages = [o for o, _ in keep], [p for _, p in keep]
        bad = decode_from_threads(comp, objs, pages, threads, rounds=max(4, 60 // len(objs)))
    assert bad == [], bad[:5]
    assert comp.sw_fallbacks == threads * len(objs) * max(4, 60 // len(objs))


def test_writebacks_and_loads_through_the_fallback_keep_every_page(make_system: Any) -> None:
    """The reviewer's case, small: storers, several writeback threads (each decodes the pages
    it writes back in software) and loads at once; then every page is read back, from zswap
    or from the swap device, byte for byte."""
    pages = compressible_pages(48, seed=8)
    with registered(SharedBufferLz4):
        s = make_system(backend=OfflineSharedBufDevice(), memory={"total_ram_mb": 64},
                        zswap={"batching": "page", "driver_watchdog": "off",
                               "max_outstanding_writebacks": 1024},
                        swap={"nr_pages": 2048})
        expect: dict[int, int] = {}
        stop = threading.Event()
        errors: list[str] = []

        def store(tid: int) -> None:
            try:
                for k in range(600):
                    off = 2 * k + tid
                    s.swap_out(0, off, pages[(off * 7) % len(pages)])
                    expect[off] = (off * 7) % len(pages)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"store: {type(exc).__name__}: {exc}")

        def write_back() -> None:
            try:
                while not stop.is_set():
                    s.zswap.writeback(16)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"writeback: {type(exc).__name__}: {exc}")

        storers = [threading.Thread(target=store, args=(t,)) for t in range(2)]
        writers = [threading.Thread(target=write_back) for _ in range(3)]
        for t in storers + writers:
            t.start()
        for t in storers:
            t.join(120)
        stop.set()
        for t in writers:
            t.join(120)
        assert errors == [], errors[:3]
        wrong = [off for off, j in sorted(expect.items()) if s.swap_in(0, off) != pages[j]]
        st_ = s.stats()
    assert wrong == [], (len(wrong), wrong[:10])
    assert st_["written_back_pages"] > 0 and st_["driver_sw_fallbacks"] > 0, st_
    assert st_["writeback_fail"] == 0, st_
