"""Strings from users and drivers reach the terminal as text, never as rich markup: a config
path, a workload name or a driver's reason holding ``[/b]`` is shown as written (it raised
rich's MarkupError, a traceback, before)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

import pytest

from hwzswap.backends.contract import Param
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.backends.registry import registered
from hwzswap.cli import main


class _Unavailable(Lz4Backend):
    """An lz4 whose reason for not running, and whose parameter default, hold markup."""

    name = "test-markup-reason"
    PARAMS: ClassVar[dict[str, Param]] = {
        **Lz4Backend.PARAMS, "label": Param(str, "[red]x[/red] [/b]"),
    }

    @classmethod
    def availability(cls) -> tuple[bool, str | None]:
        return False, "needs the [/b] card [bold]here"


class _Available(_Unavailable):
    name = "test-markup-params"

    @classmethod
    def availability(cls) -> tuple[bool, str | None]:
        return True, None


def test_backends_shows_a_drivers_markup_as_text(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: Any) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that no cell folds
    with registered(_Unavailable, _Available):
        assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "needs the [/b] card" in out and "[bold]here" in out
    assert "label=[red]x[/red]" in out


@pytest.mark.parametrize("name", ["[/b].yaml", "x[red].yaml", "[bold]c.yaml"])
def test_stats_shows_the_config_path_as_written(name: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).parents[1] / "configs" / "default.yaml", path)
    assert main(["stats", "--config", name, "--pages", "32"]) == 0
    assert capsys.readouterr().out.startswith(f"{name}: lzo / zsmalloc")
