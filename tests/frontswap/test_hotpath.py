"""zswap's compiled hot paths (``_hotpath``: the batch store's loops, the index ``ZswapTree``,
``LoadHit``) against their Python reference (``_hotpath_py``): the same inputs must give the
same results, lists, counters, index and pool contents."""

from __future__ import annotations

import gc
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from hypothesis import strategies as st

import hwzswap
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.errors import BackendError
from hwzswap.frontswap import _hotpath, _hotpath_py
from hwzswap.frontswap.policy import ZswapPolicy
from hwzswap.frontswap.zswap import ZswapCache
from hwzswap.pool import PageAllocator, create_pool

from fsutil import compressible_pages

PAGE = 4096
WORD = b"\x01\x02\x03\x04\x05\x06\x07\x08"


@st.composite
def page_batches(draw, max_pages=10):
    """Same-filled pages, pages one byte away from same-filled, and ordinary ones."""
    rows = []
    for _ in range(draw(st.integers(0, max_pages))):
        kind = draw(st.sampled_from(["zero", "word", "zero-1", "word-1", "plain"]))
        page = bytearray(bytes(PAGE) if kind.startswith("zero") else WORD * 512)
        if kind.endswith("-1"):
            at = draw(st.sampled_from([0, 7, 8, 2048, 4088, 4095]) | st.integers(0, PAGE - 1))
            page[at] ^= draw(st.integers(1, 255))
        elif kind == "plain":
            page = bytearray(compressible_pages(1, seed=draw(st.integers(0, 40)))[0])
        rows.append(bytes(page))
    return np.frombuffer(b"".join(rows), np.uint8).reshape(-1, PAGE)


@settings(max_examples=80, deadline=None)
@given(page_batches())
def test_same_filled_pages_matches_the_reference(pages):
    got = _hotpath.same_filled_pages(pages)
    assert got == _hotpath_py.same_filled_pages_py(pages)
    for i, word in got:
        assert pages[i].tobytes() == word * 512


def test_same_filled_pages_takes_any_contiguous_buffer_and_refuses_part_pages():
    assert _hotpath.same_filled_pages(bytes(2 * PAGE)) == [(0, bytes(8)), (1, bytes(8))]
    for fn in (_hotpath.same_filled_pages, _hotpath_py.same_filled_pages_py):
        with pytest.raises(ValueError, match="whole pages"):
            fn(bytes(PAGE + 1))
    for fn in (_hotpath.same_filled_pages, _hotpath_py.same_filled_pages_py):
        with pytest.raises(ValueError, match="contiguous"):
            fn(np.zeros((4, PAGE), np.uint8)[::2])  # not contiguous


_OFFSET = st.one_of(
    st.integers(-3, 40),
    st.integers(0, 40).map(np.int64),  # declined: the slow path converts these
    st.booleans(),  # an int subclass: declined
)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.lists(_OFFSET, max_size=12),
       st.sampled_from([list, tuple, "range", iter]), st.integers(-1, 1))
def test_claim_slots_matches_the_reference(nr, offs, kind, dn):
    if kind == "range":
        offsets = range(offs[0], offs[0] + len(offs)) if offs and type(offs[0]) is int else []
    else:
        offsets = kind(offs)
    n = len(offs) + dn if kind != "range" else len(offsets) + dn
    smap_c, smap_py = bytearray(nr), bytearray(nr)
    smap_c[::3] = smap_py[::3] = b"\x01" * len(range(0, nr, 3))
    if kind is iter:
        got, want = _hotpath.claim_slots(smap_c, offsets, n), None  # never consumed
        assert list(offsets) == offs
    else:
        got = _hotpath.claim_slots(smap_c, offsets, n)
        want = _hotpath_py.claim_slots_py(smap_py, offsets, n)
    assert got == want
    assert smap_c == smap_py if kind is not iter else smap_c == smap_py
    if got is not None:
        assert got == list(offsets) and all(smap_c[o] == 1 for o in got)


# -- insert_objects ----------------------------------------------------------------------------


def _cache(limit_pages, checksum):
    c = ZswapCache(hwzswap.get_backend("lz4"),
                   create_pool("zsmalloc", PageAllocator(limit_pages=limit_pages)),
                   ZswapPolicy(entry_checksum=checksum))
    c.init(0, 64)
    return c


