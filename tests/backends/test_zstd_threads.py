"""The built-in ``zstd`` backend is safe from several threads at once, as its capabilities
(``concurrent``) now say: one instance shared by a load, a writeback and an async completion
used to share one python-zstandard decompressor, which is not thread-safe (wrong pages with no
error, corrupt-data errors for good frames, and a segfault). Each thread now has its own
contexts; here several threads compress and decompress through one instance at once and every
result is checked byte for byte against a single-threaded reference."""

from __future__ import annotations

import threading

import numpy as np

from hwzswap.backends.zstd import ZstdBackend
from hwzswap.testing import real_memory_mix

THREADS = 4
ROUNDS = 1500


def test_zstd_declares_concurrent() -> None:
    assert ZstdBackend().capabilities.concurrent is True


def test_one_instance_from_several_threads_gives_every_page_back_exactly() -> None:
    pages = [bytes(p) for p in real_memory_mix(96, seed=5)]
    ref = ZstdBackend(level=3)
    want = [ref.compress(p) for p in pages]  # single-threaded reference (deterministic)
    pairs = [(w, p) for w, p in zip(want, pages) if w is not None]
    assert len(pairs) >= 32
    shared = ZstdBackend(level=3)
    batch = np.frombuffer(b"".join(pages), dtype=np.uint8).reshape(len(pages), -1)
    bad: list[str] = []
    start = threading.Barrier(THREADS)

    def run(k: int) -> None:
        start.wait()
        try:
            for it in range(ROUNDS):
                obj, page = pairs[(it * 7 + k) % len(pairs)]
                if it % 50 == k:  # a batch compress beside the others' decompressions
                    if shared.compress_batch(batch) != want:
                        bad.append(f"thread {k}: compress_batch differs")
                elif it % 5 == 0:
                    if shared.compress(page) != obj:
                        bad.append(f"thread {k}: compress differs")
                elif shared.decompress(obj) != page:
                    bad.append(f"thread {k}: wrong page")
        except Exception as exc:  # noqa: BLE001 - any error fails the test, named
            bad.append(f"thread {k}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert bad == [], bad[:5]


def test_each_thread_gets_its_own_contexts_made_on_first_use() -> None:
    """A thread that only decodes makes no compressor; two threads never share a context."""
    b = ZstdBackend()
    page = bytes(real_memory_mix(1, seed=1)[0])
    obj = b.compress(page)
    assert obj is not None
    seen: dict[str, object] = {}

    def decode_only() -> None:
        assert b.decompress(obj) == page
        seen["cctx"] = b._ctx.cctx
        seen["dctx"] = b._ctx.dctx

    t = threading.Thread(target=decode_only)
    t.start()
    t.join(30)
    assert seen["cctx"] is None and seen["dctx"] is not None
    assert b.decompress(obj) == page
    assert b._ctx.dctx is not None and b._ctx.dctx is not seen["dctx"]
