"""Shared helpers for the zswap engine tests: configs, page makers, an I/O barrier."""

from __future__ import annotations

import copy
import threading
from typing import Any

import lz4.block
import numpy as np

from hwzswap.frontswap.swapdev import SwapDevice
from hwzswap.testing import real_memory_mix, sample_pages

PAGE = 4096

BASE: dict[str, Any] = {
    "zswap": {"compressor": "lz4", "max_compression_ratio": 80},
    "memory": {"total_ram_mb": 256},
    "pool": {"type": "zsmalloc"},
    "swap": {"nr_pages": 1024},
}


def config(tmp_path, name: str = "swap.img", **sections: dict[str, Any]) -> dict[str, Any]:
    """BASE with each given section updated, and the swap file in ``tmp_path``."""
    cfg = copy.deepcopy(BASE)
    cfg["swap"]["path"] = str(tmp_path / name)
    for key, values in sections.items():
        cfg[key].update(values)
    return cfg


def sized_page(k: int, seed: int = 0) -> bytes:
    """A page of ``k`` random bytes then zeros: it compresses to about ``k`` bytes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, k, dtype=np.uint8).tobytes() + bytes(PAGE - k)


def lz4_len(page: bytes) -> int:
    return len(lz4.block.compress(page, store_size=False))


def random_page(seed: int = 0) -> bytes:
    """Incompressible: every compressor rejects it."""
    return np.random.default_rng(seed).integers(0, 256, PAGE, dtype=np.uint8).tobytes()


def same_filled(word: bytes = b"\x01\x02\x03\x04\x05\x06\x07\x08") -> bytes:
    return word * (PAGE // 8)


def compressible_pages(n: int, seed: int = 1) -> list[bytes]:
    """Real-memory-like pages that compress and are not same-filled, all distinct."""
    out: list[bytes] = []
    rng = np.random.default_rng(seed)
    kinds = [v for k, v in sample_pages(seed).items() if k in ("text", "heap_like", "half_zero",
                                                                 "ramp")]
    mix = real_memory_mix(4 * n + 8, seed)
    for row in list(mix) + kinds:
        page = bytearray(row.tobytes())
        j = int(rng.integers(0, PAGE - 16))
        page[j : j + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()  # make it unique
        page = bytes(page)
        w = page[:8]
        if page == w * 512 or lz4_len(page) > PAGE * 70 // 100:
            continue
        out.append(page)
        if len(out) == n:
            return out
    raise AssertionError("not enough compressible pages")


class WriteBarrier:
    """Holds the first device write of one slot open until :meth:`release` (an injected
    barrier through :attr:`SwapDevice.io_hook`)."""

    def __init__(self, dev: SwapDevice, offset: int) -> None:
        self.offset = offset
        self.started = threading.Event()
        self._release = threading.Event()
        self.dev = dev
        dev.io_hook = self._hook

    def _hook(self, op: str, offset: int) -> None:
        if op == "write" and offset == self.offset and not self.started.is_set():
            self.started.set()
            if not self._release.wait(20):
                raise AssertionError("barrier never released")

    def wait_started(self) -> None:
        assert self.started.wait(20), "the write never reached the device"

    def release(self) -> None:
        self._release.set()

    def remove(self) -> None:
        self.release()
        self.dev.io_hook = None


def run_thread(fn, *args) -> tuple[threading.Thread, list]:
    """Start ``fn(*args)`` in a thread; the returned list gets its result or exception."""
    out: list = []

    def body():
        try:
            out.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, out
