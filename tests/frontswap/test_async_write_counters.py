"""``async`` mode: a page rejected after its store returned whose device write failed stays
staged and is written at a later try; one freed or replaced before that try is never written
and counts in ``async_write_skipped``, so after a ``drain`` the README's identity holds:
``pswpout`` = ``written_back_pages`` + the ``reject_*`` counters + ``writeback_raced`` -
``async_write_skipped`` (no stores offered while disabled here)."""

from __future__ import annotations

import errno
import threading
import time

import numpy as np

from fsutil import random_page, run_thread


def _pswpout_identity(st: dict) -> int:
    rejects = sum(v for k, v in st.items() if k.startswith("reject_"))
    return (st["written_back_pages"] + rejects + st["writeback_raced"]
            - st["async_write_skipped"])


def _incompressible(*seeds: int) -> np.ndarray:
    """Pages lz4 cannot shrink: each lands as ``reject_compress_poor`` and goes to the device
    from its staged copy."""
    return np.frombuffer(b"".join(random_page(s) for s in seeds), np.uint8).reshape(-1, 4096)


def _async_system(make_system):
    return make_system(zswap={"compressor": "lz4", "batching": "async"},
                       swap={"nr_pages": 64})


def test_a_page_freed_before_its_write_is_retried_counts_as_skipped(make_system):
    s = _async_system(make_system)
    dev = s.devices[0]
    dev.inject("write", errno.EIO, 2)  # the write at landing, and drain's retry
    assert s.swap_out_batch(0, [5], _incompressible(1)) == [True]
    s.drain()
    st = s.stats()
    assert (st["async_write_fail"], st["staged_pages"], st["reject_compress_poor"]) == (1, 1, 1)
    s.swap_free(0, 5)  # freed before the next try: never written
    s.drain()
    st = s.stats()
    assert st["async_write_skipped"] == 1 and st["pswpout"] == 0, st
    assert st["pswpout"] == _pswpout_identity(st), st
    assert st["staged_pages"] == 0 and not s.zswap._unwritten
    s.zswap.check()


def test_a_page_replaced_before_its_write_is_retried_counts_as_skipped(make_system):
    # The newer page of the slot is rejected too, and its write goes through at the next try.
    s = _async_system(make_system)
    dev = s.devices[0]
    dev.inject("write", errno.EIO, 2)
    s.swap_out_batch(0, [5], _incompressible(1))
    s.drain()
    assert s.stats()["async_write_fail"] == 1
    s.swap_out_batch(0, [5], _incompressible(2))  # replaces the staged page
    s.drain()  # the newer page lands rejected and its write succeeds
    st = s.stats()
    assert st["async_write_skipped"] == 1 and st["pswpout"] == 1, st
    assert st["pswpout"] == _pswpout_identity(st), st
    assert s.swap_in(0, 5) == random_page(2)


def test_a_replaced_page_put_back_for_a_later_try_does_not_hide_the_newer_one(make_system):
    """Two pages of one slot waiting for their writes: a retry (drain) takes the failed pages
    (P at slot 1, A at slot 2), tries P first and, while P's write runs, a newer page B
    replaces A and lands rejected, its write failing too. P's write fails, so the retry puts
    A back for the next try, where B waits already: A, no longer staged, is never written
    (``async_write_skipped``) and B is kept, so the next drain writes B. (A put back over B
    left B staged for good, never tried again.)"""
    s = _async_system(make_system)
    dev = s.devices[0]
    dev.inject("write", errno.EIO, 3)  # P and A at landing, then P at drain's retry
    s.swap_out_batch(0, [1, 2], _incompressible(1, 2))
    s.drain()
    st = s.stats()
    assert st["async_write_fail"] == 2 and st["staged_pages"] == 2, st

    started, release = threading.Event(), threading.Event()

    def hold_p(op: str, offset: int) -> None:
        if op == "write" and offset == 1 and not started.is_set():
            started.set()
            assert release.wait(30), "P's write was never released"

    dev.io_hook = hold_p
    try:
        dev.inject("write", errno.EIO, 2)  # B's write, then P's
        t, out = run_thread(s.drain)  # the retry: P first, held in its write
        assert started.wait(30)
        s.swap_out_batch(0, [2], _incompressible(3))  # B replaces A; lands on the worker
        deadline = time.monotonic() + 30  # B's landing and failed write (no drain here:
        while (s.stats()["async_write_fail"] < 3  # it would retry B at once)
               and time.monotonic() < deadline):
            time.sleep(0.005)
        assert s.stats()["async_write_fail"] == 3
    finally:
        release.set()
        t.join(30)
        dev.io_hook = None
    assert out == [None]
    st = s.stats()
    assert st["async_write_skipped"] == 1 and st["staged_pages"] == 2, st
    s.drain()  # the device works again: P and B are written
    st = s.stats()
    assert st["staged_pages"] == 0 and st["pswpout"] == 2, st
    assert st["pswpout"] == _pswpout_identity(st), st
    assert s.swap_in(0, 1) == random_page(1) and s.swap_in(0, 2) == random_page(3)
    s.zswap.check()
