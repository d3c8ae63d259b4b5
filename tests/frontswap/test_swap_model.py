"""A hypothesis state machine: random sequences of swap operations, writeback, shrink, device
and allocator faults on a tiny pool, checked against a plain dict of what was last written."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hwzswap.errors import SwapDeviceError
from hwzswap.frontswap import open_zswap

from fsutil import compressible_pages, random_page, same_filled

SLOTS = 8
BANK = compressible_pages(12, seed=5) + [random_page(9), bytes(4096), same_filled()]


class SwapModel(RuleBasedStateMachine):
    """Every page swapped out and not freed must come back exactly, whatever happened."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.exclusive = False
        self.system = None
        self.expected: dict[int, int] = {}

    @precondition(lambda self: self.system is None)
    @rule(exclusive=st.booleans(), ratio=st.sampled_from([50, 80, 100]),
          threshold=st.sampled_from([0, 50, 90, 100]))
    def open(self, exclusive, ratio, threshold):
        self.exclusive = exclusive
        self.system = open_zswap({
            # 1 MiB of RAM, 3 %: a pool of 7 pages, so limits and writeback happen constantly
            "zswap": {"compressor": "lz4", "max_pool_percent": 3, "exclusive_loads": exclusive,
                      "max_compression_ratio": ratio, "accept_threshold_percent": threshold,
                      "writeback_batch": 2},
            "memory": {"total_ram_mb": 1},
            "swap": {"nr_pages": SLOTS, "path": str(Path(self.dir.name) / "swap.img")},
        })

    @precondition(lambda self: self.system is not None)
    @rule(off=st.integers(0, SLOTS - 1), j=st.integers(0, len(BANK) - 1))
    def swap_out(self, off, j):
        try:
            self.system.swap_out(0, off, BANK[j])
            self.expected[off] = j
        except SwapDeviceError:
            self.expected.pop(off, None)

    @precondition(lambda self: self.system is not None)
    @rule(off=st.integers(0, SLOTS - 1))
    def swap_in(self, off):
        if off not in self.expected:
            try:
                self.system.swap_in(0, off)
            except SwapDeviceError:
                return
            raise AssertionError(f"slot {off} is free but swap_in returned a page")
        try:
            got = self.system.swap_in(0, off)
        except SwapDeviceError as exc:
            assert "injected" in str(exc)
            return
        assert got == BANK[self.expected[off]]
        if self.exclusive:
            del self.expected[off]

    @precondition(lambda self: self.system is not None)
    @rule(off=st.integers(0, SLOTS - 1))
    def swap_free(self, off):
        self.system.swap_free(0, off)
        self.expected.pop(off, None)

    @precondition(lambda self: self.system is not None)
    @rule(n=st.integers(1, 6))
    def writeback(self, n):
        self.system.zswap.writeback(n)

    @precondition(lambda self: self.system is not None)
    @rule(pages=st.integers(0, 8))
    def shrink(self, pages):
        fails = self.system.stats()["writeback_fail"]
        self.system.zswap.shrink(pages)
        if self.system.stats()["writeback_fail"] == fails:  # no device fault got in the way
            assert self.system.pool.total_pages() <= pages

    @precondition(lambda self: self.system is not None)
    @rule(op=st.sampled_from(["read", "write"]), code=st.sampled_from([errno.EIO, errno.ENOSPC]),
          count=st.integers(1, 3))
    def device_fault(self, op, code, count):
        self.system.devices[0].inject(op, code, count)

    @precondition(lambda self: self.system is not None)
    @rule(count=st.integers(1, 3))
    def allocator_fault(self, count):
        self.system.pool.allocator.fail_next(count)

    @precondition(lambda self: self.system is not None)
    @rule()
    def clear_faults(self):
        self.system.devices[0].clear_faults()
        self.system.pool.allocator.clear_faults()

    @invariant()
    def consistent(self):
        if self.system is not None:
            self.system.zswap.check()
            st_ = self.system.stats()
            assert st_["outstanding_writebacks"] == 0
            assert st_["stores"] == st_["zswpout"] + sum(
                st_[k] for k in ("reject_compress_poor", "reject_compress_fail",
                                 "reject_alloc_fail", "reject_reclaim_fail",
                                 "reject_pool_limit", "reject_folio"))

    def teardown(self):
        if self.system is not None:
            self.system.devices[0].clear_faults()
            self.system.pool.allocator.clear_faults()
            for off, j in self.expected.items():
                assert self.system.swap_in(0, off) == BANK[j]
            self.system.close()
        self.dir.cleanup()


TestSwapModel = SwapModel.TestCase
TestSwapModel.settings = settings(max_examples=100, stateful_step_count=50, deadline=None)
