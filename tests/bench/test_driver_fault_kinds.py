"""Calls refused while a given-up call is still stuck in the driver (``driver_refused_stuck``)
are a driver fault in the bench's ``faults``: such a run's figures do not measure the device."""

from __future__ import annotations

from hwzswap.bench.runner import driver_faulted


def test_calls_refused_behind_a_stuck_call_are_a_fault() -> None:
    assert driver_faulted({"refused_stuck": 3})
    assert not driver_faulted({"refused_stuck": 0, "timeouts": 0})
