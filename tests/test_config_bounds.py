"""Hostile numbers and YAML 1.1 booleans in real config files: every numeric knob has a finite
upper bound (a ConfigError naming the file and the dotted key, never an OverflowError later),
an unquoted on/off is taken as the word where the knob's words are on/off, and
``async_max_batches`` is accepted with any engine mode (it applies to async only)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwzswap.cli import main
from hwzswap.config import (
    MAX_ASYNC_BATCHES,
    MAX_DEVICE_FAIL_AFTER,
    MAX_DEVICE_RETRY_S,
    MAX_DEVICE_TIMEOUT_MS,
    MAX_LATENCY_US,
    MAX_MB_S,
    MIN_MB_S,
    load_config,
)
from hwzswap.errors import ConfigError
from hwzswap.frontswap.system import open_zswap

HUGE = "1" + "0" * 400  # an integer YAML reads exactly: 10**400, too large for any float
CUSTOM = "model: custom, read_mb_s: 100, write_mb_s: 100"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("section", "key", "top", "extra"), [
    ("zswap", "device_timeout_ms", MAX_DEVICE_TIMEOUT_MS, ""),
    ("zswap", "device_retry_s", MAX_DEVICE_RETRY_S, ""),
    ("zswap", "device_fail_after", MAX_DEVICE_FAIL_AFTER, ""),
    ("zswap", "async_max_batches", MAX_ASYNC_BATCHES, "batching: async, "),
    ("swap", "latency_us", MAX_LATENCY_US, CUSTOM + ", "),
    ("swap", "read_mb_s", MAX_MB_S, "model: custom, write_mb_s: 1, "),
    ("swap", "write_mb_s", MAX_MB_S, "model: custom, read_mb_s: 1, "),
])
def test_each_numeric_knob_takes_its_bound_and_refuses_past_it_naming_file_and_key(
        tmp_path: Path, section: str, key: str, top: float, extra: str) -> None:
    extra = extra.replace(f"{key}: 100, ", "")
    top_text = repr(int(top)) if float(top).is_integer() else repr(top)
    cfg = load_config(_write(tmp_path, f"{section}: {{{extra}{key}: {top_text}}}\n"))
    assert getattr(getattr(cfg, section), key) == top
    for bad in (str(int(top) + 1), "1.0e+300", HUGE, ".inf", ".nan"):
        path = _write(tmp_path, f"{section}: {{{extra}{key}: {bad}}}\n")
        with pytest.raises(ConfigError, match=rf"^{path}: {section}\.{key}: must be ") as info:
            load_config(path)
        assert "\n" not in str(info.value) and "Overflow" not in str(info.value)


def test_a_transfer_rate_near_zero_is_refused(tmp_path: Path) -> None:
    """1e-300 MB/s made every modelled transfer last ~1e297 µs; 1 KB/s is the floor."""
    assert load_config(_write(tmp_path, f"swap: {{model: custom, read_mb_s: {MIN_MB_S}, "
                                        f"write_mb_s: 1}}\n")).swap.read_mb_s == MIN_MB_S
    path = _write(tmp_path, "swap: {model: custom, read_mb_s: 1.0e-300, write_mb_s: 1}\n")
    with pytest.raises(ConfigError, match=r"swap\.read_mb_s: must be a finite number >= 0.001 "
                                          r"and <= 1e\+09 \(1 KB/s to 1 PB/s\), got 1e-300"):
        load_config(path)


def test_an_integer_too_large_for_a_float_is_a_config_error_in_stats_not_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for text, key in ((f"swap: {{model: custom, read_mb_s: {HUGE}, write_mb_s: 1}}\n",
                       "swap.read_mb_s"),
                      (f"zswap: {{device_timeout_ms: {HUGE}}}\n", "zswap.device_timeout_ms")):
        path = _write(tmp_path, text)
        assert main(["stats", "--config", str(path), "--pages", "4"]) == 2
        err = capsys.readouterr().err
        assert f"{path}: {key}: must be a finite number" in err and "<an integer of" in err
        assert "Traceback" not in err


def test_the_longest_deadline_works_in_async_mode(tmp_path: Path) -> None:
    """A day, the bound, reaches the async pipeline's clock arithmetic (1e300 ms overflowed
    it: 'timestamp out of range') and works."""
    path = _write(tmp_path, f"zswap: {{compressor: lz4, batching: async, "
                            f"device_timeout_ms: {MAX_DEVICE_TIMEOUT_MS}, "
                            f"device_retry_s: {MAX_DEVICE_RETRY_S}}}\nswap: {{nr_pages: 64}}\n")
    pages = (np.arange(4 * 4096) % 251).astype(np.uint8).reshape(4, 4096)
    with open_zswap(path) as swap:
        swap.swap_out_batch(0, [1, 2, 3, 4], pages)
        for i in range(4):
            assert swap.swap_in(0, i + 1) == pages[i].tobytes()


@pytest.mark.parametrize(("word", "value"), [
    ("off", "off"), ("on", "on"), ("no", "off"), ("yes", "on"), ("false", "off"),
    ('"off"', "off"), ("auto", "auto")])
def test_an_unquoted_on_or_off_for_driver_watchdog_is_the_word(
        tmp_path: Path, word: str, value: str) -> None:
    """docs/writing-a-driver.md says ``driver_watchdog: off``, which YAML 1.1 reads as false."""
    cfg = load_config(_write(tmp_path, f"zswap:\n  driver_watchdog: {word}\n"))
    assert cfg.zswap.driver_watchdog == value
    assert load_config(cfg.to_dict()) == cfg


def test_a_yaml_boolean_where_other_words_belong_says_to_quote_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "swap: {model: no}\nzswap: {batching: on}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert f"{path}: swap.model: must be one of none, hdd, ssd, custom; got False (YAML read " \
           f"an unquoted on/off/yes/no as a boolean: write the word quoted)" in msg
    assert f"{path}: zswap.batching: must be one of page, folio, reclaim, async; got True " \
           f"(YAML read" in msg


def test_async_max_batches_with_another_engine_mode_is_accepted_and_unused(
        tmp_path: Path) -> None:
    """Refusing it would break a sweep over ``batching`` whose base config sets it (and
    ``hwzswap bench --batching page,async``): it applies to async only, as documented."""
    path = _write(tmp_path, "zswap: {compressor: lz4, batching: page, async_max_batches: 8}\n"
                            "swap: {nr_pages: 16}\n")
    cfg = load_config(path)
    assert (cfg.zswap.batching, cfg.zswap.async_max_batches) == ("page", 8)
    page = bytes(range(256)) * 16
    with open_zswap(cfg) as swap:
        assert swap.zswap._pipeline is None  # no async pipeline in page mode
        assert swap.swap_out(0, 3, page) is True and swap.swap_in(0, 3) == page


def test_a_number_yaml_read_as_text_says_how_to_write_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "zswap: {device_timeout_ms: 1e3}\n")  # YAML 1.1: the string '1e3'
    with pytest.raises(ConfigError, match=r"zswap\.device_timeout_ms: .*got '1e3' \(YAML read "
                                          r"it as text: write a number with a dot"):
        load_config(path)
    for text in ("nan", "inf", "soon"):  # no number meant: no hint
        with pytest.raises(ConfigError) as info:
            load_config(_write(tmp_path, f"zswap: {{device_timeout_ms: {text}}}\n"))
        assert "YAML read it as text" not in str(info.value)
    assert load_config(_write(tmp_path, "zswap: {device_timeout_ms: 1.0e+3}\n")
                       ).zswap.device_timeout_ms == 1000.0


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(), st.integers(min_value=-(10**400), max_value=10**400)))
def test_any_number_for_a_bounded_knob_is_accepted_in_range_or_named_never_raised(
        value: float) -> None:
    for key, lo, hi, section, extra in (
            ("device_timeout_ms", 0, MAX_DEVICE_TIMEOUT_MS, "zswap", {}),
            ("read_mb_s", MIN_MB_S, MAX_MB_S, "swap", {"model": "custom", "write_mb_s": 1})):
        raw = {section: {**extra, key: value}}
        inside = (lo < value if key == "device_timeout_ms" else lo <= value) and value <= hi
        if inside:
            got = getattr(getattr(load_config(raw), section), key)
            assert got == value and math.isfinite(got)
        else:
            with pytest.raises(ConfigError, match=rf"^<dict>: {section}\.{key}: must be a "
                                                  rf"finite number"):
                load_config(raw)
