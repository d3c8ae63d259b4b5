"""``hwzswap run``'s refusals of --memory-limit and --compare name the option and show sizes
in a unit a reader takes in (4 KiB, not 0.00390625 MiB); an empty --compare entry is refused,
not dropped. All refused (exit 2) before anything is set up."""

from __future__ import annotations

import pytest

from serveutil import hwzswap_cli

from hwzswap.errors import HwzswapError
from hwzswap.serve import run


def test_small_sizes_are_shown_in_kib_or_bytes() -> None:
    assert run.format_size(4096) == "4 KiB"
    assert run.format_size(1536) == "1.5 KiB"
    assert run.format_size(100) == "100 bytes"
    assert run.format_size(1023) == "1023 bytes"
    assert run.format_size(1 << 20) == "1 MiB"


@pytest.mark.parametrize("text", ["0", "0.1", "nan", "x"])
def test_a_memory_limit_that_is_no_size_names_the_option(text: str) -> None:
    with pytest.raises(HwzswapError) as err:
        run.check_memory_limit(text)
    assert str(err.value).startswith(f"--memory-limit {text}: ")


@pytest.mark.parametrize("text, words", [
    (",lz4", "--compare ,lz4: entry 1 of 2 is empty"),
    ("lz4,", "--compare lz4,: entry 2 of 2 is empty"),
    ("lz4,,lzo,", "--compare lz4,,lzo,: entries 2, 4 of 4 are empty"),
])
def test_an_empty_compare_entry_is_refused(text: str, words: str) -> None:
    with pytest.raises(HwzswapError, match="empty; give comma-separated names") as err:
        run.check_compare(text)
    assert str(err.value).startswith(words)
    assert run.check_compare(" lz4 , lzo") == ["lz4", "lzo"]
    assert run.check_compare(None) == ["config"]
    assert run.check_compare(",") == run.check_compare(" ") == []  # names none: refused


def test_the_cli_refuses_them_with_exit_2() -> None:
    p = hwzswap_cli("run", "--memory-limit", "0", "--", "true", timeout=60)
    assert p.returncode == 2 and "error: --memory-limit 0: a size must be" in p.stderr
    p = hwzswap_cli("run", "--memory-limit", "4k", "--", "true", timeout=60)
    assert p.returncode == 2 and "--memory-limit 4k: 4 KiB is below the minimum of 8 MiB" \
        in p.stderr
    p = hwzswap_cli("run", "--memory-limit", "32M", "--compare", ",lz4", "--", "true",
                    timeout=60)
    assert p.returncode == 2 and "--compare ,lz4: entry 1 of 2 is empty" in p.stderr
