"""``hwzswap run``'s figures are the run's own: the kernel's swap counts are checked against
the pages the server got (another swap device taking pages is warned about), zswap's column is
its pool's peak during the run (the stored count sampled after the exit raced with the
kernel's discards: 0, 394, 7034 ... for one program), and ``--compare ''`` is refused like
``--compare ,``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from serveutil import PROG, hwzswap_cli, small_config

from hwzswap.serve import chain, kernelzswap, run


def _row(label: str, pswpout: int, write_pages: int, pswpin: int = 0,
         read_pages: int = 0) -> dict[str, Any]:
    return {"label": label, "exit_code": 0, "oom_kills": 0, "failure": None,
            "pswpin": pswpin, "pswpout": pswpout, "majflt": 1, "io_sum_mb": 0.0,
            "runtime_s": 1.0, "cpu_pct": 50.0, "kernel": {},
            "zswap": {"zswpout": write_pages, "pool_peak_mb": 2.5, "written_back_pages": 0,
                      "stored_pages_at_exit": 394},
            "server": {"write_pages": write_pages, "read_pages": read_pages,
                       "read_unwritten_pages": 0, "cpu_us_per_page": 3.0}}


def test_counts_that_differ_from_the_kernels_are_warned_about() -> None:
    assert run.count_warning(_row("a", 10000, 10000, 5000, 5000)) is None
    assert run.count_warning(_row("a", 10000, 9980)) is None  # within the tolerance
    assert run.count_warning(_row("a", 40, 0)) is None  # a few pages: within the slack
    why = run.count_warning(_row("a", 10000, 2000, 800, 800))
    assert why.startswith("the kernel swapped out 10000 pages (/proc/vmstat pswpout), the "
                          "server got 2000: another swap device (--coexist)")
    why = run.count_warning(_row("a", 100, 100, 100, 3000))
    assert "the kernel swapped in 100 pages (/proc/vmstat pswpin), the server got 3000: the " \
           "server saw I/O the kernel did not count as swap" in why


def test_the_zswap_column_is_the_pools_peak() -> None:
    table = run.format_table([_row("lz4", 100, 100)])
    head = [c.strip() for c in table.splitlines()[0].split("|")]
    cells = [c.strip() for c in table.splitlines()[1].split("|")]
    assert "zswap stored" not in head and cells[head.index("pool peak MiB")] == "2.5"


def test_empty_compare_is_refused(state_dir: Path, tmp_path: Path) -> None:
    for compare in ("", " ", ","):
        p = hwzswap_cli("run", "--memory-limit", "24M", "--config", small_config(tmp_path),
                        "--compare", compare, "--", "true", timeout=60)
        assert p.returncode == 2 and "--compare names no configuration" in p.stderr, (
            compare, p.stderr)
        assert "hwzswap run: config:" not in p.stderr  # nothing ran


def test_another_swap_device_taking_the_pages_is_warned_about(state_dir: Path,
                                                              tmp_path: Path) -> None:
    """A second chain (``--coexist``) takes the command's pages that the run's own cannot
    hold (the run's is above it, but of 1 MiB here): the kernel's pswpout counts them, the
    run's server got a few, and the run says so."""
    cfg = small_config(tmp_path)
    chain.swap_on(cfg, name="other", priority=200, coexist=True)
    tiny = yaml.safe_load(Path(cfg).read_text())
    tiny["swap"]["nr_pages"] = 256
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    try:
        out = tmp_path / "r.json"
        p = hwzswap_cli("run", "--memory-limit", "20M", "--config", str(tmp_path / "tiny.yaml"),
                        "--coexist",
                        "--json", str(out), "--", sys.executable, PROG, "24", timeout=240)
        taken = chain.query("other")["write_pages"]
    finally:
        chain.swap_off("other")
    assert p.returncode == 0, p.stderr + p.stdout  # a warning, not a failure
    row = json.loads(out.read_text())["runs"][0]
    assert row["server"]["write_pages"] < row["pswpout"] / 2 and taken > 1000, (
        row["server"]["write_pages"], row["pswpout"], taken)
    assert "another swap device (--coexist)" in row["count_warning"]
    assert f"hwzswap run: warning: config: the kernel swapped out {row['pswpout']}" in p.stderr
    assert "WARNING: config: the kernel swapped out" in p.stdout


def test_kernel_zswap_on_is_refused_except_for_kernel_runs(state_dir: Path,
                                                           tmp_path: Path) -> None:
    """While the kernel's own zswap is on, a run it would stand in front of is refused (the
    chain's preflight), but ``kernel-<comp>`` runs, which set it themselves, still run."""
    enabled = Path("/sys/module/zswap/parameters/enabled")
    old = enabled.read_text().strip()
    cfg = small_config(tmp_path)
    try:
        kernelzswap.write("enabled", "Y")
        p = hwzswap_cli("run", "--memory-limit", "24M", "--config", cfg, "--compare",
                        "kernel-lzo", "--", "true", timeout=120)
        assert p.returncode == 0, p.stderr + p.stdout
        assert enabled.read_text().strip() == "Y"  # put back as it was
        p = hwzswap_cli("run", "--memory-limit", "24M", "--config", cfg, "--compare",
                        "base,kernel-lzo", "--", "true", timeout=120)
        assert p.returncode == 2 and "the kernel's own zswap is on" in p.stderr, p.stderr
    finally:
        kernelzswap.write("enabled", old)
