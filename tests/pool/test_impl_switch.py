"""``HWZSWAP_IMPL``: the pool package and the Python references import without the compiled
parts, and ``create_pool("zsmalloc")`` builds the compiled pool or its Python reference.

Each case runs in a fresh interpreter whose import system refuses the compiled modules (as in
a checkout that was never built), so nothing can come from an earlier import."""

from __future__ import annotations

import os
import subprocess
import sys

from hwzswap.pool.zsmalloc import zs_layout

UNBUILT = (
    "import sys, importlib.abc\n"
    "class Unbuilt(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path, target=None):\n"
    "        if name in ('hwzswap.pool._zscore', 'hwzswap.frontswap._hotpath'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
    "sys.meta_path.insert(0, Unbuilt())\n"
)


def _run(impl: str, code: str) -> str:
    env = dict(os.environ, HWZSWAP_IMPL=impl)
    done = subprocess.run([sys.executable, "-c", UNBUILT + code], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_python_pool_needs_no_compiled_core() -> None:
    out = _run("py", (
        "from hwzswap.pool import PageAllocator, PyZsPool, create_pool\n"
        "from hwzswap.pool.zsmalloc import zs_layout\n"
        "pool = create_pool('zsmalloc', PageAllocator(limit_pages=64))\n"
        "assert type(pool) is PyZsPool\n"
        "h = pool.malloc_write(b'x' * 3000)\n"
        "assert pool.read(h) == b'x' * 3000\n"
        "hs = pool.malloc_write_batch(b'ab' * 2048, [0, 100, 4000], [100, 3900, 96])\n"
        "assert [pool.read(x) for x in hs] == [(b'ab' * 2048)[a:a + n] for a, n in\n"
        "                                      [(0, 100), (100, 3900), (4000, 96)]]\n"
        "pool.check()\n"
        "assert 'hwzswap.pool._zscore' not in sys.modules\n"
        "print('ok', zs_layout(8).huge_class_size)\n"
    ))
    assert out.split() == ["ok", str(zs_layout(8).huge_class_size)]


def test_the_compiled_pool_says_how_to_build_it_when_missing() -> None:
    out = _run("c", (
        "import hwzswap.pool\n"  # the package itself imports
        "from hwzswap.pool import create_pool\n"
        "for get in (lambda: create_pool('zsmalloc'), lambda: hwzswap.pool.ZsPool):\n"
        "    try:\n"
        "        get()\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
        "print(type(create_pool('zbud')).__name__)\n"
    ))
    lines = out.splitlines()
    assert len(lines) == 3 and lines[2] == "ZbudPool"
    for line in lines[:2]:
        assert "hwzswap.pool._zscore" in line and "make install" in line


def test_the_index_references_need_no_compiled_module() -> None:
    out = _run("py", (
        "from hwzswap.frontswap._hotpath_py import ZswapTreePy, claim_slots_py, "
        "same_filled_pages_py\n"
        "t = ZswapTreePy(0, 8)\n"
        "t[3], t[1] = 'a', 'b'\n"
        "t.move_to_end(3)\n"
        "smap = bytearray(8)\n"
        "print(t.items(), claim_slots_py(smap, [2, 5], 2), bytes(smap),\n"
        "      same_filled_pages_py(bytes(8192)))\n"
        "assert 'hwzswap.frontswap._hotpath' not in sys.modules\n"
    ))
    assert out.strip() == ("[(1, 'b'), (3, 'a')] ([2, 5], b'\\x00\\x00') "
                           "b'\\x00\\x00\\x01\\x00\\x00\\x01\\x00\\x00' "
                           "[(0, b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00'), "
                           "(1, b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00')]")
