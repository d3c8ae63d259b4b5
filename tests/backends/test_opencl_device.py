"""Choosing the OpenCL device for ``lz4-opencl``, and being unavailable cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources

import pytest

from hwzswap import get_backend
from hwzswap.backends.opencl import Lz4OpenCLBackend
from hwzswap.backends.opencl.device import (
    DeviceQuery,
    device_type_name,
    list_devices,
    select_device,
)
from hwzswap.errors import BackendUnavailableError, InvalidParameterError


@pytest.fixture(scope="module")
def pairs():
    found = list_devices()
    assert found, "no OpenCL device: CI installs PoCL's CPU device (pocl-binary-distribution)"
    return found


def _same(a, b) -> bool:
    return a[0] == b[0] and a[1] == b[1]


def test_auto_prefers_a_gpu_then_any(pairs):
    chosen = select_device(DeviceQuery(), environ={})
    kinds = [device_type_name(d) for _, d in pairs]
    if "gpu" in kinds:
        assert device_type_name(chosen[1]) == "gpu"
    else:
        assert chosen in pairs or any(_same(chosen, p) for p in pairs)


def test_select_by_name_substring_any_case(pairs):
    platform, device = pairs[-1]
    name = device.name.strip()
    middle = name[len(name) // 4 : len(name) // 4 + 6].swapcase()
    got = select_device(DeviceQuery(device=middle), environ={})
    assert middle.lower() in got[1].name.lower()
    b = get_backend("lz4-opencl", device=name, tune="off")  # selection only: nothing is built
    assert b.device_name == name and b.capabilities.device == f"opencl:{name}"


def test_select_by_type_and_platform(pairs):
    platform, device = pairs[0]
    kind = device_type_name(device)
    got = select_device(DeviceQuery(device_type=kind, platform=platform.name[:8].upper()), environ={})
    assert device_type_name(got[1]) == kind
    absent = {"gpu", "cpu", "accelerator"} - {device_type_name(d) for _, d in pairs}
    for t in absent:
        with pytest.raises(BackendUnavailableError, match=f"device_type='{t}'"):
            select_device(DeviceQuery(device_type=t), environ={})


def test_nonexistent_device_is_a_clear_error(pairs):
    """A device named explicitly that is not here is an error of that parameter (not an
    unavailable backend, which a bench over every backend would skip): the message names the
    parameter and lists what is here, so the user can pick."""
    with pytest.raises(InvalidParameterError) as info:
        get_backend("lz4-opencl", device="no-such-device-xyz")
    msg = str(info.value)
    assert msg.startswith("lz4-opencl: parameter 'device' ('no-such-device-xyz') names a "
                          "device that is not here")
    assert "no OpenCL device matches device='no-such-device-xyz'" in msg
    for _, device in pairs:
        assert device.name.strip() in msg
    with pytest.raises(InvalidParameterError, match="parameter 'platform' .*platform='nowhere'"):
        get_backend("lz4-opencl", platform="nowhere")
    kinds = {device_type_name(d) for _, d in pairs}
    missing = next(t for t in ("gpu", "accelerator", "cpu") if t not in kinds)
    present = device_type_name(pairs[0][1])
    with pytest.raises(InvalidParameterError,
                       match=f"^lz4-opencl: parameter 'device_type' \\('{missing}'\\) names"):
        get_backend("lz4-opencl", device_type=missing)
    # two parameters that each match something but not together: the one that fails alone
    # is named; when each alone matches, both are
    name = pairs[0][1].name.strip()
    with pytest.raises(InvalidParameterError) as info:
        get_backend("lz4-opencl", device=name, device_type=missing)
    assert "parameter 'device_type'" in str(info.value) and "parameter 'device'" not in str(
        info.value)
    other = next((t for t in kinds if t != present), None)
    if other is not None:  # a machine with two kinds of device
        with pytest.raises(InvalidParameterError, match="parameter 'device' .* and parameter "
                                                        "'device_type'"):
            get_backend("lz4-opencl", device=name, device_type=other)


def test_explicit_device_fails_the_bench_and_default_unavailable_is_skipped(tmp_path):
    """``hwzswap bench``: a config naming a device that is not here is a FAILED row naming the
    file and the key, exit 1 (a GPU check cannot pass without its GPU row); the backend with
    its default parameters on a machine where it cannot run (here: PYOPENCL_CTX names no
    device) is skipped, exit 0, as every unavailable backend."""
    kinds = {device_type_name(d) for _, d in list_devices()}
    missing = next(t for t in ("gpu", "accelerator", "cpu") if t not in kinds)
    cfg = tmp_path / "want.yaml"
    cfg.write_text("zswap:\n  compressor:\n    name: lz4-opencl\n"
                   f"    params: {{device_type: {missing}, tune: 'off'}}\n")
    base = [sys.executable, "-m", "hwzswap", "bench", "--backends", "lz4-opencl", "--pages",
            "32", "--batching", "reclaim", "--quiet", "--json"]
    env = dict(os.environ)
    env.pop("PYOPENCL_CTX", None)
    r = subprocess.run([*base, str(tmp_path / "a.json"), "--config", str(cfg)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 1, r.stderr
    doc = json.loads((tmp_path / "a.json").read_text())
    (failed,) = doc["failed"]
    assert failed["phase"] == "parameters" and not doc["skipped"] and not doc["results"]
    assert f"{cfg}: zswap.compressor.params.device_type: lz4-opencl: parameter 'device_type'" \
        in failed["error"]
    assert "FAILED lz4-opencl" in r.stderr
    env["PYOPENCL_CTX"] = "0:no-such-device"
    r = subprocess.run([*base, str(tmp_path / "b.json")], capture_output=True, text=True,
                       timeout=120, env=env)
    # skipped, not failed; as it was the only backend asked for, nothing was measured: exit 1
    assert r.returncode == 1 and "nothing was measured" in r.stderr, r.stderr
    doc = json.loads((tmp_path / "b.json").read_text())
    assert not doc["failed"] and [s["backend"] for s in doc["skipped"]] == ["lz4-opencl"]
    assert "PYOPENCL_CTX" in doc["skipped"][0]["reason"]


def test_bad_parameter_values():
    with pytest.raises(InvalidParameterError, match="device_type"):
        get_backend("lz4-opencl", device_type="fpga")
    with pytest.raises(InvalidParameterError, match="batch_size"):
        get_backend("lz4-opencl", batch_size=-1)
    with pytest.raises(InvalidParameterError, match="hash_log"):
        get_backend("lz4-opencl", hash_log=9)
    with pytest.raises(InvalidParameterError, match="decompress_layout"):
        get_backend("lz4-opencl", decompress_layout="warp")
    with pytest.raises(InvalidParameterError, match="tune"):
        get_backend("lz4-opencl", tune="sometimes")
    with pytest.raises(InvalidParameterError, match="layout"):
        get_backend("lz4-opencl", layout="warp")
    with pytest.raises(InvalidParameterError, match="group width"):
        get_backend("lz4-opencl", layout="group", local_size=3)


def test_pyopencl_ctx_environment_variable(pairs):
    assert _same(select_device(DeviceQuery(), environ={"PYOPENCL_CTX": "0:0"}), pairs[0])
    assert _same(select_device(DeviceQuery(), environ={"PYOPENCL_CTX": "0"}), pairs[0])
    platform, device = pairs[0]
    by_name = f"{platform.name[:6].lower()}:{device.name.strip()[-5:]}"
    assert _same(select_device(DeviceQuery(), environ={"PYOPENCL_CTX": by_name}), pairs[0])
    with pytest.raises(BackendUnavailableError, match="PYOPENCL_CTX: platform index 99"):
        select_device(DeviceQuery(), environ={"PYOPENCL_CTX": "99"})
    with pytest.raises(BackendUnavailableError, match="no device name contains 'zzz'"):
        select_device(DeviceQuery(), environ={"PYOPENCL_CTX": "0:zzz"})
    # explicit parameters win over the environment
    name = device.name.strip()
    got = select_device(DeviceQuery(device=name), environ={"PYOPENCL_CTX": "99"})
    assert got[1].name.strip() == name


def test_availability_follows_the_environment(monkeypatch):
    assert Lz4OpenCLBackend.availability() == (True, None)
    monkeypatch.setenv("PYOPENCL_CTX", "0:no-such-device")
    ok, reason = Lz4OpenCLBackend.availability()
    assert not ok and "PYOPENCL_CTX" in reason


def test_unavailable_without_pyopencl(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyopencl", None)  # makes `import pyopencl` fail for real
    ok, reason = Lz4OpenCLBackend.availability()
    assert not ok and "pyopencl is not installed" in reason
    with pytest.raises(BackendUnavailableError, match="pyopencl is not installed"):
        get_backend("lz4-opencl")


def test_listed_as_unavailable_with_no_opencl_platform():
    """An ICD loader that finds no vendor: `hwzswap backends` still works and says why."""
    env = dict(os.environ, OCL_ICD_VENDORS="/nonexistent-hwzswap-test", PYOPENCL_CTX="")
    out = subprocess.run(
        [sys.executable, "-m", "hwzswap", "backends", "--json"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    row = rows["lz4-opencl"]
    assert row["available"] is False
    assert "no OpenCL platform" in row["reason"] and "pip install" in row["reason"]
    assert rows["lz4"]["available"] is True


def test_listed_with_its_device_when_available(pairs):
    out = subprocess.run(
        [sys.executable, "-m", "hwzswap", "backends", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    row = {r["name"]: r for r in json.loads(out.stdout)}["lz4-opencl"]
    assert row["available"] is True
    assert row["capabilities"]["device"].startswith("opencl:")
    assert row["time_basis"] == "measured"


def test_kernel_sources_are_package_data():
    kernels = resources.files("hwzswap.backends.opencl").joinpath("kernels")
    names = {p.name for p in kernels.iterdir()}
    assert {"lz4_compress.cl", "lz4_decompress.cl"} <= names
