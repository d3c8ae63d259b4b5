"""The swap file cannot leak or destroy data (issue 16, rows 6-8).

Row 6: a file another user planted at ``swap.path`` is refused (they would read the swapped
memory). Row 7: an existing file that is not an hwzswap swap file is never overwritten or
truncated unless ``swap.reuse: true``. Row 8: a temporary swap file has no name from the moment
it is opened, so a ``SIGKILL`` leaves nothing behind. Plus the directory policy (Perl
File::Temp's ``_is_safe``). The ownership tests ``chown`` files to ``nobody`` (uid 65534), so
they need root, as CI runs.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from hwzswap.errors import SwapDeviceError
from hwzswap.frontswap.swapdev import SwapDevice, is_swap_header
from hwzswap.frontswap.system import open_zswap

from fsutil import config, random_page, sized_page

NOBODY = 65534


def _shared_dir(tmp_path):
    """A world-writable sticky directory, like /tmp."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    return shared


# -- row 6: a file planted by another user ---------------------------------------------------


@pytest.mark.parametrize("reuse", [False, True])
def test_a_file_owned_by_another_user_is_refused_even_with_reuse(tmp_path, reuse):
    path = _shared_dir(tmp_path) / "swap.img"
    path.write_bytes(b"")
    os.chmod(path, 0o600)
    os.chown(path, NOBODY, NOBODY)  # as `nobody` would have pre-created it
    cfg = config(tmp_path, swap={"path": str(path), "reuse": reuse})
    with pytest.raises(SwapDeviceError, match=r"belongs to uid 65534.*could read the swapped"):
        open_zswap(cfg)
    st = os.stat(path)
    assert (st.st_uid, st.st_size) == (NOBODY, 0)  # untouched: nothing was written to it


def test_a_file_others_may_open_is_refused(tmp_path):
    path = tmp_path / "swap.img"
    path.write_bytes(b"")
    os.chmod(path, 0o644)
    with pytest.raises(SwapDeviceError, match=r"mode 0644 lets other users open it"):
        SwapDevice(path, 8)
    with pytest.raises(SwapDeviceError, match="mode 0644"):
        SwapDevice(path, 8, reuse=True)
    assert os.path.getsize(path) == 0


# -- row 7: someone's data at swap.path ----------------------------------------------------


def test_an_important_file_is_neither_truncated_nor_overwritten(tmp_path):
    path = tmp_path / "important.db"
    data = os.urandom(1 << 20)
    path.write_bytes(data)
    os.chmod(path, 0o600)
    cfg = config(tmp_path, swap={"path": str(path), "nr_pages": 16})
    with pytest.raises(SwapDeviceError, match=r"not an hwzswap swap file.*swap\.reuse: true"):
        open_zswap(cfg)
    assert path.read_bytes() == data


def test_reuse_overwrites_but_never_shrinks(tmp_path):
    path = tmp_path / "old.img"
    path.write_bytes(b"\x5a" * (1 << 20))
    os.chmod(path, 0o600)
    cfg = config(tmp_path, swap={"path": str(path), "nr_pages": 16, "reuse": True})
    page = random_page(9)
    with open_zswap(cfg) as s:
        assert not s.swap_out(0, 3, page)  # incompressible: written to the file
        assert s.swap_in(0, 3) == page
    assert os.path.getsize(path) == 1 << 20  # not truncated to 17 pages
    raw = path.read_bytes()
    assert is_swap_header(raw[:4096]) and raw[4 * 4096 : 5 * 4096] == page
    assert raw[17 * 4096 :] == b"\x5a" * ((1 << 20) - 17 * 4096)  # beyond the slots: as it was
    with open_zswap(config(tmp_path, swap={"path": str(path), "nr_pages": 16})):
        pass  # now marked as an hwzswap swap file: no reuse needed


def test_a_hard_link_is_refused_unless_reuse(tmp_path):
    target = tmp_path / "data"
    target.write_bytes(b"")
    os.chmod(target, 0o600)
    link = tmp_path / "swap.img"
    os.link(target, link)
    with pytest.raises(SwapDeviceError, match="has 2 hard links"):
        SwapDevice(link, 4)
    assert os.path.getsize(target) == 0
    with SwapDevice(link, 4, reuse=True) as dev:
        dev.write_page(0, sized_page(40))
    assert os.path.getsize(target) == 5 * 4096  # the same file, as asked


