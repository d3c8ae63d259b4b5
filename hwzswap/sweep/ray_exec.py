"""The Ray executor: one Ray task per run, placed by the resources its backend needs.

Each task runs :func:`hwzswap.sweep.worker.execute_run` on the node Ray picks: the run is still
its own process there (a crash or hang of the bench kills nothing but that process), and the
record comes back through Ray, so the nodes need no shared file system; only the driver writes
the output directory. Every node needs hwzswap installed (with the drivers its devices need) and
the files the sweep names (a corpus or workload file) at the same paths.

Before submitting, the executor checks each run's resources against the cluster's live nodes:
a run that no single node can hold is recorded as ``unschedulable`` at once (Ray would keep an
infeasible task waiting forever); and when no run ends within a run's time limit (plus a minute),
the runs still waiting are checked again, so one whose node left is recorded the same way, not
waited for. Tasks are never retried (``max_retries=0``): a node lost
mid-run is a FAILED record, like a crash.

Before ``ray.init``, a cluster address (``HOST:PORT``, ``ray://HOST:PORT``, or ``RAY_ADDRESS``
under ``auto``) must accept a TCP connection within :data:`CONNECT_TIMEOUT_S`: Ray itself
retries an address where nothing listens for minutes, logging, and ignores SIGTERM meanwhile.
:func:`preflight` does that check (and the import) before the sweep writes anything.

Ray is the optional extra ``ray`` (``pip install 'hwzswap[ray]'``).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from hwzswap.errors import HwzswapError
from hwzswap.sweep.resources import fits, ray_options
from hwzswap.sweep.worker import execute_run, failed_record

Record = dict[str, Any]
#: Seconds beyond a run's time limit to wait for any run to end before looking again at the
#: cluster: a run whose resources left with a node is then recorded as unschedulable.
PLACEMENT_GRACE_S = 60.0


class RayUnavailableError(HwzswapError):
    """``--ray`` was asked for but Ray is not installed, or the cluster cannot be reached."""


def _task(runspec: dict[str, Any], timeout: float) -> Record:
    """The body of a run's Ray task (module level, so Ray ships it by reference)."""
    return execute_run(runspec, timeout)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(
            f"--ray needs Ray, which is not installed ({exc}); install the extra: "
            "pip install 'hwzswap[ray]'"
        ) from None
    return ray


#: Seconds a cluster's address has to accept a TCP connection before ``ray.init`` is tried.
CONNECT_TIMEOUT_S = 5.0


#: The addresses ``--ray`` takes besides ``HOST:PORT`` and ``ray://HOST:PORT``.
NAMED_ADDRESSES = ("auto", "local")
_FORMS = "give the cluster's address as HOST:6379 or ray://HOST:10001 (or auto)"


def host_port(address: str, option: str | None = None) -> tuple[str, int] | None:
    """``(host, port)`` of a cluster address ``HOST:PORT`` or ``ray://HOST:PORT`` (``[v6]:PORT``
    too); ``None`` for ``auto`` and ``local``, which Ray resolves itself. Raises
    :class:`RayUnavailableError` for anything else: a bare host, an empty host (``:``), another
    scheme or a path, or a port that is not a number 1..65535 (Ray would fail with its own
    traceback, or try such an address for minutes). ``option`` names where the address came
    from in that message (default ``--ray ADDRESS``). Needs no Ray."""
    where = option or "--ray " + (address if len(address) <= 80 else address[:80] + "...")
    if address in NAMED_ADDRESSES:
        return None
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    if "://" in rest or "/" in rest:
        raise RayUnavailableError(f"{where}: not a Ray cluster address (only the scheme ray:// "
                                  f"and no path); {_FORMS}")
    host, sep, port = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep:
        raise RayUnavailableError(f"{where}: no port; {_FORMS}")
    if not host or any(c.isspace() for c in host):
        raise RayUnavailableError(f"{where}: no host before the port; {_FORMS}")
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        shown = port if len(port) <= 20 else port[:20] + "..."
        raise RayUnavailableError(
            f"{where}: the port {shown!r} is not a number 1..65535; {_FORMS}")
    return host, int(port)


def _target(address: str) -> tuple[str, str, str | None]:
    """The address to check, how to name it, and the option it came from: ``RAY_ADDRESS``
    under ``auto`` when that is set."""
    if address == "auto":
        env = os.environ.get("RAY_ADDRESS", "")
        if env and env not in NAMED_ADDRESSES:
            return env, " (RAY_ADDRESS)", f"--ray auto: RAY_ADDRESS={env[:80]}"
    return address, "", None