def _state(c):
    """Index (in LRU order), object bytes, checksums and counters; handles differ between pools
    (each pool tags its own), so entries are compared by what they hold."""
    tree = c._trees[0]
    entries = [(off, c.pool.read(e) if e.__class__ is int else e,
                (c._csums or {}).get(e)) for off, e in tree.items()]
    return entries, c.stats(), len(c._csums or {})


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    limit=st.sampled_from([None, 2, 3, 5]),
    checksum=st.booleans(),
)
def test_insert_objects_matches_the_reference(data, limit, checksum):
    caches = [_cache(limit, checksum), _cache(limit, checksum)]
    pool_pages = compressible_pages(8, seed=5)
    n = data.draw(st.integers(1, 12))
    offs = data.draw(st.permutations(range(13)))[:n]
    idx = sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1)))
    # older entries, some of which the batch replaces (duplicate_entry)
    old = data.draw(st.lists(st.sampled_from([*offs, 20, 21]), max_size=6, unique=True))
    for c in caches:
        for off in old:
            c.store(0, off, pool_pages[off % 8])
    kinds = [data.draw(st.sampled_from(["none", "long", "obj", "obj"])) for _ in idx]
    backend = caches[0].backend
    outs = [None if k == "none" else bytes(3000) if k == "long"
            else backend.compress(pool_pages[(i * 3) % 8]) for k, i in zip(kinds, idx)]
    sums = [hash(bytes(o or b"")) & 0xFFFF for o in outs] if checksum else None
    got = []
    for c, fn in zip(caches, (_hotpath.insert_objects, _hotpath_py.insert_objects_py)):
        results, poor, retry = [False] * n, [], []
        fn(c, c._trees[0], list(offs), list(idx), list(outs), sums, 2000, results, poor, retry)
        got.append((results, poor, [(i, bytes(d)) for i, d in retry], _state(c)))
        c.check() if not checksum else None
    assert got[0] == got[1]
    results, poor, retry, (_, stats, _) = got[0]
    event(f"retry: {bool(retry)}, poor: {bool(poor)}, replaced: {stats['duplicate_entry'] > 0}")


def test_insert_objects_counts_what_it_stored_when_an_error_stops_it():
    for fn in (_hotpath.insert_objects, _hotpath_py.insert_objects_py):
        c = _cache(None, False)
        good = c.backend.compress(compressible_pages(1)[0])
        results = [False] * 3
        with pytest.raises(TypeError):
            # the second object is not bytes-like: malloc_write refuses it after the first
            fn(c, c._trees[0], [5, 6, 7], [0, 1, 2], [good, 12345, good], None, 2000, results,
               [], [])
        assert c.zswpout == 1 and results == [True, False, False]
        assert list(c._trees[0]) == [5]


# -- ZswapTree ---------------------------------------------------------------------------------

_KEYS = st.one_of(st.integers(-2, 9), st.integers(0, 7).map(np.int64),
                  st.sampled_from([2.0, "3", None, 2**70]))


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 -- the exception type is what is compared
        return ("raised", type(exc))


class TreeMachine(RuleBasedStateMachine):
    """ZswapTree (C) and ZswapTreePy (OrderedDict) under the same random operations."""

    def __init__(self):
        super().__init__()
        self.c = _hotpath.ZswapTree(3, 8)
        self.py = _hotpath_py.ZswapTreePy(3, 8)
        self.serial = 0

    def both(self, op, *args):
        a = _outcome(lambda: op(self.c, *args))
        b = _outcome(lambda: op(self.py, *args))
        assert a == b, (op, args)
        return a

    @rule(key=_KEYS, word=st.booleans())
    def setitem(self, key, word):
        self.serial += 1
        value = self.serial.to_bytes(8, "little") if word else self.serial
        self.both(lambda t: t.__setitem__(key, value))

    @rule(key=_KEYS)
    def delitem(self, key):
        self.both(lambda t: t.__delitem__(key))

    @rule(key=_KEYS, default=st.sampled_from([None, "d"]))
    def get(self, key, default):
        self.both(lambda t: t.get(key) if default is None else t.get(key, default))

    @rule(key=_KEYS, default=st.booleans())
    def pop(self, key, default):
        self.both(lambda t: t.pop(key, "d") if default else t.pop(key))

    @rule(key=_KEYS)
    def getitem_contains_move(self, key):
        self.both(lambda t: t[key])
        self.both(lambda t: key in t)
        self.both(lambda t: t.move_to_end(key))

    @rule()
    def clear(self):
        self.both(lambda t: t.clear())

    @rule(key=st.integers(0, 7))
    def mutate_while_iterating(self, key):
        def op(t):
            it = iter(t)
            first = next(it, None)
            t[key] = "x" if key not in t else t[key]
            t.pop(key)
            return first, list(it)
        self.both(op)

    @rule(key=st.integers(0, 7), at=st.integers(0, 3))
    def move_while_iterating(self, key, at):
        def op(t):
            seen = []
            for k in t:
                seen.append(k)
                if len(seen) == at + 1:
                    t.move_to_end(key)  # a move is a change (none when key is the newest)
            return seen
        self.both(op)

    @invariant()
    def same_contents(self):
        assert len(self.c) == len(self.py) and bool(self.c) == bool(self.py)
        assert list(self.c) == list(self.py)
        assert self.c.keys() == self.py.keys()
        assert self.c.values() == self.py.values()
        assert self.c.items() == self.py.items()


