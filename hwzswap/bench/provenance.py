"""Where a result came from: the command, the machine, the commit and the time, said the same
way at the head of every result file (the bench's Markdown, the sweep's ``table.md``, the
scripts under ``benchmarks/``) and in every figure (its text and its file's metadata).

The facts come from :mod:`hwzswap.bench.results` (``machine_info``, ``git_state``,
``cpu_model``); this module only gathers and words them.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hwzswap.bench.results import cpu_model, git_state


def commit_words(info: Mapping[str, Any] | None) -> str:
    """``abc123`` or ``abc123 (modified)`` (tracked files differed from it: ``git_dirty``)
    from a mapping with ``git_commit`` and ``git_dirty`` (a bench document's
    ``machine.hwzswap``); ``unknown (not a git checkout)`` when there is no commit."""
    info = info or {}
    commit = info.get("git_commit")
    if not commit:
        return "unknown (not a git checkout)"
    return f"{commit} (modified)" if info.get("git_dirty") else str(commit)


def script_command(script: str | Path, argv: Sequence[str] | None = None) -> str:
    """The command line that ran ``script`` (a ``benchmarks/`` script's ``__file__``) with
    ``argv`` (default: this process's arguments), quoted so that it can be pasted into a shell:
    ``.venv/bin/python benchmarks/x.py --repeat 9``."""
    args = list(sys.argv[1:] if argv is None else argv)

    def rel(p: str | Path) -> str:
        try:
            return os.path.relpath(p)
        except ValueError:  # another drive
            return str(p)

    exe = rel(sys.executable)
    python = exe if not exe.startswith("..") else "python"
    return shlex.join([python, rel(Path(script).resolve()), *args])


def provenance(command: str, root: str | Path | None = None) -> dict[str, Any]:
    """What a result file names: ``command``, ``created`` (UTC), ``git_commit`` and
    ``git_dirty`` (of the checkout at ``root``, default this package's), and the ``machine``
    (CPU, cores, OS, Python)."""
    commit, dirty = git_state(root)
    return {
        "command": command,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_dirty": dirty,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count() or 1,
                    "os": platform.platform(),
                    "python": f"{platform.python_implementation()} {platform.python_version()}"},
    }


def machine_words(m: Mapping[str, Any]) -> str:
    """``CPU · N cores · OS · Python`` from a machine mapping (:func:`provenance`'s, or a bench
    document's ``machine``); the parts it lacks are left out."""
    parts = [str(m["cpu"])] if m.get("cpu") else []
    if m.get("cores"):
        parts.append(f"{m['cores']} cores")
    parts += [str(m[k]) for k in ("os", "python") if m.get(k)]
    return " · ".join(parts) or "unknown"


def header_lines(prov: Mapping[str, Any]) -> list[str]:
    """Markdown lines (each ending in a hard line break) naming the command, the machine, the
    commit and when: the head of a result file."""
    return [f"Command: `{prov.get('command') or '?'}`  ",
            f"Machine: {machine_words(prov.get('machine') or {})}  ",
            f"Commit: {commit_words(prov)} · measured {prov.get('created') or '?'}  "]


def figure_caption(prov: Mapping[str, Any]) -> str:
    """One line for the foot of a figure: commit, time and command."""
    return (f"commit {commit_words(prov)} · {prov.get('created') or '?'} · "
            f"{prov.get('command') or '?'}")


def figure_metadata(path: str | Path, prov: Mapping[str, Any]) -> dict[str, str]:
    """``savefig(metadata=...)`` for ``path``'s format, holding :func:`figure_caption`: a
    PNG's text chunk ``Comment``, an SVG's ``Description``, a PDF's ``Subject`` (the keys each
    format takes)."""
    fmt = Path(path).suffix[1:].lower() or "png"
    text = figure_caption(prov)
    key = {"png": "Comment", "svg": "Description", "pdf": "Subject"}.get(fmt)
    return {key: text} if key else {}


def stamp_figure(fig: Any, prov: Mapping[str, Any]) -> None:
    """Write :func:`figure_caption` in small print at the figure's bottom right, so a copy
    of the image still says where it came from."""
    fig.text(0.995, 0.002, figure_caption(prov), ha="right", va="bottom", fontsize=6,
             color="#555555")


__all__ = ["commit_words", "figure_caption", "figure_metadata", "header_lines",
           "machine_words", "provenance", "script_command", "stamp_figure"]
