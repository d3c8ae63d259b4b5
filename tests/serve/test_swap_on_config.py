"""``hwzswap swap on`` with a config it cannot serve: refused in one message naming the file and
the key, before a server is started. It used to start the server, which then failed, and say
"hwzswap swap: error: hwzswap swap hwzswap: the server did not come up: error: bad.yaml: ..."."""

from __future__ import annotations

from pathlib import Path

import pytest

from serveutil import hwzswap_cli


@pytest.mark.parametrize(("body", "says"), [
    ("zswap:\n  max_pool_percent: 0\n", "zswap.max_pool_percent: must be an integer 1..100, "
                                         "got 0"),
    ("zswap:\n  exclusive_loads: true\n", "zswap.exclusive_loads: true cannot serve the "
                                          "kernel's swap"),
])
def test_swap_on_refuses_a_bad_config_in_one_line_before_starting(
        body: str, says: str, state_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(body)
    r = hwzswap_cli("swap", "on", "--config", str(bad), "--name", "tcfg")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hwzswap swap: error: {bad}: {says}"), lines
    assert "did not come up" not in r.stderr and r.stdout == ""
    assert not state_dir.exists() or list(state_dir.iterdir()) == []  # no state, no log


def test_the_config_the_docs_name_for_swap_on_can_be_served() -> None:
    """README, ``--config``'s help and the "--config F is required" error name
    ``configs/serve-lz4.yaml``: it must pass the serve path's check (``configs/lz4.yaml``, the
    one they named before, sets exclusive_loads and is refused)."""
    from hwzswap.config import load_config
    from hwzswap.serve.chain import ChainError, check_servable

    root = Path(__file__).resolve().parents[2]
    path = root / "configs" / "serve-lz4.yaml"
    check_servable(load_config(path), str(path))
    assert load_config(path).zswap.compressor.name == "lz4"
    assert "configs/serve-lz4.yaml" in (root / "README.md").read_text()
    with pytest.raises(ChainError, match="exclusive_loads"):
        check_servable(load_config(root / "configs" / "lz4.yaml"), "lz4.yaml")