TestZswapTree = TreeMachine.TestCase
TestZswapTree.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_zswap_tree_basics():
    t = _hotpath.ZswapTree(swap_type=1, nr_pages=100)
    assert (t.type, t.nr_pages, len(t), list(t)) == (1, 100, 0, [])
    t[5], t[2], t[99] = 50, 20, b"w" * 8
    t[5] = 55  # replacing keeps the place
    assert t.items() == [(5, 55), (2, 20), (99, b"w" * 8)]
    t.move_to_end(5)
    assert list(t) == [2, 99, 5] and next(iter(t)) == 2
    with pytest.raises(KeyError, match="not an offset in 0..99"):
        t[100] = 1
    assert t.get(100) is None and 100 not in t and t.pop(-1, "d") == "d"
    assert "ZswapTree of swap type 1: 3 of 100 offsets" in repr(t)
    t.clear()
    assert len(t) == 0 and list(t) == []
    with pytest.raises(ValueError):
        _hotpath.ZswapTree(0, 0)
    loop = _hotpath.ZswapTree(0, 4)
    loop[1] = loop  # a cycle through the tree: the GC collects it
    del loop


# -- issue 16, rows 3 and 5 --------------------------------------------------------------------

_TREES = [_hotpath.ZswapTree, _hotpath_py.ZswapTreePy]


class _Shrinker:
    """Cyclic garbage whose finaliser pops the tree's newest entries: run by the GC in the
    middle of whatever call allocates when it is due."""

    def __init__(self, tree, n):
        self.tree, self.n, self.me = tree, n, self

    def __del__(self):
        for _ in range(self.n):
            if len(self.tree):
                self.tree.pop(self.tree.keys()[-1])


