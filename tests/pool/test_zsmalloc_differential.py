"""Differential test: the compiled ``ZsPool`` against its Python reference model ``PyZsPool``.

Random sequences of malloc / malloc_write / write / read / view / free / read_free / map /
unmap / compact (sizes 1..4096, random bytes, bad sizes and data, stale handles, allocation
failures) go to both pools side by side, each over its own allocator configured alike. Every
call must give the same result (the same bytes, or the same error class), both pools must hand
out the same handle serials, put every object at the same offset in corresponding zspages
(the same placement choices), and agree on ``stats()``, the peak and the allocator's pages
after every step.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from hwzswap.pool import PAGE_SIZE, PageAllocator, ZsPool
from hwzswap.pool._handles import serial_of
from hwzswap.pool.zsmalloc import PyZsPool

SIZES = st.one_of(
    st.integers(1, PAGE_SIZE),
    st.sampled_from([1, 24, 25, 40, 1000, 1008, 2048, 3257, 3624, 3625, 4096]),
    st.integers(1000, 1016),  # class 1024: 4 per zspage, so zspages fill and empty
    st.integers(490, 504),  # class 512: 8 per zspage
    st.integers(1560, 1570),  # a multi-page class with straddling objects
)
BAD_SIZES = st.sampled_from([0, -1, PAGE_SIZE + 1, 10**9, 1.5, "8", None])
BAD_DATA = st.sampled_from(["text of 12 c", 12, None, b"", b"x" * (PAGE_SIZE + 1),
                            "x" * 5000])


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """("ok", result) or ("err", exception class)."""
    try:
        return "ok", fn(*args)
    except Exception as exc:  # noqa: BLE001 - the class is what is compared
        return "err", type(exc)


class Differential(RuleBasedStateMachine):
    @initialize(chain=st.sampled_from([1, 4, 8]), limit=st.one_of(st.none(), st.integers(1, 30)))
    def setup(self, chain: int, limit: int | None) -> None:
        self.ac = PageAllocator(limit_pages=limit, cache_pages=4)
        self.ap = PageAllocator(limit_pages=limit, cache_pages=4)
        self.c = ZsPool(self.ac, max_pages_per_zspage=chain)
        self.p = PyZsPool(self.ap, max_pages_per_zspage=chain)
        self.live: list[tuple[int, int]] = []  # (compiled handle, python handle)
        self.dead: list[tuple[int, int]] = []
        self.maps: list[tuple[int, int, memoryview, memoryview]] = []

    def both(self, name: str, *args: Any, handles: tuple[int, int] | None = None
             ) -> tuple[str, Any]:
        """Call ``name`` on both pools (with their own handle if given); the outcomes agree."""
        if handles is None:
            rc = outcome(getattr(self.c, name), *args)
            rp = outcome(getattr(self.p, name), *args)
        else:
            rc = outcome(getattr(self.c, name), handles[0], *args)
            rp = outcome(getattr(self.p, name), handles[1], *args)
        assert rc[0] == rp[0], (name, rc, rp)
        if rc[0] == "err":
            assert rc[1] is rp[1], (name, rc, rp)
        elif name in ("malloc", "malloc_write"):
            assert serial_of(rc[1]) == serial_of(rp[1])
        elif name in ("view", "map"):
            assert rc[1].tobytes() == rp[1].tobytes() and rc[1].readonly == rp[1].readonly
        else:
            assert rc[1] == rp[1], (name, rc, rp)
        return rc if rc[0] == "err" else ("ok", (rc[1], rp[1]))

    def pick(self, index: int, stale: bool) -> tuple[int, int]:
        """A live handle pair, or a freed one if ``stale`` (or if none is live)."""
        pool = self.dead if (stale and self.dead) or not self.live else self.live
        return pool[index % len(pool)]

    def forget(self, pair: tuple[int, int]) -> None:
        self.live.remove(pair)
        self.dead.append(pair)

    # -- rules ---------------------------------------------------------------------------------

    @rule(size=SIZES, seed=st.integers(0, 2**32), fused=st.booleans(),
          fail=st.sampled_from([False, False, False, True]))
    def store(self, size: int, seed: int, fused: bool, fail: bool) -> None:
        data = random.Random(seed).randbytes(size)
        if fail:
            self.ac.fail_next(1)
            self.ap.fail_next(1)
        if fused:
            kind, res = self.both("malloc_write", data)
        else:
            kind, res = self.both("malloc", size)
            if kind == "ok":
                self.both("write", data, handles=res)
        self.ac.clear_faults()
        self.ap.clear_faults()
        if kind == "ok":
            self.live.append(res)

    @rule(size=BAD_SIZES)
    def bad_malloc(self, size: Any) -> None:
        assert self.both("malloc", size)[0] == "err"

    @rule(data=BAD_DATA, items=st.integers(1, 1100))
    def bad_malloc_write(self, data: Any, items: int) -> None:
        assert self.both("malloc_write", data)[0] == "err"
        wide = memoryview(bytes(4 * items)).cast("I")  # a size in range, the wrong format
        assert self.both("malloc_write", wide)[0] == "err"

    @precondition(lambda self: self.live)
    @rule(index=st.integers(0, 10**6), cut=st.integers(0, PAGE_SIZE + 8), seed=st.integers(0, 99))
    def write(self, index: int, cut: int, seed: int) -> None:
        self.both("write", random.Random(seed).randbytes(cut), handles=self.pick(index, False))

    @precondition(lambda self: self.live)
    @rule(index=st.integers(0, 10**6), data=BAD_DATA)
    def bad_write(self, index: int, data: Any) -> None:
        self.both("write", data, handles=self.pick(index, False))

    @precondition(lambda self: self.live or self.dead)
    @rule(index=st.integers(0, 10**6), stale=st.booleans(),
          op=st.sampled_from(["read", "view", "obj_size", "__contains__"]))
    def look(self, index: int, stale: bool, op: str) -> None:
        self.both(op, handles=self.pick(index, stale))

    @precondition(lambda self: self.live or self.dead)
    @rule(index=st.integers(0, 10**6), stale=st.booleans(), fused=st.booleans())
    def free(self, index: int, stale: bool, fused: bool) -> None:
        pair = self.pick(index, stale)
        kind, _ = self.both("read_free" if fused else "free", handles=pair)
        if kind == "ok":
            self.forget(pair)

    @precondition(lambda self: len(self.live) > 2)
    @rule(start=st.integers(0, 3), stride=st.integers(2, 4))
    def free_spread(self, start: int, stride: int) -> None:
        for pair in self.live[start::stride]:
            if self.both("free", handles=pair)[0] == "ok":
                self.forget(pair)

    @precondition(lambda self: self.live)
    @rule(index=st.integers(0, 10**6), writable=st.booleans())
    def map(self, index: int, writable: bool) -> None:
        pair = self.pick(index, False)
        _, (vc, vp) = self.both("map", writable, handles=pair)
        self.maps.append((pair[0], pair[1], vc, vp))

    @precondition(lambda self: self.maps)
    @rule(index=st.integers(0, 10**6))
    def unmap(self, index: int) -> None:
        hc, hp, vc, vp = self.maps.pop(index % len(self.maps))
        # views of one handle are released latest first: compare before, then unmap both
        assert self.c.read(hc) == self.p.read(hp)
        self.both("unmap", handles=(hc, hp))

    @rule()
    def compact(self) -> None:
        self.both("compact")

    @rule(extra=st.one_of(st.none(), st.integers(0, 6)))
    def set_limit(self, extra: int | None) -> None:
        assert self.ac.pages_in_use == self.ap.pages_in_use
        limit = None if extra is None else self.ac.pages_in_use + extra
        self.ac.limit_pages = self.ap.limit_pages = limit

    # -- after every step ------------------------------------------------------------------------

    @invariant()
    def agree(self) -> None:
        if not hasattr(self, "c"):
            return
        c, p = self.c, self.p
        sc, sp = c.stats(), p.stats()
        assert sc == sp
        assert (c.pages, c.peak_pages, c.stored_at_peak, c.stored_bytes, len(c)) == (
            p.pages, p.peak_pages, p.stored_at_peak, p.stored_bytes, len(p))
        assert self.ac.pages_in_use == self.ap.pages_in_use == c.pages
        assert [serial_of(h) for h in c.handles()] == [serial_of(h) for h in p.handles()]
        zspages: dict[int, int] = {}  # compiled zspage id -> python zspage id: a bijection
        for hc, hp in self.live:
            _, off_c, size_c, zc = c._where(hc)
            _, off_p, size_p, zp = p._where(hp)
            assert (off_c, size_c) == (off_p, size_p)
            assert zspages.setdefault(zc, zp) == zp
            assert c.read(hc) == p.read(hp)
        assert len(set(zspages.values())) == len(zspages)
        c.check()
        p.check()

    def teardown(self) -> None:
        if not hasattr(self, "c"):
            return
        self.both("destroy")
        assert self.ac.pages_in_use == self.ap.pages_in_use == 0
        assert (self.c.peak_pages, self.c.stored_at_peak) == (self.p.peak_pages,
                                                              self.p.stored_at_peak)
        for hc, hp in self.live[:3]:
            self.both("read", handles=(hc, hp))  # both refuse: destroyed
        self.both("malloc", 10)


Differential.TestCase.settings = settings(max_examples=80, stateful_step_count=40)  # the rest: conftest's profile
TestDifferential = Differential.TestCase
