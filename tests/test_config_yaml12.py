"""Config files are read as YAML 1.2 reads a plain ``a:b``: the string it is written as. PyYAML
(YAML 1.1) reads ``1:4`` as the base-60 integer 64, so a config said something its author never
wrote, without a word."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hwzswap.config import load_config
from hwzswap.errors import ConfigError
from hwzswap.yamlfile import settings_loader


def _load(text: str) -> object:
    return yaml.load(text, Loader=settings_loader())  # noqa: S506 (a SafeLoader)


@pytest.mark.parametrize("text", ["1:4", "1:1", "190:20:30", "-1:30", "1:30.5", "12:30:00"])
def test_a_colon_number_is_the_string_written(text: str) -> None:
    assert _load(f"a: {text}\nb: [{text}]") == {"a": text, "b": [text]}


def test_everything_else_reads_as_safe_load_reads_it() -> None:
    text = ("n: 842\nh: 0x10\no: 0o17\nf: 1.5\ne: 1e3\nu: 1_000\nt: true\nz: ~\n"
            "q: '1:4'\nts: 2001-12-14\nw: !!int 1:4\ninf: .inf\n")
    assert _load(text) == yaml.safe_load(text)


def test_a_config_value_written_a_colon_is_refused_not_read_as_base_60(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("zswap:\n  max_pool_percent: 1:4\n")  # YAML 1.1: 64, a valid percentage
    with pytest.raises(ConfigError) as exc:
        load_config(cfg)
    assert str(exc.value) == (f"{cfg}: zswap.max_pool_percent: must be an integer 1..100, "
                              "got '1:4'")


def test_an_unquoted_number_naming_a_backend_still_gets_its_hint(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("zswap:\n  compressor: 842\n")
    with pytest.raises(ConfigError, match=r'zswap\.compressor: .*got 842 \(YAML read it as a '
                                          r'number: write it quoted, "842"\)'):
        load_config(cfg)