def test_our_own_swap_file_is_reused_and_a_bigger_one_not_shrunk(tmp_path):
    path = tmp_path / "swap.img"
    SwapDevice(path, 64).close()
    with SwapDevice(path, 8) as dev:
        assert dev.nr_pages == 8
    assert os.path.getsize(path) == 65 * 4096
    with SwapDevice(path, 100):
        pass
    assert os.path.getsize(path) == 101 * 4096  # grown as needed


def test_a_file_we_created_is_removed_when_sizing_it_fails(tmp_path):
    path = tmp_path / "huge.img"
    # 2**40 pages is 4 PiB: beyond any ext4/xfs/tmpfs file size, so ftruncate fails (EFBIG).
    with pytest.raises(SwapDeviceError, match="cannot size swap file"):
        SwapDevice(path, 1 << 40)
    assert not path.exists()


def test_a_fifo_or_a_device_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "swap.fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(SwapDeviceError, match="not a regular file"):
        SwapDevice(fifo, 4)
    with pytest.raises(SwapDeviceError, match="not a regular file"):
        SwapDevice("/dev/null", 4, reuse=True)


def test_a_nul_byte_in_the_path_is_a_clear_error(tmp_path):
    with pytest.raises(SwapDeviceError, match="contains a NUL byte"):
        SwapDevice(str(tmp_path / "a\0b"), 4)


# -- the directory ---------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "who"), [(0o777, "others"), (0o770, "its group")])
def test_a_directory_writable_by_others_without_the_sticky_bit_is_refused(tmp_path, mode, who):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, mode)
    with pytest.raises(SwapDeviceError, match=rf"writable by {who} without the sticky bit"):
        SwapDevice(d / "swap.img", 4)
    with pytest.raises(SwapDeviceError, match="without the sticky bit"):
        SwapDevice.temporary(4, dir=d)
    assert os.listdir(d) == []
    os.chmod(d, mode | stat.S_ISVTX)  # sticky, like /tmp: accepted
    SwapDevice(d / "swap.img", 4).close()
    SwapDevice.temporary(4, dir=d).close()


def test_a_directory_owned_by_another_user_is_refused(tmp_path):
    d = tmp_path / "theirs"
    d.mkdir()
    os.chown(d, NOBODY, NOBODY)
    with pytest.raises(SwapDeviceError, match=r"belongs to uid 65534.*neither root nor"):
        SwapDevice(d / "swap.img", 4)
    assert os.listdir(d) == []


# -- row 8: temporary files leave nothing ----------------------------------------------------


@pytest.mark.parametrize("o_tmpfile", [True, False])
def test_a_temporary_swap_file_never_has_a_name(tmp_path, o_tmpfile):
    with SwapDevice.temporary(8, dir=tmp_path, o_tmpfile=o_tmpfile) as dev:
        assert dev.temporary_file
        assert dev.unlinked_with == ("O_TMPFILE" if o_tmpfile else "unlink")
        assert os.listdir(tmp_path) == []
        target = os.readlink(f"/proc/self/fd/{dev._fd}")
        assert target.startswith(str(tmp_path)) and target.endswith("(deleted)")
        st = os.fstat(dev._fd)
        assert st.st_nlink == 0 and stat.S_IMODE(st.st_mode) == 0o600
        page = random_page(4)
        dev.write_page(7, page)
        assert dev.read_page(7) == page
        assert "temporary swap file" in str(dev.path) and not dev.path.exists()
    assert os.listdir(tmp_path) == []


_CHILD = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from hwzswap.frontswap.swapdev import SwapDevice
    from hwzswap.frontswap.system import open_zswap
    if sys.argv[1] == "system":
        s = open_zswap({"zswap": {"compressor": "lz4"}, "swap": {"nr_pages": 256}})
        dev = s.devices[0]
    else:
        dev = SwapDevice.temporary(256, o_tmpfile=False)
    rng = np.random.default_rng(1)
    for off in range(64):
        page = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
        if sys.argv[1] == "system":
            assert not s.swap_out(0, off, page)  # incompressible: to the swap file
        else:
            dev.write_page(off, page)
    print(os.readlink(f"/proc/self/fd/{dev._fd}"), flush=True)
    sys.stdin.read()  # wait to be killed
    """
)


@pytest.mark.parametrize("how", ["system", "unlink"])
def test_sigkill_leaves_no_swap_file_behind(tmp_path, how):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    os.chmod(tmpdir, 0o700)
    env = dict(os.environ, TMPDIR=str(tmpdir))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, how], env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = child.stdout.readline().strip()
        assert line.startswith(str(tmpdir)) and line.endswith("(deleted)"), line
        assert os.listdir(tmpdir) == []  # 64 pages written, no name anywhere
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        assert os.listdir(tmpdir) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
