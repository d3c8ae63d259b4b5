"""One run of a sweep, in a process of its own: ``hwzswap bench`` on the run's config.

:func:`execute_run` is what both executors call, locally or inside a Ray task on a cluster
node: it writes the run's config to a temporary directory, starts ``python -m hwzswap bench``
for the one backend with a JSON output, waits at most ``timeout`` seconds (then kills the run's
whole process group), and turns whatever happened into a record. A crash, a non-zero exit or a
timeout is a FAILED record with the reason and the tail of the run's stderr; it never raises.

Run by hand (to re-run one run of a sweep on a node)::

    python -m hwzswap.sweep.worker RUNSPEC.json [-o RECORD.json] [--timeout S]

where RUNSPEC.json is :meth:`hwzswap.sweep.plan.Run.runspec` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwzswap.fileio import write_atomic

#: Run statuses. ``failed`` covers crashes, exits, timeouts and unavailable backends
#: (``failure`` says which); ``unschedulable``: no host of the cluster has what the run needs.
STATUSES = ("ok", "failed", "unschedulable")
#: Characters of a run's stderr kept in a record that did not succeed.
STDERR_TAIL = 4000


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def base_record(runspec: dict[str, Any]) -> dict[str, Any]:
    """The fields every record has, whatever happened to the run."""
    return {
        "run_id": runspec["run_id"],
        "status": None,
        "failure": None,
        "reason": None,
        "coords": dict(runspec["coords"]),
        "settings": dict(runspec["settings"]),
        "backend": runspec["backend"],
        "resources": dict(runspec.get("resources") or {}),
        "host": None,
        "started": None,
        "wall_s": None,
        "exit_code": None,
        "stderr_tail": None,
    }


def failed_record(runspec: dict[str, Any], failure: str, reason: str,
                  status: str = "failed", **extra: Any) -> dict[str, Any]:
    """A record for a run that did not produce a result (``failure``: a short kind)."""
    rec = base_record(runspec)
    rec.update(status=status, failure=failure, reason=reason, **extra)
    return rec


def _tail(text: str) -> str:
    return text[-STDERR_TAIL:]


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


_MISSING = object()


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def overridden(settings: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Config settings of the run that its effective config does not hold: a workload's own
    overrides win (e.g. the built-in workloads size the pool themselves), and the record says
    so rather than letting a sweep axis silently change nothing."""
    out: dict[str, Any] = {}
    for name, asked in settings.items():
        key = "zswap.batching" if name == "batching" else name
        if key.split(".", 1)[0] not in ("zswap", "memory", "pool", "swap"):
            continue
        used = _lookup(config, key)
        if used is _MISSING or used != asked:
            out[name] = {"asked": asked, "used": None if used is _MISSING else used}
    return out


def _from_document(rec: dict[str, Any], doc: dict[str, Any], exit_code: int,
                   stderr: str) -> None:
    """Fill ``rec`` from the bench's results document for this run's one backend."""
    rec["machine"] = doc.get("machine")
    rec["workload"] = {k: v for k, v in (doc.get("workload") or {}).items()}
    rec["bench_command"] = doc.get("command")
    if doc.get("results"):
        result = doc["results"][0]
        rec.update({k: v for k, v in result.items() if k not in rec})
        rec["overridden"] = overridden(rec["settings"], result.get("config") or {})
        if exit_code == 0:
            rec["status"] = "ok"
            return
        rec["status"] = "failed"
        rec["failure"] = "mismatch"
        rec["reason"] = (f"{result.get('mismatches', 0)} pages mismatched through the stack, "
                         f"{result.get('raw_mismatches', 0)} through the codec alone")
    elif doc.get("skipped"):
        rec["status"] = "failed"
        rec["failure"] = "unavailable"
        rec["reason"] = doc["skipped"][0]["reason"]
    elif doc.get("failed"):
        rec["status"] = "failed"
        rec["failure"] = "error"
        rec["reason"] = doc["failed"][0]["error"]
    else:
        rec["status"] = "failed"
        rec["failure"] = "error"
        rec["reason"] = "the bench wrote a results document without this backend"
    rec["stderr_tail"] = _tail(stderr)


