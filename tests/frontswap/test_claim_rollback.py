"""``swap_out_batch`` claims its slots with ``claim_slots`` (compiled or its Python reference),
which returns the slots' states before the claim; a batch whose store raises puts exactly those
states back: a slot that held a page still holds it (readable), a free one is free again."""

from __future__ import annotations

import numpy as np
import pytest

from hwzswap.errors import InvalidInputError
from hwzswap.frontswap import _hotpath, _hotpath_py, system

from fsutil import PAGE, compressible_pages, random_page

CLAIMS = [_hotpath.claim_slots, _hotpath_py.claim_slots_py]


def _batch(n: int, seed: int) -> np.ndarray:
    return np.frombuffer(b"".join(compressible_pages(n, seed=seed)), np.uint8).reshape(n, PAGE)


def _states(s, lo: int, hi: int) -> list[bool]:
    return [s.slot_in_use(0, o) for o in range(lo, hi)]


@pytest.mark.parametrize("claim", CLAIMS, ids=["c", "py"])
@pytest.mark.parametrize("kind", [list, tuple, "range", "numpy-ints", "generator"])
@pytest.mark.parametrize("failure", ["bad-folios", "store-raises"])
def test_a_failed_batch_restores_exactly_the_prior_slot_states(make_system, monkeypatch, claim,
                                                               kind, failure) -> None:
    monkeypatch.setattr(system, "claim_slots", claim)
    s = make_system()
    held = {3: compressible_pages(1, seed=5)[0], 4: random_page(4), 6: random_page(6)}
    for off, page in held.items():
        s.swap_out(0, off, page)  # 3 in zswap; 4 and 6 on the swap file
    before = _states(s, 0, 12)
    offs = [2, 3, 4, 5, 6, 7]  # in use and free, interleaved
    offsets = {list: offs, tuple: tuple(offs), "range": range(2, 8),
               "numpy-ints": [np.int64(o) for o in offs],
               "generator": (o for o in offs)}[kind]
    seen: list[list[bool]] = []
    if failure == "store-raises":
        def store_batch(*args, **kwargs):
            seen.append(_states(s, 0, 12))  # the claim took every slot of the batch
            raise RuntimeError("injected store failure")

        monkeypatch.setattr(s.zswap, "store_batch", store_batch)
        with pytest.raises(RuntimeError, match="injected"):
            s.swap_out_batch(0, offsets, _batch(6, 9))
        assert seen == [[o in held or 2 <= o < 8 for o in range(12)]]
    else:
        with pytest.raises(InvalidInputError, match="folio sizes"):
            s.swap_out_batch(0, offsets, _batch(6, 9), folios=[4, 4])
    assert _states(s, 0, 12) == before
    assert [s.swap_in(0, o) for o in held] == list(held.values())
    monkeypatch.undo()
    s.zswap.check()
