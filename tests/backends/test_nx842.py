"""The ``842-nx`` driver: conformance, the kernel's failure policy, BUSY, counters, registration."""

from __future__ import annotations

from importlib.metadata import entry_points

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwzswap
from hwzswap.backends.contract import PAGE_SIZE, CompOp, OpStatus, run_ops
from hwzswap.backends.nx842 import CC, HANG
from hwzswap.backends.nx842.driver import Nx842Backend
from hwzswap.backends.sw842 import codec
from hwzswap.backends.sw842.backend import Sw842Backend
from hwzswap.errors import CorruptDataError, DeviceError, InvalidParameterError
from hwzswap.testing import check_backend, real_memory_mix, sample_pages

PAGES = sample_pages()
SW = Sw842Backend()
COMPRESSIBLE = [k for k in PAGES if k != "random"]


def nx(**params: object) -> Nx842Backend:
    return Nx842Backend(**params)


def sw_stream(name: str) -> bytes:
    out = SW.compress(PAGES[name])
    assert out is not None
    return out


def short_data_page_stream() -> bytes:
    """A valid 842 stream of one zero page that uses SHORT_DATA (which only software accepts):
    511 x ZEROS, SHORT_DATA(7 bytes), SHORT_DATA(1 byte), END, CRC 0; padded to 8 bytes."""
    fields = [(0x1C, 5)] * 511 + [(0x1D, 5), (7, 3)] + [(0, 8)] * 7
    fields += [(0x1D, 5), (1, 3), (0, 8), (0x1E, 5), (0, 32)]
    bits = "".join(format(v, f"0{w}b") for v, w in fields)
    bits += "0" * (-len(bits) % 64)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


# -- conformance and registration ----------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"queue_depth": 1, "engines": 1},
        {"max_sync_size": 65536, "engines": 4, "queue_depth": 3},
    ],
    ids=["defaults", "depth1", "maxsync64k"],
)
def test_conformance(params: dict[str, object]) -> None:
    check_backend("842-nx", **params)


def test_registered_through_the_entry_point_group() -> None:
    eps = {ep.name: ep.value for ep in entry_points(group="hwzswap.backends")}
    assert eps["842-nx"] == "hwzswap.backends.nx842.driver:Nx842Backend"
    rows = {r.name: r for r in hwzswap.available_backends()}
    row = rows["842-nx"]
    assert row.available, row.reason
    assert row.source.startswith("entry-point")
    assert row.capabilities["device"] == "nx842-emulated"
    assert row.capabilities["time_basis"] == "modeled"
    assert row.capabilities["asynchronous"] and row.capabilities["batch"]
    assert isinstance(hwzswap.get_backend("842-nx"), Nx842Backend)


def test_parameters_are_validated() -> None:
    with pytest.raises(InvalidParameterError, match="multiple of 8"):
        nx(max_sync_size=4100)
    with pytest.raises(InvalidParameterError, match="max_sync_size"):
        nx(max_sync_size=2048)  # below 4096 the pSeries driver disables the device
    with pytest.raises(InvalidParameterError, match="clock"):
        nx(clock="wall")
    with pytest.raises(InvalidParameterError, match="fault_cc"):
        nx(fault_cc=0)
    with pytest.raises(InvalidParameterError, match="queue_depth"):
        nx(queue_depth=0)
    b = nx(engines=3, comp_gbps=8, clock="virtual")
    assert b.get_config()["comp_gbps"] == 8.0 and b.get_config()["engines"] == 3
    assert "3 engines" in b.describe()


# -- the stream is real, hardware-compatible 842 --------------------------------------------


def test_output_is_the_software_strict_stream_and_the_842_backend_decodes_it() -> None:
    b = nx()
    for name in COMPRESSIBLE:
        page = PAGES[name]
        out = b.compress(page)
        assert out is not None
        assert out == codec.compress(page.tobytes(), strict=True) == SW.compress(page)
        assert SW.decompress(out) == page.tobytes()


def test_software_streams_decode_on_the_engine_without_fallback() -> None:
    b = nx()
    for name in COMPRESSIBLE:
        assert b.decompress(sw_stream(name)) == PAGES[name].tobytes()
    c = b.counters()
    assert c["swdecomp"] == 0 and c["decomp_complete"] == len(COMPRESSIBLE)


