"""One run of a sweep, in a process of its own: ``hwzswap bench`` on the run's config.

:func:`execute_run` is what both executors call, locally or inside a Ray task on a cluster
node: it writes the run's config to a temporary directory, starts ``python -m hwzswap bench``
for the one backend with a JSON output, waits at most ``timeout`` seconds (then kills the run's
whole process group), and turns whatever happened into a record. A crash, a non-zero exit or a
timeout is a FAILED record with the reason and the tail of the run's stderr; it never raises.

Every record keeps the run's runspec (:meth:`hwzswap.sweep.plan.Run.runspec`: its settings,
config and bench options), so one run of a sweep can be repeated by hand, on any node::

    python -m hwzswap.sweep.worker DIR/runs/RUN_ID.json [-o RECORD.json] [--timeout S] [--keep D]

The file is a run's record (or a runspec as JSON). ``--keep D`` runs the bench in ``D`` and
leaves the run's ``config.yaml`` and ``result.json`` there: the record's ``command`` names them
relative to that directory, so it can then be run again there by hand.
"""

from __future__ import annotations

import argparse
import copy
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

from hwzswap.cliargs import file_name, output_file, seconds
from hwzswap.errors import HwzswapError, OutputError
from hwzswap.fileio import write_atomic
from hwzswap.yamlfile import read_bounded, size_problem

#: Run statuses. ``failed`` covers crashes, exits, timeouts and unavailable backends
#: (``failure`` says which); ``unschedulable``: no host of the cluster has what the run needs.
STATUSES = ("ok", "failed", "unschedulable")
#: Characters of a run's stderr kept in a record that did not succeed.
STDERR_TAIL = 4000
#: The files of a run, in the directory its bench runs in (the record's ``command`` names them).
CONFIG_FILE = "config.yaml"
RESULT_FILE = "result.json"
#: A runspec's keys and the JSON type of each (``resources``, ``origins`` and ``inputs``, the
#: content hashes of the run's input files, may be absent).
RUNSPEC_KEYS: dict[str, type] = {"run_id": str, "coords": dict, "settings": dict,
                                 "backend": str, "config": dict, "bench_args": list,
                                 "resources": dict, "origins": dict, "inputs": dict}
_OPTIONAL_KEYS = ("resources", "origins", "inputs")
#: A record or runspec is a few kilobytes; a larger file given to the worker is not one.
MAX_INPUT_BYTES = 16 << 20
#: A runspec's nesting and values at most (its config is at most 32 levels and 10000 values,
#: as the config loader takes): a deeper one is no runspec, and copying it would recurse
#: past Python's limit.
MAX_RUNSPEC_DEPTH = 40
MAX_RUNSPEC_VALUES = 100_000


class WorkerInputError(HwzswapError):
    """The file given to ``python -m hwzswap.sweep.worker`` is not a run's record or runspec."""


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
        # what the worker needs to run it again (python -m hwzswap.sweep.worker RECORD.json)
        "runspec": {k: copy.deepcopy(runspec[k]) for k in RUNSPEC_KEYS if k in runspec},
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
    """Config settings of the run that its effective config does not hold (the bench runs on
    a fresh temporary swap file at least as large as the stream: ``swap.path`` unused, a
    smaller ``swap.nr_pages`` raised), so the record says so rather than letting a sweep axis
    silently change nothing."""
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
    """Fill ``rec`` from the bench's results document for this run's one backend. A reason
    taken from the document (a driver's parameter error names the run's generated
    ``config.yaml`` and the dotted key) is named by where the sweep set that key instead
    (:func:`named_by_origin`): the generated file is gone once the run ends."""
    origins = (rec.get("runspec") or {}).get("origins") or {}
    _fill_from_document(rec, doc, exit_code, stderr)
    if isinstance(rec.get("reason"), str):
        rec["reason"] = named_by_origin(origins, rec["reason"])


