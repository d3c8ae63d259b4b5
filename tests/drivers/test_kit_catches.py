"""The conformance kit catches every broken example driver, naming the check (and the page)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hwzswap.errors import ConfigError
from hwzswap.testing import (
    ConformanceError,
    ConformanceReport,
    ParamSet,
    check_backend,
    load_param_sets,
    run_conformance,
)

import broken_drivers as bd

# driver -> (check that must catch it, a fragment of the message)
CAUGHT = {
    bd.ShortDecompress: ("roundtrip", r"page zero: decompress returned 4095 bytes, expected exactly 4096"),
    bd.FlippedDecompress: ("roundtrip", r"page zero: decompress returned wrong bytes \(first difference at byte 100\)"),
    bd.BigCompress: ("roundtrip", r"page zero: compress returned 5000 bytes, not smaller"),
    bd.StrCompress: ("roundtrip", r"page zero: compress returned str, expected bytes-like"),
    bd.ShortCompressBatch: ("batch", r"compress_batch returned 63 items for 64 pages"),
    bd.ShortDecompressBatch: ("batch", r"decompress_batch returned \(\d+, 4096\) uint8 for \d+ items"),
    bd.StuckPoll: ("busy", r"timed out: 4 accepted ops never completed within 1 s"),
    bd.HungDevice: ("roundtrip", r"timed out: did not finish within 1 s, stuck in _hang\(\) at "
                                 r"broken_drivers.py:\d+, in compress\(\)"),
    bd.RefusedNotProcessed: ("busy", r"op 4 was refused \(submit accepted 4 of 64\) but its status is NOT_PROCESSED"),
    bd.PendingZero: ("busy", r"pending\(\) is 0 with 4 ops accepted and 0 polled"),
    bd.PollIgnoresMax: ("poll", r"poll\(max_ops=1\) returned 4 ops"),
    bd.ModeledTimeStuck: ("modeled_time", r"modeled_device_us\(\) did not advance after compress\(\) \(stays at 0 µs\)"),
    bd.GaugesAsString: ("capabilities", r"'gauges' must be a set of counters\(\) key names "
                                        r"\(str\), .*got 'queue_depth'"),
    bd.SyncAsyncDisagree: ("sync_async", r"page \d+: the async path gave \d+ bytes, sync gave \d+ bytes"),
    # input is read-only, as the engine's is: a write (or a writable pin) names the rule
    bd.WritesInput: ("roundtrip", r"page zero: compress wrote into its input \(or asked for a "
                                  r"writable buffer\), which is read-only: compress raised "
                                  r"ValueError: .*read-only.* \(in compress\(\) at "
                                  r"broken_drivers.py:\d+\)\. .*copies first"),
    bd.PinsWritable: ("batch", r"compress_batch wrote into its input .*read-only: compress_batch "
                               r"raised TypeError: underlying buffer is not writable .*"
                               r"from_buffer_copy"),
    # capabilities open_zswap refuses
    bd.TimeoutAsText: ("capabilities", r"capabilities.timeout_ms must be None or a number of "
                                       r"milliseconds in \(0, 86400000\] \(a day\), got '5000' "
                                       r"\(str\)"),
    bd.TimeoutNegative: ("capabilities", r"capabilities.timeout_ms must be .*got -1 \(int\)"),
    bd.MaxBatchBool: ("capabilities", r"capabilities.max_batch must be an int >= 1 or None "
                                      r"\(no limit\), got True \(bool\)"),
    bd.MaxBatchFloat: ("capabilities", r"capabilities.max_batch must be .*got 2.5 \(float\)"),
    # messages that named the wrong thing
    bd.OverlappingBatch: ("batch", r"page 1: compress_batch's item does not decode to its page "
                                   r".*overlap item\(s\) \[0, 2, 3, 4\]'s: are the offsets right"),
    bd.ReusesBuffer: ("batch", r"the result of an earlier compress_batch call changed when it "
                               r"was called again: the driver reuses the buffer it returned"),
    bd.HangsInDefaultLoop: ("batch", r"timed out: did not finish within 1 s, stuck in "
                                     r"decompress\(\) at broken_drivers.py:\d+, in "
                                     r"decompress_batch\(\)"),
    bd.RaisesForeign: ("roundtrip", r"page zero: decompress raised ValueError: boom \(in "
                                    r"decompress\(\) at broken_drivers.py:\d+\)"),
    bd.CloseRaises: ("close", r"close raised RuntimeError: close failed: device busy \(in "
                              r"close\(\) at broken_drivers.py:\d+\)"),
}


@pytest.mark.parametrize("cls", list(CAUGHT), ids=lambda c: c.name)
def test_kit_catches_broken_driver(cls, register) -> None:
    register(cls)
    check, fragment = CAUGHT[cls]
    with pytest.raises(ConformanceError) as info:
        run_conformance(cls.name, timeout_s=1.0)
    err = info.value
    assert err.backend == cls.name and err.check == check, str(err)
    assert str(err).startswith(f"[{cls.name}] {check}: "), str(err)
    assert re.search(fragment, str(err)), str(err)


def test_a_driver_that_honours_its_max_batch_passes(register) -> None:
    """A correct device that refuses more than its ``max_batch`` (8) pages a call passes: the
    kit splits its batches as the engine does ("batch of 64 > max_batch" failed it)."""
    register(bd.MaxBatch8)
    report = check_backend(bd.MaxBatch8.name)
    assert "batch" in report.checks and "sync_async" in report.checks


def test_a_close_that_raises_after_a_failure_keeps_the_first_failure(register) -> None:
    """A driver whose checks fail and whose close() raises too: the failure is reported, not
    the close (nor a bare RuntimeError)."""

    class FailsAndCloseRaises(bd.CloseRaises):
        name = "broken-fails-and-close-raises"

        def decompress(self, data):
            return b"\0" * 4095

    register(FailsAndCloseRaises)
    with pytest.raises(ConformanceError, match=r"roundtrip: page zero: decompress returned 4095"):
        check_backend(FailsAndCloseRaises.name)


def test_good_drivers_pass_and_report(register) -> None:
    register(bd.GoodDriver, bd.FaultyDriver)
    report = check_backend("test-good")
    assert isinstance(report, ConformanceReport) and report.faults is None
    assert list(report.checks)[:3] == ["capabilities", "roundtrip", "busy"]
    faulty = check_backend("test-faulty", queue_depth=2)
    assert faulty.faults is not None and faulty.faults["errors"] > 0
    assert faulty.faults["fault_params"]["fault_rate"] == 0.25
    assert faulty.faults["errors_by_path"]["async_compress"] > 0
    # an instance works too, and one built with faults on runs the plain checks on a clean twin
    inst = bd.FaultyDriver(fault_rate=0.5, fault_seed=3)
    assert check_backend(inst).faults["fault_params"]["fault_rate"] == 0.5


def test_constructor_exception_names_the_check(register) -> None:
    register(bd.InitRaises)
    with pytest.raises(ConformanceError, match=r"^\[broken-init-raises\] construct: .*"
                       r"RuntimeError: firmware image not found"):
        check_backend("broken-init-raises")


def test_constructor_parameter_error_names_file_and_key(register, tmp_path: Path) -> None:
    register(bd.InitRejectsValue)
    f = tmp_path / "params.yaml"
    f.write_text("params:\n  - {level: 3}\n  - {level: 7}\n")
    with pytest.raises(ConformanceError) as info:
        run_conformance("broken-init-rejects", params_yaml=f)
    assert str(info.value).startswith(
        f"[broken-init-rejects] construct: {f}: params[1].level: ")
    assert "not supported by this device" in str(info.value)
    # in a hwzswap config file the key is the config's dotted key
    cfg = tmp_path / "zswap.yaml"
    cfg.write_text("zswap:\n  compressor:\n    name: broken-init-rejects\n    params: {level: 9}\n")
    with pytest.raises(ConformanceError, match=re.escape(f"{cfg}: zswap.compressor.params.level: ")):
        run_conformance("broken-init-rejects", params_yaml=cfg)


def test_faults_lost_ops_are_caught(register) -> None:
    register(bd.FaultyLosesOps)
    with pytest.raises(ConformanceError, match=r"^\[broken-faulty-loses-ops\] faults: timed out: "
                       r"\d+ accepted ops never completed"):
        run_conformance("broken-faulty-loses-ops", timeout_s=1.0)


def test_non_default_parameters_from_yaml(register, tmp_path: Path) -> None:
    register(bd.FailsNonDefault)
    assert check_backend("broken-nondefault").checks  # the defaults pass
    f = tmp_path / "vendor.yaml"
    f.write_text("- {}\n- {strategy: small}\n")
    with pytest.raises(ConformanceError) as info:
        run_conformance("broken-nondefault", params_yaml=f)
    assert re.match(r"\[broken-nondefault\] roundtrip: page same_filled: decompress returned "
                    r"wrong bytes \(first difference at byte 0\) \[parameters "
                    r"\{'strategy': 'small'\} from .*vendor.yaml: \[1\]\]$", str(info.value)), str(info.value)
    # the first set passed before the second failed: one report per set when all pass
    f.write_text("- {}\n- {strategy: fast}\n")
    reports = run_conformance("broken-nondefault", params_yaml=f)
    assert [r.source for r in reports] == [f"{f}: [0]", f"{f}: [1]"]


def test_param_file_errors_name_the_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("params: [1, 2]\n")
    with pytest.raises(ConfigError, match=re.escape(f"{f}: params[0]: a parameter set must be a mapping")):
        load_param_sets(f)
    with pytest.raises(ConfigError, match="cannot read"):
        load_param_sets(tmp_path / "missing.yaml")
    f.write_text("params: {level: 2}\nfault_params: {fault_rate: 0.5}\n")
    sets, faults = load_param_sets(f)
    assert sets[0].params == {"level": 2} and faults == {"fault_rate": 0.5}


def test_conformance_tests_factory(register, tmp_path: Path) -> None:
    """The vendor's one line gives a pytest function parametrized by the YAML's sets."""
    from hwzswap.testing import conformance_tests

    register(bd.FailsNonDefault)
    f = tmp_path / "p.yaml"
    f.write_text("- {strategy: fast}\n- {strategy: small}\n")
    test = conformance_tests("broken-nondefault", params_yaml=f, timeout_s=5)
    (mark,) = [m for m in test.pytestmark if m.name == "parametrize"]
    sets = mark.args[1]
    assert mark.kwargs["ids"] == ["strategy=fast", "strategy=small"]
    test(sets[0])
    with pytest.raises(ConformanceError, match=r"roundtrip: .*strategy': 'small'"):
        test(sets[1])
    # a class not registered anywhere (a driver before it is installed) works too
    assert conformance_tests(bd.GoodDriver)(ParamSet({})) is None


def test_timeout_names_the_call_and_never_hangs(register) -> None:
    import time

    register(bd.HungDevice)
    t0 = time.monotonic()
    with pytest.raises(ConformanceError, match=r"stuck in _hang\(\) at broken_drivers.py:\d+, in compress\(\)"):
        run_conformance("broken-hung-device", timeout_s=0.5)
    assert time.monotonic() - t0 < 10
