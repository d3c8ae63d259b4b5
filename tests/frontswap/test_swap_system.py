"""The swap system and ``open_zswap``: swap_out / swap_in / swap_free over zswap and the file."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import yaml

import hwzswap
from hwzswap.config import load_config
from hwzswap.errors import (
    ConfigError,
    CorruptDataError,
    InvalidInputError,
    SwapDeviceError,
    UnknownBackendError,
)
from hwzswap.frontswap import SwapSystem, open_zswap

from fsutil import compressible_pages, config, random_page, same_filled

ROOT = Path(__file__).resolve().parents[2]


def test_open_from_a_yaml_path_a_dict_or_a_config(tmp_path):
    cfg = config(tmp_path, swap={"nr_pages": 256})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    page = compressible_pages(1)[0]
    for source in (str(path), path, cfg, load_config(cfg)):
        with hwzswap.open_zswap(source) as s:
            assert isinstance(s, SwapSystem)
            assert s.backend.name == "lz4" and s.pool.name == "zsmalloc"
            assert s.config.zswap.compressor.name == "lz4"
            assert set(s.devices) == {0} and s.devices[0].nr_pages == 256
            assert s.swap_out(0, 3, page) and s.swap_in(0, 3) == page
    swap_file = Path(cfg["swap"]["path"])
    assert swap_file.exists() and stat.S_IMODE(os.stat(swap_file).st_mode) == 0o600


def test_default_config_opens_with_lzo_and_a_temporary_swap_file():
    with open_zswap(ROOT / "configs" / "default.yaml") as s:
        assert s.backend.name == "lzo"
        tmp = s.devices[0].path  # a temporary file has no name (SwapDevice.temporary)
        assert s.devices[0].temporary_file and s.devices[0].nr_pages == 65536
        page = compressible_pages(1)[0]
        assert s.swap_out(0, 65535, page) and s.swap_in(0, 65535) == page
    assert not tmp.exists()  # removed on close


def test_swap_path_override_and_backend_passed_in(tmp_path):
    backend = hwzswap.get_backend("zstd", level=3)
    s = open_zswap(config(tmp_path), backend=backend, swap_path=tmp_path / "other.img")
    assert s.backend is backend and s.devices[0].path == tmp_path / "other.img"
    page = compressible_pages(1)[0]
    s.swap_out(0, 0, page)
    s.close()
    s.close()  # idempotent
    assert backend.decompress(backend.compress(page)) == page  # still usable: not ours to close
    assert (tmp_path / "other.img").exists()  # an explicit path is kept


def test_open_errors_are_clear_and_leave_nothing_behind(tmp_path):
    with pytest.raises(ConfigError, match=r"<dict>: zswap\.compressor: unknown compressor"):
        open_zswap({"zswap": {"compressor": "nope"}})
    link = tmp_path / "link.img"
    link.symlink_to(tmp_path / "target.img")
    with pytest.raises(SwapDeviceError, match="symbolic link"):
        open_zswap(config(tmp_path), swap_path=link)
    assert not (tmp_path / "target.img").exists()
    with pytest.raises(UnknownBackendError):
        hwzswap.get_backend("nope")


def test_swap_out_falls_back_to_the_device_and_swap_in_reads_it(make_system):
    s = make_system()
    good, poor, zero = compressible_pages(1)[0], random_page(1), bytes(4096)
    assert s.swap_out(0, 0, good) is True
    assert s.swap_out(0, 1, poor) is False
    assert s.swap_out(0, 2, zero) is True
    assert s.swap_out(0, 3, np.frombuffer(good, np.uint8)) is True
    st = s.stats()
    assert st["pswpout"] == 1 and st["reject_compress_poor"] == 1 and st["same_filled_pages"] == 1
    assert [s.swap_in(0, off) for off in range(4)] == [good, poor, zero, good]
    st = s.stats()
    assert st["pswpin"] == 1 and st["loads_hit"] == 3 and st["loads_miss"] == 1
    # the swap_in of a page on the device keeps it there (non-exclusive)
    assert s.swap_in(0, 1) == poor
    before = s.stats()
    s.close()  # the counters outlive the devices, so the identities still hold after close
    after = s.stats()
    assert after["pswpout"] == 1 and after["pswpin"] == 2 and after["swap_io_us"] > 0
    assert {k: after[k] for k in ("pswpin", "pswpout", "swap_io_us")} == {
        k: before[k] for k in ("pswpin", "pswpout", "swap_io_us")}


def test_slots_that_are_not_in_use_are_never_read(make_system):
    s = make_system(swap={"nr_pages": 16})
    page = compressible_pages(1)[0]
    with pytest.raises(SwapDeviceError, match="offset 5: the slot is not in use"):
        s.swap_in(0, 5)
    s.swap_out(0, 5, random_page())  # on the device
    s.swap_free(0, 5)
    with pytest.raises(SwapDeviceError, match="not in use"):
        s.swap_in(0, 5)
    s.swap_free(0, 5)  # freeing a free slot: no-op
    s.swap_out(0, 6, page)
    s.swap_free(0, 6)
    assert s.stats()["stored_pages"] == 0 and s.stats()["invalidates"] == 1
    for op in (lambda: s.swap_in(0, 16), lambda: s.swap_out(0, -1, page),
               lambda: s.swap_free(0, 99)):
        with pytest.raises(SwapDeviceError, match=r"outside swap type 0 \(slots 0\.\.15\)"):
            op()
    with pytest.raises(SwapDeviceError, match="swap type 4 is not on"):
        s.swap_in(4, 0)


def test_a_device_failure_on_swap_out_raises_and_frees_the_slot(make_system):
    s = make_system(zswap={"enabled": False})
    old = compressible_pages(1)[0]
    s.swap_out(0, 2, old)
    s.devices[0].inject("write", errno.ENOSPC, 1)
    with pytest.raises(SwapDeviceError, match=r"\[Errno 28\]"):
        s.swap_out(0, 2, random_page())
    assert not s.slot_in_use(0, 2)  # the caller still has the page; nothing stale remains
    with pytest.raises(SwapDeviceError, match="not in use"):
        s.swap_in(0, 2)
    s.devices[0].inject("read", errno.EIO, 1)
    s.swap_out(0, 3, old)
    with pytest.raises(SwapDeviceError, match=r"read of slot 3 failed: \[Errno 5\]"):
        s.swap_in(0, 3)
    assert s.swap_in(0, 3) == old  # a transient read error loses nothing


def test_a_failing_compressor_sends_the_page_to_the_device(make_system):
    backend = hwzswap.get_backend("842-nx", fault_rate=1.0, fault_ops="compress")
    s = make_system(backend=backend)
    pages = compressible_pages(5)
    assert [s.swap_out(0, off, p) for off, p in enumerate(pages)] == [False] * 5
    assert all(s.swap_in(0, off) == p for off, p in enumerate(pages))
    st = s.stats()
    assert st["reject_compress_fail"] == 5 and st["pswpout"] == 5 and st["pswpin"] == 5


def test_a_corrupt_pool_object_raises_on_swap_in(make_system):
    s = make_system()
    page = compressible_pages(1)[0]
    s.swap_out(0, 0, page)
    handle = s.pool.handles()[0]
    s.pool.write(handle, bytes(s.pool.obj_size(handle)))
    with pytest.raises(CorruptDataError, match="does not decompress"):
        s.swap_in(0, 0)
    assert s.stats()["decompress_fail"] == 1


def test_exclusive_loads_free_the_slot_on_swap_in(make_system):
    s = make_system(zswap={"exclusive_loads": True})
    page = compressible_pages(1)[0]
    s.swap_out(0, 1, page)
    s.swap_out(0, 2, random_page())
    assert s.swap_in(0, 1) == page and s.swap_in(0, 2) == random_page()
    assert not s.slot_in_use(0, 1) and not s.slot_in_use(0, 2)
    assert s.stats()["stored_pages"] == 0
    with pytest.raises(SwapDeviceError, match="not in use"):
        s.swap_in(0, 2)


def test_several_swap_types_and_swapoff(make_system, tmp_path):
    s = make_system(swap={"nr_pages": 32})
    dev1 = s.swapon(1, 8, path=tmp_path / "second.img")
    assert dev1.nr_pages == 8 and set(s.devices) == {0, 1}
    with pytest.raises(SwapDeviceError, match="already on"):
        s.swapon(1, 8)
    pages = compressible_pages(4)
    s.swap_out(0, 0, pages[0])
    s.swap_out(1, 0, pages[1])
    s.swap_out(1, 7, random_page())
    assert s.swap_in(0, 0) == pages[0] and s.swap_in(1, 0) == pages[1]
    assert s.zswap.writeback(10) == 2  # both types' entries, oldest first
    assert s.stats()["pswpout"] == 3
    s.swapoff(1)
    assert set(s.devices) == {0} and dev1.closed
    assert s.stats()["pswpout"] == 3  # a device taken off keeps its counts (vm events)
    with pytest.raises(SwapDeviceError, match="swap type 1 is not on"):
        s.swap_in(1, 0)
    assert s.swap_in(0, 0) == pages[0]
    tmp = s.swapon(2, 4)  # a temporary file, unlinked from the start, closed at swapoff
    assert tmp.temporary_file and not tmp.path.exists()
    s.swapoff(2)
    assert tmp.closed
    with pytest.raises(SwapDeviceError, match="not on"):
        s.swapoff(2)


def test_a_refused_swapon_leaves_no_file_and_the_type_free(make_system, tmp_path):
    """zswap's index is set up first: a size it refuses creates no file (a sparse file of the
    refused size was left behind), and a device that cannot be made undoes the index, so
    the same type can be switched on after."""
    from hwzswap.frontswap.kernels import MAX_NR_PAGES

    s = make_system(swap={"nr_pages": 32})
    path = tmp_path / "second.img"
    with pytest.raises(SwapDeviceError, match="nr_pages"):
        s.swapon(1, MAX_NR_PAGES + 1, path=path)
    assert not path.exists()
    with pytest.raises(SwapDeviceError):
        s.swapon(1, 8, path=tmp_path / "no-such-dir" / "x.img")
    assert set(s.devices) == {0}
    dev = s.swapon(1, 8, path=path)
    page = compressible_pages(1)[0]
    assert s.swap_out(1, 3, page) is True and s.swap_in(1, 3) == page
    s.swapoff(1)
    assert dev.closed


def test_swap_out_batch(make_system):
    s = make_system(zswap={"max_compression_ratio": 70})
    good = compressible_pages(3)
    rows = [good[0], random_page(3), same_filled(), good[1], good[2]]
    batch = np.frombuffer(b"".join(rows), np.uint8).reshape(-1, 4096)
    assert s.swap_out_batch(0, np.arange(10, 15), batch) == [True, False, True, True, True]
    assert [s.swap_in(0, off) for off in range(10, 15)] == rows
    assert s.stats()["pswpout"] == 1
    s.devices[0].inject("write", errno.EIO, 1)
    with pytest.raises(SwapDeviceError, match="Errno 5"):
        s.swap_out_batch(0, [20, 21], batch[:2])
    assert s.swap_in(0, 20) == rows[0] and not s.slot_in_use(0, 21)
    with pytest.raises(SwapDeviceError, match="outside"):
        s.swap_out_batch(0, [5000], batch[:1])
    with pytest.raises(InvalidInputError, match="an offset appears twice"):
        s.swap_out_batch(0, [30, 30], batch[:2])
    assert not s.slot_in_use(0, 30)


@pytest.mark.parametrize("kind", ["list", "tuple", "range", "generator", "numpy"])
def test_swap_out_batch_takes_any_sequence_of_offsets(make_system, kind):
    """Lists, tuples and ranges of ints take the compiled check (claim_slots); a generator or
    numpy integers take the slow path: the same results either way, and a bad batch claims no
    slot."""
    s = make_system()
    rows = compressible_pages(3)
    batch = np.frombuffer(b"".join(rows), np.uint8).reshape(-1, 4096)
    make = {"list": list, "tuple": tuple, "range": lambda o: range(o[0], o[-1] + 1),
            "generator": lambda o: (x for x in o), "numpy": np.array}[kind]
    assert s.swap_out_batch(0, make([40, 41, 42]), batch) == [True] * 3
    assert [s.swap_in(0, off) for off in (40, 41, 42)] == rows
    with pytest.raises(InvalidInputError, match="2 offsets for 3 pages"):
        s.swap_out_batch(0, make([50, 51]), batch)
    with pytest.raises(SwapDeviceError, match="outside"):
        s.swap_out_batch(0, make([60, 61, 5000]), batch)
    assert not any(s.slot_in_use(0, off) for off in (50, 51, 60, 61))
    with pytest.raises(SwapDeviceError, match="an offset must be an integer, got float 1.0"):
        s.swap_out_batch(0, [1.0, 2, 3], batch)


def test_operations_after_close_raise(make_system):
    s = make_system()
    s.close()
    with pytest.raises(SwapDeviceError, match="closed"):
        s.swap_out(0, 0, bytes(4096))
    with pytest.raises(SwapDeviceError, match="closed"):
        s.swapon(3, 4)


def _yaml_config(tmp_path: Path, swap_path: str | None, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    swap = {"nr_pages": 16, "path": swap_path}
    path.write_text(yaml.safe_dump({"zswap": {"compressor": "lz4"}, "swap": swap}))
    return path


def test_a_swap_file_the_config_names_that_cannot_be_used_names_the_file_and_key(tmp_path):
    """The device's refusals said only the path ('/tmp: cannot open swap file: Is a
    directory'); a user with several configs could not tell which one, nor which key."""
    private = tmp_path / "private.dat"
    private.write_text("someone's data\n")
    private.chmod(0o644)
    (tmp_path / "a-dir").mkdir()
    cases = [  # (swap.path, what the device's message names, why)
        (tmp_path / "a-dir", tmp_path / "a-dir", "cannot open swap file: Is a directory"),
        (private, private, "mode 0644 lets other users open it"),
        (tmp_path / "no-such-dir" / "x.img", tmp_path / "no-such-dir",
         "cannot open the swap file's directory"),
    ]
    for swap_path, shown, why in cases:
        cfg = _yaml_config(tmp_path, str(swap_path))
        with pytest.raises(SwapDeviceError) as info:
            open_zswap(cfg)
        msg = str(info.value)
        assert msg.startswith(f"{cfg}: swap.path: {shown}: "), msg
        assert why in msg
        assert isinstance(info.value.__cause__, SwapDeviceError)
    # lost nothing: the refused file is as it was, no file appeared where none was
    assert private.read_text() == "someone's data\n" and not (tmp_path / "no-such-dir").exists()
    assert stat.S_IMODE(private.stat().st_mode) == 0o644


def test_a_refused_swap_path_override_names_the_argument_not_the_config_key(tmp_path):
    cfg = _yaml_config(tmp_path, str(tmp_path / "fine.img"))
    (tmp_path / "a-dir").mkdir()
    with pytest.raises(SwapDeviceError) as info:
        open_zswap(cfg, swap_path=tmp_path / "a-dir")
    msg = str(info.value)
    assert msg.startswith(f"swap_path={str(tmp_path / 'a-dir')!r} (in place of {cfg}'s "
                          f"swap.path): "), msg
    assert not (tmp_path / "fine.img").exists()


def test_a_temporary_swap_file_that_cannot_be_made_names_the_null_swap_path(
        tmp_path, monkeypatch):
    import tempfile

    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("x")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_dir))  # where the temporary file goes
    cfg = _yaml_config(tmp_path, None)
    with pytest.raises(SwapDeviceError) as info:
        open_zswap(cfg)
    assert str(info.value).startswith(f"{cfg}: swap.path (null: a temporary swap file): "
                                      f"{not_a_dir}"), str(info.value)
    assert not_a_dir.read_text() == "x"
