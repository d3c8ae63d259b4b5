"""Which pages ``hwzswap capture`` copies, on a real program: read-only anonymous memory is
swappable and copied; mappings of the kernel's shared zero page and pages a parent and its
forked child still share are not pages zswap would see twice (or at all) and are skipped."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import numpy as np

from hwzswap.bench import capture as cap
from hwzswap.bench.corpus import load_pages

PAGE = 4096


def _marker(tag: str, i: int) -> bytes:
    unit = f"SEL-{tag}-{i:04d}|".encode()
    return (unit * (PAGE // len(unit) + 1))[:PAGE]


# 512 pages only read (they map the zero page), 32 marked pages made read-only by mprotect,
# 32 marked pages left writable; then a fork: the child shares all of them until it writes.
PROG = textwrap.dedent(
    """
    import ctypes, mmap, os, time
    PAGE = 4096
    def marker(tag, i):
        unit = f"SEL-{tag}-{i:04d}|".encode()
        return (unit * (PAGE // len(unit) + 1))[:PAGE]
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    zero = mmap.mmap(-1, 512 * PAGE, flags=flags)
    zero.madvise(mmap.MADV_NOHUGEPAGE)
    s = sum(zero[i * PAGE] for i in range(512))
    ro = mmap.mmap(-1, 32 * PAGE, flags=flags)
    rw = mmap.mmap(-1, 32 * PAGE, flags=flags)
    for i in range(32):
        ro[i * PAGE:(i + 1) * PAGE] = marker("RO", i)
        rw[i * PAGE:(i + 1) * PAGE] = marker("RW", i)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(ro))
    assert ctypes.CDLL(None).mprotect(ctypes.c_void_p(addr), ctypes.c_size_t(32 * PAGE), 1) == 0
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    time.sleep(0.2)
    print("ready", s, flush=True)
    time.sleep(60)
    """
)


def test_zero_page_skipped_shared_once_read_only_kept(tmp_path: Path) -> None:
    out = tmp_path / "sel.pages"
    rep = cap.capture([sys.executable, "-c", PROG], out, wait_line="ready",
                      include_children=True, timeout=30)
    pages = load_pages(out)
    counts: dict[bytes, int] = {}
    for p in pages:
        counts[p.tobytes()] = counts.get(p.tobytes(), 0) + 1
    assert len(rep.pids) == 2
    # read-only anonymous pages are copied (they used to be skipped for lacking 'w')
    assert all(_marker("RO", i) in counts for i in range(32))
    assert all(_marker("RW", i) in counts for i in range(32))
    visible = os.geteuid() == 0  # the pagemap shows PFNs to CAP_SYS_ADMIN only
    assert rep.pfns_visible == visible
    if visible:
        # each shared page once, though both processes map it
        assert all(counts[_marker(t, i)] == 1 for t in ("RO", "RW") for i in range(32))
        assert rep.shared_duplicates_skipped >= 64
        # the 512 pages only read map the zero page: not copied (fork does not copy the page
        # table of a mapping never written, so the child has none of them)
        assert rep.zero_page_skipped >= 512
        assert rep.zero_pages < 512
        assert rep.pages == pages.shape[0] == rep.anon_pages
    else:
        # PFNs hidden: nothing can be told apart, both copies and the zero mappings are kept
        assert all(counts[_marker("RO", i)] == 2 for i in range(32))
        assert rep.shared_duplicates_skipped == rep.zero_page_skipped == 0
        assert rep.zero_pages >= 512


def test_zero_page_pfns_names_the_page_a_read_maps() -> None:
    """The PFN found is the one our own fresh read-only page maps, as root; None otherwise."""
    import mmap

    found = cap.zero_page_pfns()
    assert (found is not None) == (os.geteuid() == 0)
    if found is not None:
        m = mmap.mmap(-1, 3 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            m[PAGE]
            m[2 * PAGE] = 1  # written: a page of its own
            ents = cap._own_pfns(m, 1, 2) & np.uint64(cap.PM_PFN_MASK)
        finally:
            m.close()
        assert int(ents[0]) == found[0] != int(ents[1])