def test_real_pages_roundtrip_through_batch_and_sync() -> None:
    pages = real_memory_mix(48, seed=9)
    b = nx(queue_depth=4)
    items = b.compress_batch(pages)
    for page, item in zip(pages, items, strict=True):
        assert (item is None) == (b.compress(page) is None)
    kept = [i for i, it in enumerate(items) if it is not None]
    assert kept
    np.testing.assert_array_equal(b.decompress_batch([items[i] for i in kept]), pages[kept])


# -- failure policy: compression errors are reported ------------------------------------------


def test_incompressible_page_cc13_with_the_default_4k_limit() -> None:
    b = nx()
    assert b.compress(PAGES["random"]) is None
    c = b.counters()
    assert c["completion_codes"] == {"NOSPC": 1}
    assert c["comp_failed"] == 1 and c["comp_complete"] == 0


def test_incompressible_page_cc64_with_a_larger_limit() -> None:
    b = nx(max_sync_size=65536)  # target = zswap's two-page buffer: the output fits
    assert b.compress(PAGES["random"]) is None
    (op,) = run_ops(b, [CompOp.compress(PAGES["random"])])
    assert op.status is OpStatus.INCOMPRESSIBLE and op.dst is None
    c = b.counters()
    assert c["completion_codes"] == {"TPBC_GT_SPBC": 2}
    assert c["comp_complete"] == 2 and c["comp_failed"] == 0


@pytest.mark.parametrize("cc", [CC.INTERNAL, CC.HW_EXPIRED_TIMER, CC.CRC_MISMATCH])
def test_compress_engine_error_raises_and_async_gets_device_error(cc: CC) -> None:
    b = nx()
    b.inject(cc, "compress")
    with pytest.raises(DeviceError, match=rf"CC {int(cc)} {cc.name}.*store is rejected"):
        b.compress(PAGES["text"])
    b.inject(cc, "compress")
    ops = run_ops(b, [CompOp.compress(PAGES["text"]), CompOp.compress(PAGES["heap_like"])])
    assert ops[0].status is OpStatus.DEVICE_ERROR and cc.name in (ops[0].error or "")
    assert ops[1].status is OpStatus.SUCCESS  # only the faulted request fails
    c = b.counters()
    assert c["comp_failed"] == 2 and c["comp_complete"] == 1
    assert c["completion_codes"][cc.name] == 2 and c["swdecomp"] == 0


def test_compress_timeout_raises() -> None:
    b = nx(timeout_ms=3.0)
    b.inject(HANG, "compress")
    before = b.modeled_device_us()
    with pytest.raises(DeviceError, match="did not complete within 3 ms"):
        b.compress(PAGES["text"])
    c = b.counters()
    assert c["timeouts"] == 1 and c["comp_failed"] == 1
    assert b.modeled_device_us() - before == pytest.approx(3000.0)  # the engine was held
    assert b.compress(PAGES["text"]) is not None  # the slot came back


def test_compress_batch_reports_failed_pages_after_finishing_the_rest() -> None:
    """A page that fails on the engine is that item's DeviceError (the per-item rule); the
    other pages complete."""
    b = nx(queue_depth=2)
    batch = np.stack([PAGES["text"]] * 6)
    b.inject(CC.ABORT, "compress")
    out = b.compress_batch(batch)
    assert isinstance(out[0], DeviceError) and "ABORT" in str(out[0])
    assert all(isinstance(x, bytes) for x in out[1:])
    c = b.counters()
    assert c["comp_complete"] == 5 and c["comp_failed"] == 1
    assert len(b._free) == 2  # every slot is back  # noqa: SLF001


# -- failure policy: decompression falls back to software ------------------------------------


