"""A modelled row whose emulation time is known to be 0.0 (its device did no emulated work,
every request refused as busy) is a separated figure (``*``), not an unseparated one (``†``):
only a null ``emulation_us_per_page`` means the time could not be read."""

from __future__ import annotations

from hwzswap.bench.marks import cpu_mark, emulation_unseparated


def _row(emu: float | None) -> dict:
    return {"backend": "842-nx", "batching": "page", "time_basis": "modeled",
            "emulation_us_per_page": emu, "host_cpu_note": None}


def test_zero_emulation_is_known_and_none_is_not() -> None:
    assert cpu_mark(_row(0.0)) == "*" and not emulation_unseparated(_row(0.0))
    assert cpu_mark(_row(None)) == "†" and emulation_unseparated(_row(None))
    assert cpu_mark(_row(3.5)) == "*"
    measured = dict(_row(None), time_basis="measured")
    assert cpu_mark(measured) == "" and not emulation_unseparated(measured)
