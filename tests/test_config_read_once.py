"""A config given as a pipe or FIFO is read once: a second read of one finds it empty, so a
loader that opened the path again got the built-in defaults in place of the user's config."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hwzswap.bench.runner import base_config_and_keys
from hwzswap.config import load_config, load_config_and_keys, load_config_and_raw

TEXT = ("zswap:\n  compressor: lz4\n  max_pool_percent: 20\nmemory:\n  total_ram_mb: 4\n"
        "swap:\n  model: ssd\n")


@contextmanager
def pipe_path(text: str) -> Iterator[str]:
    """``/dev/fd/N`` of a real pipe holding ``text`` (its writer closed): what ``<(...)``
    gives; reading it a second time finds it at its end, empty."""
    r, w = os.pipe()
    try:
        os.write(w, text.encode())
        os.close(w)
        w = -1
        yield f"/dev/fd/{r}"
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)


@contextmanager
def fifo_path(tmp_path: Path, text: str) -> Iterator[str]:
    """A FIFO whose first reader gets ``text`` and every later reader an empty file (as a
    drained pipe), served by a thread until the block ends."""
    path = tmp_path / "config.fifo"
    os.mkfifo(path)
    stop = threading.Event()
    opens = []

    def serve() -> None:
        with open(path, "wb") as f:  # blocks until a reader opens it
            opens.append(1)
            f.write(text.encode())
        while not stop.is_set():
            with open(path, "wb"):
                opens.append(1)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield str(path)
    finally:
        stop.set()
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # lets a waiting open() return
        try:
            t.join(10)
        finally:
            os.close(fd)
        assert not t.is_alive()


def test_load_config_and_keys_reads_a_pipe_once() -> None:
    with pipe_path(TEXT) as path:
        cfg, keys = load_config_and_keys(path)
    assert cfg.source == path
    assert cfg.zswap.compressor.name == "lz4" and cfg.memory.total_ram_mb == 4
    assert cfg.swap.model == "ssd"
    # max_pool_percent: 20 is the default, but it was written: it counts as given
    assert keys == {"zswap.compressor", "zswap.max_pool_percent", "memory.total_ram_mb",
                    "swap.model"}


def test_load_config_and_raw_reads_a_fifo_once(tmp_path: Path) -> None:
    with fifo_path(tmp_path, TEXT) as path:
        cfg, raw = load_config_and_raw(path)
        assert cfg.source == path and cfg.memory.total_ram_mb == 4
        assert raw["zswap"] == {"compressor": "lz4", "max_pool_percent": 20}
        # the FIFO now reads empty: a second read would have been the defaults
        assert load_config(path).memory.total_ram_mb == 256


def test_bench_base_config_and_keys_read_a_pipe_once() -> None:
    with pipe_path(TEXT) as path:
        base, given = base_config_and_keys(path)
    assert base.source == path and base.memory.total_ram_mb == 4
    assert {"memory.total_ram_mb", "zswap.max_pool_percent"} <= given


def test_keys_of_a_mapping_and_of_a_config_object() -> None:
    assert load_config_and_keys({"pool": {"type": "zbud"}})[1] == {"pool.type"}
    cfg = load_config({"zswap": {"max_pool_percent": 3}})
    again, keys = load_config_and_keys(cfg)
    assert again == cfg and keys == {"zswap.max_pool_percent"}
