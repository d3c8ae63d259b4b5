"""``lz4-opencl``'s per-device tuning (hwzswap.backends.opencl.tuning) on the real device (PoCL in
CI): measured once, cached per device, driver and kernel source; explicit params win.

Every test here uses its own cache directory and a small grid, so the measurements cost well
under a second each.
"""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest

from hwzswap import get_backend
from hwzswap.backends.contract import ItemStatus
from hwzswap.backends.opencl import tuning
from hwzswap.backends.opencl.backend import TUNED_KEYS
from hwzswap.bench.corpus import load_bundled
from hwzswap.cli import main

TINY = tuning.Grid(
    compress=(
        {"layout": "item", "local_size": 1, "hash_log": 12},
        {"layout": "item", "local_size": 1, "hash_log": 11},
    ),
    batch_sizes=(256, 128),
    decompress=(
        {"decompress_layout": "item", "decompress_local_size": 1},
        {"decompress_layout": "group", "decompress_local_size": 4},
    ),
    sample_pages=384,
    repeat=1,
)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache directory and the small grid for whatever device is measured."""
    monkeypatch.setenv(tuning.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(tuning, "grid_for", lambda kind: TINY)
    return tmp_path


def test_first_use_measures_then_the_cached_choice_is_used(cache):
    before = tuning.MEASUREMENTS
    with get_backend("lz4-opencl") as first:
        assert first.tuning["source"] == "measured"
        chosen = first.config
    assert tuning.MEASUREMENTS == before + 1
    files = list(cache.glob("lz4-opencl-tune-*.json"))
    assert len(files) == 1 and list(cache.iterdir()) == files  # no temporary file left
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600  # the user's own cache
    doc = json.loads(files[0].read_text())
    assert doc["choice"] == {k: chosen[k] for k in TUNED_KEYS}
    assert doc["key"]["device"] == first.device_name and doc["key"]["kernel_sha256"]
    for _ in range(3):  # later instances (and processes) read the cache: no measurement
        with get_backend("lz4-opencl") as again:
            assert again.tuning["source"] == "cache"
            assert again.config == chosen
            assert again.capabilities.preferred_batch == chosen["batch_size"]
            assert "config: cache" in again.describe()
    assert tuning.MEASUREMENTS == before + 1


def test_the_choice_is_the_fastest_within_one_percent_of_lz4(cache):
    with get_backend("lz4-opencl") as b:
        key = tuning.cache_key(b._platform, b._device)
    result = tuning.load_cached(key)
    assert result is not None and result.source == "cache"
    assert result.sample_pages == TINY.sample_pages and result.lz4_ratio > 1
    comp = [r for r in result.table if r["step"] != "decompress"]
    ok = [r for r in comp if r["ratio"] >= result.lz4_ratio * (1 - tuning.RATIO_TOLERANCE)]
    assert all(r["ratio_ok"] == (r in ok) for r in comp)
    chosen = [r for r in comp if r["chosen"]]
    assert chosen and all(r["ratio_ok"] for r in chosen)
    # the chosen configuration is the fastest acceptable one of step 1 (within the timing
    # tie, the best ratio) ...
    step1 = [r for r in ok if r["step"] == "compress"]
    fastest = max(r["compress_pages_s"] for r in step1)
    best1 = tuning.pick(step1)
    assert best1["compress_pages_s"] >= fastest * (1 - tuning.SPEED_TIE)
    assert all(r["ratio"] <= best1["ratio"] for r in step1
               if r["compress_pages_s"] >= fastest * (1 - tuning.SPEED_TIE))
    assert (result.choice["hash_log"], result.choice["layout"]) == (best1["hash_log"],
                                                                     best1["layout"])
    # ... at the fastest batch size measured for it
    same = [r for r in ok if r["hash_log"] == best1["hash_log"]]
    assert result.choice["batch_size"] == max(same, key=lambda r: r["compress_pages_s"])["batch_size"]
    dec = [r for r in result.table if r["step"] == "decompress"]
    assert len(dec) == 2 and all(r["exact"] for r in dec)
    dbest = max(dec, key=lambda r: r["decompress_pages_s"])
    assert result.choice["decompress_layout"] == dbest["decompress_layout"]


def test_a_changed_kernel_source_invalidates_the_choice(cache, monkeypatch):
    with get_backend("lz4-opencl") as b:
        old_key = tuning.cache_key(b._platform, b._device)
    assert tuning.load_cached(old_key) is not None
    before = tuning.MEASUREMENTS
    sources = tuning.kernel_sources()
    changed = {**sources, "lz4_compress.cl": sources["lz4_compress.cl"] + "\n/* changed */\n"}
    monkeypatch.setattr(tuning, "kernel_sources", lambda: changed)
    with get_backend("lz4-opencl") as b:
        new_key = tuning.cache_key(b._platform, b._device)
        assert b.tuning["source"] == "measured"
    assert new_key["kernel_sha256"] != old_key["kernel_sha256"]
    assert tuning.MEASUREMENTS == before + 1
    assert len(list(cache.glob("lz4-opencl-tune-*.json"))) == 2
    # a new driver version is a new key too
    assert tuning.cache_path({**old_key, "driver": "9.9"}) != tuning.cache_path(old_key)


def test_explicit_params_win_and_a_full_set_measures_nothing(cache):
    before = tuning.MEASUREMENTS
    full = {"layout": "item", "local_size": 2, "hash_log": 13, "batch_size": 77,
            "decompress_layout": "group", "decompress_local_size": 8}
    with get_backend("lz4-opencl", **full) as b:
        assert b.tuning["source"] == "explicit"
        assert b.config == full
        pages = load_bundled(max_pages=100)
        batch = b.compress_batch(pages)
        ok = batch.status == ItemStatus.OK
        out = b.decompress_batch(batch)
        assert np.array_equal(getattr(out, "pages", out)[ok], pages[ok])
    assert tuning.MEASUREMENTS == before and not list(cache.iterdir())
    with get_backend("lz4-opencl", tune="off") as b:  # built-in defaults, nothing measured
        assert b.tuning["source"] == "defaults (tune=off)" and b.config["hash_log"] == 12
    with get_backend("lz4-opencl", hash_log=13, batch_size=99) as b:  # the rest is tuned
        assert b.tuning["source"] == "measured"
        assert b.config["hash_log"] == 13 and b.config["batch_size"] == 99
        assert b.tuning["explicit"] == ["batch_size", "hash_log"]


def test_a_missing_cache_directory_is_made(cache, monkeypatch):
    where = cache / "not" / "yet"
    monkeypatch.setenv(tuning.CACHE_ENV, str(where))
    with get_backend("lz4-opencl") as b:
        assert b.tuning["source"] == "measured"
        key = tuning.cache_key(b._platform, b._device)
    assert list(where.iterdir()) == [tuning.cache_path(key)]
    assert tuning.load_cached(key) is not None


def test_an_unreadable_cache_file_is_measured_again(cache):
    with get_backend("lz4-opencl") as b:
        key = tuning.cache_key(b._platform, b._device)
    tuning.cache_path(key).write_text("{ not json")
    with pytest.warns(tuning.TuningCacheWarning, match="not valid JSON"):
        assert tuning.load_cached(key) is None
    before = tuning.MEASUREMENTS
    with pytest.warns(tuning.TuningCacheWarning), get_backend("lz4-opencl") as b:
        assert b.tuning["source"] == "measured"
    assert tuning.MEASUREMENTS == before + 1 and tuning.load_cached(key) is not None


def test_cli_tune_shows_the_cache_and_refresh_measures(cache, capsys):
    before = tuning.MEASUREMENTS
    assert main(["tune", "lz4-opencl"]) == 0  # nothing cached yet: measures
    out = capsys.readouterr().out
    assert "choice: layout=" in out and "| decompress |" in out and "**yes**" in out
    assert main(["tune", "lz4-opencl", "--json"]) == 0  # cached: shown as is
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"] == "cache" and set(doc["choice"]) == set(TUNED_KEYS)
    assert tuning.MEASUREMENTS == before + 1
    assert main(["tune", "lz4-opencl", "--refresh"]) == 0
    assert tuning.MEASUREMENTS == before + 2
    capsys.readouterr()
    assert main(["backends", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert "config: cache" in rows["lz4-opencl"]["in_use"]
    assert "hash_log" in rows["lz4-opencl"]["in_use"]


def test_pick_prefers_the_ratio_within_the_timing_tie():
    rows = [{"compress_pages_s": 100.0, "ratio": 2.50}, {"compress_pages_s": 98.0, "ratio": 2.58},
            {"compress_pages_s": 90.0, "ratio": 2.60}]
    assert tuning.pick(rows)["ratio"] == 2.58  # 2% slower: a tie; 10% slower: not
    assert tuning.pick(rows[:1] + rows[2:])["ratio"] == 2.50


def _cached_file(cache):
    """Measure once (the small grid) and return the cache file and its key."""
    with get_backend("lz4-opencl") as b:
        key = tuning.cache_key(b._platform, b._device)
    return tuning.cache_path(key), key


@pytest.mark.parametrize("bad, says", [
    ({"layout": "[/b]"}, "choice.layout"),  # crashed the OpenCL runtime (SIGSEGV) when trusted
    ({"hash_log": 40}, "choice.hash_log"),  # likewise
    ({"local_size": -5}, "choice.local_size"),  # std::bad_cast in the runtime
    ({"batch_size": 0}, "choice.batch_size: a tuned choice must be concrete"),
    ({"batch_size": True}, "choice.batch_size"),
    ({"layout": "group", "local_size": 64}, "layout 'group' needs one of"),
    ({"queues": 2}, "unknown 'queues'"),
])
def test_an_invalid_cached_choice_is_ignored_with_a_warning_and_measured_again(cache, bad, says):
    path, key = _cached_file(cache)
    doc = json.loads(path.read_text())
    doc["choice"].update(bad)
    path.write_text(json.dumps(doc))
    with pytest.warns(tuning.TuningCacheWarning, match=r"ignoring the cached tuned choice") as rec:
        assert tuning.load_cached(key) is None
    assert str(path) in str(rec[0].message) and says in str(rec[0].message)
    before = tuning.MEASUREMENTS
    with pytest.warns(tuning.TuningCacheWarning), get_backend("lz4-opencl") as b:
        assert b.tuning["source"] == "measured"  # never the bad values
        pages = load_bundled(max_pages=64)
        _roundtrip(b, pages)
    assert tuning.MEASUREMENTS == before + 1
    fixed = tuning.load_cached(key)  # the file was replaced by a valid one
    assert fixed is not None and tuning.check_choice(fixed.choice) is None


@pytest.mark.parametrize("field, value", [
    ("choice", [1, 2]), ("table", "x"), ("table", [1]), ("table", [{}]),
    ("table", [{"step": "decompress", "decompress_pages_s": "fast"}]), ("lz4_ratio", "fast"),
    ("sample_pages", -1), ("measured_at", 5),
])
def test_a_damaged_cache_record_is_ignored(cache, field, value):
    path, key = _cached_file(cache)
    doc = json.loads(path.read_text())
    doc[field] = value
    path.write_text(json.dumps(doc))
    with pytest.warns(tuning.TuningCacheWarning, match=field):
        assert tuning.load_cached(key) is None
        assert main(["tune", "lz4-opencl"]) == 0  # measured again, and the table prints
    assert tuning.load_cached(key) is not None


def test_an_explicit_layout_does_not_take_another_layouts_tuned_size(cache):
    path, key = _cached_file(cache)
    doc = json.loads(path.read_text())
    doc["choice"].update(layout="item", local_size=64, decompress_layout="item",
                         decompress_local_size=64)
    path.write_text(json.dumps(doc))
    with get_backend("lz4-opencl", layout="group", decompress_layout="group") as b:
        assert b.tuning["source"] == "cache"
        assert b.device_info["local_size"] in (1, 2, 4, 8, 16)  # the group layout's own default
        pages = load_bundled(max_pages=32)
        _roundtrip(b, pages)


def _roundtrip(b, pages):
    """Every page the device compressed comes back byte-exact (the kernels ran the config)."""
    batch = b.compress_batch(pages)
    ok = batch.status == ItemStatus.OK
    assert ok.any()
    out = b.decompress_batch(batch)
    assert np.array_equal(getattr(out, "pages", out)[ok], pages[ok])


def _unwritable(cache, how):
    """A cache directory that cannot be written, as a user may name one."""
    if how == "proc":
        return "/proc/hwzswap-no-such-dir"
    afile = cache / "a-file"
    afile.write_text("not a directory\n")
    return str(afile) if how == "file" else str(afile / "sub")


@pytest.mark.parametrize("how", ["proc", "file", "under-a-file"])
def test_cli_tune_refuses_an_unwritable_cache_before_measuring(cache, monkeypatch, capsys, how):
    where = _unwritable(cache, how)
    monkeypatch.setenv(tuning.CACHE_ENV, where)
    before = tuning.MEASUREMENTS
    for refresh in ([], ["--refresh"]):
        assert main(["tune", "lz4-opencl", *refresh]) == 2
        err = capsys.readouterr().err
        assert f"cannot cache a choice in {where}" in err and "nothing was measured" in err
        assert f"set {tuning.CACHE_ENV} to a writable directory" in err
    assert tuning.MEASUREMENTS == before  # refused before the grid, not after it


def test_a_backend_measures_without_a_writable_cache_and_says_it_is_not_cached(cache,
                                                                               monkeypatch):
    where = _unwritable(cache, "file")
    monkeypatch.setenv(tuning.CACHE_ENV, where)
    before = tuning.MEASUREMENTS
    with pytest.warns(tuning.TuningCacheWarning, match="NOT cached") as rec, \
            get_backend("lz4-opencl") as b:
        assert b.tuning["source"] == "measured"
        _roundtrip(b, load_bundled(max_pages=32))
        result = tuning.tuned_choice(b._platform, b._device, b._query)
    assert "a-file is not a directory" in str(rec[0].message)
    assert tuning.MEASUREMENTS == before + 2  # nothing cached: every use measures
    assert result.not_cached and result.to_dict()["path"] is None  # no path as if written
    assert "NOT cached" in tuning.format_table(result)
    assert str(result.path) not in tuning.format_table(result)
    assert sorted(p.name for p in cache.iterdir()) == ["a-file"]


@pytest.mark.parametrize("content, says", [
    (b"{ not json", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"\xff\xfe garbage", "not valid JSON"),
    (b"[1, 2]", "a JSON list, not an object"),
    (b"null", "a JSON NoneType, not an object"),
])
def test_a_garbage_cache_file_warns_and_is_measured_again(cache, capsys, content, says):
    path, key = _cached_file(cache)
    path.write_bytes(content)
    with pytest.warns(tuning.TuningCacheWarning, match="ignoring the cached tuned choice") as rec:
        assert tuning.load_cached(key) is None
    assert str(path) in str(rec[0].message) and says in str(rec[0].message)
    before = tuning.MEASUREMENTS
    with pytest.warns(tuning.TuningCacheWarning):
        assert main(["tune", "lz4-opencl"]) == 0
    assert tuning.MEASUREMENTS == before + 1
    assert str(path) in capsys.readouterr().out  # cached again, and said so
    assert tuning.load_cached(key) is not None


def test_a_cache_file_for_another_key_warns(cache):
    path, key = _cached_file(cache)
    doc = json.loads(path.read_text())
    doc["key"] = {**doc["key"], "driver": "edited"}
    path.write_text(json.dumps(doc))
    with pytest.warns(tuning.TuningCacheWarning, match="its key is not this device"):
        assert tuning.load_cached(key) is None
