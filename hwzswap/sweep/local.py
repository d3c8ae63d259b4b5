"""The local executor: runs on this machine, each in its own process, ``jobs`` at a time.

Each run is :func:`hwzswap.sweep.worker.execute_run` in a thread of a pool of ``jobs`` threads
(the thread only waits on the run's process). Parallel runs share this machine's cores, so
their timings disturb each other: ``jobs`` 1 (the default) for figures, more for coverage.
An interrupted sweep (Ctrl-C, or SIGTERM/SIGHUP, which :func:`hwzswap.sweep.execute.run_sweep`
turns into an exception) kills the process groups of the runs in flight, waits for their
threads to remove the runs' temporary directories, and leaves the finished records. A run
whose process starts while the sweep is stopping is killed at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from hwzswap.sweep.worker import execute_run, failed_record

Record = dict[str, Any]


def run_local(runspecs: list[dict[str, Any]], *, jobs: int, timeout: float,
              on_record: Callable[[Record], None]) -> None:
    """Run every runspec here, at most ``jobs`` at once; ``on_record`` gets each record."""
    live: set[subprocess.Popen[str]] = set()
    lock = threading.Lock()
    stopping = False

    def started(proc: subprocess.Popen[str]) -> None:
        with lock:
            live.add(proc)
            if stopping:  # started after the kill below: it must not outlive the sweep
                _kill_group(proc)

    def ended(proc: subprocess.Popen[str]) -> None:
        with lock:
            live.discard(proc)

    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="hwzswap-sweep")
    futures: dict[Future[Record], dict[str, Any]] = {}
    try:
        for rs in runspecs:
            futures[pool.submit(execute_run, rs, timeout, started, ended)] = rs
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    rec = fut.result()
                except Exception as exc:  # noqa: BLE001 -- execute_run does not raise; be sure
                    rec = failed_record(futures[fut], "worker", f"{type(exc).__name__}: {exc}")
                on_record(rec)
    except BaseException:
        for fut in futures:
            fut.cancel()
        with lock:
            stopping = True
            for proc in list(live):
                _kill_group(proc)
        raise
    finally:
        # the threads end once their run's process is gone, each removing its run's directory
        pool.shutdown(wait=True, cancel_futures=True)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the process group of a run this sweep started (in a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


__all__ = ["run_local"]
