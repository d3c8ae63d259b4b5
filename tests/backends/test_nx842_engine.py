"""The emulated NX-842 engine on its own: CRB checks, every completion code, timing, faults."""

from __future__ import annotations

import numpy as np
import pytest

from hwzswap.backends.nx842.crb import (
    CC,
    CSB_CE_TPBC,
    CSB_V,
    FC_COMP_CRC,
    FC_COMP_NOCRC,
    FC_DECOMP_CRC,
    FC_MOVE,
    HANG,
    Crb,
    DmaArena,
    DmaBuffer,
    cc_errno,
    cc_name,
    describe_cc,
)
from hwzswap.backends.nx842.engine import (
    DEFAULT_GBPS,
    Engine,
    FaultInjector,
    TimingModel,
    classify_decode_error,
)
from hwzswap.backends.nx842.stats import format_histogram, hist_bucket, hist_labels
from hwzswap.backends.sw842 import codec
from hwzswap.backends.sw842.backend import Sw842Backend
from hwzswap.backends.sw842.status import DecodeFailure, Sw842DecodeError
from hwzswap.errors import InvalidParameterError
from hwzswap.testing import sample_pages

PAGES = sample_pages()
TIMING = TimingModel()


def engine(max_sync: int = 65536, timeout_us: float = 1000.0) -> Engine:
    return Engine(0, TIMING, max_sync, timeout_us)


def crb_for(
    fc: int,
    data: bytes,
    cap: int,
    arena: DmaArena | None = None,
    src_shift: int = 0,
    dst_shift: int = 0,
) -> Crb:
    arena = arena or DmaArena()
    src = DmaBuffer(data, arena.address(max(len(data), 1)) + src_shift)
    dst = arena.alloc(cap)
    dst.address += dst_shift
    return Crb(fc, src, dst)


def run(fc: int, data: bytes, cap: int, **kw: int) -> Crb:
    crb = crb_for(fc, data, cap, **kw)
    engine().run(crb)
    return crb


def test_compress_success_is_real_842_that_the_842_backend_decodes() -> None:
    page = PAGES["heap_like"].tobytes()
    crb = run(FC_COMP_CRC, page, 8192)
    csb = crb.csb
    assert csb.cc == CC.SUCCESS and csb.ce & CSB_CE_TPBC
    out = bytes(crb.target.mem[: csb.count])
    assert out == codec.compress(page, strict=True)
    assert Sw842Backend().decompress(out) == page
    assert not csb.flags & CSB_V  # the queue, not the engine, posts the completion
    assert crb.service_us == pytest.approx(TIMING.comp_setup_us + 4096 / (DEFAULT_GBPS * 1000))


def test_decompress_success_and_time_counts_output_bytes() -> None:
    page = PAGES["text"].tobytes()
    stream = codec.compress(page, strict=True)
    crb = run(FC_DECOMP_CRC, stream, 4096)
    assert crb.csb.cc == CC.SUCCESS and crb.csb.count == 4096
    assert bytes(crb.target.mem[:4096]) == page
    assert crb.service_us == pytest.approx(TIMING.decomp_us(4096))


def test_cc64_output_larger_than_input_is_still_written() -> None:
    page = PAGES["random"].tobytes()
    crb = run(FC_COMP_CRC, page, 8192)
    assert crb.csb.cc == CC.TPBC_GT_SPBC and crb.csb.count > 4096
    assert codec.decompress(bytes(crb.target.mem[: crb.csb.count]), 4096) == page


def test_cc13_output_buffer_too_small_both_directions() -> None:
    crb = run(FC_COMP_CRC, PAGES["random"].tobytes(), 4096)
    assert crb.csb.cc == CC.NOSPC and crb.csb.count == 0
    # the unit stops when the target is full: less than the whole input was streamed
    assert crb.service_us < TIMING.comp_us(4096)
    stream = codec.compress(PAGES["text"].tobytes(), strict=True)
    assert run(FC_DECOMP_CRC, stream, 2048).csb.cc == CC.NOSPC


def test_cc65_crc_mismatch() -> None:
    stream = bytearray(codec.compress(bytes(32), strict=True))
    assert bytes(stream) == bytes.fromhex("e6c2f00000000000")  # 842.md §3.6 example 1
    stream[4] ^= 0x10  # bits 32..39 lie inside the CRC field (bits 21..52)
    assert run(FC_DECOMP_CRC, bytes(stream), 32).csb.cc == CC.CRC_MISMATCH


