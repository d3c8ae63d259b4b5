"""Sweeps: the comparison matrix (backends × params × engine modes × workloads × settings ×
seeds) in one command, each run an isolated ``hwzswap bench`` process, here or on Ray.

``spec`` (the sweep file) → ``plan`` (runs and their ids) → ``local`` / ``ray_exec``
(executors, each run through ``worker``) → ``store`` (one record per run, resume) → ``merge``
(one document) → ``report`` (grouped table, plots). ``cli`` adds ``hwzswap sweep``.
"""

from hwzswap.sweep.execute import SweepOutcome, run_sweep
from hwzswap.sweep.plan import Plan, Run, expand
from hwzswap.sweep.spec import SweepSpec, SweepSpecError, load_sweep, parse_sweep

__all__ = ["Plan", "Run", "SweepOutcome", "SweepSpec", "SweepSpecError", "expand",
           "load_sweep", "parse_sweep", "run_sweep"]
