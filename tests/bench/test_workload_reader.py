"""The workload file reader's refusals say what is wrong and what to do: bytes appended after
the last section, a version this hwzswap does not read, a FIFO given as a workload file."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.workload import build_workload, load_workload, read_header, save_workload
from hwzswap.errors import WorkloadError


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wl") / "w.hwzwl"
    return save_workload(build_workload("roundtrip", load_bundled(max_pages=16), seed=3), path)


@pytest.mark.parametrize("junk", [b"\0", b"appended junk\n", b"HWZSWAPW" * 64])
def test_bytes_after_the_last_section_are_refused(saved: Path, tmp_path: Path,
                                                  junk: bytes) -> None:
    raw = saved.read_bytes()
    load_workload(saved)  # the file as written loads
    bad = tmp_path / "appended.hwzwl"
    bad.write_bytes(raw + junk)
    with pytest.raises(WorkloadError) as err:
        load_workload(bad)
    msg = str(err.value)
    assert str(bad) in msg
    assert f"{len(junk)} extra bytes after the last section" in msg
    assert f"should end at byte {len(raw)}" in msg and "damaged" in msg


def test_a_newer_version_says_to_upgrade_or_record_again(saved: Path, tmp_path: Path) -> None:
    raw = bytearray(saved.read_bytes())
    raw[8:12] = struct.pack("<I", 3)
    newer = tmp_path / "v3.hwzwl"
    newer.write_bytes(raw)
    with pytest.raises(WorkloadError, match=r"version 3; this hwzswap reads versions 1, 2: "
                                            r"upgrade hwzswap to read it, or record the "
                                            r"workload again with this one"):
        read_header(newer)
    raw[8:12] = struct.pack("<I", 0)  # below every version: not a newer hwzswap's file
    newer.write_bytes(raw)
    with pytest.raises(WorkloadError, match="version 0; .*damaged"):
        load_workload(newer)


def test_a_fifo_is_named_as_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "w.fifo"
    os.mkfifo(fifo)
    for read in (read_header, load_workload):
        with pytest.raises(WorkloadError, match=r"w\.fifo: not a regular file \(a FIFO\)"):
            read(fifo)
