"""The argument types the subcommands share (hwzswap.cliargs): durations are finite, > 0 (or
>= 0 for a wait) and at most a week, so a typo is refused on the command line rather than
overflowing the wait it reaches (``--timeout 1e308`` made every sweep run fail)."""

from __future__ import annotations

import argparse

import pytest

from hwzswap.cliargs import MAX_SECONDS, non_negative_seconds, positive_number, seconds


@pytest.mark.parametrize("text, value", [("1", 1.0), ("0.25", 0.25), ("604800", MAX_SECONDS),
                                         ("1e3", 1000.0)])
def test_durations_are_read(text: str, value: float) -> None:
    assert seconds(text) == value == non_negative_seconds(text)


@pytest.mark.parametrize("text, words", [
    ("0", "must be a finite number > 0, got 0"),
    ("-1", "must be a finite number > 0, got -1"),
    ("nan", "must be a finite number > 0, got nan"),
    ("inf", "must be at most 604800 (a week), got inf"),
    ("604800.5", "must be at most 604800 (a week), got 604800.5"),
    ("1e308", "must be at most 604800 (a week), got 1e308"),
    ("9" * 400, "must be at most 604800 (a week), got " + "9" * 40 + "..."),
    ("soon", "expected a number of seconds, got 'soon'"),
])
def test_a_duration_that_is_none_is_refused(text: str, words: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as exc:
        seconds(text)
    assert str(exc.value) == words


def test_a_wait_may_be_zero_but_not_past_a_week() -> None:
    assert non_negative_seconds("0") == 0.0
    for text in ("-0.5", "nan", "1e9"):
        with pytest.raises(argparse.ArgumentTypeError):
            non_negative_seconds(text)
    assert positive_number("1e9") == 1e9  # a size or a rate has no such bound
    with pytest.raises(argparse.ArgumentTypeError, match="must be a finite number > 0, got inf"):
        positive_number("inf")
