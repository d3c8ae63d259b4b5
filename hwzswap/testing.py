"""Shared conformance checks for compressor backends (in the style of numcodecs' checks).

Every built-in backend runs these in hwzswap's own tests; a third-party driver runs them on its
backend with one call::

    from hwzswap.testing import check_backend
    check_backend(get_backend("mycodec-myaccel"))

Each check raises ``AssertionError`` with a message naming the backend, the check and the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from hwzswap.backends.contract import (
    PAGE_SIZE,
    Backend,
    CompOp,
    OpStatus,
    run_ops,
)
from hwzswap.backends.registry import get_backend
from hwzswap.errors import CorruptDataError, InvalidInputError


def sample_pages(seed: int = 0) -> dict[str, np.ndarray]:
    """Named pages covering the shapes real swap traffic has."""
    rng = np.random.default_rng(seed)
    pages: dict[str, np.ndarray] = {}
    pages["zero"] = np.zeros(PAGE_SIZE, np.uint8)
    pages["same_filled"] = np.frombuffer(
        np.full(PAGE_SIZE // 8, 0x0123456789ABCDEF, dtype=np.uint64).tobytes(), np.uint8
    ).copy()
    pages["random"] = rng.integers(0, 256, PAGE_SIZE, dtype=np.uint8)
    words = [b"page ", b"swap ", b"zswap ", b"compress ", b"the ", b"kernel ", b"memory\n"]
    text = b"".join(words[i] for i in rng.integers(0, len(words), 2000))
    pages["text"] = np.frombuffer(text[:PAGE_SIZE], np.uint8).copy()
    # Heap-like: small integers, pointers sharing high bytes, zero runs.
    heap = np.zeros(PAGE_SIZE // 8, np.uint64)
    base = np.uint64(0x00007F3A_12340000)
    kinds = rng.integers(0, 4, heap.size)
    heap[kinds == 1] = base + rng.integers(0, 1 << 16, int((kinds == 1).sum())).astype(np.uint64) * 16
    heap[kinds == 2] = rng.integers(0, 100, int((kinds == 2).sum())).astype(np.uint64)
    heap[kinds == 3] = rng.integers(0, 1 << 63, int((kinds == 3).sum()), dtype=np.uint64)
    pages["heap_like"] = np.frombuffer(heap.tobytes(), np.uint8).copy()
    mixed = rng.integers(0, 256, PAGE_SIZE, dtype=np.uint8)
    mixed[: PAGE_SIZE // 2] = 0
    pages["half_zero"] = mixed
    ramp = (np.arange(PAGE_SIZE) % 251).astype(np.uint8)
    pages["ramp"] = ramp
    return pages


def real_memory_mix(n: int = 64, seed: int = 1) -> np.ndarray:
    """An ``(n, 4096)`` batch mixing the shapes of :func:`sample_pages` in random order."""
    rng = np.random.default_rng(seed)
    kinds = list(sample_pages(seed).values())
    out = np.empty((n, PAGE_SIZE), np.uint8)
    for i in range(n):
        out[i] = kinds[int(rng.integers(0, len(kinds)))]
        if rng.random() < 0.5:  # perturb so pages are not all identical
            j = int(rng.integers(0, PAGE_SIZE - 64))
            out[i, j : j + 64] = rng.integers(0, 256, 64, dtype=np.uint8)
    return out


def _fail(backend: Backend, check: str, detail: str) -> AssertionError:
    return AssertionError(f"[{backend.name}] {check}: {detail}")


def check_roundtrip(backend: Backend, pages: dict[str, np.ndarray] | None = None) -> None:
    """Every sample page compresses to something smaller (or None) and decodes byte-exact."""
    for label, page in (pages or sample_pages()).items():
        for form in (page, page.tobytes(), bytearray(page.tobytes()), memoryview(page)):
            out = backend.compress(form)
            if out is None:
                continue
            if len(out) >= PAGE_SIZE:
                raise _fail(backend, "roundtrip", f"{label}: output {len(out)} >= page size")
            back = backend.decompress(out)
            if bytes(back) != page.tobytes():
                raise _fail(backend, "roundtrip", f"{label}: decoded page differs")
    if backend.compress(np.zeros(PAGE_SIZE, np.uint8)) is None:
        raise _fail(backend, "roundtrip", "a zero page did not compress")


def check_incompressible(backend: Backend, seed: int = 7) -> None:
    """Random pages come back as None / INCOMPRESSIBLE, never as output >= the page."""
    page = np.random.default_rng(seed).integers(0, 256, PAGE_SIZE, dtype=np.uint8)
    out = backend.compress(page)
    if out is not None:
        raise _fail(backend, "incompressible", f"random page gave {len(out)} bytes, not None")
    (op,) = run_ops(backend, [CompOp.compress(page)])
    if op.status is not OpStatus.INCOMPRESSIBLE or op.dst is not None:
        raise _fail(backend, "incompressible", f"async op status {op.status}, dst {op.dst!r:.20}")


def check_batch(backend: Backend, pages: np.ndarray | None = None) -> None:
    """Batch results decode to the same pages as single-page results (None where None)."""
    batch = real_memory_mix() if pages is None else pages
    before = batch.copy()
    items = backend.compress_batch(batch)
    if len(items) != len(batch):
        raise _fail(backend, "batch", f"{len(items)} items for {len(batch)} pages")
    if not np.array_equal(batch, before):
        raise _fail(backend, "batch", "compress_batch wrote to its input pages")
    # a strided (non-contiguous) view of the batch compresses to the same pages
    strided = np.repeat(batch, 2, axis=0)[::2]
    for i, item in enumerate(backend.compress_batch(strided)):
        if (item is None) != (items[i] is None) or (
                item is not None and backend.decompress(item) != batch[i].tobytes()):
            raise _fail(backend, "batch", f"page {i} of a non-contiguous batch: wrong result")
    for i, (item, page) in enumerate(zip(items, batch, strict=True)):
        single = backend.compress(page)
        if (item is None) != (single is None):
            raise _fail(backend, "batch", f"page {i}: batch None={item is None}, single None={single is None}")
        if item is not None and len(item) >= PAGE_SIZE:
            raise _fail(backend, "batch", f"page {i}: batch output {len(item)} >= page size")
    kept = [i for i, it in enumerate(items) if it is not None]
    if kept:
        out = backend.decompress_batch([items[i] for i in kept])
        if out.shape != (len(kept), PAGE_SIZE) or out.dtype != np.uint8:
            raise _fail(backend, "batch", f"decompress_batch gave {out.shape} {out.dtype}")
        if not np.array_equal(out, batch[kept]):
            raise _fail(backend, "batch", "decompress_batch differs from the input pages")
        for i in kept:  # batch output decodes with the single-page call too
            if backend.decompress(items[i]) != batch[i].tobytes():
                raise _fail(backend, "batch", f"page {i}: single decompress of batch output differs")
    empty = backend.compress_batch(np.empty((0, PAGE_SIZE), np.uint8))
    if len(empty) != 0:
        raise _fail(backend, "batch", "an empty batch did not give an empty result")


def check_async(backend: Backend, pages: np.ndarray | None = None) -> None:
    """Async submit/poll results equal the sync results."""
    batch = real_memory_mix(24, seed=3) if pages is None else pages
    ops = run_ops(backend, [CompOp.compress(p, user_data=i) for i, p in enumerate(batch)])
    for i, op in enumerate(ops):
        if op.user_data != i:
            raise _fail(backend, "async", f"op {i}: user_data was changed to {op.user_data!r}")
        sync = backend.compress(batch[i])
        if sync is None:
            if op.status is not OpStatus.INCOMPRESSIBLE:
                raise _fail(backend, "async", f"op {i}: status {op.status}, sync gave None")
            continue
        if op.status is not OpStatus.SUCCESS or op.dst is None:
            raise _fail(backend, "async", f"op {i}: status {op.status} ({op.error})")
        if op.produced != len(op.dst):
            raise _fail(backend, "async", f"op {i}: produced {op.produced} != len(dst) {len(op.dst)}")
        if backend.decompress(op.dst) != batch[i].tobytes():
            raise _fail(backend, "async", f"op {i}: async output does not decode to the page")
    comp = [op for op in ops if op.status is OpStatus.SUCCESS]
    dops = run_ops(backend, [CompOp.decompress(op.dst) for op in comp])
    for op, dop in zip(comp, dops, strict=True):
        if dop.status is not OpStatus.SUCCESS or dop.dst != batch[op.user_data].tobytes():
            raise _fail(backend, "async", f"decompress op for page {op.user_data}: {dop.status}")
    (bad,) = run_ops(backend, [CompOp.compress(b"too short")])
    if bad.status is not OpStatus.INVALID_INPUT:
        raise _fail(backend, "async", f"a 9-byte page gave {bad.status}, not INVALID_INPUT")


def _corruptions(data: bytes, rng: np.random.Generator) -> Iterable[tuple[str, bytes]]:
    yield "empty", b""
    yield "truncated to half", data[: len(data) // 2]
    yield "truncated by one", data[:-1]
    yield "garbage", rng.integers(0, 256, max(16, len(data)), dtype=np.uint8).tobytes()
    yield "all 0xff", b"\xff" * max(16, len(data))
    for k in range(8):
        buf = bytearray(data)
        pos = int(rng.integers(0, len(buf)))
        buf[pos] ^= 1 << int(rng.integers(0, 8))
        yield f"bit flip at {pos}", bytes(buf)


def check_corrupt(backend: Backend, seed: int = 11) -> None:
    """Corrupt input raises CorruptDataError, or (a bit flip can be valid) decodes to a page.

    It must never return something that is not exactly one page, and never crash.
    """
    rng = np.random.default_rng(seed)
    page = sample_pages()["heap_like"]
    data = backend.compress(page)
    if data is None:
        raise _fail(backend, "corrupt", "the heap-like sample page did not compress")
    data = bytes(data)
    for label, bad in _corruptions(data, rng):
        try:
            out = backend.decompress(bad)
        except CorruptDataError:
            continue
        except Exception as exc:  # noqa: BLE001 - the point is to report any other type
            raise _fail(backend, "corrupt", f"{label}: raised {type(exc).__name__}: {exc}") from exc
        if len(out) != PAGE_SIZE:
            raise _fail(backend, "corrupt", f"{label}: returned {len(out)} bytes without error")
        if label.startswith("truncated") or label == "empty":
            raise _fail(backend, "corrupt", f"{label}: decoded without error")
    for bad_page in (b"short", np.zeros(PAGE_SIZE + 1, np.uint8)):
        try:
            backend.compress(bad_page)
        except InvalidInputError:
            continue
        raise _fail(backend, "corrupt", f"compress accepted a {len(bad_page)}-byte page")


def check_config(backend: Backend) -> None:
    """The config dict round-trips through the registry to an equivalent backend."""
    cfg = backend.get_config()
    if not isinstance(cfg, dict) or cfg.get("name") != backend.name:
        raise _fail(backend, "config", f"get_config() gave {cfg!r}")
    params = {k: v for k, v in cfg.items() if k != "name"}
    clone = get_backend(backend.name, **params)
    try:
        if clone.get_config() != cfg:
            raise _fail(backend, "config", f"{clone.get_config()!r} != {cfg!r}")
        page = sample_pages()["heap_like"]
        a, b = backend.compress(page), clone.compress(page)
        if (a is None) != (b is None) or (a is not None and clone.decompress(a) != page.tobytes()):
            raise _fail(backend, "config", "the clone does not interoperate with the original")
    finally:
        if clone is not backend:
            clone.close()
    try:
        get_backend(backend.name, **params, no_such_parameter_xyz=1)
    except ValueError:
        pass
    else:
        raise _fail(backend, "config", "an unknown parameter was accepted")


def check_capabilities(backend: Backend) -> None:
    caps = backend.capabilities
    if caps.time_basis not in ("measured", "modeled"):
        raise _fail(backend, "capabilities", f"time_basis {caps.time_basis!r}")
    if caps.time_basis == "modeled" and backend.modeled_device_us() is None:
        raise _fail(backend, "capabilities", "modeled backend reports no modeled_device_us()")
    if caps.min_batch < 1 or (caps.max_batch is not None and caps.max_batch < caps.min_batch):
        raise _fail(backend, "capabilities", f"batch limits {caps.min_batch}..{caps.max_batch}")


CHECKS: dict[str, Callable[[Backend], None]] = {
    "capabilities": check_capabilities,
    "roundtrip": check_roundtrip,
    "incompressible": check_incompressible,
    "batch": check_batch,
    "async": check_async,
    "corrupt": check_corrupt,
    "config": check_config,
}


def check_backend(backend: Backend | str, **params: Any) -> None:
    """Run every conformance check on ``backend`` (an instance, or a registered name)."""
    if isinstance(backend, str):
        backend = get_backend(backend, **params)
    for check in CHECKS.values():
        check(backend)


def check_reference_interop(
    backend: Backend,
    reference_compress: Callable[[bytes], bytes],
    reference_decompress: Callable[[bytes], bytes],
    pages: Iterable[np.ndarray] | None = None,
) -> None:
    """The backend decodes the reference library's output and vice versa."""
    for i, page in enumerate(pages if pages is not None else sample_pages().values()):
        raw = page.tobytes()
        ref = reference_compress(raw)
        if bytes(backend.decompress(ref)) != raw:
            raise _fail(backend, "interop", f"page {i}: reference output did not decode")
        ours = backend.compress(page)
        if ours is not None and bytes(reference_decompress(bytes(ours))) != raw:
            raise _fail(backend, "interop", f"page {i}: reference could not decode our output")