def _fill_from_document(rec: dict[str, Any], doc: dict[str, Any], exit_code: int,
                        stderr: str) -> None:
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
        rec["failure"], rec["reason"] = _why_failed(doc, result, stderr)
    elif doc.get("skipped"):
        rec["status"] = "failed"
        skip = doc["skipped"][0]
        # a mode's row skipped (an async design the device cannot take) is the settings'
        # doing, not the host's
        rec["failure"] = "not_applicable" if skip.get("batching") else "unavailable"
        rec["reason"] = skip["reason"]
    elif doc.get("failed"):
        rec["status"] = "failed"
        rec["failure"] = "error"
        rec["reason"] = doc["failed"][0]["error"]
    else:
        rec["status"] = "failed"
        rec["failure"] = "error"
        rec["reason"] = "the bench wrote a results document without this backend"
    rec["stderr_tail"] = _tail(stderr)


def _count(result: dict[str, Any], key: str) -> int:
    v = result.get(key)
    return v if type(v) is int else 0


def _why_failed(doc: dict[str, Any], result: dict[str, Any], stderr: str) -> tuple[str, str]:
    """``(failure, reason)`` of a bench that wrote a result for the run's backend and exited 1:
    pages that came back wrong or not at all (``mismatch``, with the counts that are not 0),
    or the bench's ``failed`` entries (``error``: a device marked failed during the run, a
    backend that failed to close...), or, when the document says neither, the bench's last
    line of stderr (``exit``)."""
    pages = [f"{n} {what}" for n, what in (
        (_count(result, "mismatches"), "pages mismatched through the stack"),
        (_count(result, "raw_mismatches"), "pages mismatched through the codec alone"),
        (_count(result, "load_failures"), "pages did not come back (load failures)")) if n]
    entries = [f for f in doc.get("failed") or [] if isinstance(f, dict)]
    errors = [f"{f.get('phase') or 'run'}: {f.get('error') or 'no message'}" for f in entries]
    if result.get("device_failed") is True and not any(f.get("phase") == "device"
                                                       for f in entries):
        errors.append("device: the device was marked failed during the run")
    if pages:
        return "mismatch", "; ".join(pages + errors)
    if errors:
        return "error", "; ".join(errors)
    return "exit", f"exit status 1: {_last_line(stderr) or 'no failure in the results document'}"


def bench_command(runspec: dict[str, Any], config_path: str = CONFIG_FILE,
                  json_path: str = RESULT_FILE) -> list[str]:
    """The run's command line: this Python, ``-m hwzswap bench``, the run's options (the
    paths default to the run's files, relative to the directory it runs in)."""
    return [sys.executable, "-m", "hwzswap", "bench", "--config", config_path,
            *runspec["bench_args"], "--json", json_path, "--quiet"]


def _workdir(keep: str | os.PathLike[str] | None) -> str:
    """The directory the run's bench runs in: a new temporary one, or ``keep`` (created; when it
    exists it must be an empty directory, so no file of the user's is overwritten)."""
    if keep is None:
        return tempfile.mkdtemp(prefix="hwzswap-sweep-")
    path = Path(keep)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if any(path.iterdir()):
            raise WorkerInputError(f"--keep {keep}: not empty; give a new or empty directory "
                                   f"(the run writes {CONFIG_FILE} and {RESULT_FILE} there)")
    except OSError as exc:
        raise WorkerInputError(f"--keep {keep}: cannot use it as the run's directory: "
                               f"{exc.strerror or exc}") from None
    return str(path.resolve())