def test_cc66_invalid_template_and_short_data() -> None:
    bad_op = bytes([0x1A << 3]) + bytes(7)  # op code 0x1a is not defined
    assert run(FC_DECOMP_CRC, bad_op, 64).csb.cc == CC.TEMPL_INVALID
    # Software compress of an 11-byte input ends in SHORT_DATA, which the hardware rejects.
    short = codec.compress(bytes.fromhex("0102030405060708" "0a0b0c"))
    assert short == bytes.fromhex("000810182028303847585058679a88e90a80000000000000")
    assert run(FC_DECOMP_CRC, short, 16).csb.cc == CC.TEMPL_INVALID


def test_cc67_template_past_end_of_input() -> None:
    stream = codec.compress(PAGES["text"].tobytes(), strict=True)
    half = stream[: len(stream) // 16 * 8]
    assert run(FC_DECOMP_CRC, half, 4096).csb.cc == CC.TEMPL_OVERFLOW


def test_cc1_alignment_of_source_and_target() -> None:
    page = PAGES["zero"].tobytes()
    crb = run(FC_COMP_CRC, page, 4096, src_shift=8)
    assert crb.csb.cc == CC.INVALID_ALIGN and crb.csb.address == crb.source.address
    crb = run(FC_COMP_CRC, page, 4096, dst_shift=64)
    assert crb.csb.cc == CC.INVALID_ALIGN and crb.csb.address == crb.target.address
    assert crb.service_us == TIMING.comp_setup_us  # rejected while parsing the CRB


@pytest.mark.parametrize(
    ("fc", "length", "cap"),
    [
        (FC_COMP_CRC, 4092, 4096),  # input not a multiple of 8
        (FC_COMP_CRC, 0, 4096),  # compress input below the minimum of 8
        (FC_COMP_CRC, 8192, 8192),  # above max_sync_size (4096)
        (FC_COMP_CRC, 4096, 4092),  # output length not a multiple of 8
        (FC_DECOMP_CRC, 64, 0),  # decompress output below the minimum
        (FC_DECOMP_CRC, 60, 4096),  # decompress input not a multiple of 8
    ],
)
def test_cc3_data_length(fc: int, length: int, cap: int) -> None:
    arena = DmaArena()
    src = DmaBuffer(bytearray(max(length, 8)), arena.address(8192), length)
    dst = DmaBuffer(bytearray(max(cap, 8)), arena.address(8192), cap)
    crb = Crb(fc, src, dst)
    engine(max_sync=4096).run(crb)  # pSeries' documented example limit
    assert crb.csb.cc == CC.DATA_LENGTH


def test_larger_max_sync_size_accepts_larger_requests() -> None:
    data = np.tile(PAGES["text"], 4).tobytes()
    crb = crb_for(FC_COMP_CRC, data, 16384)
    engine().run(crb)
    assert crb.csb.cc == CC.SUCCESS
    assert codec.decompress(bytes(crb.target.mem[: crb.csb.count]), 16384) == data


def test_cc2_operand_overlap() -> None:
    page = PAGES["text"].tobytes()
    arena = DmaArena()
    base = arena.address(8192)
    crb = Crb(FC_COMP_CRC, DmaBuffer(page, base), DmaBuffer(bytearray(4096), base + 2048))
    engine().run(crb)
    assert crb.csb.cc == CC.OPERAND_OVERLAP


@pytest.mark.parametrize("fc", [FC_COMP_NOCRC, FC_MOVE, 9])
def test_cc17_unsupported_function_code(fc: int) -> None:
    assert run(fc, PAGES["text"].tobytes(), 4096).csb.cc == CC.UNKNOWN_CODE


@pytest.mark.parametrize("cc", [CC.HW_EXPIRED_TIMER, CC.INTERNAL, CC.ABORT, CC.CRC_MISMATCH])
def test_injected_completion_code(cc: CC) -> None:
    crb = crb_for(FC_COMP_CRC, PAGES["text"].tobytes(), 4096)
    crb.fault = int(cc)
    engine().run(crb)
    assert crb.csb.cc == cc and crb.csb.count == 0 and not crb.hung
    assert crb.service_us == pytest.approx(TIMING.comp_us(4096))


def test_injected_hang_holds_the_engine_for_the_timeout() -> None:
    crb = crb_for(FC_DECOMP_CRC, codec.compress(bytes(4096), strict=True), 4096)
    crb.fault = HANG
    eng = engine(timeout_us=777.0)
    eng.run(crb)
    assert crb.hung and crb.service_us == 777.0 and eng.busy_ps == 777_000_000


def test_hardware_checks_come_before_injected_faults() -> None:
    crb = crb_for(FC_COMP_CRC, PAGES["text"].tobytes(), 4096, src_shift=16)
    crb.fault = HANG
    engine().run(crb)
    assert crb.csb.cc == CC.INVALID_ALIGN and not crb.hung


def test_engine_counters_are_exact_sums() -> None:
    eng = engine()
    arena = DmaArena()
    total = 0.0
    for page in PAGES.values():
        crb = crb_for(FC_COMP_CRC, page.tobytes(), 8192, arena)
        total += eng.run(crb)
    assert eng.requests == len(PAGES)
    assert eng.busy_ps / 1e6 == pytest.approx(total, rel=1e-12)
    assert eng.emulation_ns > 0


@pytest.mark.parametrize(
    ("failure", "cc"),
    [
        (DecodeFailure.BAD_OP, CC.TEMPL_INVALID),
        (DecodeFailure.SHORT_DATA_ZERO, CC.TEMPL_INVALID),
        (DecodeFailure.SHORT_DATA_FORBIDDEN, CC.TEMPL_INVALID),
        (DecodeFailure.REPEAT_EARLY, CC.TEMPL_INVALID),
        (DecodeFailure.INDEX_PAST_END, CC.TEMPL_INVALID),
        (DecodeFailure.OUTPUT_OVERFLOW, CC.NOSPC),
        (DecodeFailure.INPUT_END, CC.TEMPL_OVERFLOW),
        (DecodeFailure.CRC_MISMATCH, CC.CRC_MISMATCH),
    ],
)
def test_decode_failure_to_completion_code(failure: DecodeFailure, cc: CC) -> None:
    assert classify_decode_error(Sw842DecodeError("x", failure, 0, 0)) == cc


def test_timing_model() -> None:
    tm = TimingModel(comp_setup_us=1.0, decomp_setup_us=0.5, comp_gbps=4.0, decomp_gbps=8.0)
    assert tm.comp_us(4000) == pytest.approx(2.0)
    assert tm.decomp_us(8000) == pytest.approx(1.5)
    with pytest.raises(InvalidParameterError):
        TimingModel(comp_gbps=0.0)
    with pytest.raises(InvalidParameterError):
        TimingModel(decomp_setup_us=-1.0)


def test_fault_injector_rates_are_seeded_and_filtered() -> None:
    def draws(seed: int, ops: str = "both") -> list[int | None]:
        f = FaultInjector(rate=0.3, cc=int(CC.HW), hang_rate=0.1, ops=ops, seed=seed)  # type: ignore[arg-type]
        return [f.draw(i % 2 == 0) for i in range(200)]

    a = draws(1)
    assert a == draws(1) and a != draws(2)
    assert {x for x in a} == {None, int(CC.HW), HANG}
    only_decomp = draws(1, "decompress")
    assert all(x is None for x in only_decomp[0::2])  # even draws are compress requests
    assert any(x is not None for x in only_decomp[1::2])


def test_fault_injector_arm() -> None:
    f = FaultInjector()
    assert not f.active and f.draw(True) is None
    f.arm(CC.CRC_MISMATCH, "decompress", count=2)
    f.arm(HANG, "compress")
    assert f.active
    assert [f.draw(False), f.draw(True), f.draw(False), f.draw(False)] == [65, HANG, 65, None]
    assert f.injected == 3
    for bad in (0, 11, 300):
        with pytest.raises(InvalidParameterError):
            f.arm(bad, "compress")
    with pytest.raises(InvalidParameterError):
        f.arm(CC.HW, "move")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        FaultInjector(cc=0)


def test_completion_code_names_and_errnos() -> None:
    assert cc_name(13) == "NOSPC" and cc_name(200) == "CC_200"
    assert cc_errno(CC.NOSPC) == "ENOSPC"
    assert cc_errno(CC.CRC_MISMATCH) == "EINVAL"
    assert cc_errno(CC.ABORT) == "EINTR"
    assert cc_errno(CC.HW_EXPIRED_TIMER) == "EPROTO"
    assert cc_errno(CC.TPBC_GT_SPBC) == "0"
    assert describe_cc(65) == "CC 65 CRC_MISMATCH (CRC mismatch in the decompressed data) -> -EINVAL"


def test_arena_alignment() -> None:
    arena = DmaArena(base=0x1001)
    a = arena.alloc(100)
    b = arena.alloc(5000, align=4096)
    assert a.address % 128 == 0 and b.address % 4096 == 0 and b.address >= a.address + 100
    assert a.length == 100 and len(a.mem) == 100


def test_histogram_buckets() -> None:
    assert [hist_bucket(x) for x in (0, 0.9, 1, 2, 3, 4, 7.9, 8, 32767, 32768, 1e9)] == [
        0, 0, 0, 1, 1, 2, 2, 3, 14, 15, 15
    ]
    labels = hist_labels()
    assert labels[:3] == ["0-1us", "2-3us", "4-7us"] and labels[-1] == "32768us -"
    text = format_histogram([1] + [0] * 15)
    assert text.splitlines()[0] == "0-1us:\t1" and len(text.splitlines()) == 16
