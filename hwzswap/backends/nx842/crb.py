"""Coprocessor request and status blocks (CRB/CSB) of the emulated NX-842 unit.

The layout and the names follow the Linux NX driver headers (``arch/powerpc/include/asm/icswx.h``
and ``drivers/crypto/nx/nx-842.h``, which quote the NX P8 workbook): a CRB carries the function
code, one source and one target data-descriptor entry (DDE: bus address + length) and the CSB the
engine writes on completion (valid bit, completion code, completion extension, target byte count).

Python objects stand in for the packed structs. Buffers are real memory (``bytearray`` /
``memoryview`` / numpy) paired with a *modelled* bus address, so the hardware's placement rules
(128-byte alignment, no operand overlap) can be enforced and tested: the driver allocates aligned
addresses from a :class:`DmaArena`, a test can hand the engine a misaligned :class:`DmaBuffer`.
"""

from __future__ import annotations

import enum
from typing import Any

# -- buffer rules (842.md §4.3: P8 workbook 4.9.1 quoted in nx-842.h; pSeries/PowerNV constraints)
DDE_BUFFER_ALIGN = 128  # every data buffer must be 128-byte aligned
DDE_BUFFER_LAST_MULT = 8  # the (last) DDE length must be a multiple of 8 bytes
NX842_MIN = 8  # minimum compress input / decompress output
CRB_ALIGN = 128
CSB_ALIGN = 16

# -- function codes (CCW FC for the 842 coprocessor type; 842.md §4.2) -----------------------
FC_COMP_NOCRC = 0
FC_COMP_CRC = 1
FC_DECOMP_NOCRC = 2
FC_DECOMP_CRC = 3
FC_MOVE = 4
#: Function codes this emulation implements: the CRC variants, which the current pSeries and
#: PowerNV back ends use. The others complete with ``CC.UNKNOWN_CODE``.
SUPPORTED_FC = (FC_COMP_CRC, FC_DECOMP_CRC)

# -- CSB flag and completion-extension bits (icswx.h) ----------------------------------------
CSB_V = 0x80  # valid: the engine has written this CSB
CSB_F = 0x04  # format
CSB_CH = 0x03  # chaining
CSB_CE_INCOMPLETE = 0x80
CSB_CE_TERMINATION = 0x40
CSB_CE_TPBC = 0x20  # the count field holds the target processed byte count


class CC(enum.IntEnum):
    """CSB completion codes, named as in ``icswx.h`` / ``nx-842.h`` (``CSB_CC_<name>``)."""

    SUCCESS = 0
    INVALID_ALIGN = 1
    OPERAND_OVERLAP = 2
    DATA_LENGTH = 3
    TRANSLATION = 5
    PROTECTION = 6
    RD_EXTERNAL = 7
    INVALID_OPERAND = 8
    PRIVILEGE = 9
    INTERNAL = 10
    WR_EXTERNAL = 12
    NOSPC = 13  # output buffer too small
    EXCESSIVE_DDE = 14
    WR_TRANSLATION = 15
    WR_PROTECTION = 16
    UNKNOWN_CODE = 17  # unknown (sub)function code
    ABORT = 18
    TRANSPORT = 20
    SEGMENTED_DDL = 31
    PROGRESS_POINT = 32
    DDE_OVERFLOW = 33
    SESSION = 34
    PROVISION = 36
    CHAIN = 37
    SEQUENCE = 38
    HW = 39  # correctable hardware error
    TPBC_GT_SPBC = 64  # 842 only: compressed output larger than the input (not an error)
    CRC_MISMATCH = 65  # 842 only: decompressed data does not match the stream's CRC
    TEMPL_INVALID = 66  # 842 only: invalid template value in the compressed data
    TEMPL_OVERFLOW = 67  # 842 only: a template indicates data past the end of the input
    HW_EXPIRED_TIMER = 224  # P9+: the engine's timer expired


# Plain ints for the hot paths (IntEnum attribute access is slower than a module global).
CC_SUCCESS = 0
CC_INVALID_ALIGN = 1
CC_OPERAND_OVERLAP = 2
CC_DATA_LENGTH = 3
CC_INTERNAL = 10
CC_NOSPC = 13
CC_UNKNOWN_CODE = 17
CC_TPBC_GT_SPBC = 64
CC_CRC_MISMATCH = 65
CC_TEMPL_INVALID = 66
CC_TEMPL_OVERFLOW = 67
CC_HW_EXPIRED_TIMER = 224

# What the kernel driver makes of each code (PowerNV ``wait_for_csb``; 842.md §4.4). Codes not
# listed map to -EPROTO, as the driver's default case does.
_ERRNO: dict[int, str] = {
    CC.SUCCESS: "0",
    CC.TPBC_GT_SPBC: "0",
    CC.OPERAND_OVERLAP: "EINVAL",
    CC.INVALID_OPERAND: "EINVAL",
    CC.NOSPC: "ENOSPC",
    CC.ABORT: "EINTR",
    CC.CRC_MISMATCH: "EINVAL",
    CC.TEMPL_INVALID: "EINVAL",
    CC.TEMPL_OVERFLOW: "EINVAL",
    CC.INVALID_ALIGN: "EINVAL",
    CC.DATA_LENGTH: "EINVAL",
    CC.EXCESSIVE_DDE: "EINVAL",
    CC.TRANSPORT: "EINVAL",
    CC.SEGMENTED_DDL: "EINVAL",
    CC.DDE_OVERFLOW: "EINVAL",
}

