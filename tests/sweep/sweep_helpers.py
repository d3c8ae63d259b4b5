"""Helpers shared by the sweep tests: a small real sweep (48 pages, one pass a run)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from hwzswap.fileio import PARTIAL

#: Three runs of a few seconds: two that succeed, and lz4 with a compression-ratio limit the
#: config loader refuses, which must fail in its own process and be recorded as FAILED.
SMALL_SWEEP: dict[str, Any] = {
    "axes": {
        "backend": ["lz4", "zstd"],
        "zswap.max_compression_ratio": [90, 250],
    },
    "fixed": {"workload": "roundtrip", "pages": 48, "repeat": 1, "seed": 3},
    "exclude": [{"backend": "zstd", "zswap.max_compression_ratio": 250}],
}


def install_driver(directory: Path, monkeypatch: Any, module: str, source: str,
                   cls: str) -> str:
    """Install ``source`` as module ``module`` with its class ``cls`` registered as the backend
    ``module`` (an entry point of a dist-info under ``directory``), for this process (the
    sweep file's check) and the bench processes a sweep starts (``PYTHONPATH``): a third-party
    driver, end to end. Returns the backend's name."""
    site = directory / "site"
    info = site / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (site / f"{module}.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[hwzswap.backends]\n{module} = {module}:{cls}\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.syspath_prepend(str(site))
    return module


def write_sweep(directory: Path, doc: dict[str, Any], name: str = "s.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def same_fields(rec: dict[str, Any]) -> tuple[Any, ...]:
    """What two executions of one run must agree on (no timings)."""
    return (rec["run_id"], tuple(sorted(rec["coords"].items())), rec["status"], rec["failure"],
            rec["backend"], rec.get("pages"), rec.get("verified_pages"), rec.get("mismatches"),
            rec.get("ratio_bytes") and tuple(sorted(rec["ratio_bytes"].items())))


def interrupt_writes_of(monkeypatch: Any, name: str, exc: BaseException) -> None:
    """Make each write of the file ``name`` (or of a temporary file for it) stop half-way with
    ``exc``, as an interrupted writer would: ``Path.write_text`` writes half the text, a
    matplotlib ``savefig`` leaves half the image. Other files are written as usual."""
    from matplotlib.figure import Figure

    def hit(p: Any) -> bool:
        n = Path(p).name
        return n == name or (n.startswith(f".{name}.") and n.endswith(PARTIAL))

    write_text = Path.write_text
    savefig = Figure.savefig

    def half_text(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        if not hit(self):
            return write_text(self, data, *args, **kwargs)
        write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise exc

    def half_figure(self: Figure, fname: Any, *args: Any, **kwargs: Any) -> None:
        if not hit(fname):
            return savefig(self, fname, *args, **kwargs)
        savefig(self, fname, *args, **kwargs)
        whole = Path(fname).read_bytes()
        Path(fname).write_bytes(whole[: len(whole) // 2])
        raise exc

    monkeypatch.setattr(Path, "write_text", half_text)
    monkeypatch.setattr(Figure, "savefig", half_figure)


def partial_files(directory: Path) -> list[str]:
    """Temporary files of :mod:`hwzswap.fileio` left in ``directory`` (hidden ones included)."""
    return sorted(n for n in os.listdir(directory) if n.endswith(PARTIAL))
