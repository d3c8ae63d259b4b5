"""A swap file its group may open is refused as one others may open is (the swapped memory
would be readable by them): any group or other permission bit, with or without
``swap.reuse``; only 0644 was tested, so a check of the others' bits alone passed."""

from __future__ import annotations

import os

import pytest

from hwzswap.errors import SwapDeviceError
from hwzswap.frontswap.swapdev import SwapDevice


@pytest.mark.parametrize("mode", [0o640, 0o620, 0o610, 0o660, 0o604, 0o602, 0o601],
                         ids=lambda m: f"{m:04o}")
@pytest.mark.parametrize("reuse", [False, True])
def test_a_file_its_group_or_others_may_open_is_refused(tmp_path, mode: int,
                                                        reuse: bool) -> None:
    path = tmp_path / "swap.img"
    path.write_bytes(b"")
    os.chmod(path, mode)
    with pytest.raises(SwapDeviceError, match=f"mode {mode:04o} lets other users open it"):
        SwapDevice(path, 8, reuse=reuse)
    assert os.path.getsize(path) == 0  # untouched
    assert os.stat(path).st_mode & 0o777 == mode


def test_the_same_file_private_to_its_owner_is_taken(tmp_path) -> None:
    """The control: only the mode made the difference."""
    path = tmp_path / "swap.img"
    path.write_bytes(b"")
    os.chmod(path, 0o600)
    dev = SwapDevice(path, 8)
    try:
        page = bytes(range(256)) * 16
        dev.write_page(3, page)
        assert dev.read_page(3) == page
    finally:
        dev.close()
