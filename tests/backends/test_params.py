"""A declared parameter's check (``Param.check``): finite floats only, YAML booleans read as
on/off where the choices hold them, and the messages naming the backend and the parameter --
for every built-in backend's parameters and through a real YAML config."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwzswap.backends import Param
from hwzswap.backends.registry import backend_names, get_backend_class
from hwzswap.config import load_config
from hwzswap.errors import ConfigError, InvalidParameterError

NON_FINITE = (math.nan, math.inf, -math.inf)


@pytest.mark.parametrize("spec", [
    Param(float, 1.0),
    Param(float, 1.0, min=0.0),
    Param(float, 1.0, max=10.0),
    Param(float, 1.0, min=0.0, max=10.0),
    Param(float, None, min=0.0, nullable=True),
], ids=["unbounded", "min-only", "max-only", "range", "nullable"])
@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
def test_a_float_parameter_refuses_nan_and_infinities_naming_it(spec: Param, value: float) -> None:
    # NaN passed every comparison and inf a min-only bound: 842-nx then modelled 0.0 µs
    with pytest.raises(InvalidParameterError,
                       match=r"backend 'x': parameter 'k' must be a finite number; got "
                             r"(nan|inf|-inf)"):
        spec.check("x", "k", value)


def test_an_integer_too_large_for_a_float_is_refused_not_an_overflow() -> None:
    with pytest.raises(InvalidParameterError,
                       match=r"parameter 'k' must be a finite number; got an integer of 1329 "
                             r"bits, too large for a float"):
        Param(float, 1.0, min=0.0).check("x", "k", 10**400)
    assert Param(float, 1.0, min=0.0).check("x", "k", 10**300) == 1e300


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_a_float_is_accepted_exactly_when_finite_and_in_range(value: float) -> None:
    spec = Param(float, 1.0, min=-5.0, max=1e6)
    ok = math.isfinite(value) and -5.0 <= value <= 1e6
    if ok:
        assert spec.check("x", "k", value) == value
    else:
        with pytest.raises(InvalidParameterError, match="parameter 'k'"):
            spec.check("x", "k", value)


def test_yaml_booleans_are_read_as_on_and_off_where_the_choices_hold_them() -> None:
    onoff = Param(str, "auto", choices=("auto", "on", "off"))
    assert onoff.check("x", "k", True) == "on"
    assert onoff.check("x", "k", False) == "off"
    assert onoff.check("x", "k", "off") == "off"
    only_off = Param(str, "auto", choices=("auto", "off"))
    assert only_off.check("x", "k", False) == "off"
    # 'on' is not a choice: refused, with how to write a string in YAML
    with pytest.raises(InvalidParameterError,
                       match=r"parameter 'k' must be str, got a bool True \(YAML reads an "
                             r"unquoted on/off/yes/no as true/false: quote the value\)"):
        only_off.check("x", "k", True)
    with pytest.raises(InvalidParameterError, match="got a bool False .*quote the value"):
        Param(str, "auto").check("x", "k", False)
    # not a string parameter: a bool stays refused, without the YAML hint
    with pytest.raises(InvalidParameterError, match=r"must be int, got a bool True$"):
        Param(int, 1).check("x", "k", True)


def test_a_long_wrong_value_is_shown_as_a_bounded_excerpt() -> None:
    with pytest.raises(InvalidParameterError) as info:
        Param(int, 1).check("x", "k", "9" * 100_000)
    assert len(str(info.value)) < 300 and "100000 characters" in str(info.value)
    with pytest.raises(InvalidParameterError,
                       match=r"parameter 'k' must be <= 9; got <an integer of 1329 bits>$"):
        Param(int, 1, max=9).check("x", "k", 10**400)
    with pytest.raises(InvalidParameterError, match=r"must be one of 'a', 'b'; got 'cc.*"
                                                    r"\(5000 characters\)$"):
        Param(str, "a", choices=("a", "b")).check("x", "k", "c" * 5000)


def _builtin_float_params() -> list[tuple[str, str]]:
    out = []
    for name in backend_names():  # built-ins and the package's own entry points (842-nx)
        cls = get_backend_class(name)
        out += [(name, key) for key, p in cls.PARAMS.items() if p.type is float]
    return out


def test_every_builtin_float_parameter_refuses_non_finite_values() -> None:
    """No built-in parameter means anything by NaN or an infinity (there is no 'inf =
    unlimited' parameter), so each refuses all three."""
    found = _builtin_float_params()
    assert ("842-nx", "comp_gbps") in found and ("842-nx", "comp_setup_us") in found
    for name, key in found:
        cls = get_backend_class(name)
        for value in NON_FINITE:
            with pytest.raises(InvalidParameterError,
                               match=rf"backend '{name}': parameter '{key}' must be a finite"):
                cls.validate_params({key: value})


@pytest.mark.parametrize("text,key", [
    ("comp_gbps: .nan", "comp_gbps"),
    ("comp_setup_us: .inf", "comp_setup_us"),
    ("timeout_ms: .inf", "timeout_ms"),
    ("decomp_gbps: -.inf", "decomp_gbps"),
])
def test_a_non_finite_842_nx_parameter_in_a_yaml_file_names_the_file_and_key(
        tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "nx.yaml"
    cfg.write_text(f"zswap: {{compressor: {{name: 842-nx, params: {{{text}}}}}}}\n")
    with pytest.raises(ConfigError,
                       match=rf"nx\.yaml: zswap\.compressor\.params\.{key}: backend '842-nx': "
                             rf"parameter '{key}' must be a finite number"):
        load_config(cfg)


def test_unquoted_on_off_for_lz4_opencl_in_a_yaml_file_are_the_words(tmp_path: Path) -> None:
    cfg = tmp_path / "zc.yaml"
    cfg.write_text("zswap:\n  compressor:\n    name: lz4-opencl\n"
                   "    params: {zero_copy: on, pinned: off, tune: off}\n")
    params = load_config(cfg).zswap.compressor.params
    assert (params["zero_copy"], params["pinned"], params["tune"]) == ("on", "off", "off")
    assert load_config(load_config(cfg).to_dict()).zswap.compressor.params == params
    cfg.write_text("zswap: {compressor: {name: lz4-opencl, params: {tune: yes}}}\n")
    with pytest.raises(ConfigError, match=r"zc\.yaml: zswap\.compressor\.params\.tune: .*must "
                                          r"be str, got a bool True .*quote the value"):
        load_config(cfg)
