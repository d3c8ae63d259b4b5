"""``lz4-opencl`` on a real OpenCL device (PoCL's CPU device in CI): format, corruption, batches.

Nothing here skips: the backend must be available wherever the test suite runs.
"""

from __future__ import annotations

import lz4.block
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwzswap import get_backend
from hwzswap.backends.contract import (
    PAGE_SIZE,
    CompOp,
    CompressedBatch,
    DecompressedBatch,
    ItemStatus,
    OpKind,
    OpStatus,
    run_ops,
)
from hwzswap.backends.opencl import Lz4OpenCLBackend
from hwzswap.backends.opencl.backend import MAX_ITEM_BYTES, MIN_SPLIT_PAGES
from hwzswap.bench.corpus import bundled_corpus_paths, load_bundled, source_name
from hwzswap.errors import CorruptDataError, DeviceError, InvalidInputError
from hwzswap.testing import check_backend, check_reference_interop, real_memory_mix, sample_pages


def ref_compress(page: bytes) -> bytes:
    return lz4.block.compress(page, store_size=False)


def ref_decompress(data: bytes) -> bytes | None:
    """python-lz4's decode of one page, or None when it rejects the data."""
    try:
        out = lz4.block.decompress(data, uncompressed_size=PAGE_SIZE)
    except lz4.block.LZ4BlockError:
        return None
    return out if len(out) == PAGE_SIZE else None


@pytest.fixture(scope="module")
def dev():
    # layout="item", hash_log=12 pinned: the byte-identity checks need python-lz4's parse over
    # the whole page (a tuned group layout parses segments); the rest is tuned
    backend = get_backend("lz4-opencl", hash_log=12, layout="item")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def coop():
    """The cooperative decompressor (one item per work-group)."""
    backend = get_backend("lz4-opencl", hash_log=12, decompress_layout="group",
                          decompress_local_size=4)
    yield backend
    backend.close()


def as_list(batch) -> list[bytes | None]:
    """A CompressedBatch as the old list shape (bytes, or None where not OK)."""
    return [batch.item_bytes(i) for i in range(len(batch))]


def ref_list(pages) -> list[bytes | None]:
    return [r if len(r) < PAGE_SIZE else None for r in (ref_compress(p.tobytes()) for p in pages)]


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    """Every page of the bundled corpus, plus the synthetic shapes (zero, random, text...)."""
    assert bundled_corpus_paths(), "the bundled corpus (hwzswap/data/corpus) is missing"
    synthetic = np.stack(list(sample_pages().values()))
    return np.concatenate([load_bundled(), synthetic, real_memory_mix(64)])


# -- conformance -----------------------------------------------------------------------------


def test_conformance_default():
    check_backend("lz4-opencl")


@pytest.mark.parametrize(
    "params",
    [
        {"layout": "group"},
        {"layout": "group", "local_size": 8, "hash_log": 13},
        {"batch_size": 5},  # every conformance batch goes through the double-buffered pipeline
        {"local_size": 4, "hash_log": 10, "queue_depth": 1},
        {"zero_copy": "off", "batch_size": 7},
        {"zero_copy": "on", "layout": "group"},
    ],
    ids=["group", "group8-h13", "batch5", "wg4-h10-q1", "copy-batch7", "zerocopy-group"],
)
def test_conformance_variants(params):
    check_backend("lz4-opencl", **params)


def test_reference_interop(dev):
    check_reference_interop(
        dev, ref_compress, lambda c: lz4.block.decompress(c, uncompressed_size=PAGE_SIZE)
    )


def test_capabilities_name_the_device(dev):
    caps = dev.capabilities
    assert caps.device == f"opencl:{dev.device_name}"
    assert caps.batch and caps.asynchronous and caps.time_basis == "measured"
    assert caps.preferred_batch == dev.device_info["batch_size"] == dev.config["batch_size"]
    assert caps.max_batch is None and caps.min_batch == 1
    assert dev.device_name in dev.describe()
    info = dev.device_info
    assert info["name"] == dev.device_name and info["compute_units"] >= 1


# -- the bundled corpus, page by page --------------------------------------------------------


def _where(i: int, corpus_len: int) -> str:
    paths = bundled_corpus_paths()
    return f"page {i} of {corpus_len} (corpus sources {[source_name(p) for p in paths]})"


def test_every_corpus_page_decodes_with_reference_lz4(dev, corpus):
    batch = dev.compress_batch(corpus)
    assert isinstance(batch, CompressedBatch)
    items = as_list(batch)
    assert len(items) == len(corpus)
    for i, (item, page) in enumerate(zip(items, corpus, strict=True)):
        raw = page.tobytes()
        ref = ref_compress(raw)
        if item is None:
            # incompressible exactly when the reference does not shrink the page either
            assert len(ref) >= PAGE_SIZE, f"{_where(i, len(corpus))}: None, reference {len(ref)}"
            continue
        assert len(item) < PAGE_SIZE
        assert lz4.block.decompress(item, uncompressed_size=PAGE_SIZE) == raw, _where(i, len(corpus))
        # same greedy parse, same hash: byte-identical to python-lz4 (hash_log=12)
        assert item == ref, f"{_where(i, len(corpus))}: differs from lz4.block.compress"


