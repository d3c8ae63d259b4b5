"""A seeded random-operation fuzz of the compiled zsmalloc core against its Python reference.

Each round drives a ``ZsPool`` and a ``PyZsPool`` (each over its own allocator, configured
alike) with the same random calls -- valid ones and misuse: bad sizes and data, stale, foreign
and odd handles, writes from the pool's own memory, maps left open, views derived from maps
kept (and written through) across unmap, junk in the writable map table, injected allocation
failures, compaction, destroy -- and checks that every call gives the same result or the same
error class, that the pools hold the same bytes and the same ``stats()``, and that both stay
internally consistent.

Short by default (a few rounds: CI). ``HWZSWAP_FUZZ_ROUNDS=N`` runs N rounds; ``make asan``
runs many under AddressSanitizer and UndefinedBehaviorSanitizer, where any memory error in the
C core is a report (the adversarial run of issue 16 did 2.7M pool ops).
"""

from __future__ import annotations

import os
import random
from typing import Any, Callable

import numpy as np
import pytest

from hwzswap.pool import PAGE_SIZE, PageAllocator, PyZsPool
from hwzswap.pool._handles import serial_of
from hwzswap.pool.zsmalloc import zs_layout

ROUNDS = int(os.environ.get("HWZSWAP_FUZZ_ROUNDS", "4"))
STEPS = 400


def _outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    try:
        result = fn(*args)
    except Exception as exc:  # noqa: BLE001 - the class is what is compared
        return "err", type(exc)
    if isinstance(result, memoryview):
        result = result.tobytes()
    return "ok", result