@pytest.mark.parametrize("what", ["items", "keys", "values"])
@pytest.mark.parametrize("cls", _TREES)
def test_tree_lists_survive_finalisers_that_shrink_the_tree(cls, what):
    """Row 3: ``items()`` sized its list, then made tuples (which can run the GC); a finaliser
    that shrank the tree left NULL slots. Both trees give a whole list of the entries."""
    t = cls(0, 256)
    for k in range(200):
        t[k] = k * 10
    threshold = gc.get_threshold()
    gc.collect()
    try:
        for _ in range(30):
            for _ in range(3):
                _Shrinker(t, 2)
            gc.set_threshold(1)
            out = getattr(t, what)()
            gc.set_threshold(*threshold)
            if what == "items":
                assert all(v == k * 10 for k, v in out)
                keys = [k for k, _ in out]
            else:
                keys = [v // 10 for v in out] if what == "values" else out
            assert keys == sorted(set(keys)) and all(0 <= k < 200 for k in keys)
            assert out[-1] is not None
    finally:
        gc.set_threshold(*threshold)
    gc.collect()
    assert len(t) <= 200 - 2 * 3 * 30  # the finalisers did run
    assert t.keys() == list(range(len(t)))


@pytest.mark.parametrize("cls", _TREES)
def test_move_to_end_while_iterating_stops_the_iteration(cls):
    """Row 5: ``for k in t: t.move_to_end(k)`` never ended; as an OrderedDict, a move is a
    change and the iterator raises."""
    t = cls(0, 8)
    t[1], t[2], t[3] = "a", "b", "c"
    steps = 0
    with pytest.raises(RuntimeError, match="mutated during iteration"):
        for k in t:
            t.move_to_end(k)
            steps += 1
            assert steps < 10
    assert steps == 1 and list(t) == [2, 3, 1]
    seen = []
    for k in t:  # moving the newest entry moves nothing: no change
        t.move_to_end(1)
        seen.append(k)
    assert seen == [2, 3, 1]


# -- LoadHit -----------------------------------------------------------------------------------


def _load_variants():
    """Three caches that differ only in how load runs: LoadHit (as built), LoadHitPy, and the
    Python method alone."""
    caches = []
    for kind in ("c", "py", "method"):
        c = ZswapCache(hwzswap.get_backend("lz4"), create_pool("zsmalloc", PageAllocator()),
                       ZswapPolicy())
        c.init(0, 16)
        c.init(2, 16)
        method = ZswapCache.load.__get__(c)
        if kind == "c":
            assert isinstance(c.load, _hotpath.LoadHit) and c.load.fallback == method
        elif kind == "py":
            c.load = _hotpath_py.LoadHitPy(c._trees, c._acquire, c._release, c._pool_view,
                                           c._decompress, c, method)
        else:
            c.load = method
        caches.append(c)
    return caches


_LOAD_OPS = st.lists(st.tuples(
    st.sampled_from(["store", "same", "load", "corrupt", "invalidate"]),
    st.sampled_from([0, 2, 5]),  # 5: never initialised
    st.one_of(st.integers(-1, 17), st.sampled_from([np.int64(3), 3.0, "x"])),
), max_size=30)


@settings(max_examples=120, deadline=None)
@given(_LOAD_OPS)
def test_load_hit_matches_the_reference_and_the_method(ops):
    caches = _load_variants()
    pages = compressible_pages(4, seed=9)
    for n, (op, typ, off) in enumerate(ops):
        outs = []
        for c in caches:
            if op == "store":
                outs.append(_outcome(c.store, typ, off, pages[n % 4]))
            elif op == "same":
                outs.append(_outcome(c.store, typ, off, bytes(4096)))
            elif op == "invalidate":
                outs.append(_outcome(c.invalidate_page, typ, off))
            elif op == "corrupt":  # overwrite the object's start: lz4 then fails to decode it
                entry = c._trees[typ].get(off) if typ in c._trees else None
                if entry.__class__ is int:
                    c.pool.write(entry, b"\xff" * 16)
                outs.append(None)
            else:
                outs.append(_outcome(c.load, typ, off))
        assert outs[0] == outs[1] == outs[2], (op, typ, off)
    stats = [c.stats() for c in caches]
    assert stats[0] == stats[1] == stats[2]


def test_load_hit_is_not_built_where_a_hit_does_more():
    for policy in (ZswapPolicy(exclusive_loads=True), ZswapPolicy(entry_checksum=True)):
        c = ZswapCache(hwzswap.get_backend("lz4"), create_pool("zsmalloc", PageAllocator()),
                       policy)
        assert c.load_hit_path(lambda t, o: None) is None
        assert not isinstance(c.load, _hotpath.LoadHit)


def test_claim_slots_on_offsets_far_apart():
    """Offsets spanning more than a bitmap's worth of slots take the sorting check."""
    for fn in (_hotpath.claim_slots, _hotpath_py.claim_slots_py):
        smap = bytearray(20000)
        assert fn(smap, [19999, 0, 7000], 3) == [19999, 0, 7000]
        assert smap[19999] == smap[0] == smap[7000] == 1 and sum(smap) == 3
        assert fn(smap, [19998, 1, 19998], 3) is None and sum(smap) == 3


@pytest.mark.parametrize("module, importer", [
    ("hwzswap.frontswap._hotpath", "hwzswap.frontswap.zswap"),
    ("hwzswap.pool._zscore", "hwzswap.pool.zsmalloc"),
])
def test_an_unbuilt_extension_says_how_to_build_it(module, importer):
    """A checkout whose compiled parts were never built fails at import with the command that
    builds them, not with Python's guess (a circular import)."""
    code = (
        "import sys, importlib.abc\n"
        "class Unbuilt(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        f"        if name == {module!r}:\n"
        "            raise ImportError('no such file')\n"
        "sys.meta_path.insert(0, Unbuilt())\n"
        "try:\n"
        f"    import {importer}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert module in out and "is not built for this Python" in out and "make install" in out


# -- StoreHit ----------------------------------------------------------------------------------


class _FlakyLz4(Lz4Backend):
    """lz4 that fails (a backend error) on pages whose byte 7 is 0xEE."""

    def compress(self, page):
        if bytes(page[7:8]) == b"\xee":
            raise BackendError("flaky: this page always fails")
        return super().compress(page)


def _store_variants(limit_pages, max_pool_pages):
    """Three caches that differ only in how store runs: StoreHit (as built), StoreHitPy, and
    the Python method alone."""
    caches = []
    for kind in ("c", "py", "method"):
        policy = ZswapPolicy(max_pool_pages=max_pool_pages, max_compression_ratio=60)
        c = ZswapCache(_FlakyLz4(), create_pool("zsmalloc", PageAllocator(limit_pages)), policy)
        c.init(0, 16)
        method = ZswapCache.store.__get__(c)
        if kind == "c":
            assert isinstance(c.store, _hotpath.StoreHit) and c.store.fallback == method
        elif kind == "py":
            c.store = _hotpath_py.StoreHitPy(c._trees, c, c.pool, c._compress, c._malloc_write,
                                             c._acquire, c._release, method)
        else:
            c.store = method
        caches.append(c)
    return caches


def _page(kind, n):
    good = compressible_pages(6, seed=11)
    page = {"good": good[n % 6], "zero": bytes(PAGE), "word": WORD * 512,
            "poor": np.random.default_rng(n).integers(0, 256, PAGE, np.uint8).tobytes(),
            "flaky": good[n % 6][:7] + b"\xee" + good[n % 6][8:],
            "near": bytes(PAGE - 8) + b"\x00" * 7 + b"\x01"}[kind.split("-")[0]]
    if kind.endswith("-bytearray"):
        return bytearray(page)
    if kind.endswith("-short"):
        return page[:100]
    return page


_STORE_OPS = st.lists(st.tuples(
    st.sampled_from(["store"] * 6 + ["invalidate", "disable", "enable", "load"]),
    st.sampled_from([0, 0, 0, 5]),  # 5: never initialised
    st.one_of(st.integers(0, 7), st.integers(-1, 17), st.sampled_from([np.int64(3), 3.0])),
    st.sampled_from(["good", "good", "zero", "word", "poor", "flaky", "near",
                     "good-bytearray", "good-short"]),
), min_size=4, max_size=40)


@settings(max_examples=150, deadline=None)
@given(_STORE_OPS, st.sampled_from([None, 3, 6]), st.sampled_from([None, 2, 4]))
def test_store_hit_matches_the_reference_and_the_method(ops, limit_pages, max_pool_pages):
    """The allocator's limit (limit_pages) makes malloc_write fail; the pool limit
    (max_pool_pages) sets the gate and the hysteresis; neither cache can write back."""
    caches = _store_variants(limit_pages, max_pool_pages)
    for n, (op, typ, off, kind) in enumerate(ops):
        outs = []
        for c in caches:
            if op == "store":
                outs.append(_outcome(c.store, typ, off, _page(kind, n)))
            elif op == "invalidate":
                outs.append(_outcome(c.invalidate_page, typ, off))
            elif op == "load":
                outs.append(_outcome(c.load, typ, off))
            else:
                c.enabled = op == "enable"
                outs.append(None)
        assert outs[0] == outs[1] == outs[2], (n, op, typ, off, kind)
        stats = [c.stats() for c in caches]
        assert stats[0] == stats[1] == stats[2], (n, op, typ, off, kind)
    final = caches[0].stats()
    for key in ("reject_compress_fail", "reject_compress_poor", "reject_reclaim_fail",
                "pool_limit_hit", "duplicate_entry"):
        event(f"{key}: {final[key] > 0}")
    contents = [[(o, c.pool.read(e) if e.__class__ is int else e) for o, e in c._trees[0].items()]
                for c in caches]
    assert contents[0] == contents[1] == contents[2]
    for c in caches:
        c.check()


def test_store_hit_is_not_built_with_checksums():
    c = ZswapCache(hwzswap.get_backend("lz4"), create_pool("zsmalloc", PageAllocator()),
                   ZswapPolicy(entry_checksum=True))
    assert c.store_hit_path(lambda t, o, p: False) is None
    assert not isinstance(c.store, _hotpath.StoreHit)