@pytest.mark.parametrize("which", ["item", "group"])
def test_device_decodes_every_reference_block(dev, coop, corpus, which):
    """Both decompressors decode every page of the corpus as lz4.block encodes it."""
    b = dev if which == "item" else coop
    ref = [ref_compress(p.tobytes()) for p in corpus]  # incompressible pages included (> 4096)
    assert max(map(len, ref)) > PAGE_SIZE
    out = b.decompress_batch(ref)
    assert out.dtype == np.uint8 and out.shape == corpus.shape
    bad = np.flatnonzero((out != corpus).any(axis=1))
    assert bad.size == 0, f"pages {bad[:10].tolist()} decoded wrongly"


@pytest.mark.parametrize("which", ["item", "group"])
def test_every_device_item_decodes_with_both_decoders(dev, coop, corpus, which):
    """The device's own output (a CompressedBatch, fed back as is) decodes with lz4.block and
    with the device, byte for byte; incompressible items come back FAILED, alone."""
    b = dev if which == "item" else coop
    batch = dev.compress_batch(corpus)
    for i in range(len(batch)):
        item = batch[i]
        if item is not None:
            assert lz4.block.decompress(item, uncompressed_size=PAGE_SIZE) == corpus[i].tobytes()
    out = b.decompress_batch(batch)
    incompressible = np.flatnonzero(batch.status == ItemStatus.INCOMPRESSIBLE)
    assert incompressible.size > 0  # the synthetic random page
    assert isinstance(out, DecompressedBatch)
    assert out.failed() == incompressible.tolist()
    assert all("no compressed bytes" in out.errors[i] for i in out.failed())
    ok = batch.status == ItemStatus.OK
    assert np.array_equal(out.pages[ok], corpus[ok])


def test_group_layout_output_is_valid_lz4(corpus):
    pages = corpus[::7]
    with get_backend("lz4-opencl", layout="group", local_size=4) as grp:
        items = grp.compress_batch(pages)
        for i, (item, page) in enumerate(zip(items, pages, strict=True)):
            if item is not None:
                assert lz4.block.decompress(item, uncompressed_size=PAGE_SIZE) == page.tobytes(), i
        kept = [i for i, it in enumerate(items) if it is not None]
        assert np.array_equal(grp.decompress_batch([items[i] for i in kept]), pages[kept])


# -- corrupt input: an error status per item, never wrong bytes ------------------------------


