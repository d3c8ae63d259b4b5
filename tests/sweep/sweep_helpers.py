"""Helpers shared by the sweep tests: a small real sweep (48 pages, one pass a run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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


def write_sweep(directory: Path, doc: dict[str, Any], name: str = "s.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def same_fields(rec: dict[str, Any]) -> tuple[Any, ...]:
    """What two executions of one run must agree on (no timings)."""
    return (rec["run_id"], tuple(sorted(rec["coords"].items())), rec["status"], rec["failure"],
            rec["backend"], rec.get("pages"), rec.get("verified_pages"), rec.get("mismatches"),
            rec.get("ratio_bytes") and tuple(sorted(rec["ratio_bytes"].items())))
