"""zswap's compiled structures and scans (``_hotpath``: the index ``ZswapTree``,
``same_filled_pages``, ``claim_slots``) against their Python references (``_hotpath_py``): the
same inputs must give the same results, errors, contents and order, under misuse too (issue 16:
finalisers that change the index mid-call, mutation while iterating, a seeded fuzz)."""

from __future__ import annotations

import copy
import gc
import os
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from hypothesis import strategies as st

from hwzswap.frontswap import _hotpath, _hotpath_py

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
        offs, before = got
        assert offs == list(offsets) and all(smap_c[o] == 1 for o in offs)
        assert before == bytes(1 if o % 3 == 0 else 0 for o in offs)  # the states before


# -- ZswapTree ---------------------------------------------------------------------------------

_KEYS = st.one_of(st.integers(-2, 9), st.integers(0, 7).map(np.int64),
                  st.sampled_from([2.0, "3", None, 2**70]))


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 -- the exception type is what is compared
        return ("raised", type(exc))


class TreeMachine(RuleBasedStateMachine):
    """ZswapTree (C) and ZswapTreePy (its Python reference) under the same random operations,
    API surface included: every call gives the same result or the same exception type."""

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

    @rule(key=_KEYS, call=st.sampled_from([
        lambda t, k: t.get(k, default="d"),  # arguments are positional
        lambda t, k: t.pop(k, default="d"),
        lambda t, k: t.move_to_end(k, False),
        lambda t, k: t.move_to_end(k, last=True),
        lambda t, k: t.get(k, "d", "e"),
        lambda t, k: t.popitem(),  # no OrderedDict extras
        lambda t, k: t.setdefault(k, 1),
        lambda t, k: t.update({k: 1}),
        lambda t, k: t.copy(),
        lambda t, k: list(reversed(t)),
        lambda t, k: t == t,  # identity
        lambda t, k: t == {k: 1},
        lambda t, k: t != t,
        lambda t, k: type(hash(t)),
        lambda t, k: t < t,
        lambda t, k: setattr(t, "type", k),  # read-only
        lambda t, k: setattr(t, "nr_pages", k),
        lambda t, k: setattr(t, "other", k),
        lambda t, k: (t.type, t.nr_pages, repr(t)),
        lambda t, k: type(t)(k, 8).items(),
        lambda t, k: type(t)(swap_type=k, nr_pages=4).nr_pages,
        lambda t, k: repr(type(t)(k, nr_pages=k)),
        lambda t, k: type("Sub", (type(t),), {}),  # not a base type
        lambda t, k: pickle.dumps(t),
        lambda t, k: copy.copy(t),
        lambda t, k: vars(t),
    ]))
    def same_api(self, key, call):
        """The same surface: what one tree accepts the other does, what it refuses (with the
        same exception type) so does the other."""
        self.both(lambda t: call(t, key))

    @rule()
    def equal_contents_are_not_equal_trees(self):
        other_c, other_py = _hotpath.ZswapTree(3, 8), _hotpath_py.ZswapTreePy(3, 8)
        for k, v in self.c.items():
            other_c[k] = other_py[k] = v
        assert (self.c == other_c) is (self.py == other_py) is False
        assert other_c.items() == other_py.items() == self.c.items()

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


class _Meddler:
    """Cyclic garbage whose finaliser empties claim_slots' offsets and tries to shrink its map,
    noting in ``log`` whether it ran inside the call (``_CALLING``)."""

    def __init__(self, offsets, smap, log):
        self.offsets, self.smap, self.me, self.log = offsets, smap, self, log

    def __del__(self):
        self.log.append(_CALLING[0])
        self.offsets.clear()
        try:
            del self.smap[:]
        except BufferError:  # refused: the map is exported while it is being claimed
            pass


_CALLING = [False]


@pytest.mark.parametrize("fn", [_hotpath.claim_slots, _hotpath_py.claim_slots_py])
def test_claim_slots_survives_finalisers_that_change_its_arguments(fn):
    """The GC's first young collection lands at a different allocation inside the call for
    each threshold (from the collection that starts each round), so the finaliser runs before
    the offsets are copied (the call declines: None), after (the claim goes through on the
    copy, the map unshrunk), or after the call. With threshold 1 alone, the Python version ran
    it before the copy every time, and its claim path was never reached."""
    threshold = gc.get_threshold()
    inside: set[bool] = set()  # the results (None or not) of calls the finaliser ran inside
    try:
        for t in range(1, 41):
            gc.collect()
            offsets = list(range(0, 200, 3))
            want = list(offsets)
            smap = bytearray(300)
            log: list[bool] = []
            _Meddler(offsets, smap, log)
            gc.set_threshold(t)
            _CALLING[0] = True
            try:
                got = fn(smap, offsets, len(want))
                after = bytes(smap)  # (a bytes object is not tracked: no collection here)
            finally:
                _CALLING[0] = False
                gc.set_threshold(*threshold)
            gc.collect()  # a finaliser that has not run yet runs now, after the call
            assert log, "the finaliser never ran"
            if log[0]:
                inside.add(got is None)
            assert got is None or got == (want, bytes(len(want))), t
            if got is not None:  # the map as the call left it: unshrunk, the slots marked
                assert len(after) == 300, t
                assert all(after[o] == 1 for o in want) and sum(after) == len(want), t
    finally:
        gc.set_threshold(*threshold)
    assert False in inside, "no call claimed its slots with the finaliser run inside it"