def _lit(n: int) -> bytes:
    """A literal-length field: the token's high nibble plus extension bytes."""
    if n < 15:
        return bytes([n << 4])
    n -= 15
    return bytes([0xF0]) + b"\xff" * (n // 255) + bytes([n % 255])


def _seq(lits: bytes, offset: int, match_len: int) -> bytes:
    """One full sequence (literals then a match) in LZ4 block syntax."""
    head = bytearray(_lit(len(lits)))
    ml = match_len - 4
    ext = b""
    if ml >= 15:
        head[0] |= 15
        rest = ml - 15
        ext = b"\xff" * (rest // 255) + bytes([rest % 255])
    else:
        head[0] |= ml
    return bytes(head) + lits + offset.to_bytes(2, "little") + ext


def _last(lits: bytes) -> bytes:
    return _lit(len(lits)) + lits


CRAFTED = {
    # name: (stream, words expected in the error)
    "empty": (b"", "ends inside"),
    "only a token": (b"\x10", "past the end of the data"),
    "offset beyond start": (_seq(b"A", 5, 4) + _last(b"B" * 4091), "offset"),
    "offset zero": (_seq(b"A", 0, 4) + _last(b"B" * 4091), "offset"),
    "overlong literal run": (b"\xf0" + b"\xff" * 20 + b"\x00" + b"x" * 10, "past the end of the data"),
    "literal run past page": (_last(b"x" * 5000), "past the end of the page"),
    "match past page": (_seq(b"A", 1, 4500) + _last(b"B" * 5), "past the end of the page"),
    "match into last 5 bytes": (_seq(b"A", 1, 4092) + _last(b"B" * 3), "last 5 bytes"),
    "match in last 12 bytes": (_seq(b"A" * 4085, 1, 4) + _last(b"B" * 7), "last 12 bytes"),
    "ends after a match": (_seq(b"A" * 8, 8, 100), "ends inside"),
    "short page": (ref_compress(b"x" * 100), "before a whole page"),
    "truncated offset": (_lit(4) + b"AAAA" + b"\x01", "ends inside"),
    "match length runs off the end": (b"\x1f" + b"A" + b"\x01\x00" + b"\xff\xff", "ends inside"),
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_corrupt_streams(dev, coop, name):
    stream, words = CRAFTED[name]
    for b in (dev, coop):
        with pytest.raises(CorruptDataError, match=words):
            b.decompress(stream)
    if name != "offset zero":  # python-lz4 (LZ4 1.9.4) does not check for offset 0
        assert ref_decompress(stream) is None, "the reference accepts it: the test data is wrong"


def test_crafted_streams_are_well_formed_apart_from_the_fault(dev, coop):
    """The builders above make valid blocks when the fault is left out."""
    good = _seq(b"A", 1, 4000) + _last(b"B" * 95)
    page = b"A" * 4001 + b"B" * 95
    assert ref_decompress(good) == page
    assert dev.decompress(good) == page
    assert coop.decompress(good) == page


def test_match_copies_for_every_short_offset_and_length(dev, coop, item_decoder):
    """Overlapping matches (offset < 16 takes the pattern-repeating paths) decode exactly, in
    each decompressor layout (``dev``'s tuned choice may be either; both are pinned too)."""
    rng = np.random.default_rng(3)
    blocks, pages = [], []
    for off in range(1, 40):
        for ml in (4, 5, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 100, 1000, 4000 - off):
            lits = rng.integers(0, 256, off + int(rng.integers(0, 9)), dtype=np.uint8).tobytes()
            tail = rng.integers(0, 256, PAGE_SIZE - len(lits) - ml, dtype=np.uint8).tobytes()
            block = _seq(lits, off, ml) + _last(tail)
            page = ref_decompress(block)
            assert page is not None, (off, ml)
            blocks.append(block)
            pages.append(np.frombuffer(page, np.uint8))
    for b in (dev, coop, item_decoder):
        out = b.decompress_batch(blocks)
        bad = np.flatnonzero((out != np.stack(pages)).any(axis=1))
        assert bad.size == 0, f"{bad.size} blocks decoded wrongly, first {bad[:5].tolist()}"


def test_item_too_long_is_rejected_before_the_device(dev):
    with pytest.raises(CorruptDataError, match="longer than any LZ4 block"):
        dev.decompress(b"\x00" * (MAX_ITEM_BYTES + 1))


def test_every_truncation_is_an_error(dev, coop, corpus):
    pages = [sample_pages()["heap_like"], sample_pages()["text"], corpus[3], corpus[2500]]
    items = [ref_compress(p.tobytes()) for p in pages]
    cut = [data[:k] for data in items for k in range(len(data))]
    ops = run_ops(dev, [CompOp.decompress(c) for c in cut])
    wrong = [(len(c), op.status) for c, op in zip(cut, ops) if op.status is not OpStatus.INVALID_INPUT]
    assert not wrong, f"truncated items not rejected: {wrong[:5]}"
    assert all(op.error and "corrupt" in op.error for op in ops)
    out = coop.decompress_batch(cut)  # the cooperative decompressor, one batch call
    assert out.failed() == list(range(len(cut)))


@pytest.mark.parametrize("layout", ["item", "group"])
def test_a_bad_item_fails_alone_across_chunks(corpus, layout):
    with get_backend("lz4-opencl", batch_size=5, decompress_layout=layout) as small:
        pages = corpus[:23]
        items = [ref_compress(p.tobytes()) for p in pages]
        items[17] = items[17][: len(items[17]) // 2]
        items[3] = b"\x00" * (MAX_ITEM_BYTES + 1)
        out = small.decompress_batch(items)
        assert isinstance(out, DecompressedBatch) and out.failed() == [3, 17]
        assert "corrupt" in out.errors[17] and "longer than any LZ4 block" in out.errors[3]
        good = [i for i in range(23) if i not in (3, 17)]
        assert np.array_equal(out.pages[good], pages[good])
        assert small.counters()["corrupt_items"] == 2
        # the pipeline is left in a usable state
        items[17] = ref_compress(pages[17].tobytes())
        items[3] = ref_compress(pages[3].tobytes())
        assert np.array_equal(small.decompress_batch(items), pages)


def _has_zero_offset(data: bytes) -> bool:
    """Whether an LZ4 block has a sequence with offset 0 before its syntax breaks."""
    i, n = 0, len(data)
    while i < n:
        token = data[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            while True:
                if i >= n:
                    return False
                i += 1
                lit += data[i - 1]
                if data[i - 1] != 255:
                    break
        i += lit
        if i + 2 > n:
            return False
        if data[i] == 0 and data[i + 1] == 0:
            return True
        i += 2
        if token & 15 == 15:
            while True:
                if i >= n:
                    return False
                i += 1
                if data[i - 1] != 255:
                    break
    return False


MUTATION = st.tuples(
    st.integers(0, 10_000),  # which page (mod the sample)
    st.sampled_from(["flip", "set", "cut", "insert", "delete"]),
    st.floats(0, 1, exclude_max=True),  # where
    st.integers(0, 255),  # bit index or byte value
)


@settings(max_examples=25)
@given(st.lists(MUTATION, min_size=1, max_size=48))
def test_mutated_blocks_agree_with_reference(dev, coop, corpus, mutations):
    """Whatever the damage: the device decodes exactly what python-lz4 decodes, or errors.

    The one deliberate difference: an offset of 0 is invalid LZ4 and the device rejects it;
    LZ4 1.9.4's decoder copies from uninitialised output instead.
    """
    sample = corpus[:: max(1, len(corpus) // 512)]
    items = []
    for which, kind, where, value in mutations:
        data = bytearray(ref_compress(sample[which % len(sample)].tobytes()))
        pos = int(where * len(data))
        if kind == "flip":
            data[pos] ^= 1 << (value % 8)
        elif kind == "set":
            data[pos] = value
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data.insert(pos, value)
        else:
            del data[pos]
        items.append(bytes(data))
    ops = run_ops(dev, [CompOp.decompress(x) for x in items])
    for x, op in zip(items, ops, strict=True):
        ref = ref_decompress(x)
        if op.status is OpStatus.SUCCESS:
            assert len(op.dst) == PAGE_SIZE
            assert op.dst == ref, "the device decoded a block the reference rejects or decodes differently"
        else:
            assert op.status is OpStatus.INVALID_INPUT, op.error
            assert ref is None or _has_zero_offset(x), f"device rejected a valid block: {op.error}"
    # the cooperative decompressor agrees item for item, in one batch call
    out = coop.decompress_batch(items)
    failed = set(out.failed()) if isinstance(out, DecompressedBatch) else set()
    pages = out.pages if isinstance(out, DecompressedBatch) else out
    for i, op in enumerate(ops):
        assert (i in failed) == (op.status is not OpStatus.SUCCESS), i
        if i not in failed:
            assert pages[i].tobytes() == op.dst


@st.composite
def _random_block(draw) -> tuple[bytes, bytes]:
    """A random LZ4 block that is valid by construction, and the page it decodes to:
    sequences of random literals and matches (any offset into what is already out,
    overlapping ones included), then a match that fills the page up to its last 5-16 bytes,
    which are literals (LZ4's end rules: no match in the last 12 bytes nor into the last 5)."""
    rnd = draw(st.randoms(use_true_random=False))
    out, block = bytearray(), bytearray()

    def sequence(lits: bytes, off: int, ml: int) -> None:
        block.extend(_seq(lits, off, ml))
        out.extend(lits)
        for _ in range(ml):
            out.append(out[-off])

    for _ in range(draw(st.integers(0, 8))):
        lits = rnd.randbytes(draw(st.integers(0 if out else 1, 40)))
        room = PAGE_SIZE - 64 - len(out) - len(lits)
        if room < 4:
            break
        off = draw(st.integers(1, len(out) + len(lits)))
        sequence(lits, off, draw(st.integers(4, min(room, 700))))
    tail = rnd.randbytes(draw(st.integers(5, 16)))
    lits = b"" if out else rnd.randbytes(1)
    off = draw(st.integers(1, len(out) + len(lits)))
    sequence(lits, off, PAGE_SIZE - len(out) - len(lits) - len(tail))
    block.extend(_last(tail))
    out.extend(tail)
    return bytes(block), bytes(out)


@pytest.fixture(scope="module")
def item_decoder():
    """The one-item-per-work-item decompressor, pinned (``dev``'s is the tuned choice, which
    may be the cooperative one on this machine, so neither fixture is sure to run it)."""
    backend = get_backend("lz4-opencl", hash_log=12, decompress_layout="item")
    yield backend
    backend.close()


def _decoded(backend, data: bytes) -> bytes | None:
    """``backend.decompress(data)``, or None when it rejects it (CorruptDataError)."""
    try:
        out = backend.decompress(data)
    except CorruptDataError:
        return None
    assert len(out) == PAGE_SIZE
    return bytes(out)


@settings(max_examples=30)
@given(_random_block(), st.floats(0, 1, exclude_max=True), MUTATION)
def test_random_blocks_and_their_damage_decode_as_the_reference(item_decoder, coop, made, cut,
                                                               damage):
    """Random bytes almost never reached a decode (nearly all were rejected): each example
    has a random valid block (both decompressors give its page, as python-lz4 does), a proper
    prefix of it (rejected by all three), and the block with one random fault (the device's
    decoders accept exactly what python-lz4 accepts, with its bytes; offset 0 aside, which
    LZ4 1.9.4 does not check)."""
    block, page = made
    assert ref_decompress(block) == page, "the generator made an invalid block"
    short = block[: int(cut * len(block))]
    assert ref_decompress(short) is None  # a page ends with the block's last byte
    _, kind, where, value = damage
    bad = bytearray(block)
    pos = int(where * len(bad))
    if kind == "flip":
        bad[pos] ^= 1 << (value % 8)
    elif kind == "set":
        bad[pos] = value
    elif kind == "cut":
        del bad[pos:]
    elif kind == "insert":
        bad.insert(pos, value)
    else:
        del bad[pos]
    bad = bytes(bad)
    want = ref_decompress(bad)
    for b in (item_decoder, coop):
        assert _decoded(b, block) == page
        assert _decoded(b, short) is None
        got = _decoded(b, bad)
        if got is None:
            assert want is None or _has_zero_offset(bad), "a decoder rejected a valid block"
        else:
            assert got == want, "a decoder decoded what the reference rejects, or differently"


# -- batch shapes and the pipeline -----------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 257])
def test_batch_sizes(dev, corpus, n):
    pages = corpus[1000 : 1000 + n]
    items = as_list(dev.compress_batch(pages))
    assert items == ref_list(pages)
    kept = [i for i, it in enumerate(items) if it is not None]
    assert np.array_equal(dev.decompress_batch([items[i] for i in kept]), pages[kept])


@pytest.mark.parametrize("batch_size,n", [(5, 23), (64, 1000), (1, 3), (8, 8), (8, 9)])
def test_larger_than_batch_size_uses_the_pipeline(corpus, batch_size, n):
    pages = corpus[500 : 500 + n]
    with get_backend("lz4-opencl", batch_size=batch_size, hash_log=12) as small:
        items = as_list(small.compress_batch(pages))
        c = small.counters()
        assert c["compress_launches"] == -(-n // batch_size)
        assert c["compress_pages"] == n
        assert items == ref_list(pages)
        refs = [ref_compress(p.tobytes()) for p in pages]
        assert np.array_equal(small.decompress_batch(refs), pages)
        assert small.counters()["decompress_launches"] == -(-n // batch_size)


@pytest.mark.parametrize("n,launches", [(MIN_SPLIT_PAGES * 2 - 1, 1), (MIN_SPLIT_PAGES * 2, 2),
                                        (301, 2)])
def test_a_call_under_the_batch_size_is_spread_over_the_queues(corpus, n, launches):
    """On a CPU device (PoCL here), a reclaim pass of a few hundred pages is far under a tuned
    batch (4096+); cut over the two queues it keeps both cores busy, with the same output."""
    pages = corpus[2000 : 2000 + n]
    with get_backend("lz4-opencl", batch_size=4096, hash_log=12) as b:
        items = as_list(b.compress_batch(pages))
        assert b.counters()["compress_launches"] == launches
        assert items == ref_list(pages)
        kept = [i for i, it in enumerate(items) if it is not None]
        assert np.array_equal(b.decompress_batch([items[i] for i in kept]), pages[kept])


def test_zero_copy_and_upload_give_the_same_output(corpus):
    pages = corpus[::5]
    with get_backend("lz4-opencl", zero_copy="on", batch_size=300) as zc, get_backend(
        "lz4-opencl", zero_copy="off", batch_size=300, hash_log=zc.config["hash_log"]
    ) as up:
        assert zc.device_info["zero_copy"] and not up.device_info["zero_copy"]
        assert as_list(zc.compress_batch(pages)) == as_list(up.compress_batch(pages))
        ro = np.frombuffer(pages[:9].tobytes(), np.uint8).reshape(9, PAGE_SIZE)  # read-only
        assert as_list(zc.compress_batch(ro)) == as_list(up.compress_batch(ro))
        refs = [ref_compress(p.tobytes()) for p in pages]
        assert np.array_equal(zc.decompress_batch(refs), pages)
        assert np.array_equal(up.decompress_batch(refs), pages)
        refs[400] = refs[400][:-3]
        for b in (zc, up):
            out = b.decompress_batch(refs)
            assert out.failed() == [400] and "corrupt" in out.errors[400]


def test_buffers_are_reused_and_grow(corpus):
    with get_backend("lz4-opencl", batch_size=64, zero_copy="off") as b:
        b.compress_batch(corpus[:10])
        slot = b._slots[0]
        first = slot.d_pages
        b.compress_batch(corpus[:8])
        assert slot.d_pages is first  # smaller batch: same buffer
        b.compress_batch(corpus[:64])
        assert slot.cap_pages >= 64 and slot.d_pages is not first


def test_empty_and_odd_inputs(dev, corpus):
    assert len(dev.compress_batch(np.empty((0, PAGE_SIZE), np.uint8))) == 0
    assert dev.decompress_batch([]).shape == (0, PAGE_SIZE)
    strided = corpus[:40:3]  # not C-contiguous
    assert as_list(dev.compress_batch(strided)) == as_list(
        dev.compress_batch(np.ascontiguousarray(strided)))
    ro = corpus[:4].copy()
    ro.flags.writeable = False
    assert len(dev.compress_batch(ro)) == 4
    with pytest.raises(InvalidInputError):
        dev.compress_batch(corpus[:2, :100])
    with pytest.raises(InvalidInputError):
        dev.compress_batch(corpus[:2].astype(np.int16))


def test_item_types(dev, corpus):
    page = corpus[42]
    data = ref_compress(page.tobytes())
    forms = [data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)]
    out = dev.decompress_batch(forms)
    assert all((row == page).all() for row in out)
    with pytest.raises(InvalidInputError, match="item 1: .*bytes-like"):
        dev.decompress_batch([data, None, data])
    with pytest.raises(InvalidInputError, match="bytes-like"):
        dev.decompress(12345)


def test_strided_compressed_data_is_invalid_input_as_for_every_backend(dev, corpus):
    """The contract's rule (``compressed_input``, as lz4 applies it): one contiguous buffer,
    or InvalidInputError naming the backend. lz4-opencl used to copy a strided buffer and
    decode the copy."""
    page = corpus[42]
    data = ref_compress(page.tobytes())
    spread = bytearray(2 * len(data))
    spread[::2] = data
    strided = memoryview(spread)[::2]
    assert strided.tobytes() == data and not strided.c_contiguous
    with pytest.raises(InvalidInputError, match="lz4-opencl: .*one contiguous buffer"):
        dev.decompress(strided)
    with pytest.raises(InvalidInputError, match="lz4-opencl: .*one contiguous buffer"):
        dev.decompress(np.frombuffer(spread, np.uint8)[::2])
    with pytest.raises(InvalidInputError, match="item 1: lz4-opencl: .*one contiguous buffer"):
        dev.decompress_batch([data, strided, data])
    # the same bytes, contiguous, decode (and a 2-D uint8 buffer is read flat, as lz4 does)
    assert dev.decompress(strided.tobytes()) == page.tobytes()
    assert dev.decompress(np.frombuffer(data, np.uint8).reshape(1, -1)) == page.tobytes()
    # an async op with strided input fails alone, as INVALID_INPUT; its neighbours decode
    ops = [CompOp.decompress(data), CompOp.decompress(strided), CompOp.decompress(data)]
    run_ops(dev, ops)
    assert [op.status for op in ops] == [OpStatus.SUCCESS, OpStatus.INVALID_INPUT,
                                         OpStatus.SUCCESS]
    assert "one contiguous buffer" in ops[1].error
    assert ops[0].dst == ops[2].dst == page.tobytes() and ops[0].consumed == len(data)


# -- async submit / poll ---------------------------------------------------------------------


def test_async_mixed_ops_and_backpressure(corpus):
    pages = corpus[2000:2100]
    with get_backend("lz4-opencl", batch_size=16, queue_depth=2, hash_log=12) as b:
        ops = [CompOp.compress(p, user_data=i) for i, p in enumerate(pages)]
        accepted = b.submit(ops)
        assert accepted == 32  # two slots of 16
        assert all(op.status is OpStatus.BUSY for op in ops[32:])
        done = []
        while b.pending():
            done += b.poll()
        assert sorted(op.user_data for op in done) == list(range(32))
        run_ops(b, ops[32:])
        assert {op.user_data for op in ops} == set(range(100))
        for op, page in zip(ops, pages, strict=True):
            ref = ref_compress(page.tobytes())
            if len(ref) >= PAGE_SIZE:
                assert op.status is OpStatus.INCOMPRESSIBLE
            else:
                assert op.status is OpStatus.SUCCESS and op.dst == ref and op.produced == len(ref)
        # compress and decompress ops interleaved in one submission, plus invalid ones
        mixed = []
        for i, page in enumerate(pages[:20]):
            if i % 3 == 0:
                mixed.append(CompOp.decompress(ref_compress(page.tobytes()), user_data=i))
            else:
                mixed.append(CompOp.compress(page, user_data=i))
        mixed.append(CompOp.decompress(b"\x10", user_data="bad"))
        mixed.append(CompOp.compress(b"short", user_data="short"))
        run_ops(b, mixed)
        for op in mixed[:20]:
            page = pages[op.user_data].tobytes()
            if op.kind is OpKind.DECOMPRESS:
                assert op.status is OpStatus.SUCCESS and op.dst == page
            else:
                assert op.status in (OpStatus.SUCCESS, OpStatus.INCOMPRESSIBLE)
        assert mixed[20].status is OpStatus.INVALID_INPUT and "corrupt" in mixed[20].error
        assert mixed[21].status is OpStatus.INVALID_INPUT


def test_close_completes_inflight_ops_and_then_refuses_work(corpus):
    b = get_backend("lz4-opencl", batch_size=8)
    ops = [CompOp.compress(p) for p in corpus[:8]]
    assert b.submit(ops) == 8
    b.close()
    b.close()  # twice is fine
    assert all(op.done for op in ops)
    assert len(b.poll()) == 8  # nothing lost
    with pytest.raises(DeviceError, match="closed"):
        b.compress_batch(corpus[:1])


# -- measurement -----------------------------------------------------------------------------


def test_counters_report_kernel_and_end_to_end_time(corpus):
    # one queue: the three launches run one after another, so their kernel time is inside the
    # call's wall time (on two queues they overlap, and the sum of kernel times can exceed it:
    # seen on a loaded machine)
    with get_backend("lz4-opencl", batch_size=100, queues=1) as b:
        pages = corpus[:250]
        items = as_list(b.compress_batch(pages))
        b.decompress_batch([it for it in items if it is not None])
        c = b.counters()
    assert c["device"] == b.capabilities.device
    assert c["config"]["batch_size"] == 100 and c["config_source"]
    assert c["compress_pages"] == 250 and c["compress_launches"] == 3
    assert c["compress_bytes_in"] == 250 * PAGE_SIZE
    assert c["compress_bytes_out"] == sum(len(it) for it in items if it is not None)
    assert c["incompressible"] == sum(it is None for it in items)
    assert 0 < c["compress_kernel_ns"] <= c["compress_e2e_ns"]
    assert 0 < c["decompress_kernel_ns"] <= c["decompress_e2e_ns"]
    assert c["h2d_ns"] > 0 and c["d2h_ns"] > 0
    assert c["kernel_ns"] == c["compress_kernel_ns"] + c["decompress_kernel_ns"]
    assert c["e2e_ns"] == c["compress_e2e_ns"] + c["decompress_e2e_ns"]
    assert c["pages"] == 250 + c["decompress_pages"]
    assert c["bytes_out"] == c["compress_bytes_out"] + c["decompress_pages"] * PAGE_SIZE


def test_class_is_the_registered_one():
    from hwzswap.backends.registry import get_backend_class

    assert get_backend_class("lz4-opencl") is Lz4OpenCLBackend


# -- the lean host path ----------------------------------------------------------------------


def test_compressed_batch_is_one_flat_buffer(dev, corpus):
    pages = corpus[::9]
    batch = dev.compress_batch(pages)
    assert len(batch) == len(pages) and batch.sizes.dtype == np.int64
    ok = batch.status == ItemStatus.OK
    assert (batch.sizes[~ok] == 0).all() and (batch.sizes[ok] > 0).all()
    assert (batch.sizes < PAGE_SIZE).all()
    # every OK item's bytes lie inside the one buffer, and no two items overlap
    flat = memoryview(batch.data).cast("B")
    order = np.argsort(batch.offsets[ok])
    starts, ends = batch.offsets[ok][order], (batch.offsets + batch.sizes)[ok][order]
    assert starts[0] >= 0 and ends[-1] <= flat.nbytes and (starts[1:] >= ends[:-1]).all()
    assert as_list(batch) == ref_list(pages)


@pytest.mark.parametrize("params", [
    {"zero_copy": "off", "pinned": "on", "batch_size": 37},
    {"zero_copy": "off", "pinned": "off", "batch_size": 37},
    {"zero_copy": "on", "queues": 3, "batch_size": 29},
    {"zero_copy": "off", "pinned": "on", "queues": 1, "batch_size": 50,
     "decompress_layout": "group", "decompress_local_size": 8},
], ids=["pinned", "pageable", "zerocopy-3queues", "pinned-1queue-coop8"])
def test_host_paths_agree(corpus, params):
    """Pinned staging, pageable copies and zero-copy, over 1-3 queues: the same bytes."""
    pages = corpus[::11]
    with get_backend("lz4-opencl", hash_log=12, **params) as b:
        assert b.device_info["pinned"] == (params.get("pinned") == "on")
        batch = b.compress_batch(pages)
        assert as_list(batch) == ref_list(pages)
        ok = batch.status == ItemStatus.OK
        out = b.decompress_batch(batch)
        assert out.failed() == np.flatnonzero(~ok).tolist()
        assert np.array_equal(out.pages[ok], pages[ok])
        kept = [batch.item_bytes(i) for i in np.flatnonzero(ok)]
        assert np.array_equal(b.decompress_batch(kept), pages[ok])
        assert b.counters()["compress_launches"] == -(-len(pages) // params["batch_size"])


def test_decompress_takes_a_compressed_batch_as_is(dev, corpus):
    pages = corpus[100:160]
    batch = dev.compress_batch(pages)
    assert (batch.status == ItemStatus.OK).all()
    assert np.array_equal(dev.decompress_batch(batch), pages)  # all OK: a plain array
    # an item whose recorded place lies outside the buffer fails alone
    bad = CompressedBatch(batch.data, batch.offsets.copy(), batch.sizes.copy(), batch.status)
    bad.offsets[7] = len(memoryview(batch.data).cast("B")) + 5
    bad.sizes[9] = 1  # a truncated item
    out = dev.decompress_batch(bad)
    assert out.failed() == [7, 9]
    assert "outside the batch's buffer" in out.errors[7] and "corrupt" in out.errors[9]
    good = [i for i in range(len(pages)) if i not in (7, 9)]
    assert np.array_equal(out.pages[good], pages[good])
    # a batch built by the contract's converter from a list works the same
    listed = CompressedBatch.from_items(as_list(batch))
    assert np.array_equal(dev.decompress_batch(listed), pages)


def test_async_worker_coalesces_queued_ops(corpus):
    pages = corpus[3000:3200]
    with get_backend("lz4-opencl", batch_size=64, queue_depth=2, hash_log=12) as b:
        caps = b.capabilities
        assert caps.asynchronous and caps.preferred_batch == 64
        ops = [CompOp.compress(p, user_data=i) for i, p in enumerate(pages)]
        assert b.submit(ops) == 128  # queue_depth batches of batch_size ops
        assert all(op.status is OpStatus.BUSY for op in ops[128:])
        done = []
        while b.pending():
            done += b.poll()
        assert sorted(op.user_data for op in done) == list(range(128))
        run_ops(b, ops[128:])
        assert all(op.done for op in ops)
        for op, ref in zip(ops, ref_list(pages), strict=True):
            if ref is None:
                assert op.status is OpStatus.INCOMPRESSIBLE
            else:
                assert op.status is OpStatus.SUCCESS and op.dst == ref
        c = b.counters()
        # 200 ops in device calls of up to 64 ops: far fewer calls than ops
        assert c["async_ops"] == 200 and c["async_calls"] <= 200 // 8
        dec = [CompOp.decompress(op.dst, user_data=i) for i, op in enumerate(ops) if op.dst]
        run_ops(b, dec)
        assert all(d.status is OpStatus.SUCCESS and d.dst == pages[d.user_data].tobytes()
                   for d in dec)


def test_parallel_staging_copies(corpus, monkeypatch):
    """Large staging copies split over threads give the same bytes (threshold lowered)."""
    from hwzswap.backends.opencl import backend as mod

    monkeypatch.setattr(mod, "PARALLEL_COPY_MIN_BYTES", 1)
    pages = corpus[:700]
    with get_backend("lz4-opencl", hash_log=12, zero_copy="off", pinned="on", copy_threads=3,
                     batch_size=300) as b:
        assert b.device_info["copy_threads"] == 3
        batch = b.compress_batch(pages)
        assert as_list(batch) == ref_list(pages)
        ok = batch.status == ItemStatus.OK
        out = b.decompress_batch(batch)
        assert np.array_equal(getattr(out, "pages", out)[ok], pages[ok])


# -- exiting with compression in flight ---------------------------------------------------

@pytest.mark.parametrize("submit", ["worker", "queue"])
def test_exit_with_async_batches_in_flight_is_a_clean_exit(tmp_path, submit):
    """A program that ends (here: SystemExit) while an lz4-opencl swap system in ``async`` mode
    still has batches on the device exits with its own status: the pipelines nobody closed
    (``worker``), and the backend's own op queue (``queue``: ops submitted, never polled), are
    drained at exit, before the OpenCL runtime is torn down under a worker thread (which
    aborted the process: "terminate called without an active exception", status 134)."""
    import subprocess
    import sys

    code = """
import sys
from hwzswap.bench.corpus import load_bundled
from hwzswap.config import load_config
from hwzswap.frontswap.system import open_zswap
pages = load_bundled(max_pages=2048)
cfg = load_config({"zswap": {"compressor": "lz4-opencl", "batching": "async",
                             "async_submit": "SUBMIT"},
                   "swap": {"nr_pages": 4096}})
s = open_zswap(cfg)
for lo in range(0, 2048, 42):
    s.swap_out_batch(0, list(range(lo, min(2048, lo + 42))), pages[lo:lo + 42])
print("in flight:", s.stats()["staged_pages"] > 0, flush=True)
raise SystemExit(3)
"""
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code.replace("SUBMIT", submit)],
                             capture_output=True, text=True,
                             timeout=120, cwd=tmp_path)
        assert out.returncode == 3, out.stderr[-2000:]
        assert "terminate called" not in out.stderr
