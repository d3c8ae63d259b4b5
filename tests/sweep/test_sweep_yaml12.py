"""A sweep file reads a plain ``1:4`` as the string written (YAML 1.2), not as the YAML 1.1
base-60 integer: ``folio_pages: [1:4]`` silently became 64-page folios, and ``[1:1]`` failed
with "folio size 61 is not a power of two"."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwzswap.sweep.plan import expand
from hwzswap.sweep.spec import SweepSpecError, load_sweep


def _sweep(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_an_unquoted_folio_mix_is_the_mix_written(tmp_path: Path) -> None:
    spec = load_sweep(_sweep(tmp_path, "axes:\n  backend: [lz4]\n  folio_pages: [1:4, 1:1, 16]\n"
                                       "fixed:\n  pages: 64\n"))
    assert spec.axes["folio_pages"] == ["1:4", "1:1", 16]
    runs = expand(spec).runs
    assert [r.bench_args()[-2:] for r in runs] == [["--folio-pages", "1:4"],
                                                   ["--folio-pages", "1:1"],
                                                   ["--folio-pages", "16"]]


def test_an_unquoted_colon_value_of_a_config_key_stays_a_string(tmp_path: Path) -> None:
    spec = load_sweep(_sweep(tmp_path, "axes:\n  backend: [lz4]\n"
                                       "fixed:\n  zswap.max_pool_percent: 1:4\n"))
    assert spec.fixed["zswap.max_pool_percent"] == "1:4"  # the run's config loader refuses it


def test_an_unquoted_backend_number_still_gets_its_hint(tmp_path: Path) -> None:
    with pytest.raises(SweepSpecError, match=r'axes\.backend\[0\]: .*write it quoted: "842"'):
        load_sweep(_sweep(tmp_path, "axes:\n  backend: [842]\n"))