def bench_command(runspec: dict[str, Any], config_path: str, json_path: str) -> list[str]:
    """The run's command line: this Python, ``-m hwzswap bench``, the run's options."""
    return [sys.executable, "-m", "hwzswap", "bench", "--config", config_path,
            *runspec["bench_args"], "--json", json_path, "--quiet"]


def execute_run(runspec: dict[str, Any], timeout: float,
                on_start: Callable[[subprocess.Popen[str]], None] | None = None,
                on_end: Callable[[subprocess.Popen[str]], None] | None = None) -> dict[str, Any]:
    """Run ``runspec`` in its own process and return its record (never raises for the run).

    ``on_start``/``on_end`` see the run's process (the local executor keeps them so that an
    interrupted sweep kills its runs, which sit in sessions of their own).
    """
    import yaml

    rec = base_record(runspec)
    rec["host"] = socket.gethostname()
    rec["started"] = _now()
    tmp = tempfile.mkdtemp(prefix="hwzswap-sweep-")
    t0 = time.perf_counter()
    try:
        cfg_path = os.path.join(tmp, "config.yaml")
        json_path = os.path.join(tmp, "result.json")
        with open(cfg_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(runspec["config"], f, sort_keys=False)
        cmd = bench_command(runspec, cfg_path, json_path)
        rec["command"] = ["hwzswap", *cmd[3:]]
        proc = subprocess.Popen(cmd, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace",
                                start_new_session=True)
        if on_start is not None:
            on_start(proc)
        try:
            _out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the run's own group, started above
            except ProcessLookupError:
                pass
            _out, err = proc.communicate()
            rec.update(status="failed", failure="timeout",
                       reason=f"timed out after {timeout:g} s (the run was killed)",
                       exit_code=proc.returncode, stderr_tail=_tail(err or ""))
            return rec
        finally:
            rec["wall_s"] = round(time.perf_counter() - t0, 3)
            if on_end is not None:
                on_end(proc)
        rec["exit_code"] = proc.returncode
        err = (err or "").replace(cfg_path, f"(the config of run {runspec['run_id']})")
        doc = None
        if proc.returncode in (0, 1) and os.path.exists(json_path):
            try:
                doc = json.loads(Path(json_path).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                rec["reason"] = f"unreadable results document: {exc}"
        if doc is not None:
            _from_document(rec, doc, proc.returncode, err)
        elif proc.returncode < 0:
            rec.update(status="failed", failure="crash",
                       reason=f"the run was killed by {_signal_name(proc.returncode)}",
                       stderr_tail=_tail(err))
        else:
            why = _last_line(err) or rec["reason"] or "no results document and no message"
            rec.update(status="failed", failure="exit",
                       reason=f"exit status {proc.returncode}: {why}", stderr_tail=_tail(err))
        return rec
    except Exception as exc:  # noqa: BLE001 -- e.g. the interpreter could not be started
        rec.update(status="failed", failure="worker", reason=f"{type(exc).__name__}: {exc}")
        return rec
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m hwzswap.sweep.worker RUNSPEC.json``: run one run, print or write its record."""
    ap = argparse.ArgumentParser(prog="python -m hwzswap.sweep.worker",
                                 description="Run one run of a sweep from its runspec JSON.")
    ap.add_argument("runspec", help="the run's runspec (JSON)")
    ap.add_argument("-o", "--output", help="write the record here (default: stdout)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds (default 3600)")
    args = ap.parse_args(argv)
    runspec = json.loads(Path(args.runspec).read_text(encoding="utf-8"))
    rec = execute_run(runspec, args.timeout)
    text = json.dumps(rec, indent=2, sort_keys=False) + "\n"
    if args.output:
        # whole or not at all: a reader (or a sweep resumed from runs/) never sees half a record
        write_atomic(args.output, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    else:
        sys.stdout.write(text)
    return 0 if rec["status"] == "ok" else 1


__all__ = ["STATUSES", "base_record", "bench_command", "execute_run", "failed_record"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
