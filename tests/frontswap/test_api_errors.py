"""The swap layer's public API: bad slots get one message style, a partly failed batch says
where every page went, and ``verify_pages`` catches a driver that returns wrong bytes."""

from __future__ import annotations

import errno
from typing import Any

import numpy as np
import pytest

from hwzswap.backends.contract import Capabilities
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.errors import (
    CorruptDataError,
    DeviceError,
    InvalidInputError,
    SwapBatchError,
    SwapDeviceError,
)

from fsutil import PAGE, compressible_pages, random_page


@pytest.mark.parametrize(("call", "message"), [
    (lambda s, p: s.swap_out(0, None, p), "swap_out: an offset must be an integer, got NoneType"),
    (lambda s, p: s.swap_out(0, 3.0, p), "swap_out: an offset must be an integer, got float 3.0"),
    (lambda s, p: s.swap_out(0, True, p), "swap_out: an offset must be an integer, got bool"),
    (lambda s, p: s.swap_free(0, "3"), "swap_free: an offset must be an integer, got str '3'"),
    (lambda s, p: s.swap_in(0, 99), r"swap_in: offset 99 is outside swap type 0 \(slots 0..15\)"),
    (lambda s, p: s.swap_in(0, -1), r"swap_in: offset -1 is outside swap type 0"),
    (lambda s, p: s.swap_out(7, 1, p), r"swap_out: swap type 7 is not on \(swapon it first"),
    (lambda s, p: s.swap_out([0], 1, p), r"swap_out: swap type list \[0\] is not on"),
    (lambda s, p: s.swap_in_batch(0, [1, 2.5]), "swap_in_batch: an offset must be an integer"),
    (lambda s, p: s.zswap.store(0, 2.0, p), "zswap store: an offset must be an integer"),
])
def test_bad_slots_get_one_message_style(make_system, call, message):
    s = make_system(swap={"nr_pages": 16})
    page = compressible_pages(1)[0]
    with pytest.raises(SwapDeviceError, match=message):
        call(s, page)
    assert s.stats()["stores"] == 0


def test_numpy_integers_are_offsets(make_system):
    s = make_system(swap={"nr_pages": 16})
    page = compressible_pages(1)[0]
    assert s.swap_out(0, np.int64(3), page)
    assert s.swap_in(0, np.uint8(3)) == page
    s.swap_free(0, np.int32(3))
    assert not s.slot_in_use(0, 3)


def test_a_partly_failed_batch_says_where_every_page_went(make_system):
    """ENOSPC on device writes during a batch of compressible and random pages: the error
    names the stored, written and failed offsets; failed slots are free, the rest readable."""
    s = make_system(swap={"nr_pages": 32})
    good = compressible_pages(3)
    rows = [good[0], random_page(1), good[1], random_page(2), random_page(3), good[2]]
    s.devices[0].inject("write", errno.ENOSPC, 2)
    with pytest.raises(SwapBatchError, match="2 of 6 pages could not be written") as info:
        s.swap_out_batch(0, range(10, 16), np.frombuffer(b"".join(rows), np.uint8)
                         .reshape(-1, PAGE))
    err = info.value
    assert err.stored == [10, 12, 15]
    assert err.failed == [11, 13] and err.written == [14]
    for off in err.failed:
        assert not s.slot_in_use(0, off)
    assert [s.swap_in(0, o) for o in (10, 12, 14, 15)] == [rows[0], rows[2], rows[4], rows[5]]


class FlippingLz4(Lz4Backend):
    """A driver bug: decompress returns the right length with one byte wrong."""

    name = "test-flipping-lz4"

    def decompress(self, data: Any) -> bytes:
        page = bytearray(super().decompress(data))
        page[100] ^= 0x40
        return bytes(page)


@pytest.mark.parametrize("offsets", [[5, 6], (5, 6), [np.int64(5), np.int64(6)],
                                     np.array([5, 6]), "generator"])
def test_a_refused_batch_leaves_its_slots_as_they_were(make_system, offsets):
    """Bad input (folio sizes that do not add up) on slots that hold pages changes nothing:
    both pages stay readable, through either call (the slots were marked free, losing the
    page on the file and splitting swap_in from swap_in_batch on the other)."""
    s = make_system()
    in_zswap, on_file = compressible_pages(1)[0], random_page(7)
    assert s.swap_out(0, 5, in_zswap) is True and s.swap_out(0, 6, on_file) is False
    new = np.frombuffer(b"".join(compressible_pages(2, seed=9)), np.uint8).reshape(2, PAGE)
    if isinstance(offsets, str):
        offsets = (o for o in (5, 6))
    with pytest.raises(InvalidInputError, match="folio sizes \\[3\\] must be >= 1 and add up"):
        s.swap_out_batch(0, offsets, new, folios=[3])
    assert s.slot_in_use(0, 5) and s.slot_in_use(0, 6) and not s.slot_in_use(0, 7)
    assert s.swap_in_batch(0, [5, 6]) == [in_zswap, on_file]
    assert s.swap_in(0, 5) == in_zswap and s.swap_in(0, 6) == on_file
    s.zswap.check()


