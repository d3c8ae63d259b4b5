"""zswap's load step exists once: ``load`` on each offset and ``load_batch`` of the same offsets
give the same pages, the same errors and the same counters, in every engine mode (``async``
with pages in flight included), with exclusive loads on and off, with corrupt objects.

Three systems get the same stores and the same damage; then one loads page by page, one loads
the offsets as one cluster with ``partial=True`` (per-item results), and one as one cluster
all or nothing (the first failure in batch order raised, nothing but that failure counted)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import hwzswap
from hwzswap.backends.contract import Capabilities, Param
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.frontswap.system import SwapSystem

from fsutil import PAGE, compressible_pages, random_page, same_filled

SLOTS = 10
MODES = ("page", "folio", "reclaim", "async")
FAILURES = ("decompress_fail", "verify_fail")
BANK = compressible_pages(8, seed=11) + [random_page(3), bytes(PAGE), same_filled()]
SAME_FILLED = {len(BANK) - 2, len(BANK) - 1}  # stored at once, never staged


class HeldLz4(Lz4Backend):
    """lz4 whose compression waits while ``hold`` is clear (a device still working on a
    pass, so async mode's pages stay in flight), optionally claiming a batch path (loads then
    decompress a cluster in one ``decompress_batch``). Called directly (``driver_watchdog:
    off``): a watched driver serves one call at a time."""

    name = "test-held-lz4"
    PARAMS = {**Lz4Backend.PARAMS, "batch": Param(bool, True, doc="report a batch capability")}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.hold = threading.Event()
        self.hold.set()

    @property
    def capabilities(self) -> Capabilities:
        # concurrent: lz4 is thread-safe, so a held compression does not hold the loads'
        # decompression (a driver that serves one call at a time would)
        return Capabilities(batch=self.params["batch"], concurrent=True)

    def _wait(self) -> None:
        if not self.hold.wait(5):
            raise AssertionError("the test never released the device")

    def compress(self, page: Any) -> bytes | None:
        self._wait()
        return super().compress(page)

    def compress_batch(self, pages: np.ndarray) -> list[bytes | None]:
        self._wait()
        return super().compress_batch(pages)


def _open(mode: str, exclusive: bool, checksum: bool, verify: bool, batch: bool
          ) -> tuple[SwapSystem, HeldLz4]:
    be = HeldLz4(batch=batch)
    cfg = {"zswap": {"compressor": "lz4", "batching": mode, "exclusive_loads": exclusive,
                     "entry_checksum": checksum, "verify_pages": verify,
                     "async_max_batches": 4, "driver_watchdog": "off"},
           "memory": {"total_ram_mb": 64}, "swap": {"path": None, "nr_pages": SLOTS}}
    return hwzswap.open_zswap(cfg, backend=be), be


def _rows(js: list[int]) -> np.ndarray:
    return np.frombuffer(b"".join(BANK[j] for j in js), np.uint8).reshape(len(js), PAGE)


def _outcome(x: Any) -> Any:
    """A page (or None), or an error as (type, message)."""
    if isinstance(x, Exception):
        return type(x).__name__, str(x)
    return x


def _looped(s: SwapSystem, offs: list[int]) -> list[Any]:
    out: list[Any] = []
    for off in offs:
        try:
            out.append(s.zswap.load(0, off))
        except hwzswap.HwzswapError as exc:
            out.append(exc)
    return out


#: what the async pipeline counts (its worker picks a held pass up at a time of its own)
PIPELINE = ("async_batches", "async_device_calls", "async_timeouts", "async_peak_in_flight",
            "async_fill_pages", "async_completion_errors")


def _counters(s: SwapSystem) -> dict[str, Any]:
    """zswap's own counters and sizes (the driver's count calls: one per page looped, one per
    cluster batched)."""
    return {k: v for k, v in s.zswap.stats().items()
            if not k.startswith("driver_") and k not in PIPELINE}


def _damage(s: SwapSystem, off: int, how: str) -> None:
    """Spoil slot ``off``'s pool object: all 0xff (lz4 refuses it), or one bit flipped (caught
    by entry_checksum, or by verify_pages when it still decodes, else a wrong page or a refusal:
    the same in each system)."""
    pool, h = s.pool, s.zswap._trees[0][off]
    if how == "ff":
        pool.write(h, b"\xff" * pool.obj_size(h))
    else:
        view = pool.map(h, writable=True)
        view[len(view) // 2] ^= 0x10
        pool.unmap(h)


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), exclusive=st.booleans(), checksum=st.booleans(), verify=st.booleans(),
       batch=st.booleans())
def test_load_on_each_offset_is_load_batch_of_them(data, mode, exclusive, checksum, verify,
                                                   batch):
    landed = data.draw(st.dictionaries(st.integers(0, SLOTS - 1),
                                       st.integers(0, len(BANK) - 1), max_size=SLOTS),
                       label="landed")
    # a second pass: in async mode still in flight while the loads run (some replace landed
    # slots); in the other modes simply stored
    flying = data.draw(st.dictionaries(st.integers(0, SLOTS - 1),
                                       st.integers(0, len(BANK) - 1), max_size=4),
                       label="flying")
    offs = data.draw(st.permutations(range(SLOTS)), label="order")
    offs = offs[: data.draw(st.integers(0, SLOTS), label="cluster size")]
    opened = [_open(mode, exclusive, checksum, verify, batch) for _ in range(3)]
    looped, partial, whole = (s for s, _ in opened)
    try:
        for s, be in opened:
            if landed:
                s.swap_out_batch(0, list(landed), _rows(list(landed.values())))
            s.drain()
        # damage some objects that landed, the same in each system
        objects = sorted(o for o, e in looped.zswap._trees[0].items() if e.__class__ is int)
        bad = data.draw(st.dictionaries(st.sampled_from(objects), st.sampled_from(["ff", "flip"]),
                                        min_size=min(1, len(objects)), max_size=3)
                        if objects and data.draw(st.booleans(), label="damaged") else st.just({}),
                        label="damage")
        for s, be in opened:
            for off, how in bad.items():
                _damage(s, off, how)
            if mode == "async":
                be.hold.clear()
            if flying:
                s.swap_out_batch(0, list(flying), _rows(list(flying.values())))
        before = _counters(whole)
        if mode == "async":
            assert before["staged_pages"] == sum(j not in SAME_FILLED for j in flying.values())

        want = list(map(_outcome, _looped(looped, offs)))
        got = list(map(_outcome, partial.zswap.load_batch(0, offs, partial=True)))
        assert got == want
        assert _counters(partial) == _counters(looped)

        errors = [x for x in want if x.__class__ is tuple]
        event(f"failed loads: {len(errors)}; staged pages: {before['staged_pages']}")
        for key in FAILURES:
            event(f"{key}: {_counters(looped)[key] > 0}")
        try:
            got = list(map(_outcome, whole.zswap.load_batch(0, offs)))
        except hwzswap.HwzswapError as exc:
            assert errors and _outcome(exc) == errors[0]  # the first failure in batch order
            # nothing changed but the failures, each bad object counted once, as the looped
            # loads count it
            expect = dict(before)
            for key in FAILURES:
                expect[key] += _counters(looped)[key] - before[key]
            assert _counters(whole) == expect
        else:
            assert not errors and got == want
            assert _counters(whole) == _counters(looped)

        for s, be in opened:  # the pages in flight land, or were dropped (exclusive loads)
            be.hold.set()
            s.drain()
            s.zswap.check()
        assert _counters(partial) == _counters(looped)
    finally:
        for s, be in opened:
            be.hold.set()
            s.close()