def check_address(address: str) -> None:
    """Refuse a ``--ray`` address (or ``RAY_ADDRESS`` under ``auto``) that is not of a form
    the docs list (:func:`host_port`), before anything is imported or created; needs no Ray."""
    target, _via, option = _target(address)
    host_port(target, option)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`RayUnavailableError` unless the cluster address (``--ray ADDRESS``, or
    ``RAY_ADDRESS`` under ``auto``) accepts a plain TCP connection within ``timeout``
    seconds. ``auto`` and ``local`` (:func:`host_port` is ``None``) pass; an address of
    another form is refused (:func:`host_port`)."""
    target, via, option = _target(address)
    where = host_port(target, option)
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=timeout):
            pass
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise RayUnavailableError(
            f"--ray {address}: cannot join the Ray cluster: nothing answers at "
            f"{target}{via} within {timeout:g} s ({why}); start the cluster "
            "(ray start --head) or give its address (HOST:6379, ray://HOST:10001)"
        ) from None


def preflight(address: str) -> None:
    """What a sweep on Ray needs, checked before it writes anything: Ray installed, and the
    cluster's address answering (unless this process is already connected)."""
    ray = _import_ray()
    if not ray.is_initialized():
        check_reachable(address)


def connect(address: str) -> tuple[Any, bool]:
    """Ray, initialised: ``auto`` joins the cluster this machine belongs to (``RAY_ADDRESS``
    or one ``ray start`` began here) or else starts one on this machine; anything else is a
    cluster address (``HOST:6379``, ``ray://HOST:10001``). An existing connection (a caller
    that ran ``ray.init`` itself) is used as it is. Returns ``(ray, started_here)``."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray, False
    check_reachable(address)
    # ray.init sets its own SIGTERM handler (sys.exit(15)) in the main thread: the sweep's
    # (hwzswap.sweep.execute: kill the runs, exit 143) is put back once it has joined
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(address=None if address == "auto" else address, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 -- ConnectionError, RuntimeError, ValueError...
        raise RayUnavailableError(
            f"--ray {address}: cannot join the Ray cluster: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)
    return ray, True


def node_offers(ray: Any) -> list[dict[str, Any]]:
    """Each live node: its host name (``NodeManagerHostname``) and total resources."""
    out = []
    for node in ray.nodes():
        if node.get("Alive", node.get("alive")):
            out.append({"host": node.get("NodeManagerHostname") or node.get("NodeManagerAddress"),
                        "resources": dict(node.get("Resources") or {})})
    return out


def _describe(offers: list[dict[str, Any]]) -> str:
    parts = []
    for o in offers:
        res = ", ".join(f"{k}={v:g}" for k, v in sorted(o["resources"].items())
                        if not k.startswith("node:") and k not in ("memory",
                                                                   "object_store_memory"))
        parts.append(f"{o['host']} ({res})")
    return "; ".join(parts) or "no live node"


def _unschedulable(rs: dict[str, Any], need: dict[str, float], offers: list[dict[str, Any]],
                   when: str = "") -> Record:
    want = ", ".join(f"{k}={v:g}" for k, v in sorted(need.items()))
    return failed_record(rs, "unschedulable",
                         f"no node of the cluster has {want}{' ' + when if when else ''} "
                         f"(nodes: {_describe(offers)})", status="unschedulable")


def run_ray(runspecs: list[dict[str, Any]], *, address: str, timeout: float,
            on_record: Callable[[Record], None]) -> dict[str, Any]:
    """Run every runspec on the Ray cluster; ``on_record`` gets each record as it arrives.

    Returns a note of the cluster (address, nodes) for the merged result.
    """
    ray, started = connect(address)
    pending: dict[Any, dict[str, Any]] = {}
    try:
        offers = node_offers(ray)
        task = ray.remote(max_retries=0)(_task)
        for rs in runspecs:
            need = rs.get("resources") or {"CPU": 1.0}
            if not any(fits(need, o["resources"]) for o in offers):
                on_record(_unschedulable(rs, need, offers))
                continue
            pending[task.options(**ray_options(need)).remote(rs, timeout)] = rs
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=timeout + PLACEMENT_GRACE_S)
            if not done:
                # Nothing ended within a run's time limit: a run may wait for a node that left.
                offers = node_offers(ray)
                for ref, rs in list(pending.items()):
                    need = rs.get("resources") or {"CPU": 1.0}
                    if not any(fits(need, o["resources"]) for o in offers):
                        ray.cancel(ref, force=True)
                        del pending[ref]
                        on_record(_unschedulable(rs, need, offers, "any more"))
                continue
            for ref in done:
                rs = pending.pop(ref)
                try:
                    rec = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 -- a lost node, a dead worker...
                    rec = failed_record(rs, "worker",
                                        f"the Ray task failed: {type(exc).__name__}: {exc}")
                on_record(rec)
        return {"executor": "ray", "address": address,
                "nodes": [{"host": o["host"],
                           "resources": {k: v for k, v in o["resources"].items()
                                         if not k.startswith("node:")}} for o in offers]}
    except BaseException:
        for ref in list(pending):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 -- best effort on the way out
                pass
        raise
    finally:
        if started:
            ray.shutdown()


__all__ = ["CONNECT_TIMEOUT_S", "NAMED_ADDRESSES", "RayUnavailableError", "check_address",
           "check_reachable", "connect",
           "host_port", "node_offers", "preflight", "run_ray"]
