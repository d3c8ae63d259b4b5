"""Sweep-file mistakes that used to vary or apply nothing without a word: a misspelt
``params.<name>`` and resources for a backend name that does not exist."""

from __future__ import annotations

import pytest

from hwzswap.sweep.plan import expand
from hwzswap.sweep.spec import SweepSpecError, parse_sweep


def test_a_params_axis_no_backend_takes_is_refused() -> None:
    doc = {"axes": {"backend": ["zstd", "lz4"], "params.levle": [1, 3]}}
    with pytest.raises(SweepSpecError) as exc:
        parse_sweep(doc, "s.yaml")
    msg = str(exc.value)
    assert msg.startswith("s.yaml: axes.params.levle: no backend of this sweep takes a "
                          "parameter 'levle'")
    assert "zstd: level" in msg and "lz4: acceleration" in msg


def test_a_fixed_param_no_backend_takes_is_refused() -> None:
    with pytest.raises(SweepSpecError, match=r"fixed\.params\.lvl: no backend"):
        parse_sweep({"axes": {"backend": ["zstd"]}, "fixed": {"params.lvl": 3}}, "s.yaml")


def test_a_param_some_backends_take_still_collapses_for_the_others() -> None:
    spec = parse_sweep({"axes": {"backend": ["zstd", "lz4"], "params.level": [1, 3]}}, "s.yaml")
    plan = expand(spec)
    assert len(plan.runs) == 3 and plan.collapsed == 1  # zstd x 2 levels, lz4 once


def test_resources_for_an_unknown_backend_are_refused() -> None:
    doc = {"axes": {"backend": ["lz4"]}, "resources": {"lz4opencl": {"GPU": 1}}}
    with pytest.raises(SweepSpecError, match=r"resources\.lz4opencl: no backend named "
                                             r"'lz4opencl' \(registered backends: .*lz4-opencl"):
        parse_sweep(doc, "s.yaml")
    # a registered backend that this sweep does not run may keep its line
    parse_sweep({"axes": {"backend": ["lz4"]}, "resources": {"lz4-opencl": {"GPU": 1}}}, "s.yaml")


def test_a_seed_beyond_64_bits_is_refused() -> None:
    with pytest.raises(SweepSpecError,
                       match=r"fixed\.seed: must be a whole number >= 0 and at most"):
        parse_sweep({"axes": {"backend": ["lz4"]}, "fixed": {"seed": 1 << 64}}, "s.yaml")


def test_a_missing_corpus_or_workload_file_is_refused_with_the_sweep(tmp_path) -> None:
    (tmp_path / "there.pages").write_bytes(bytes(4096))
    doc = {"axes": {"backend": ["lz4"], "corpus": ["bundled", "there.pages", "gone.pages"]},
           "fixed": {"workload": "roundtrp"}}
    with pytest.raises(SweepSpecError) as exc:
        parse_sweep(doc, "s.yaml", tmp_path)
    msg = str(exc.value)
    assert f"s.yaml: axes.corpus: {tmp_path / 'gone.pages'}: No such file" in msg
    assert "there.pages" not in msg
    assert f"s.yaml: fixed.workload: {tmp_path / 'roundtrp'}: No such file" in msg
    assert "did you mean 'roundtrip'?" in msg
    (tmp_path / "gone.pages").mkdir()
    with pytest.raises(SweepSpecError, match="gone.pages: not a regular file"):
        parse_sweep({"axes": {"backend": ["lz4"]}, "fixed": {"corpus": "gone.pages"}}, "s.yaml",
                    tmp_path)


def test_an_unknown_engine_mode_is_refused_with_the_sweep() -> None:
    with pytest.raises(SweepSpecError, match=r"s\.yaml: axes\.batching\[1\]: no engine mode "
                                             r"'pag'; did you mean 'page'\?"):
        parse_sweep({"axes": {"backend": ["lz4"], "batching": ["reclaim", "pag"]}}, "s.yaml")
    with pytest.raises(SweepSpecError, match=r"fixed\.batching: no engine mode 'sync'"):
        parse_sweep({"axes": {"backend": ["lz4"]}, "fixed": {"batching": "sync"}}, "s.yaml")


def test_the_kernel_structure_settings_are_checked_with_the_sweep() -> None:
    with pytest.raises(SweepSpecError, match=r"s\.yaml: axes\.folio_pages\[1\]: .*16x"):
        parse_sweep({"axes": {"backend": ["lz4"], "folio_pages": ["1:3,16:1", "16x"]}}, "s.yaml")
    with pytest.raises(SweepSpecError, match=r"fixed\.folio_pages: .*power of two"):
        parse_sweep({"axes": {"backend": ["lz4"]}, "fixed": {"folio_pages": 3}}, "s.yaml")
    with pytest.raises(SweepSpecError, match=r"axes\.reclaim_batch\[0\]: must be a whole number "
                                             r">= 1, got 0"):
        parse_sweep({"axes": {"backend": ["lz4"], "reclaim_batch": [0, 32]}}, "s.yaml")
