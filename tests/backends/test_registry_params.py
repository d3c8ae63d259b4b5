"""Registration for a while, constructor failures, and each parameter's declaration in
`hwzswap backends --json`."""

from __future__ import annotations

import json
from typing import Any

import pytest

import hwzswap
from hwzswap.backends import Backend, Param
from hwzswap.backends.registry import (
    available_backends,
    param_spec,
    register_backend,
    registered,
    unregister_backend,
)
from hwzswap.cli import main
from hwzswap.errors import BackendError, InvalidParameterError, UnknownBackendError


class _Lz4Alias(Backend):
    name = "test-alias"
    PARAMS = {
        "mode": Param(str, "a", choices=("a", "b"), doc="which mode"),
        "depth": Param(int, 4, min=1, max=64, doc="queue depth"),
        "limit": Param(float, None, min=0.0, nullable=True, doc="optional limit"),
    }

    def compress(self, page: Any) -> bytes | None:
        return hwzswap.get_backend("lz4").compress(page)

    def decompress(self, data: Any) -> bytes:
        return hwzswap.get_backend("lz4").decompress(data)


class _Exploding(_Lz4Alias):
    name = "test-exploding"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        raise OSError("/dev/accel0: no such device")


def test_registered_for_a_block_then_gone() -> None:
    with registered(_Lz4Alias):
        assert isinstance(hwzswap.get_backend("test-alias", depth=2), _Lz4Alias)
    with pytest.raises(UnknownBackendError):
        hwzswap.get_backend("test-alias")
    register_backend(_Lz4Alias)
    unregister_backend("test-alias")
    with pytest.raises(UnknownBackendError, match="registered at run time"):
        unregister_backend("test-alias")


def test_constructor_exception_becomes_a_backend_error() -> None:
    with registered(_Exploding):
        with pytest.raises(BackendError, match=r"backend 'test-exploding' failed to start: "
                           r"_Exploding\(\) raised OSError: /dev/accel0: no such device"):
            hwzswap.get_backend("test-exploding")
        # parameter errors stay parameter errors
        with pytest.raises(InvalidParameterError, match="'depth' must be <= 64"):
            hwzswap.get_backend("test-exploding", depth=65)
        row = {r.name: r for r in available_backends()}["test-exploding"]
        assert row.available is False and "no such device" in row.reason


def test_param_spec() -> None:
    assert param_spec("mode", _Lz4Alias.PARAMS["mode"]) == {
        "name": "mode", "type": "str", "default": "a", "min": None, "max": None,
        "choices": ["a", "b"], "nullable": False, "doc": "which mode"}
    spec = param_spec("limit", _Lz4Alias.PARAMS["limit"])
    assert spec["type"] == "float" and spec["nullable"] and spec["min"] == 0.0


def test_backends_json_lists_each_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    with registered(_Lz4Alias):
        assert main(["backends", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    params = {p["name"]: p for p in rows["test-alias"]["parameters"]}
    assert params["depth"] == {"name": "depth", "type": "int", "default": 4, "min": 1, "max": 64,
                               "choices": None, "nullable": False, "doc": "queue depth"}
    assert rows["test-alias"]["params"] == {"mode": "a", "depth": 4, "limit": None}
    nx = {p["name"]: p for p in rows["842-nx"]["parameters"]}
    assert nx["clock"]["choices"] == ["virtual", "host", "realtime"] and nx["clock"]["doc"]
    assert nx["fault_rate"]["min"] == 0.0 and nx["fault_rate"]["max"] == 1.0
    assert rows["lz4"]["parameters"][0]["name"] == "acceleration"