# -- a seeded random-operation fuzz of the index (short here; long under ``make asan``) ---------

FUZZ_ROUNDS = int(os.environ.get("HWZSWAP_FUZZ_ROUNDS", "4"))


def _fuzz_key(rng):
    r = rng.random()
    if r < 0.8:
        return rng.randrange(-2, 70)
    return rng.choice([np.int64(rng.randrange(64)), 3.0, "5", None, 2**70, -(2**70), True])


def run_tree_fuzz(seed, steps=400):
    """ZswapTree and ZswapTreePy under the same random calls (mutation while iterating, GC
    finalisers that change the tree mid-call, odd keys, cycles through the tree): the same
    results or error classes, the same contents in the same order."""
    rng = random.Random(seed)
    nr = rng.choice([1, 5, 64, 65, 200])
    trees = [_hotpath.ZswapTree(seed, nr), _hotpath_py.ZswapTreePy(seed, nr)]
    iters = [None, None]
    threshold = gc.get_threshold()
    serial = 0

    def norm(x, t):  # a tree stored in itself (a cycle) compares as a marker
        if x is t:
            return "<the tree>"
        if isinstance(x, (list, tuple)):
            return type(x)(norm(y, t) for y in x)
        return x

    def both(op):
        outs = [norm(_outcome(op, t), t) for t in trees]
        assert outs[0] == outs[1], outs
        return outs[0]

    try:
        for _ in range(steps):
            op = rng.randrange(100)
            key = _fuzz_key(rng)
            serial += 1
            value = rng.choice([serial, serial.to_bytes(8, "little"), None, "x"])
            if op < 30:
                both(lambda t: t.__setitem__(key, value))
            elif op < 40:
                both(lambda t: t.__delitem__(key))
            elif op < 50:
                default = rng.random() < 0.5
                both(lambda t: t.pop(key, "d") if default else t.pop(key))
            elif op < 60:
                both(lambda t: (t.get(key), t.get(key, "d"), key in t))
            elif op < 66:
                both(lambda t: t[key])
            elif op < 74:
                both(lambda t: t.move_to_end(key))
            elif op < 80:  # advance the live iterators (they see every change since)
                if iters[0] is None or rng.random() < 0.3:
                    iters = [iter(t) for t in trees]
                outs = [_outcome(next, it, "end") for it in iters]
                assert outs[0] == outs[1]
            elif op < 84:
                what = rng.choice(["keys", "values", "items"])
                for _ in range(rng.randrange(3)):
                    _Shrinker(trees[0], 1)
                    _Shrinker(trees[1], 1)
                gc.set_threshold(1)
                outs = [getattr(t, what)() for t in trees]
                gc.set_threshold(*threshold)
                gc.collect(0)  # every finaliser has run on both trees now (young garbage)
                assert norm(trees[0].items(), trees[0]) == norm(trees[1].items(), trees[1])
                for out in outs:
                    assert None not in out or what == "values"
            elif op < 86:
                both(lambda t: t.clear())
            elif op < 88:
                k = rng.randrange(nr)
                both(lambda t: t.__setitem__(k, t))  # a cycle through the tree
            else:
                both(lambda t: (len(t), bool(t), list(t), t.keys(), t.values(), t.items()))
            assert len(trees[0]) == len(trees[1]) and list(trees[0]) == list(trees[1])
    finally:
        gc.set_threshold(*threshold)
    for t in trees:
        t.clear()


def test_tree_fuzz_compiled_against_the_reference():
    for seed in range(FUZZ_ROUNDS):
        run_tree_fuzz(seed)


def test_claim_slots_on_offsets_far_apart():
    """Offsets spanning more than a bitmap's worth of slots take the sorting check."""
    for fn in (_hotpath.claim_slots, _hotpath_py.claim_slots_py):
        smap = bytearray(20000)
        smap[7000] = 2
        assert fn(smap, [19999, 0, 7000], 3) == ([19999, 0, 7000], b"\x00\x00\x02")
        assert smap[19999] == smap[0] == smap[7000] == 1 and sum(smap) == 3
        assert fn(smap, [19998, 1, 19998], 3) is None and sum(smap) == 3


@pytest.mark.parametrize("module, importer", [
    ("hwzswap.frontswap._hotpath", "hwzswap.frontswap.zswap"),
    ("hwzswap.pool._zscore", "hwzswap.pool.zsmalloc_c"),
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
    env = dict(os.environ, HWZSWAP_IMPL="c")  # the compiled parts are due
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout
    assert module in out and "is not built for this Python" in out and "make install" in out