@pytest.mark.parametrize(
    "cc", [CC.CRC_MISMATCH, CC.TEMPL_INVALID, CC.HW, CC.HW_EXPIRED_TIMER, CC.INTERNAL]
)
def test_decompress_engine_error_falls_back_to_software(cc: CC) -> None:
    b = nx()
    data = sw_stream("heap_like")
    b.inject(cc, "decompress")
    assert b.decompress(data) == PAGES["heap_like"].tobytes()
    b.inject(cc, "decompress")
    (op,) = run_ops(b, [CompOp.decompress(data)])
    assert op.status is OpStatus.SUCCESS and op.dst == PAGES["heap_like"].tobytes()
    c = b.counters()
    assert c["decomp_failed"] == 2 and c["swdecomp"] == 2
    assert c["completion_codes"] == {cc.name: 2}


def test_decompress_timeout_falls_back_to_software() -> None:
    b = nx(timeout_ms=1.0)
    b.inject(HANG, "decompress")
    assert b.decompress(sw_stream("text")) == PAGES["text"].tobytes()
    c = b.counters()
    assert c["timeouts"] == 1 and c["swdecomp"] == 1 and c["decomp_failed"] == 1


def test_short_data_stream_is_rejected_by_the_engine_and_decoded_in_software() -> None:
    data = short_data_page_stream()
    b = nx()
    assert b.decompress(data) == bytes(PAGE_SIZE)
    c = b.counters()
    assert c["completion_codes"] == {"TEMPL_INVALID": 1}
    assert c["decomp_failed"] == 1 and c["swdecomp"] == 1


def test_short_data_stream_of_an_odd_length_input_goes_to_software() -> None:
    # Software compress of a 4095-byte input ends in SHORT_DATA; it is not a page, so the
    # software decoder (reached through the fallback) reports the wrong length.
    data = codec.compress(PAGES["text"].tobytes()[:4095])
    b = nx()
    with pytest.raises(CorruptDataError, match="4095"):
        b.decompress(data)
    assert b.counters()["swdecomp"] == 1


def test_corrupt_data_fails_on_both_engine_and_software() -> None:
    b = nx()
    data = bytearray(sw_stream("heap_like"))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(CorruptDataError):
        b.decompress(bytes(data))
    (op,) = run_ops(b, [CompOp.decompress(bytes(data))])
    assert op.status is OpStatus.INVALID_INPUT and op.dst is None
    c = b.counters()
    assert c["decomp_failed"] == 2 and c["swdecomp"] == 2


def test_inputs_the_engine_cannot_take_go_straight_to_software() -> None:
    b = nx()
    good = sw_stream("text")
    with pytest.raises(CorruptDataError):
        b.decompress(good[:-1])  # odd length: truncated
    with pytest.raises(CorruptDataError):
        b.decompress(b"")
    assert b.decompress(good + bytes(8 * 600)) == PAGES["text"].tobytes()  # > max_sync_size
    c = b.counters()
    assert c["swdecomp"] == 3 and c["requests"] == 0  # no engine request was made


def test_decompress_batch_mixes_engine_and_fallback() -> None:
    b = nx(queue_depth=2)
    items = [sw_stream("text"), short_data_page_stream(), sw_stream("ramp"), sw_stream("zero")]
    b.inject(CC.CRC_MISMATCH, "decompress")
    out = b.decompress_batch(items)
    expect = [PAGES["text"], np.zeros(PAGE_SIZE, np.uint8), PAGES["ramp"], PAGES["zero"]]
    np.testing.assert_array_equal(out, np.stack(expect))
    assert b.counters()["swdecomp"] == 2
    bad = bytearray(items[2])
    bad[10] ^= 0x55
    with pytest.raises(CorruptDataError, match="item 1"):
        b.decompress_batch([items[0], bytes(bad), items[3]])


# -- queue depth and BUSY --------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2])
def test_submit_accepts_free_slots_and_marks_the_rest_busy(depth: int) -> None:
    b = nx(queue_depth=depth)
    ops = [CompOp.compress(PAGES["text"], user_data=i) for i in range(10)]
    assert b.submit(ops) == depth
    assert all(op.status is OpStatus.BUSY for op in ops[depth:])
    assert b.pending() == depth
    assert b.counters()["busy_retries"] == 10 - depth
    done = b.poll()
    assert done and all(op.status is OpStatus.SUCCESS for op in done)
    finished = run_ops(b, ops[depth:]) + done
    assert len(finished) == 10 - depth + len(done)
    for op in ops[: len(done)] + ops[depth:]:
        assert SW.decompress(op.dst) == PAGES["text"].tobytes()
    assert b.pending() == depth - len(done)
    rest = b.poll()
    assert len(rest) == depth - len(done) and b.pending() == 0