def execute_run(runspec: dict[str, Any], timeout: float,
                on_start: Callable[[subprocess.Popen[str]], None] | None = None,
                on_end: Callable[[subprocess.Popen[str]], None] | None = None,
                keep: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run ``runspec`` in its own process and return its record (never raises for the run).

    The bench runs in a temporary directory holding the run's ``config.yaml`` and
    ``result.json`` (removed afterwards), or in ``keep``, where they stay (a
    :class:`WorkerInputError` when ``keep`` cannot be used). ``on_start``/``on_end`` see the
    run's process (the local executor keeps them so that an interrupted sweep kills its runs,
    which sit in sessions of their own).
    """
    import yaml

    rec = base_record(runspec)
    tmp = _workdir(keep)
    rec["host"] = socket.gethostname()
    rec["started"] = _now()
    t0 = time.perf_counter()
    try:
        cfg_path = os.path.join(tmp, CONFIG_FILE)
        json_path = os.path.join(tmp, RESULT_FILE)
        with open(cfg_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(runspec["config"], f, sort_keys=False)
        cmd = bench_command(runspec)  # relative paths: it runs in tmp
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
        err = (err or "").replace(tmp + os.sep, "")  # a path the bench made absolute
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
            if proc.returncode == 2:  # a refusal: say where the sweep set what was refused
                why = _refusal_named_by_origin(runspec, why)
            rec.update(status="failed", failure="exit",
                       reason=f"exit status {proc.returncode}: {why}", stderr_tail=_tail(err))
        return rec
    except Exception as exc:  # noqa: BLE001 -- e.g. the interpreter could not be started
        rec.update(status="failed", failure="worker", reason=f"{type(exc).__name__}: {exc}")
        return rec
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


def _refusal_named_by_origin(runspec: dict[str, Any], why: str) -> str:
    """The bench's refusal of a run (``why``: its last line, which names the run's generated
    ``config.yaml``) named by where the sweep set the value instead: the sweep file's axis or
    fixed setting, or the base config file's key (the runspec's ``origins``). Every problem
    the config loader finds is listed; a refusal of another kind (e.g. ``exclusive_loads``
    with a workload that loads slots again) has its ``config.yaml: KEY`` replaced. A runspec
    without origins (an older record) keeps the bench's words."""
    from hwzswap.sweep.plan import config_refusal

    origins = runspec.get("origins") or {}
    if not origins:
        return why
    try:
        refused = config_refusal(runspec["config"], origins)
    except Exception:  # noqa: BLE001 -- the bench's own words are still there
        refused = None
    if refused is not None:
        return f"the run's config is refused: {refused}"
    return named_by_origin(origins, why)


#: What the bench's row config adds to the source it names (``config.yaml + workload
#: 'roundtrip' overrides``: :func:`hwzswap.bench.runner.backend_config`, the config the engine
#: is built from, whose errors ``open_zswap`` prefixes with it): a workload name as Python
#: writes a string.
_ROW_SOURCE = r"(?: \+ workload (?:'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\") overrides)?"


def named_by_origin(origins: dict[str, str], text: str) -> str:
    """``text`` with each ``config.yaml: KEY`` (the run's generated config, removed when the
    run ends) replaced by where the sweep set ``KEY`` (:func:`~hwzswap.sweep.plan.origin_of`:
    ``s.yaml: axes.params.device_type[0]``), also when the text names the config the engine
    was built from, ``config.yaml + workload 'roundtrip' overrides: KEY`` (a
    :class:`~hwzswap.errors.ConfigError` of ``open_zswap``: ``zswap.async_submit: queue``
    on a device without a queue); a key the sweep did not set, and any text when ``origins``
    is empty (an older record), is left as it is."""
    import re

    from hwzswap.sweep.plan import origin_of

    if not origins:
        return text

    def named(m: re.Match[str]) -> str:
        return origin_of(m.group(1), origins) or m.group(0)

    return re.sub(r"(?<![\w/.-])" + re.escape(CONFIG_FILE) + _ROW_SOURCE
                  + r": ((?:zswap|memory|pool|swap)(?:\.[A-Za-z0-9_]+)+)", named, text)


def _runspec_problem(spec: Any) -> str | None:
    """Why ``spec`` is not a runspec (``None`` when it is one)."""
    if not isinstance(spec, dict):
        return f"a runspec is a JSON object, got {type(spec).__name__}"
    for key, kind in RUNSPEC_KEYS.items():
        if key not in spec:
            if key not in _OPTIONAL_KEYS:
                return f"no {key!r}"
        elif not isinstance(spec[key], kind):
            return f"{key!r} must be a JSON {'string' if kind is str else kind.__name__}"
    if not all(isinstance(a, str) for a in spec["bench_args"]):
        return "'bench_args' must be a list of strings"
    origins = spec.get("origins")
    if origins is not None and not all(isinstance(k, str) and isinstance(v, str)
                                       for k, v in origins.items()):
        return "'origins' must map setting names to strings (where the sweep set each)"
    return None


