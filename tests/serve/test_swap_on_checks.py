"""What ``swap on`` / ``serve`` check before setting anything up, and what they say: a config
read from a pipe (read once), the kernel's own zswap left on, a swap area too small for
mkswap, a recording with nothing in it, and chains a killed ``run`` left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from hwzswap.serve import chain

from serveutil import hwzswap_cli, small_config


def _nothing_left(state_dir: Path, name: str) -> None:
    assert chain.read_state(name) is None
    assert not any(state_dir.glob(f"{name}*")), list(state_dir.iterdir())


def test_config_from_a_pipe_is_read_once(state_dir: Path, tmp_path: Path) -> None:
    text = Path(small_config(tmp_path)).read_text()  # lz4; the default engine is lzo
    # swap on: the server reads a private copy (its stdin is /dev/null)
    p = hwzswap_cli("swap", "on", "--config", "/dev/stdin", "--name", "pp1", input=text)
    assert p.returncode == 0, p.stderr
    try:
        assert "engine lz4" in state_dir.joinpath("pp1.log").read_text()
        assert chain.read_state("pp1")["config"] == "/dev/stdin"
    finally:
        assert hwzswap_cli("swap", "off", "--name", "pp1").returncode == 0
    _nothing_left(state_dir, "pp1")
    # ... and none of those copies is left behind
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    assert not list(tmp.glob("hwzswap-pp1-*.yaml"))
    # serve in the foreground: the config is loaded once, not once to check it and again
    r, w = os.pipe()  # a pipe, as `cat F | hwzswap serve --config /dev/stdin`
    os.write(w, text.encode())
    os.close(w)
    with os.fdopen(r) as stdin:
        proc = subprocess.Popen([sys.executable, "-m", "hwzswap", "serve", "--config",
                                 "/dev/stdin", "--name", "pp2"], stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "swapon" not in (
                (chain.read_state("pp2") or {}).get("steps", [])) and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    assert "engine lz4" in out, out
    # a bad config through a pipe is named as the user gave it
    bad = hwzswap_cli("swap", "on", "--config", "/dev/stdin", "--name", "pp3",
                      input="zswap: {max_pool_percent: 500}\n")
    assert bad.returncode == 2 and "/dev/stdin: zswap.max_pool_percent" in bad.stderr, \
        bad.stderr
    _nothing_left(state_dir, "pp3")


def test_kernel_zswap_on_is_refused(state_dir: Path, tmp_path: Path) -> None:
    was = chain.ZSWAP_ENABLED.read_text().strip()
    try:
        chain.ZSWAP_ENABLED.write_text("Y")
        p = hwzswap_cli("swap", "on", "--config", small_config(tmp_path), "--name", "kz1")
        assert p.returncode == 2, p.stderr
        assert "the kernel's own zswap is on" in p.stderr, p.stderr
        assert "echo N > /sys/module/zswap/parameters/enabled" in p.stderr, p.stderr
        assert "--compare kernel-<comp>" in p.stderr, p.stderr
        _nothing_left(state_dir, "kz1")
        # a run of the kernel's own zswap (run's kernel-<comp>) may have it on
        chain.preflight(coexist=True, allow_kernel_zswap=True)
    finally:
        chain.ZSWAP_ENABLED.write_text(was)
    assert chain.ZSWAP_ENABLED.read_text().strip() == was


def test_swap_area_too_small_is_a_config_error(state_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    for pages, rc in ((9, 2), (10, 0)):
        cfg.write_text(yaml.safe_dump({"zswap": {"compressor": "lz4"},
                                       "swap": {"nr_pages": pages, "model": "none"}}))
        p = hwzswap_cli("swap", "on", "--config", str(cfg), "--name", "sm1")
        assert p.returncode == rc, p.stderr
        if rc == 2:
            assert f"{cfg}: swap.nr_pages: 9 pages is too small for a swap area" in p.stderr
            assert "mkswap" not in p.stderr.split("is too small")[0]
            _nothing_left(state_dir, "sm1")
        else:
            assert hwzswap_cli("swap", "off", "--name", "sm1").returncode == 0
    p = hwzswap_cli("serve", "--config", str(cfg.with_name("t9.yaml")), "--name", "sm2")
    assert p.returncode == 2  # (no such file)
    cfg.write_text(yaml.safe_dump({"swap": {"nr_pages": 1}}))
    p = hwzswap_cli("serve", "--config", str(cfg), "--name", "sm2")
    assert p.returncode == 2 and "swap.nr_pages: 1 pages is too small" in p.stderr, p.stderr
    _nothing_left(state_dir, "sm2")


def test_swap_off_says_an_empty_recording_was_not_written(state_dir: Path,
                                                          tmp_path: Path) -> None:
    rec = tmp_path / "out" / "rec.npz"
    p = hwzswap_cli("swap", "on", "--config", small_config(tmp_path), "--name", "rc1",
                    "--record", str(rec))
    assert p.returncode == 0, p.stderr
    off = hwzswap_cli("swap", "off", "--name", "rc1")
    assert off.returncode == 1, off.stdout + off.stderr
    assert f"--record {rec}: not written: nothing was swapped out" in off.stderr, off.stderr
    assert not rec.exists()
    assert chain.read_state("rc1") is None
    for p in state_dir.glob("rc1*"):  # the log it names is kept
        p.unlink()


def test_status_lists_chains_and_refusal_names_the_chain(state_dir: Path,
                                                         tmp_path: Path) -> None:
    empty = hwzswap_cli("swap", "status")
    assert empty.returncode == 0 and "no chains" in empty.stdout, empty.stdout
    st = chain.swap_on(small_config(tmp_path), name="ls1")
    os.kill(st["pid"], signal.SIGKILL)  # as after `kill -9` of `hwzswap run`
    deadline = time.monotonic() + 10
    while chain._server_alive(st) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        text = hwzswap_cli("swap", "status").stdout
        assert f"hwzswap swap ls1: on, server pid {st['pid']} (DEAD" in text, text
        assert st["loop"] in text, text
        js = hwzswap_cli("swap", "status", "--json").stdout
        import json

        chains = json.loads(js)["chains"]
        assert [c["name"] for c in chains] == ["ls1"] and not chains[0]["server_alive"]
        p = hwzswap_cli("swap", "on", "--config", small_config(tmp_path), "--name", "ls2")
        assert p.returncode == 2, p.stderr
        assert (f"another swap device is active ({st['loop']}: hwzswap chain 'ls1', server "
                f"pid {st['pid']} dead)") in p.stderr, p.stderr
        assert "`hwzswap swap off --name ls1` removes it" in p.stderr, p.stderr
    finally:
        off = hwzswap_cli("swap", "off", "--name", "ls1")
    assert off.returncode == 0, off.stderr
    for p in state_dir.glob("ls1*"):  # the dead server's log, kept
        p.unlink()
    assert "no chains" in hwzswap_cli("swap", "status").stdout
