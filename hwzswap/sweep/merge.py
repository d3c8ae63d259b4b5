"""The merged result of a sweep: one document with one record per run.

A record is the bench's result for the run's backend (the fields of ``results[i]`` in
docs/bench.md: ``ratio``, ``store_pages_per_s``, ``verified_pages``, ``counters``, ``config`` …)
plus the sweep's own fields: ``run_id``, ``status`` (``ok``, ``failed``, ``unschedulable``),
``failure`` and ``reason`` when not ok, ``coords`` (the axes' values), ``settings`` (every
setting of the run), ``host`` (where it ran), ``resources``, ``started``, ``wall_s``,
``exit_code``, ``stderr_tail``, ``command``, ``runspec`` (what the worker needs to run it
again by hand), and the bench document's ``machine`` and ``workload``. A run that produced no
result has the sweep's fields only.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

from hwzswap.bench.results import git_state
from hwzswap.sweep.plan import Plan
from hwzswap.sweep.spec import SweepSpec

#: Version of the merged document; fields may be added within a version.
SCHEMA_VERSION = 1
KIND = "hwzswap-sweep"


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"hwzswap {version('hwzswap')}"
    except Exception:  # noqa: BLE001 -- running from a tree that is not installed
        return "hwzswap"


def record_code(rec: dict[str, Any]) -> tuple[str | None, bool | None] | None:
    """``(git_commit, git_dirty)`` of the code a record was measured with (its bench
    document's ``machine.hwzswap``); None for a record with no results document (a run that
    never ran, or failed before writing one)."""
    info = (rec.get("machine") or {}).get("hwzswap") if isinstance(rec.get("machine"), dict) \
        else None
    if not isinstance(info, dict):
        return None
    return info.get("git_commit"), info.get("git_dirty")


def code_groups(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The code the records were measured with: one entry per distinct ``(git_commit,
    git_dirty)``, ``{"git_commit", "git_dirty", "runs": [run ids]}``, largest group first.
    More than one entry means the sweep's figures come from different code (a sweep resumed
    after a commit or an edit)."""
    groups: dict[tuple[Any, Any], list[str]] = {}
    for rec in records:
        code = record_code(rec)
        if code is not None:
            groups.setdefault(code, []).append(str(rec.get("run_id")))
    return [{"git_commit": c, "git_dirty": d, "runs": runs}
            for (c, d), runs in sorted(groups.items(), key=lambda kv: -len(kv[1]))]


def cpu_groups(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The machines the records ran on: ``{"cpu", "cores", "hosts", "runs"}`` per distinct
    CPU model and core count (from each bench document's ``machine``)."""
    groups: dict[tuple[Any, Any], dict[str, Any]] = {}
    for rec in records:
        m = rec.get("machine")
        if not isinstance(m, dict):
            continue
        g = groups.setdefault((m.get("cpu"), m.get("cores")),
                              {"cpu": m.get("cpu"), "cores": m.get("cores"), "hosts": [],
                               "runs": []})
        if rec.get("host") and rec["host"] not in g["hosts"]:
            g["hosts"].append(rec["host"])
        g["runs"].append(str(rec.get("run_id")))
    return sorted(groups.values(), key=lambda g: -len(g["runs"]))


def merged_document(spec: SweepSpec, plan: Plan, records: dict[str, dict[str, Any]], *,
                    executor: dict[str, Any] | None = None, command: str | None = None,
                    ran: int = 0, resumed: int = 0, changed: int = 0) -> dict[str, Any]:
    """The sweep's merged document: records in the plan's order, counts and provenance.

    Records in the output directory that belong to no run of this plan (an earlier version of
    the sweep file) are left out; planned runs without a record (an interrupted sweep) are
    counted as ``missing``.
    """
    ordered = [records[r.run_id] for r in plan.runs if r.run_id in records]
    status = Counter(rec.get("status") for rec in ordered)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "generator": _version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "sweep": spec.to_dict(),
        "axes": list(spec.axes),
        "executor": executor or {},
        "runs": {
            "planned": len(plan.runs),
            "combinations": plan.combinations,
            "excluded": plan.excluded,
            "collapsed": plan.collapsed,
            "ok": status.get("ok", 0),
            "failed": status.get("failed", 0),
            "unschedulable": status.get("unschedulable", 0),
            "missing": len(plan.runs) - len(ordered),
            "ran": ran,
            "resumed": resumed,
            "input_changed": changed,
        },
        "hosts": sorted({str(rec["host"]) for rec in ordered if rec.get("host")}),
        # the code and machines the records were measured with (several: see the table)
        "checkout": dict(zip(("git_commit", "git_dirty"), git_state())),
        "code": code_groups(ordered),
        "cpus": cpu_groups(ordered),
        "records": ordered,
    }


def document_problems(doc: Any) -> list[str]:
    """What is wrong with a merged document (empty when it is well formed)."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        return [f"the document must be an object, got {type(doc).__name__}"]
    if doc.get("kind") != KIND or doc.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"kind/schema_version must be {KIND!r}/{SCHEMA_VERSION}")
    for i, rec in enumerate(doc.get("records") or []):
        for key in ("run_id", "status", "coords", "settings", "backend", "host"):
            if key not in rec:
                problems.append(f"records[{i}]: no {key!r}")
        st = rec.get("status")
        if st not in ("ok", "failed", "unschedulable"):
            problems.append(f"records[{i}].status: {st!r}")
        elif st == "ok":
            for key in ("ratio", "store_pages_per_s", "verified_pages", "pages"):
                if key not in rec:
                    problems.append(f"records[{i}]: an ok record has no {key!r}")
        elif not rec.get("reason"):
            problems.append(f"records[{i}]: a {st} record has no reason")
    return problems


__all__ = ["KIND", "SCHEMA_VERSION", "code_groups", "cpu_groups", "document_problems",
           "merged_document", "record_code"]
