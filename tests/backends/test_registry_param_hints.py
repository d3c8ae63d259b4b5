"""A driver parameter's errors help as the core config keys' do: a number YAML read as text
gets the same hint, and a long list of choices is not cut off mid-list by the config error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hwzswap.backends.contract import Param
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.backends.registry import registered
from hwzswap.errors import ConfigError, InvalidParameterError
from hwzswap.frontswap.system import open_zswap

MODES = tuple(f"mode-{i}" for i in range(40))


class ManyModes(Lz4Backend):
    name = "test-many-modes"
    PARAMS = {"mode": Param(str, "mode-0", choices=MODES, doc="one of many modes"),
              "sleep_ms": Param(float, 1.0, min=0.0, doc="a delay"),
              "depth": Param(int, 4, min=1, doc="a depth"),
              "level": Param(str, "fast", choices=("fast", "slow"), doc="two choices")}


def _config_error(tmp_path: Path, params: str) -> str:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"zswap:\n  compressor: {{name: {ManyModes.name}, params: {params}}}\n"
                   f"swap: {{path: {tmp_path / 'swap.img'}}}\n")
    with registered(ManyModes), pytest.raises(ConfigError) as info:
        open_zswap(str(cfg))
    return str(info.value)


@pytest.mark.parametrize("params,hint", [
    ("{sleep_ms: 1e3}", r"must be float, got str '1e3' \(YAML read it as text: write a number "
                        r"with a dot, e.g. 1.0e\+3 for 1e3\)$"),
    ("{depth: '8'}", r"must be int, got str '8' \(YAML read it as text: write the integer "
                     r"without quotes\)$"),
])
def test_a_number_read_as_text_gets_the_core_keys_hint(tmp_path: Path, params, hint) -> None:
    msg = _config_error(tmp_path, params)
    assert str(tmp_path / "c.yaml") in msg and "zswap.compressor.params." in msg
    assert re.search(hint, msg), msg


def test_a_long_choice_list_says_how_many_more_and_where(tmp_path: Path) -> None:
    msg = _config_error(tmp_path, "{mode: nope}")
    assert msg.endswith("; got 'nope'"), msg  # not clipped
    shown = re.findall(r"'(mode-\d+)'", msg)
    assert shown == list(MODES[:len(shown)]) and len(shown) >= 10
    assert f"and {len(MODES) - len(shown)} more (`hwzswap backends --json` lists them all)" \
        in msg


def test_a_short_choice_list_is_given_whole() -> None:
    with pytest.raises(InvalidParameterError,
                       match=r"parameter 'level' must be one of 'fast', 'slow'; got 'medium'$"):
        ManyModes.PARAMS["level"].check(ManyModes.name, "level", "medium")
