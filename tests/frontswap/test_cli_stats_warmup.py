"""``hwzswap stats`` warms the backend up before it times anything: the per-page figures held
one-time setup (the 842 codec's numba functions loaded on first call, ~0.1 s: ~2,400 µs/page
at 64 pages for 842-nx). What is tested is the order of the calls, never a speed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.backends.registry import registered
from hwzswap.cli import main
from hwzswap.frontswap.cli import run_stats

from helpers import engine_config

#: (instance number, event), in the order they happened, for the class below.
EVENTS: list[tuple[int, str]] = []


class Logged(Lz4Backend):
    """The real lz4 codec, logging each instance's construction, calls and close."""

    name = "test-logged-lz4"
    _made = 0

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        Logged._made += 1
        self.number = Logged._made
        EVENTS.append((self.number, "init"))

    def compress(self, page: Any) -> bytes | None:
        EVENTS.append((self.number, "compress"))
        return super().compress(page)

    def decompress(self, data: Any) -> bytes:
        EVENTS.append((self.number, "decompress"))
        return super().decompress(data)

    def compress_batch(self, pages: Any) -> Any:
        EVENTS.append((self.number, "compress_batch"))
        return super().compress_batch(pages)

    def decompress_batch(self, datas: Any) -> Any:
        EVENTS.append((self.number, "decompress_batch"))
        return super().decompress_batch(datas)

    def close(self) -> None:
        EVENTS.append((self.number, "close"))
        super().close()


@pytest.fixture
def logged() -> Any:
    EVENTS.clear()
    Logged._made = 0
    with registered(Logged):
        yield EVENTS


def test_the_codec_is_warmed_up_on_its_own_instance_before_the_run(logged: Any,
                                                                 tmp_path: Path) -> None:
    report = run_stats(engine_config(tmp_path, "test-logged-lz4"), 64)
    assert report["verified_pages"] == 64 and report["mismatches"] == 0
    warm = report["warm_up"]
    assert warm["backend"] == "test-logged-lz4" and warm["error"] is None
    assert warm["seconds"] >= 0
    first = [e for n, e in logged if n == 1]
    # instance 1 is the warm-up: it compressed and decompressed, then was closed ...
    assert first[0] == "init" and first[-1] == "close"
    assert {"compress_batch", "compress"} & set(first)  # a reclaim pass, single pages
    assert {"decompress", "decompress_batch"} & set(first)
    # ... before the measured instance exists, whose calls are the run's alone
    assert logged.index((1, "close")) < logged.index((2, "init"))
    assert {n for n, _ in logged} == {1, 2}
    assert report["counters"]["stores"] == 64


def test_without_warm_up_the_report_says_nothing_was_warmed(logged: Any,
                                                            tmp_path: Path) -> None:
    report = run_stats(engine_config(tmp_path, "test-logged-lz4"), 32, warm_up=False)
    assert report["warm_up"] is None
    assert {n for n, _ in logged} == {1}  # only the measured instance was built


def test_the_output_says_one_time_setup_is_excluded(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    cfg = engine_config(tmp_path, "lz4")
    assert main(["stats", "--config", str(cfg), "--pages", "32"]) == 0
    out = capsys.readouterr().out
    assert "one-time setup excluded: the backend was warmed up first on a throwaway swap system" in out
    assert main(["stats", "--config", str(cfg), "--pages", "32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["warm_up"]["backend"] == "lz4" and report["warm_up"]["error"] is None


def test_a_backend_that_cannot_be_built_fails_as_before(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """The warm-up does not take over the error: the measured open reports it (exit 2)."""
    cfg = engine_config(tmp_path, {"name": "lz4", "params": {"acceleration": "fast"}})
    assert main(["stats", "--config", str(cfg), "--pages", "8"]) == 2
    err = capsys.readouterr().err
    assert "zswap.compressor.params.acceleration" in err
