"""The per-backend pool limit is the workload's fraction of what the pool held, as exactly as
the config's two whole numbers (``memory.total_ram_mb``, ``zswap.max_pool_percent``) can say
it: exactly when they can, else the nearest limit, one page off at most (it was 102 for 103:
412 held pages x 0.25), and the row says the target it was rounded from."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload, pool_limit_overrides
from hwzswap.config import load_config

PER_MB = 256  # 4 KiB pages in a MiB


def _limit(over: dict) -> int:
    """The limit the config loader makes of the overrides (``max_pool_pages``)."""
    return load_config(over).max_pool_pages


def _expressible(t: int) -> bool:
    """Whether some whole MB and whole percent give ``t`` pages exactly."""
    for pct in range(1, 101):
        mb = -(-100 * t // (PER_MB * pct))  # the smallest RAM whose pct reaches t
        if mb * PER_MB * pct // 100 == t:
            return True
    return False


def test_103_pages_is_the_nearest_the_config_can_say() -> None:
    assert not _expressible(103)
    assert abs(_limit(pool_limit_overrides(103)) - 103) == 1


def test_every_expressible_limit_is_exact() -> None:
    """258 pages (1 % of 101 MB) was 257 or 259: the old search stopped at four times the
    smallest RAM; every limit the config can say is now hit exactly."""
    for t in (258, 263, 412, 1000, 65536):
        assert _limit(pool_limit_overrides(t)) == t, t
    missed = [t for t in range(2, 1500)
              if _expressible(t) and _limit(pool_limit_overrides(t)) != t]
    assert missed == []


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=2_000_000))
def test_the_limit_is_at_most_one_page_off(t: int) -> None:
    over = pool_limit_overrides(t)
    got = _limit(over)
    assert abs(got - t) <= 1, (t, over, got)
    assert (got == t) == _expressible(t)


def test_the_row_names_its_target_and_gets_it() -> None:
    wl = build_workload("pressure", load_bundled(max_pages=256), seed=0)
    doc = run_bench(wl, BenchRun(backends=["lz4", "zstd"], batching="reclaim", warm_up=False))
    assert doc["failed"] == []  # looping over no rows proves nothing
    assert sorted((r["backend"], r["batching"]) for r in doc["results"]) == [
        ("lz4", "reclaim"), ("zstd", "reclaim")]
    for r in doc["results"]:
        s = r["pool_sizing"]
        # what the pool took to hold held_fraction of the workload's pages
        assert s["target_pages"] == max(1, s["fraction_pages"])
        assert s["held_data_pages"] < s["held_pages"]
        assert abs(s["limit_pages"] - s["target_pages"]) <= 1
        assert s["limit_pages"] == r["pool_limit_pages"] == r["counters"]["pool_limit_pages"]
        if s["limit_pages"] != s["target_pages"]:
            assert f"{s['target_pages']} pages, rounded" in r["pool_limit_note"]


def test_every_codec_holds_about_the_same_share_of_the_working_set() -> None:
    """The limit is what each backend's pool takes to hold held_fraction (a quarter) of the
    workload's pages, zsmalloc's per-class overhead included. Sized as a quarter of the pool
    pages with every page stored, the pools held 6.2 % (lz4) and 4.6 % (zstd) of 1024 pages
    at their peak (21.7 % and 5.0 % of 4096): the overhead ate the limit."""
    wl = build_workload("pressure", load_bundled(max_pages=1024), seed=0)
    doc = run_bench(wl, BenchRun(backends=["lz4", "zstd"], batching="reclaim", warm_up=False))
    assert doc["failed"] == []
    shares = {r["backend"]: r["pool_held_share_at_peak"] for r in doc["results"]}
    assert set(shares) == {"lz4", "zstd"}
    for name, share in shares.items():
        assert 0.12 <= share <= 0.5, (name, share)
    for r in doc["results"]:
        assert r["saw_writeback"] and r["pool_held_share_at_end"] is not None
