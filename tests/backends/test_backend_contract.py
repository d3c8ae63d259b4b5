"""The compressor contract: parameters, input checking, batch defaults, async ops."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwzswap.backends import Backend, CompOp, OpStatus, Param, get_backend, run_ops
from hwzswap.backends.contract import PAGE_SIZE, check_page, check_pages
from hwzswap.errors import (
    CorruptDataError,
    DeviceError,
    HwzswapError,
    InvalidInputError,
    InvalidParameterError,
)


class _Queued(Backend):
    """A test backend with a real bounded queue: accepts at most ``depth`` outstanding ops."""

    name = "test-queued"
    PARAMS = {"depth": Param(int, 2, min=1, max=64)}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._inflight: list[CompOp] = []
        self.busy = 0

    def compress(self, page: Any) -> bytes | None:
        return get_backend("lz4").compress(page)

    def decompress(self, data: Any) -> bytes:
        return get_backend("lz4").decompress(data)

    def submit(self, ops):  # type: ignore[override]
        room = self.params["depth"] - len(self._inflight)
        accepted = list(ops[:room])
        for op in ops[room:]:
            op.status = OpStatus.BUSY
            self.busy += 1
        self._inflight.extend(accepted)
        return len(accepted)

    def poll(self, max_ops=None):  # type: ignore[override]
        done, self._inflight = self._inflight, []
        for op in done:
            self._execute(op)
        return done


def test_param_validation_messages() -> None:
    with pytest.raises(InvalidParameterError, match="unknown parameter 'speed'.*acceleration"):
        get_backend("lz4", speed=3)
    with pytest.raises(InvalidParameterError, match="'acceleration' must be >= 1"):
        get_backend("lz4", acceleration=0)
    with pytest.raises(InvalidParameterError, match="must be int, got str"):
        get_backend("zstd", level="3")
    assert issubclass(InvalidParameterError, HwzswapError)


def test_param_float_and_nullable() -> None:
    p = Param(float, 1.0, min=0.0)
    assert p.check("x", "k", 2) == 2.0
    assert Param(int, None, nullable=True).check("x", "k", None) is None
    with pytest.raises(InvalidParameterError, match="one of"):
        Param(str, "a", choices=("a", "b")).check("x", "k", "c")


@pytest.mark.parametrize(
    "form",
    [
        lambda p: p,
        lambda p: p.tobytes(),
        lambda p: bytearray(p.tobytes()),
        lambda p: memoryview(p.tobytes()),
        lambda p: p.view(np.uint32),
        lambda p: p.reshape(64, 64),
    ],
)
def test_any_buffer_protocol_page(form) -> None:
    page = (np.arange(PAGE_SIZE) % 7).astype(np.uint8)
    lz4 = get_backend("lz4")
    out = lz4.compress(form(page))
    assert lz4.decompress(out) == page.tobytes()
    assert check_page(form(page)).nbytes == PAGE_SIZE


def test_bad_pages_and_batches() -> None:
    with pytest.raises(InvalidInputError, match="4096 bytes, got 5"):
        check_page(b"short")
    with pytest.raises(InvalidInputError, match="bytes-like"):
        check_page(1234)
    with pytest.raises(InvalidInputError, match="numpy array"):
        check_pages([b"x" * PAGE_SIZE])
    with pytest.raises(InvalidInputError, match="uint8"):
        check_pages(np.zeros((2, PAGE_SIZE), np.float32))
    with pytest.raises(InvalidInputError):
        get_backend("lz4").compress_batch(np.zeros((2, 100), np.uint8))


def test_decompress_batch_names_bad_item() -> None:
    lz4 = get_backend("lz4")
    good = lz4.compress(np.zeros(PAGE_SIZE, np.uint8))
    with pytest.raises(CorruptDataError, match="item 1"):
        lz4.decompress_batch([good, b"\xff\xff\xff"])


def test_sync_backend_async_ops_complete_at_once() -> None:
    lz4 = get_backend("lz4")
    ops = [CompOp.compress(np.zeros(PAGE_SIZE, np.uint8), user_data=i) for i in range(3)]
    assert lz4.submit(ops) == 3
    assert lz4.pending() == 3
    done = lz4.poll(max_ops=2)
    assert [op.user_data for op in done] == [0, 1]
    assert all(op.status is OpStatus.SUCCESS and op.produced == len(op.dst) for op in done)
    assert len(lz4.poll()) == 1 and lz4.pending() == 0


def test_busy_ops_are_resubmitted_by_run_ops() -> None:
    q = _Queued(depth=2)
    pages = [np.full(PAGE_SIZE, i, np.uint8) for i in range(7)]
    ops = run_ops(q, [CompOp.compress(p, user_data=i) for i, p in enumerate(pages)])
    assert q.busy > 0
    assert all(op.status is OpStatus.SUCCESS for op in ops)
    assert [q.decompress(op.dst) for op in ops] == [p.tobytes() for p in pages]


def test_op_statuses_for_bad_input_and_device_error() -> None:
    class Failing(_Queued):
        name = "test-failing"

        def compress(self, page: Any) -> bytes | None:
            raise DeviceError("engine on fire")

    (bad,) = run_ops(get_backend("lz4"), [CompOp.decompress(b"\x00garbage")])
    assert bad.status is OpStatus.INVALID_INPUT and "corrupt" in bad.error
    (dev,) = run_ops(Failing(), [CompOp.compress(np.zeros(PAGE_SIZE, np.uint8))])
    assert dev.status is OpStatus.DEVICE_ERROR and "fire" in dev.error


def test_run_ops_gives_up_on_a_stuck_device() -> None:
    class Stuck(_Queued):
        name = "test-stuck"

        def poll(self, max_ops=None):  # type: ignore[override]
            return []

    with pytest.raises(DeviceError, match="still not complete"):
        run_ops(Stuck(depth=1), [CompOp.compress(b"\x00" * PAGE_SIZE)], max_rounds=50)


def test_capabilities_defaults() -> None:
    caps = get_backend("lzo").capabilities
    assert caps.time_basis == "measured" and caps.device == "cpu" and not caps.asynchronous
    assert caps.to_dict()["time_basis"] == "measured"


@pytest.mark.parametrize("n", [0, 1, 32, 300])
def test_page_views_are_read_only_flat_views_of_each_page(n):
    """One 4096-byte 'B' view per page, sharing the batch's memory, never writable (even for a
    writable batch), for any batch size (cached slices or not) and a strided batch."""
    from hwzswap.backends.contract import page_views

    batch = np.arange(n * PAGE_SIZE, dtype=np.uint64).astype(np.uint8).reshape(n, PAGE_SIZE)
    for pages in (batch, np.repeat(batch, 2, axis=0)[::2]):
        views = page_views(pages)
        assert len(views) == n
        for i, v in enumerate(views):
            assert v.readonly and v.format == "B" and v.nbytes == PAGE_SIZE
            assert v.tobytes() == batch[i].tobytes()
    with pytest.raises(InvalidInputError):
        page_views(np.zeros((2, 100), np.uint8))


# -- the kit's checks of per-item batch results ------------------------------------------------


def _cb(data: bytes, sizes: list[int], status: list[int], errors=None, offsets=None):
    from hwzswap.backends.contract import CompressedBatch

    offs = offsets if offsets is not None else list(np.concatenate([[0], np.cumsum(sizes)[:-1]]))
    return CompressedBatch(data, offs, sizes, status, errors)


@pytest.mark.parametrize(
    ("result", "n", "message"),
    [
        (lambda: _cb(b"abc", [3, 0], [0, 0]), 2, r"page 1: CompressedBatch item of 0 bytes"),
        (lambda: _cb(b"x" * 4096, [4096], [0]), 1, r"page 0: CompressedBatch item of 4096 bytes"),
        (lambda: _cb(b"abc", [3], [0], offsets=[2]), 1, r"offset 2\+3 lies outside its 3-byte buffer"),
        (lambda: _cb(b"", [0], [2]), 1, r"page 0: CompressedBatch FAILED item has no reason"),
        (lambda: _cb(b"abc", [3, 0], [0, 1], {0: "x"}), 2, r"errors name items that did not fail: \[0\]"),
        (lambda: _cb(b"abc", [3], [1]), 1, r"page 0: CompressedBatch INCOMPRESSIBLE item has size 3"),
        (lambda: _cb(b"", [0], [7]), 1, r"status 7 is not an ItemStatus"),
        (lambda: _cb(b"abc", [3], [0]), 2, r"CompressedBatch of 1 items for 2 pages"),
        (lambda: [b"abc", "def"], 2, r"page 1: compress_batch returned str"),
        (lambda: (b"abc",), 2, r"compress_batch returned 1 items for 2 pages"),
        (lambda: np.zeros((2, 10), np.uint8), 2, r"compress_batch returned ndarray"),
    ],
)
def test_kit_rejects_malformed_compressed_batches(result, n, message) -> None:
    from hwzswap.testing import ConformanceError, batch_items

    with pytest.raises(ConformanceError, match=r"^\[lz4\] batch: .*" + message):
        batch_items(get_backend("lz4"), "batch", result(), n)


def test_kit_reads_well_formed_batches_of_both_shapes() -> None:
    from hwzswap.backends.contract import DecompressedBatch, ItemStatus
    from hwzswap.testing import batch_items, batch_pages

    lz4 = get_backend("lz4")
    items = batch_items(lz4, "batch", _cb(b"abcde", [2, 0, 3, 0], [0, 1, 0, 2], {3: "dev"}), 4)
    assert items[0] == b"ab" and items[1] is None and items[2] == b"cde"
    assert isinstance(items[3], DeviceError) and "dev" in str(items[3])
    assert batch_items(lz4, "batch", [b"ab", None, ValueError("x")], 3)[:2] == [b"ab", None]
    pages = np.zeros((2, PAGE_SIZE), np.uint8)
    assert batch_pages(lz4, "batch", pages, 2)[1] == {}
    status = np.array([ItemStatus.OK, ItemStatus.FAILED], np.uint8)
    assert batch_pages(lz4, "batch", DecompressedBatch(pages, status, {1: "bad"}), 2)[1] == {1: "bad"}


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (lambda: np.zeros((1, PAGE_SIZE), np.uint8), r"returned \(1, 4096\) uint8 for 2 items"),
        (lambda: np.zeros((2, PAGE_SIZE), np.int16), r"returned \(2, 4096\) int16"),
        (lambda: [b"x"], r"decompress_batch returned list"),
        (lambda: _db(np.zeros((1, PAGE_SIZE), np.uint8)), r"DecompressedBatch of \(1, 4096\) pages"),
        (lambda: _db(np.zeros((2, PAGE_SIZE), np.uint8), [0, 2]), r"page 1: DecompressedBatch FAILED item has no reason"),
        (lambda: _db(np.zeros((2, PAGE_SIZE), np.uint8), [0, 1], {1: "x"}), r"status 1 is neither OK nor FAILED"),
        (lambda: _db(np.zeros((2, PAGE_SIZE), np.uint8), [0, 0, 0]), r"status has shape \(3,\)"),
    ],
)
def test_kit_rejects_malformed_decompressed_batches(result, message) -> None:
    from hwzswap.testing import ConformanceError, batch_pages

    with pytest.raises(ConformanceError, match=r"^\[lz4\] batch: .*" + message):
        batch_pages(get_backend("lz4"), "batch", result(), 2)


def _db(pages, status=None, errors=None):
    from hwzswap.backends.contract import DecompressedBatch

    return DecompressedBatch(pages, status, errors)


def test_batches_concatenate_with_their_items_in_place() -> None:
    """One batch sent in several calls comes back as one: every item where it was, errors
    re-indexed, the flat buffer joined."""
    from hwzswap.backends.contract import CompressedBatch, DecompressedBatch, ItemStatus

    a = CompressedBatch.from_items([b"ab", None, DeviceError("x failed")])
    b = CompressedBatch.from_items([b"cde", DeviceError("y failed"), b"f"])
    both = CompressedBatch.concat([a, b])
    assert [None if x is None else bytes(x) for x in both] == [
        b"ab", None, None, b"cde", None, b"f"]
    assert both.status.tolist() == [ItemStatus.OK, ItemStatus.INCOMPRESSIBLE, ItemStatus.FAILED,
                                    ItemStatus.OK, ItemStatus.FAILED, ItemStatus.OK]
    assert both.errors == {2: "DeviceError: x failed", 4: "DeviceError: y failed"}
    assert CompressedBatch.concat([a]) is a
    pages = np.arange(3 * 4096, dtype=np.uint32).astype(np.uint8).reshape(3, 4096)
    d = DecompressedBatch.concat([DecompressedBatch(pages[:1]),
                                  DecompressedBatch(pages[1:], [2, 0], {0: "bad"})])
    assert np.array_equal(d.pages, pages) and d.failed() == [1] and d.errors == {1: "bad"}


def test_an_all_failed_batch_fails_every_item_with_the_reason() -> None:
    """A device call that fails as a whole: every item FAILED with the same reason, no bytes
    (compress) or zeroed rows (decompress); zero items is an empty batch, not an error."""
    from hwzswap.backends.contract import CompressedBatch, DecompressedBatch, ItemStatus

    c = CompressedBatch.all_failed(3, "DeviceError: gone")
    assert len(c) == 3 and c.nbytes == 0 and list(c) == [None, None, None]
    assert c.status.tolist() == [ItemStatus.FAILED] * 3 and c.status.dtype == np.uint8
    assert c.failed() == [0, 1, 2] and c.errors == dict.fromkeys(range(3), "DeviceError: gone")
    assert c.sizes.tolist() == [0, 0, 0] and c.offsets.tolist() == [0, 0, 0]
    d = DecompressedBatch.all_failed(2, "CorruptDataError: bad")
    assert d.pages.shape == (2, PAGE_SIZE) and d.pages.dtype == np.uint8 and not d.pages.any()
    assert d.failed() == [0, 1] and d.errors == dict.fromkeys((0, 1), "CorruptDataError: bad")
    none = CompressedBatch.all_failed(0, "x")
    assert len(none) == 0 and not none.errors
    assert len(DecompressedBatch.all_failed(0, "x")) == 0


def test_split_cuts_a_batch_back_into_its_parts_sharing_the_buffer() -> None:
    from hwzswap.backends.contract import CompressedBatch

    both = CompressedBatch.from_items([b"ab", None, DeviceError("x"), b"cde", DeviceError("y")])
    a, empty, b = both.split([3, 0, 2])
    assert [None if x is None else bytes(x) for x in a] == [b"ab", None, None]
    assert a.errors == {2: "DeviceError: x"} and len(empty) == 0 and not empty.errors
    assert [None if x is None else bytes(x) for x in b] == [b"cde", None]
    assert b.errors == {1: "DeviceError: y"}
    assert a.data is both.data and b.data is both.data  # not copied
    assert both.split([5]) == [both]  # one part is the batch itself, as concat of one is
    for bad in ([2, 2], [6], [3, -1, 3]):
        with pytest.raises(InvalidInputError, match=r"cannot split a CompressedBatch of 5 items"):
            both.split(bad)


_ITEM = st.one_of(st.binary(min_size=1, max_size=40), st.none(),
                  st.text(min_size=1, max_size=8).map(DeviceError))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_ITEM, max_size=6), min_size=1, max_size=5))
def test_split_is_the_inverse_of_concat(parts_items: list[list[Any]]) -> None:
    """For any batches, ``concat(parts).split(sizes)`` gives back each part item for item
    (bytes, status, reason), and concatenating the split parts gives back the whole's items
    (not its buffer: each part shares the whole one)."""
    from hwzswap.backends.contract import CompressedBatch

    def items(batch: CompressedBatch) -> list[Any]:
        return [(int(batch.status[i]), batch.item_bytes(i), batch.errors.get(i))
                for i in range(len(batch))]

    parts = [CompressedBatch.from_items(p) for p in parts_items]
    whole = CompressedBatch.concat(parts)
    sizes = [len(p) for p in parts]
    back = whole.split(sizes)
    assert [len(b) for b in back] == sizes
    assert [items(b) for b in back] == [items(p) for p in parts]
    assert items(CompressedBatch.concat(back)) == items(whole)