class PoolFuzz:
    """One round: the two pools, the handles they gave out (as pairs) and the random source."""

    def __init__(self, seed: int, make_c: Callable[..., Any]) -> None:
        self.rng = random.Random(seed)
        chain = self.rng.choice([1, 2, 4, 8, 16])
        limit = self.rng.choice([None, 6, 24, 96])
        self.ac = PageAllocator(limit_pages=limit, cache_pages=self.rng.choice([0, 8]))
        self.ap = PageAllocator(limit_pages=limit, cache_pages=self.ac._cache_max)
        self.c = make_c(self.ac, max_pages_per_zspage=chain)
        self.p = PyZsPool(self.ap, max_pages_per_zspage=chain)
        self.huge = zs_layout(chain).huge_class_size
        self.live: list[tuple[int, int]] = []
        self.dead: list[tuple[int, int]] = []
        self.mapped: list[tuple[int, int]] = []
        self.kept: list[tuple[memoryview, memoryview]] = []  # views derived from maps

    # -- inputs --------------------------------------------------------------------------------

    def size(self) -> Any:
        r = self.rng.random()
        if r < 0.05:
            return self.rng.choice([0, -1, PAGE_SIZE + 1, 2**70, 1.5, "8", None])
        if r < 0.2:
            return self.rng.choice([1, 24, 25, 1000, 1016, 2048, self.huge - 1, self.huge,
                                    PAGE_SIZE])
        return self.rng.randint(1, PAGE_SIZE)

    def data(self, n: int) -> Any:
        raw = self.rng.randbytes(max(n, 0) * 2 + 1)[: max(n, 0) * 2]
        kind = self.rng.randrange(8)
        if kind in (0, 6, 7):
            return raw[:n]
        if kind == 1:
            return bytearray(raw[:n])
        if kind == 2:
            return memoryview(raw)[::2]  # strided
        if kind == 3:
            return np.frombuffer(raw[:n], dtype=np.uint8)
        if kind == 4:
            return memoryview(raw[:n]).cast("c") if n else b""  # not 'B': refused
        return self.rng.choice([None, 12, "text", np.zeros(max(n, 1) // 4 + 1, np.int32)])

    def handles(self) -> tuple[Any, Any]:
        r = self.rng.random()
        if self.live and r < 0.8:
            return self.rng.choice(self.live)
        if self.dead and r < 0.9:
            return self.rng.choice(self.dead)
        odd = self.rng.choice([0, -5, 2**64, True, 3.0, "h", None, (1,)])
        return odd, odd

    # -- the two pools side by side ------------------------------------------------------------

    def both(self, name: str, *args: Any, pair: tuple[Any, Any] | None = None) -> tuple[str, Any]:
        if pair is None:
            rc = _outcome(getattr(self.c, name), *args)
            rp = _outcome(getattr(self.p, name), *args)
        else:
            rc = _outcome(getattr(self.c, name), pair[0], *args)
            rp = _outcome(getattr(self.p, name), pair[1], *args)
        if rc[0] == rp[0] == "ok" and name in ("malloc", "malloc_write", "handles"):
            # handles carry each pool's tag: the serials must agree
            if name == "handles":
                assert [serial_of(h) for h in rc[1]] == [serial_of(h) for h in rp[1]]
            else:
                assert serial_of(rc[1]) == serial_of(rp[1])
                self.live.append((rc[1], rp[1]))
            return rc
        assert rc == rp, (name, args, rc, rp)
        return rc

    def forget(self, pair: tuple[Any, Any]) -> None:
        if pair in self.live:
            self.live.remove(pair)
            self.dead.append(pair)
        self.mapped = [m for m in self.mapped if m != pair]

    def step(self) -> None:
        rng = self.rng
        op = rng.randrange(100)
        if op < 30:
            size = self.size()
            data = self.data(size) if type(size) is int and size < 10**6 else size
            self.both("malloc_write", data)
        elif op < 35:
            self.both("malloc", self.size())
        elif op < 45:
            pair = self.handles()
            if pair in self.mapped:
                return
            if self.both("free", pair=pair)[0] == "ok":
                self.forget(pair)
        elif op < 50:
            pair = self.handles()
            if pair not in self.mapped and self.both("read_free", pair=pair)[0] == "ok":
                self.forget(pair)
        elif op < 60:
            self.both(rng.choice(["read", "view", "obj_size", "__contains__"]),
                      pair=self.handles())
        elif op < 67:
            pair = self.handles()
            if pair in self.live and rng.random() < 0.5:  # from the pool's own memory
                skip = rng.randrange(0, 20)
                step = rng.choice([1, 1, 2])
                rc = _outcome(lambda: self.c.write(pair[0], self.c.view(pair[0])[skip::step]))
                rp = _outcome(lambda: self.p.write(pair[1], self.p.view(pair[1])[skip::step]))
                assert rc == rp
            else:
                self.both("write", self.data(rng.randint(0, 300)), pair=pair)
        elif op < 74:
            pair = self.handles()
            writable = rng.random() < 0.5
            rc = _outcome(self.c.map, pair[0], writable)
            rp = _outcome(self.p.map, pair[1], writable)
            assert rc == rp
            if rc[0] == "ok":
                self.mapped.append(pair)
                if writable:
                    patch = rng.randbytes(3)
                    with_c = self.c._maps[pair[0]][-1]
                    with_p = self.p._maps[pair[1]][-1]
                    n = min(3, len(with_c))
                    with_c[:n], with_p[:n] = patch[:n], patch[:n]
                if rng.random() < 0.3:  # a view derived from the map, kept: unmap refuses
                    cut = rng.randint(0, 4)
                    self.kept.append((self.c._maps[pair[0]][-1][cut:],
                                      self.p._maps[pair[1]][-1][cut:]))
        elif op < 80:
            if self.kept and rng.random() < 0.3:
                kc, kp = self.kept.pop(rng.randrange(len(self.kept)))
                if not kc.readonly and len(kc):  # still the object's own memory
                    kc[0] = kp[0] = rng.randrange(256)
                if rng.random() < 0.5:
                    kc.release()
                    kp.release()
                del kc, kp
            pair = rng.choice(self.mapped) if self.mapped and rng.random() < 0.8 else \
                self.handles()
            if self.both("unmap", pair=pair)[0] == "ok":
                self.mapped.remove(pair)
        elif op < 82:
            pair = self.handles()
            if pair in self.live and pair not in self.mapped:  # junk in the map table
                junk = rng.choice([(1, 2), [b"x"], None, "v"])
                self.c._maps[pair[0]], self.p._maps[pair[1]] = junk, junk
                self.both("unmap", pair=pair)
                del self.c._maps[pair[0]], self.p._maps[pair[1]]
        elif op < 86:
            self.both("compact")
        elif op < 89:
            n = rng.randint(1, 2)
            self.ac.fail_next(n)
            self.ap.fail_next(n)
            self.both("malloc_write", self.data(rng.randint(1, PAGE_SIZE)))
            self.ac.clear_faults()
            self.ap.clear_faults()
        elif op < 91:
            self.both("handles")
        elif op < 95:
            self.batch()
        else:
            self.both("malloc_write", self.data(rng.randint(1, 200)))
        self.same()

    def batch(self) -> None:
        """malloc_write_batch of random items of a random buffer (sometimes a bad one)."""
        rng = self.rng
        length = rng.randint(0, 3 * PAGE_SIZE)
        raw = rng.randbytes(length)
        buf: Any = rng.choice([raw, bytearray(raw), np.frombuffer(raw, np.uint8), memoryview(raw)])
        if self.live and rng.random() < 0.2:  # the pool's own memory
            buf = self.c.view(self.live[0][0]), self.p.view(self.live[0][1])
        n = rng.randint(0, 12)
        sizes = [rng.randint(1, PAGE_SIZE) if rng.random() < 0.97 else rng.choice([0, 5000, -1])
                 for _ in range(n)]
        offsets = [rng.randint(0, max(length - s, 0)) if rng.random() < 0.97 else length
                   for s in sizes]
        idx: Any = None
        if rng.random() < 0.5:
            idx = [rng.randrange(n) if n and rng.random() < 0.97 else n for _ in range(n)]
        if rng.random() < 0.5:
            offsets, sizes = np.array(offsets, np.int64), np.array(sizes, np.int64)
            idx = None if idx is None else np.array(idx, np.int64)
        if rng.random() < 0.2:
            k = rng.randint(1, 2)
            self.ac.fail_next(k)
            self.ap.fail_next(k)
        bc, bp = buf if isinstance(buf, tuple) else (buf, buf)
        rc = _outcome(self.c.malloc_write_batch, bc, offsets, sizes, idx)
        rp = _outcome(self.p.malloc_write_batch, bp, offsets, sizes, idx)
        self.ac.clear_faults()
        self.ap.clear_faults()
        assert rc[0] == rp[0], (rc, rp)
        if rc[0] == "err":
            assert rc == rp
            return
        assert [serial_of(h) for h in rc[1]] == [serial_of(h) for h in rp[1]]
        for hc, hp in zip(rc[1], rp[1]):
            assert self.c.read(hc) == self.p.read(hp)
            self.live.append((hc, hp))

    def same(self) -> None:
        c, p = self.c, self.p
        assert len(c) == len(p) and c.pages == p.pages and c.stored_bytes == p.stored_bytes
        assert c.peak_pages == p.peak_pages and c.stored_at_peak == p.stored_at_peak
        assert self.ac.pages_in_use == self.ap.pages_in_use

    def finish(self) -> None:
        assert self.c.stats() == self.p.stats()
        for hc, hp in self.live:
            assert self.c.read(hc) == self.p.read(hp)
            assert self.c.is_mapped(hc) == self.p.is_mapped(hp)
        self.c.check()
        self.p.check()
        if self.rng.random() < 0.5:
            if self.kept and self.rng.random() < 0.5:  # refused: nothing is freed
                pages = self.ac.pages_in_use
                assert self.both("destroy")[0] == "err"
                assert self.ac.pages_in_use == self.ap.pages_in_use == pages
            self.kept.clear()
            self.both("destroy")
            assert self.ac.pages_in_use == self.ap.pages_in_use == 0
            self.both("malloc", 10)  # refused after destroy
            assert self.both("read", pair=self.live[0] if self.live else (1, 1))[0] == "err"


def run_pool_fuzz(seed: int, steps: int = STEPS) -> None:
    from hwzswap.pool import ZsPool

    fuzz = PoolFuzz(seed, ZsPool)
    for k in range(steps):
        fuzz.step()
        if k % 100 == 99:
            assert fuzz.c.stats() == fuzz.p.stats()
    fuzz.finish()


def test_pool_fuzz_compiled_against_the_reference() -> None:
    for seed in range(ROUNDS):
        run_pool_fuzz(seed)


def test_pool_fuzz_finds_a_difference() -> None:
    """The fuzz can fail: a compiled pool that misplaces one object in 50 is caught."""

    from hwzswap.pool import ZsPool

    class Skewed(ZsPool):
        n = 0

        def read(self, handle: int) -> bytes:
            data = super().read(handle)
            Skewed.n += 1
            return data[::-1] if Skewed.n % 50 == 0 and len(data) > 1 and data != data[::-1] \
                else data

    with pytest.raises(AssertionError):
        for seed in range(3):
            fuzz = PoolFuzz(seed, Skewed)
            for _ in range(STEPS):
                fuzz.step()
            fuzz.finish()