def test_verify_pages_catches_a_driver_returning_wrong_bytes(make_system):
    pages = compressible_pages(4)
    s = make_system(backend=FlippingLz4(), zswap={"verify_pages": True})
    for off, page in enumerate(pages):
        assert s.swap_out(0, off, page)
    with pytest.raises(CorruptDataError, match="differs from the one stored.*verify_pages"):
        s.swap_in(0, 1)
    with pytest.raises(CorruptDataError, match="verify_pages"):
        s.swap_in_batch(0, [0, 1, 2])
    st = s.stats()
    assert st["verify_fail"] == 1 + 3 and st["loads_hit"] == 0  # every wrong page once
    # writeback refuses to put the wrong page on the device: the entry is kept, and each
    # refusal is a verify_fail (the object decompressed fine), not a decompress_fail
    assert s.zswap.writeback(4) == 0 and s.stats()["writeback_fail"] == 4
    assert s.stats()["verify_fail"] == 4 + 4 and s.stats()["decompress_fail"] == 0
    assert "differs from the one stored" in str(s.zswap.last_writeback_error)
    assert "it was not written" in str(s.zswap.last_writeback_error)
    assert s.stats()["stored_pages"] == 4


def test_without_verify_pages_the_wrong_bytes_pass(make_system):
    """What verify_pages is for: without it the engine cannot know."""
    s = make_system(backend=FlippingLz4())
    page = compressible_pages(1)[0]
    s.swap_out(0, 0, page)
    assert s.swap_in(0, 0) != page


class FailingDecodeLz4(Lz4Backend):
    """An LZ4 device whose decompressor is down; it names its format, so zswap can decode."""

    name = "test-failing-decode-lz4"

    def __init__(self, fmt: str | None = "lz4", **params: Any) -> None:
        super().__init__(**params)
        self.fmt = fmt

    @property
    def capabilities(self):
        from hwzswap.backends.contract import Capabilities

        return Capabilities(device="test-device", format=self.fmt)

    def decompress(self, data: Any) -> bytes:
        from hwzswap.errors import DeviceError

        raise DeviceError("injected: the decompression engine is down")


def test_a_device_failing_to_decode_falls_back_to_software(make_system):
    pages = compressible_pages(3)
    s = make_system(backend=FailingDecodeLz4())
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)
    assert s.swap_in(0, 0) == pages[0]
    assert s.swap_in_batch(0, [1, 2]) == pages[1:]
    st = s.stats()
    assert st["driver_sw_fallbacks"] == 3 and st["decompress_fail"] == 0


def test_without_a_software_decoder_a_device_failure_is_a_device_error(make_system):
    from hwzswap.errors import DeviceError

    s = make_system(backend=FailingDecodeLz4(fmt=None))
    s.swap_out(0, 0, compressible_pages(1)[0])
    with pytest.raises(DeviceError, match="the device failed.*entry is kept"):
        s.swap_in(0, 0)
    assert s.stats()["decompress_fail"] == 1


def test_a_backend_that_cannot_start_names_the_config_file_and_key(tmp_path):
    """A device the config names that is not here (lz4-opencl device: nope) used to be
    reported without the file or the key that chose it."""
    from hwzswap.errors import ConfigError
    from hwzswap.frontswap.system import open_zswap

    cfg = tmp_path / "gpu.yaml"
    cfg.write_text("zswap:\n  compressor:\n    name: lz4-opencl\n    params: {device: nope}\n")
    with pytest.raises(ConfigError) as info:  # a device named explicitly: not "unavailable"
        open_zswap(cfg)
    msg = str(info.value)
    assert msg.startswith(f"{cfg}: zswap.compressor.params.device: lz4-opencl: parameter "
                          f"'device' ('nope') names a device that is not here")
    assert "no OpenCL device matches device='nope'" in msg and "devices here:" in msg


def test_an_nx842_marked_failed_is_decoded_by_the_842_software_backend(make_system):
    """842-nx writes plain 842 streams and says so (``format="842"``): once the device is
    marked failed (consecutive timeouts, told here as the async pipeline tells them), the
    pages it holds are decoded by the software 842 backend, without asking it again."""
    from hwzswap import get_backend

    nx = get_backend("842-nx")
    try:
        assert nx.capabilities.format == "842"
        pages = compressible_pages(3)
        s = make_system(backend=nx, zswap={"device_fail_after": 1})
        for off, page in enumerate(pages):
            assert s.swap_out(0, off, page) is True
        s.zswap.compressor.note_timeouts(1)
        assert s.stats()["driver_failed"] == 1
        asked = nx.counters()["requests"]
        assert s.swap_in(0, 0) == pages[0]
        assert s.swap_in_batch(0, [1, 2]) == pages[1:]
        assert s.stats()["driver_sw_fallbacks"] == 3
        assert nx.counters()["requests"] == asked  # the failed device was not asked
    finally:
        nx.close()


class VendorFormatLz4(Lz4Backend):
    """A device that names a format no software backend here decodes."""

    name = "test-vendor-format"

    @property
    def capabilities(self):
        from hwzswap.backends.contract import Capabilities

        return Capabilities(device="test-device", batch=True, format="vendor-fmt")