def read_runspec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The runspec in ``path``: a run's record (``DIR/runs/RUN_ID.json``, which keeps it under
    ``runspec``) or a runspec itself. Raises :class:`WorkerInputError` saying what the file is
    instead (unreadable, not JSON, a sweep's merged ``sweep.json``, a record without one)."""
    where = str(path)
    data = read_bounded(path, MAX_INPUT_BYTES, WorkerInputError, unreadable="cannot read it",
                        too_large=f"larger than {MAX_INPUT_BYTES >> 20} MiB, so not a run's "
                                  "record; give DIR/runs/RUN_ID.json of a sweep")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WorkerInputError(f"{where}: not JSON ({exc}); give a run's record, "
                               "DIR/runs/RUN_ID.json of a sweep") from None
    except RecursionError:
        raise WorkerInputError(f"{where}: JSON nested too deeply to be a run's record; give "
                               "DIR/runs/RUN_ID.json of a sweep") from None
    if isinstance(doc, dict) and doc.get("kind") == "hwzswap-sweep":
        raise WorkerInputError(f"{where}: a sweep's merged document, not one run; give one "
                               "run's record: DIR/runs/RUN_ID.json (a run id of its 'records')")
    if isinstance(doc, dict) and "status" in doc and "runspec" not in doc:
        raise WorkerInputError(
            f"{where}: a run record without its runspec (written by an hwzswap before records "
            "kept it): run it again with the sweep instead (hwzswap sweep S.yaml -o DIR "
            "--retry-failed, or remove this record and run the sweep into DIR again)")
    is_record = isinstance(doc, dict) and "runspec" in doc
    spec = doc["runspec"] if is_record else doc
    why = _runspec_problem(spec)
    if why is None:  # a config is at most 32 levels and 10000 values: a runspec not much more
        why = size_problem(spec, MAX_RUNSPEC_DEPTH, MAX_RUNSPEC_VALUES)
    if why is not None:
        what = "the record's runspec" if is_record else "not a run's record or runspec"
        raise WorkerInputError(f"{where}: {what}: {why}; give a run's record, "
                               "DIR/runs/RUN_ID.json of a sweep")
    return spec


def main(argv: list[str] | None = None) -> int:
    """``python -m hwzswap.sweep.worker RECORD.json``: run one run again, print or write its
    record. Exit status 0 when the run is ok, 1 when not, 2 when the input cannot be used."""
    prog = "python -m hwzswap.sweep.worker"
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Run one run of a sweep again, from its record (DIR/runs/RUN_ID.json) or "
                    "its runspec, and print its new record. Exit status 0 when the run is ok, "
                    "1 when it is not, 2 when the file is neither.")
    ap.add_argument("record", metavar="RECORD.json",
                    help="the run's record, DIR/runs/RUN_ID.json (or a runspec as JSON)")
    ap.add_argument("-o", "--output", type=file_name,
                    help="write the new record here (default: stdout); checked before the run")
    ap.add_argument("--timeout", type=seconds, default=3600.0,
                    help="seconds (default 3600, at most a week)")
    ap.add_argument("--keep", metavar="DIR",
                    help=f"run in DIR (new or empty) and leave the run's {CONFIG_FILE} and "
                         f"{RESULT_FILE} there: the record's 'command' can then be run again "
                         "there by hand")
    args = ap.parse_args(argv)
    try:
        runspec = read_runspec(args.record)
        if args.output:  # before the run, so a run of an hour is not lost to a bad -o
            output_file(args.output, "-o")
        rec = execute_run(runspec, args.timeout, keep=args.keep)
    except (WorkerInputError, OutputError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(rec, indent=2, sort_keys=False, default=str) + "\n"
    if args.output:
        # whole or not at all: a reader (or a sweep resumed from runs/) never sees half a record
        try:
            write_atomic(args.output, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        except OSError as exc:  # changed under the run: the record goes to stdout instead
            sys.stdout.write(text)
            print(f"{prog}: error: -o {args.output}: cannot write the record: "
                  f"{exc.strerror or exc}; it is on standard output instead", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
    return 0 if rec["status"] == "ok" else 1


__all__ = ["CONFIG_FILE", "RESULT_FILE", "RUNSPEC_KEYS", "STATUSES", "WorkerInputError",
           "base_record", "bench_command", "execute_run", "failed_record", "named_by_origin",
           "read_runspec"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
