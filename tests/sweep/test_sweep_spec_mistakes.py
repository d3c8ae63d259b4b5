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
                                             r"1\.\.1048576, got 0"):
        parse_sweep({"axes": {"backend": ["lz4"], "reclaim_batch": [0, 32]}}, "s.yaml")


def test_a_misspelt_config_key_is_refused_with_the_sweep() -> None:
    doc = {"axes": {"backend": ["lz4"], "zswap.max_pool_percnt": [10, 20]},
           "fixed": {"zswap.total_ram_mb": 64, "swap.modle": "ssd", "pool.type": "zbud",
                     "zswap.compressor.params.level": 3, "swap.model.x": 1}}
    with pytest.raises(SweepSpecError) as exc:
        parse_sweep(doc, "s.yaml")
    msg = str(exc.value)
    assert msg.startswith("5 problems in s.yaml:")
    assert ("s.yaml: axes.zswap.max_pool_percnt: unknown config key; did you mean "
            "'zswap.max_pool_percent'? (zswap keys: accept_threshold_percent,") in msg
    assert "fixed.zswap.total_ram_mb: unknown config key; did you mean 'memory.total_ram_mb'?" in msg
    assert "fixed.swap.modle: unknown config key; did you mean 'swap.model'?" in msg
    assert "fixed.zswap.compressor.params.level: the compressor's parameters are the settings " \
           "params.<name>: write 'params.level'" in msg
    assert "fixed.swap.model.x: not a config key: the swap keys are swap.<key>, one level" in msg
    assert "pool.type" not in msg  # a real key
    with pytest.raises(SweepSpecError, match=r"axes\.zswap\.batchng: unknown config key; did "
                                             r"you mean 'batching'\?"):
        parse_sweep({"axes": {"backend": ["lz4"], "zswap.batchng": ["page"]}}, "s.yaml")


def test_every_config_key_is_a_setting() -> None:
    from dataclasses import fields

    from hwzswap.config import SwapConfig, ZswapSettings
    from hwzswap.sweep.spec import config_keys, setting_problem

    keys = config_keys()
    assert set(keys["zswap"]) == set(ZswapSettings.CHECKS)
    assert set(keys["swap"]) == {f.name for f in fields(SwapConfig)}
    for section, names in keys.items():
        for key in names:
            if f"{section}.{key}" != "zswap.batching":  # the setting 'batching'
                assert setting_problem(f"{section}.{key}") is None, (section, key)


def test_an_unknown_backend_does_not_hide_a_misspelt_param() -> None:
    with pytest.raises(SweepSpecError) as exc:
        parse_sweep({"axes": {"backend": ["lz4", "lz5"], "params.acceleraton": [1, 2]}},
                    "s.yaml")
    msg = str(exc.value)
    assert msg.startswith("2 problems in s.yaml:")
    assert "axes.backend[1]: no backend named 'lz5'" in msg
    assert ("axes.params.acceleraton: no backend of this sweep takes a parameter 'acceleraton'; "
            "did you mean 'acceleration'? (lz4: acceleration)") in msg
    # a parameter some registered backend takes may be right once the name is fixed (lz5 may
    # be lz4, which takes it): only the backend is reported
    with pytest.raises(SweepSpecError) as exc:
        parse_sweep({"axes": {"backend": ["zstd", "lz5"], "params.acceleration": [1, 2]}},
                    "s.yaml")
    assert "no backend named 'lz5'" in str(exc.value) and "params" not in str(exc.value)
    with pytest.raises(SweepSpecError, match=r"axes\.params\.levle: no registered backend takes "
                                             r"a parameter 'levle'; did you mean 'level'\?"):
        parse_sweep({"axes": {"backend": ["lz5"], "params.levle": [1, 2]}}, "s.yaml")


def test_a_backend_name_yaml_read_as_a_number_gets_the_quoting_hint(tmp_path) -> None:
    from hwzswap.sweep.spec import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text("axes: {backend: [842, lz4]}\n")  # YAML: 842 is an int
    with pytest.raises(SweepSpecError) as exc:
        load_sweep(path)
    assert str(exc.value).endswith('s.yaml: axes.backend[0]: must be a non-empty string, got '
                                   '842; YAML read it as a number: write it quoted: "842"')
    path.write_text('axes: {backend: ["842", lz4]}\nexclude: [{backend: 842}]\n'
                    'resources: {842: {nx842: 1}}\n')
    with pytest.raises(SweepSpecError) as exc:
        load_sweep(path)
    msg = str(exc.value)
    assert msg.startswith("2 problems in")
    assert 'exclude[0].backend: 842 is not one of the axis\'s values, so this never matches; ' \
           'YAML read it as a number: write it quoted: "842"' in msg
    assert 'resources.842: no backend named 842' in msg and 'quoted: "842"' in msg
    # a number that names no backend gets no such hint
    with pytest.raises(SweepSpecError) as exc:
        parse_sweep({"axes": {"backend": [7]}}, "s.yaml")
    assert str(exc.value) == "s.yaml: axes.backend[0]: must be a non-empty string, got 7"
    path.write_text('axes: {backend: ["842", lz4]}\n')
    assert load_sweep(path).axes["backend"] == ["842", "lz4"]