def test_a_failed_device_whose_format_no_software_decodes_is_still_asked(make_system):
    """Declaring a format with no software backend of that name used to make every page of
    a device marked failed unreadable (refused, then 'no software decoder')."""
    pages = compressible_pages(3)
    s = make_system(backend=VendorFormatLz4(), zswap={"device_fail_after": 1})
    for off, page in enumerate(pages):
        assert s.swap_out(0, off, page) is True
    s.zswap.compressor.note_timeouts(1)
    assert s.stats()["driver_failed"] == 1
    assert s.swap_in(0, 0) == pages[0]
    assert s.swap_in_batch(0, [1, 2]) == pages[1:]
    assert s.stats()["driver_sw_fallbacks"] == 0


def test_a_readahead_the_device_answers_ends_a_run_of_timeouts(make_system):
    """``device_fail_after`` counts consecutive timeouts: a decompress_batch the device
    answers in between starts the count again, as every other call does."""
    pages = compressible_pages(3)
    s = make_system(backend=VendorFormatLz4(), zswap={"device_fail_after": 2})
    for off, page in enumerate(pages):
        assert s.swap_out(0, off, page) is True
    s.zswap.compressor.note_timeouts(1)
    assert s.swap_in_batch(0, [0, 1, 2]) == pages
    s.zswap.compressor.note_timeouts(1)
    assert s.stats()["driver_failed"] == 0


def test_closing_stops_the_watchdog_thread(make_system):
    """driver_watchdog: on runs even a built-in's calls on a watchdog thread; closing the
    swap system ends that thread (five open/close cycles used to leave five)."""
    import threading
    import time

    def watchdogs() -> set[threading.Thread]:
        # by identity: an earlier test's watchdog may still be ending while this one runs
        return {t for t in threading.enumerate()
                if t.name.startswith("hwzswap-watchdog-") and t.is_alive()}

    page = compressible_pages(1)[0]
    for _ in range(3):
        before = watchdogs()
        s = make_system(backend=Lz4Backend(), zswap={"driver_watchdog": "on"})
        assert s.swap_out(0, 0, page) is True and s.swap_in(0, 0) == page
        mine = watchdogs() - before
        assert len(mine) == 1, mine
        s.close()
        deadline = time.monotonic() + 5
        while mine & watchdogs() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not mine & watchdogs()


class FlakyDecodeLz4(Lz4Backend):
    """An LZ4 device whose decompressor fails its next ``n`` calls, then works again."""

    name = "test-flaky-decode-lz4"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.fail = 0

    @property
    def capabilities(self):
        from hwzswap.backends.contract import Capabilities

        return Capabilities(device="test-device", concurrent=True)

    def decompress(self, data: Any) -> bytes:
        from hwzswap.errors import DeviceError

        if self.fail:
            self.fail -= 1
            raise DeviceError("injected: one decompression failed")
        return super().decompress(data)


def test_a_transient_decompress_error_in_a_readahead_is_counted(make_system):
    """A readahead's objects are decompressed in one sweep and, when one call fails, again
    one by one (which names a bad one). A fault that the retry no longer meets was counted
    nowhere: three injected, one counted."""
    b = FlakyDecodeLz4()
    s = make_system(backend=b, zswap={"exclusive_loads": False})
    pages = compressible_pages(8)
    for off, page in enumerate(pages):
        assert s.swap_out(0, off, page) is True
    b.fail = 1
    assert s.swap_in_batch(0, list(range(8))) == pages  # the retry meets no fault
    assert s.stats()["driver_device_errors"] == 1
    b.fail = 2  # the sweep fails, then the first retry: that page's load raises
    with pytest.raises(DeviceError):
        s.swap_in_batch(0, list(range(8)))
    assert s.stats()["driver_device_errors"] == 3
    assert s.swap_in_batch(0, list(range(8))) == pages  # nothing was lost


class _InterruptedBatch(Lz4Backend):
    """A batch device whose compress_batch is interrupted (Ctrl-C while the device works)."""

    name = "test-interrupted-batch"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batch=True)

    def compress_batch(self, pages: Any) -> Any:
        raise KeyboardInterrupt


def test_an_interrupted_swap_out_batch_leaves_its_free_slots_free_in_zswap_too(make_system):
    # The batch's same-filled page is stored before the device is called: the interrupt must
    # not leave it in zswap behind a slot the swap map says is free.
    s = make_system(backend=_InterruptedBatch(), zswap={"batching": "reclaim"})
    pages = np.zeros((2, PAGE), np.uint8)
    pages[1] = np.frombuffer(compressible_pages(1)[0], np.uint8)
    with pytest.raises(KeyboardInterrupt):
        s.swap_out_batch(0, [0, 1], pages)
    assert not s.slot_in_use(0, 0) and not s.slot_in_use(0, 1)
    assert s.stats()["stored_pages"] == 0
    with pytest.raises(SwapDeviceError, match="offset 0: the slot is not in use"):
        s.swap_in(0, 0)
    s.zswap.check()
