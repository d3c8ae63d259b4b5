"""``hwzswap stats`` with user mistakes: each is a one-line error and exit status 2, no
traceback; and it runs from any directory (its default config is the built-in one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.cli import main


def test_runs_outside_the_repository_with_the_built_in_defaults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # no configs/default.yaml here
    assert main(["stats", "--pages", "16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"] == "built-in defaults"
    assert report["backend"] == "lzo" and report["verified_pages"] == 16


def test_a_negative_seed_is_an_argument_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["stats", "--pages", "8", "--seed", "-1"])
    assert exc.value.code == 2
    assert "--seed" in capsys.readouterr().err


def test_more_pages_than_the_corpus_holds_is_refused_not_cut(
        capsys: pytest.CaptureFixture[str]) -> None:
    n = len(load_bundled()) + 1
    assert main(["stats", "--pages", str(n)]) == 2
    err = capsys.readouterr().err
    assert f"--pages {n}" in err and f"--pages {n - 1} or less" in err
    assert "Traceback" not in err


def test_more_pages_than_the_swap_device_holds_names_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "small.yaml"
    path.write_text("swap:\n  nr_pages: 20\n")
    assert main(["stats", "--config", str(path), "--pages", "21"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: swap.nr_pages:" in err and "--pages 20 or less" in err
    assert main(["stats", "--config", str(path), "--pages", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified_pages"] == 20