def test_invalid_ops_are_accepted_and_complete_without_a_slot() -> None:
    b = nx(queue_depth=1)
    ops = [
        CompOp.compress(b"short"),
        CompOp.compress(PAGES["text"]),
        CompOp.compress(PAGES["ramp"]),
        CompOp.decompress(42),
    ]
    assert b.submit(ops) == 2  # the bad compress, then the only slot; the rest are BUSY
    assert ops[0].status is OpStatus.INVALID_INPUT
    assert ops[2].status is OpStatus.BUSY and ops[3].status is OpStatus.BUSY
    assert b.pending() == 2
    assert b.poll() == [ops[0]]  # done at submit; poll waits only when nothing is done
    assert b.poll() == [ops[1]] and b.pending() == 0
    run_ops(b, ops[2:])
    assert ops[1].status is OpStatus.SUCCESS and ops[2].status is OpStatus.SUCCESS
    assert ops[3].status is OpStatus.INVALID_INPUT and "bytes-like" in (ops[3].error or "")


def test_batch_with_depth_one_counts_busy_retries() -> None:
    b = nx(queue_depth=1)
    batch = np.stack([PAGES["text"], PAGES["heap_like"], PAGES["ramp"]] * 7)
    items = b.compress_batch(batch)
    assert items == [b.compress(p) for p in batch]
    assert b.counters()["busy_retries"] == len(batch) - 1
    np.testing.assert_array_equal(b.decompress_batch(items), batch)


def test_sync_call_waits_for_a_slot_held_by_async_ops() -> None:
    b = nx(queue_depth=2)
    ops = [CompOp.compress(PAGES["text"]), CompOp.compress(PAGES["ramp"])]
    assert b.submit(ops) == 2
    out = b.compress(PAGES["heap_like"])  # the queue is full: retry BUSY until a slot frees
    assert SW.decompress(out) == PAGES["heap_like"].tobytes()
    assert b.counters()["busy_retries"] >= 1
    done = b.poll()
    assert {id(op) for op in done} == {id(op) for op in ops}  # nothing lost
    assert all(op.status is OpStatus.SUCCESS for op in done)


def test_poll_max_ops_and_device_us() -> None:
    b = nx(queue_depth=8, engines=2)
    ops = [CompOp.compress(PAGES["text"]) for _ in range(6)]
    assert b.submit(ops) == 6
    first = b.poll(max_ops=1)
    assert len(first) == 1
    rest = []
    while b.pending():
        rest += b.poll()
    assert len(first) + len(rest) == 6
    assert all(op.device_us == pytest.approx(b.timing.comp_us(PAGE_SIZE)) for op in ops)


# -- the virtual clock -------------------------------------------------------------------------


@pytest.mark.parametrize("engines", [1, 2, 4])
def test_virtual_clock_runs_engines_in_parallel(engines: int) -> None:
    b = nx(engines=engines, queue_depth=8)
    service = b.timing.comp_us(PAGE_SIZE)
    ops = [CompOp.compress(PAGES["zero"]) for _ in range(8)]
    run_ops(b, ops)
    c = b.counters()
    assert b.modeled_device_us() == pytest.approx(8 * service)
    assert c["device_clock_us"] == pytest.approx(8 / engines * service)
    assert c["engine_busy_us"] == pytest.approx([8 / engines * service] * engines)


def test_latency_histograms() -> None:
    b = nx(engines=1, queue_depth=4)
    # one at a time: comp 2.256 µs -> "2-3us"; decomp 1.756 µs -> "0-1us"
    for _ in range(3):
        b.decompress(b.compress(PAGES["text"]))
    c = b.counters()
    assert c["comp_times"][1] == 3 and sum(c["comp_times"]) == 3
    assert c["decomp_times"][0] == 3 and sum(c["decomp_times"]) == 3
    # four queued on one engine: latencies 1, 2, 3, 4 x 2.256 µs -> buckets 1, 2, 2, 3
    run_ops(b, [CompOp.compress(PAGES["text"]) for _ in range(4)])
    assert b.counters()["comp_times"][:4] == [0, 3 + 1, 2, 1]