_DESCRIPTION: dict[int, str] = {
    CC.SUCCESS: "success",
    CC.INVALID_ALIGN: "a buffer is not 128-byte aligned",
    CC.OPERAND_OVERLAP: "source and target buffers overlap",
    CC.DATA_LENGTH: "invalid data length (not a multiple of 8, below the minimum or above the "
    "maximum)",
    CC.INTERNAL: "internal error in the coprocessor",
    CC.NOSPC: "output buffer too small",
    CC.UNKNOWN_CODE: "unknown function code",
    CC.ABORT: "function aborted",
    CC.HW: "correctable hardware error",
    CC.TPBC_GT_SPBC: "compressed output is larger than the input",
    CC.CRC_MISMATCH: "CRC mismatch in the decompressed data",
    CC.TEMPL_INVALID: "invalid template value in the compressed data",
    CC.TEMPL_OVERFLOW: "template indicates data past the end of the input",
    CC.HW_EXPIRED_TIMER: "hardware timer expired",
}


def cc_name(cc: int) -> str:
    """``"NOSPC"`` for 13; ``"CC_<n>"`` for a code the hardware does not define."""
    try:
        return CC(cc).name
    except ValueError:
        return f"CC_{cc}"


def cc_errno(cc: int) -> str:
    """The errno name the Linux driver returns for ``cc`` (``"0"`` for success)."""
    return _ERRNO.get(cc, "EPROTO")


def describe_cc(cc: int) -> str:
    """``"CC 13 NOSPC (output buffer too small) -> -ENOSPC"``: for error messages."""
    text = _DESCRIPTION.get(cc, "see the NX workbook")
    errno = cc_errno(cc)
    tail = "" if errno == "0" else f" -> -{errno}"
    return f"CC {cc} {cc_name(cc)} ({text}){tail}"


class DmaBuffer:
    """One data-descriptor entry: a modelled bus ``address``, a ``length`` and the memory behind it.

    ``mem`` is any buffer-protocol object holding at least ``length`` bytes (a target needs a
    writable one). The engine reads or writes ``mem[:length]``; ``address`` only serves the
    placement checks.
    """

    __slots__ = ("address", "length", "mem")

    def __init__(self, mem: Any, address: int, length: int | None = None) -> None:
        self.mem = mem
        self.address = address
        self.length = memoryview(mem).nbytes if length is None else length

    def __repr__(self) -> str:
        return f"<DmaBuffer address={self.address:#x} length={self.length}>"


class DmaArena:
    """Hands out modelled bus addresses, aligned as the NX unit requires.

    A bump allocator over a made-up address space: it never reuses addresses, which is fine for
    the driver (it allocates its per-slot buffers once) and for tests.
    """

    def __init__(self, base: int = 0x0000_2000_0000_0000) -> None:
        self._next = base

    def address(self, size: int, align: int = DDE_BUFFER_ALIGN) -> int:
        addr = -(-self._next // align) * align
        self._next = addr + max(size, 1)
        return addr

    def alloc(self, size: int, align: int = DDE_BUFFER_ALIGN) -> DmaBuffer:
        """A zeroed, writable ``size``-byte buffer at an ``align``-aligned address."""
        return DmaBuffer(memoryview(bytearray(size)), self.address(size, align), size)


class Csb:
    """Coprocessor status block: written by the engine, read by the driver once ``CSB_V`` is set."""

    __slots__ = ("flags", "cs", "cc", "ce", "count", "address")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.flags = 0
        self.cs = 0  # completion sequence
        self.cc = 0
        self.ce = 0
        self.count = 0  # target processed byte count when CSB_CE_TPBC is set
        self.address = 0  # faulting address for alignment/translation errors

    @property
    def valid(self) -> bool:
        return bool(self.flags & CSB_V)

    def __repr__(self) -> str:
        return (
            f"<Csb valid={self.valid} cc={self.cc} ({cc_name(self.cc)}) ce={self.ce:#x} "
            f"count={self.count}>"
        )


class Crb:
    """Coprocessor request block: function code, source and target DDEs, and its CSB.

    Besides the hardware fields it carries the emulation's bookkeeping: the modelled times
    (``t_submit``/``t_start``/``t_done`` on the device clock, µs), the modelled service time,
    an injected ``fault`` (``None``, a completion code, or :data:`HANG`), ``hung`` (no valid CSB
    by the driver's deadline, ``timeout_ms`` after submission: the engine took the HANG fault, or
    queueing plus service took longer; the driver stops polling then, so the CSB it reads is
    never valid), ``posted`` (the driver may read it now) and the driver's cookie ``op``.
    """

    __slots__ = (
        "fc",
        "source",
        "target",
        "csb",
        "fault",
        "t_submit",
        "t_start",
        "t_done",
        "service_us",
        "posted",
        "hung",
        "engine",
        "op",
        "slot",
        "index",
    )

    def __init__(self, fc: int, source: DmaBuffer, target: DmaBuffer, slot: int = -1) -> None:
        self.fc = fc
        self.source = source
        self.target = target
        self.csb = Csb()
        self.slot = slot
        self.clear()

    def clear(self) -> None:
        """Ready the block for reuse (the driver keeps one per queue slot)."""
        self.csb.reset()
        self.fault: int | None = None
        self.t_submit = 0.0
        self.t_start = 0.0
        self.t_done = 0.0
        self.service_us = 0.0
        self.posted = False
        self.hung = False
        self.engine = -1
        self.op: Any = None
        self.index = -1

    @property
    def is_compress(self) -> bool:
        return self.fc in (FC_COMP_CRC, FC_COMP_NOCRC)

    def __repr__(self) -> str:
        return (
            f"<Crb fc={self.fc} source={self.source!r} target={self.target!r} csb={self.csb!r}>"
        )


#: ``Crb.fault`` value for a request the engine never completes (the CSB stays invalid).
HANG = -1