def test_counters_account_host_emulation_and_device_time() -> None:
    b = nx()
    for name in COMPRESSIBLE:
        b.decompress(b.compress(PAGES[name]))
    c = b.counters()
    n = len(COMPRESSIBLE)
    assert c["comp_complete"] == n and c["decomp_complete"] == n
    assert c["completion_codes"] == {"SUCCESS": 2 * n} and c["requests"] == 2 * n
    assert c["device_us"] == b.modeled_device_us() > 0
    assert c["host_driver_us"] > 0 and c["emulation_us"] > 0
    assert c["clock"] == "virtual" and c["faults_injected"] == 0


def test_rate_driven_faults_keep_every_result_correct() -> None:
    b = nx(fault_rate=0.3, fault_cc=int(CC.HW), fault_ops="decompress", fault_seed=3)
    pages = real_memory_mix(40, seed=4)
    items = b.compress_batch(pages)  # fault_ops="decompress": compression is untouched
    kept = [i for i, it in enumerate(items) if it is not None]
    np.testing.assert_array_equal(b.decompress_batch([items[i] for i in kept]), pages[kept])
    c = b.counters()
    assert c["faults_injected"] == c["swdecomp"] == c["completion_codes"]["HW"] > 0


def test_closed_backend_refuses_work() -> None:
    b = nx()
    b.close()
    b.close()
    with pytest.raises(DeviceError, match="closed"):
        b.compress(PAGES["text"])


@settings(max_examples=25, deadline=None)
@given(
    plan=st.lists(
        st.tuples(
            st.sampled_from(sorted(PAGES)),
            st.sampled_from([None, int(CC.CRC_MISMATCH), int(CC.HW), HANG]),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    ),
    depth=st.integers(1, 3),
)
def test_async_ops_with_decompress_faults_always_decode(plan, depth) -> None:  # noqa: ANN001
    """Whatever the engine does to decompress requests, every stored page comes back intact."""
    b = nx(queue_depth=depth, timeout_ms=0.5)
    ops = []
    for name, fault, use_sync in plan:
        out = b.compress(PAGES[name])
        if out is None:
            continue
        if fault is not None:
            b.inject(fault, "decompress")
        if use_sync:
            assert b.decompress(out) == PAGES[name].tobytes()
        else:
            ops.append((name, CompOp.decompress(out)))
            if fault is not None:  # keep the armed fault on this op: submit it now
                run_ops(b, [ops[-1][1]])
    run_ops(b, [op for _, op in ops if not op.done])
    for name, op in ops:
        assert op.status is OpStatus.SUCCESS and op.dst == PAGES[name].tobytes()
    assert len(b._free) == depth  # noqa: SLF001


def test_queue_held_by_a_hung_request_gives_up_after_the_busy_window() -> None:
    b = nx(queue_depth=1, timeout_ms=400.0)  # the hung request holds the only slot that long
    b.inject(HANG, "compress")
    hung = CompOp.compress(PAGES["text"])
    assert b.submit([hung]) == 1
    t0 = b.counters()["device_clock_us"]
    with pytest.raises(DeviceError, match="stayed full for 250 ms"):
        b.compress(PAGES["ramp"])
    assert b.counters()["device_clock_us"] - t0 == pytest.approx(250_000.0)
    # decompression is not lost: it goes to software after its 50 ms window
    assert b.decompress(sw_stream("ramp")) == PAGES["ramp"].tobytes()
    assert b.counters()["swdecomp"] == 1
    # poll waits for a hung request in wall time, about 1 ms a call, returning nothing until
    # the clock reaches the driver's timeout (the 300 ms above were waited on the model clock)
    got, polls = b.poll(), 1
    while not got:
        assert b.pending() == 1
        got, polls = b.poll(), polls + 1
    assert polls > 10
    (done,) = got
    assert done is hung and done.status is OpStatus.DEVICE_ERROR and "400 ms" in done.error
    assert "did not complete" in done.error
    assert b.counters()["device_clock_us"] == 400_000.0  # it was taken at t=0
    assert b.compress(PAGES["ramp"]) is not None
