"""Page files and the bundled corpus of real anonymous memory.

A page file is raw concatenated 4096-byte pages (``.pages``), optionally zstd-compressed
(``.pages.zst``). In memory a set of pages is an ``(N, 4096)`` uint8 array, the shape every
backend's batch path takes.

The bundled corpus (``hwzswap/data/corpus/<source>.pages.zst``) was captured with
``hwzswap capture`` from real programs; ``scripts/recapture_corpus.py`` re-creates it and
``python -m hwzswap.bench.corpus --readme`` regenerates its README table from the files (printed;
``-o hwzswap/data/corpus/README.md`` writes it in place).

Same-filled follows zswap: a page whose 8-byte words are all equal (zswap stores just the word).
Zero pages are same-filled too; both figures are reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from hwzswap.config import memory_available
from hwzswap.errors import CorpusError
from hwzswap.fileio import write_atomic
from hwzswap.yamlfile import file_kind

PAGE_SIZE = 4096
#: The first bytes of a zstd frame (RFC 8878), to recognise a compressed file by its content.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_WORDS = PAGE_SIZE // 8
_SUFFIXES = (".pages.zst", ".pages")
_CHUNK = 8192  # pages per vectorised step in describe() (bounds the temporary bool array)


def source_name(path: Path | str) -> str:
    """``python.pages.zst`` -> ``python``."""
    name = Path(path).name
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name.rsplit(".", 1)[0]


def _as_pages(data: bytes | bytearray | memoryview, origin: str) -> np.ndarray:
    n, rest = divmod(len(data), PAGE_SIZE)
    if rest:
        raise CorpusError(
            f"{origin}: {len(data)} bytes is not a whole number of {PAGE_SIZE}-byte pages "
            f"({n} pages and {rest} bytes over); the file is truncated or not a page file"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(n, PAGE_SIZE)


def _read_regular(path: Path) -> bytes:
    """The bytes of ``path``, which must be a regular file (or a symlink to one).

    A FIFO, socket or device would block or never end, so it is refused before it is opened;
    the file is then opened with ``O_NONBLOCK`` and checked again, so a FIFO swapped in between
    the two steps cannot block either.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such page file") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CorpusError(
            f"{path}: not a regular file ({file_kind(st.st_mode)}); a corpus is a .pages or "
            ".pages.zst file written by `hwzswap capture` or save_pages"
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise CorpusError(f"{path}: not a regular file; a corpus is a .pages or .pages.zst "
                              "file")
        try:
            return f.read()
        except OSError as exc:
            raise CorpusError(f"{path}: cannot read: {exc.strerror}") from None


def load_pages(path: Path | str) -> np.ndarray:
    """Read a ``.pages`` or ``.pages.zst`` file into a read-only ``(N, 4096)`` uint8 array."""
    from hwzswap.bench.workload import FILE_MAGIC

    path = Path(path)
    raw = _read_regular(path)
    if raw[:len(FILE_MAGIC)] == FILE_MAGIC:
        raise CorpusError(f"{path}: a workload file (from `hwzswap record`), not a page file; "
                          "give it with --workload")
    if path.name.endswith(".zst"):
        raw = _zstd_decompress(raw, path)
    elif raw[:4] == ZSTD_MAGIC and len(raw) % PAGE_SIZE:
        better = path.name + (".zst" if path.name.endswith(".pages") else ".pages.zst")
        raise CorpusError(f"{path}: zstd-compressed data in a file not named .zst; rename it "
                          f"to {better}")
    return _as_pages(raw, str(path))


#: Environment variable: the most memory (MiB) a decompressed page file or workload section
#: may take (default :data:`DEFAULT_MAX_INFLATED_MB`, and never more than half the memory
#: available), so a small crafted file cannot make hwzswap allocate without bound.
MAX_INFLATED_ENV = "HWZSWAP_MAX_INFLATED_MB"
DEFAULT_MAX_INFLATED_MB = 4096  # 1 Mi pages
_INFLATE_STEP = 2048  # compressed bytes per step: at most ~64 MiB of output past the limit


def max_inflated_bytes() -> int:
    """How many bytes a decompressed page file or workload section may take (see
    :data:`MAX_INFLATED_ENV`); an unusable value of the variable is a :class:`CorpusError`."""
    env = os.environ.get(MAX_INFLATED_ENV, "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise CorpusError(f"{MAX_INFLATED_ENV}={env[:40]!r}: expected a whole number of "
                              f"MiB >= 1")
        limit = int(env) << 20
    else:
        limit = DEFAULT_MAX_INFLATED_MB << 20
    avail = memory_available()
    if avail is not None:
        limit = min(limit, max(avail // 2, 64 << 20))
    return limit


def inflate_limit_hint(limit: int) -> str:
    """What to say about the limit in an error (its size and how to raise it)."""
    return (f"the limit is {limit >> 20} MiB ({MAX_INFLATED_ENV}, default "
            f"{DEFAULT_MAX_INFLATED_MB}, at most half the memory available)")


def _zstd_decompress(raw: bytes, path: Path, limit: int | None = None) -> bytes:
    """Decompress every frame; a truncated last frame is an error, never a shorter corpus.

    (A streamed frame -- what capture writes -- has no content size in its header, and zstd's
    stream reader returns a truncated frame's bytes without complaint, so check each frame ends.)
    The input goes in small steps, so the output stops soon after ``limit`` bytes
    (:func:`max_inflated_bytes`): a few KiB of crafted zstd can expand to gigabytes.
    """
    import zstandard

    limit = max_inflated_bytes() if limit is None else limit
    parts = []
    total = 0
    pos = 0
    view = memoryview(raw)
    try:
        while pos < len(raw):
            d = zstandard.ZstdDecompressor().decompressobj()
            while not d.eof and pos < len(raw):
                step = bytes(view[pos:pos + _INFLATE_STEP])
                pos += len(step)
                out = d.decompress(step)
                total += len(out)
                if total > limit:
                    raise CorpusError(
                        f"{path}: the pages decompress to more than {limit >> 20} MiB "
                        f"({len(raw)} bytes compressed); {inflate_limit_hint(limit)}. Use a "
                        f"smaller page file, or raise {MAX_INFLATED_ENV} if it is genuine"
                    )
                parts.append(out)
            if not d.eof:
                raise CorpusError(
                    f"{path}: the zstd data is truncated; re-create or re-copy the file"
                )
            pos -= len(d.unused_data)
    except zstandard.ZstdError as exc:
        raise CorpusError(f"{path}: not valid zstd data ({exc}); re-create the file") from None
    return b"".join(parts)


def save_pages(path: Path | str, pages: Any, *, level: int = 19) -> Path:
    """Write pages to ``path`` (zstd-compressed when it ends in ``.zst``), atomically."""
    path = Path(path)
    arr = np.ascontiguousarray(pages, dtype=np.uint8)
    if arr.ndim == 1:
        arr = _as_pages(arr.tobytes(), "save_pages input")
    if arr.ndim != 2 or arr.shape[1] != PAGE_SIZE:
        raise CorpusError(
            f"save_pages needs an (N, {PAGE_SIZE}) uint8 array, got shape {arr.shape}"
        )
    data = memoryview(arr).cast("B")
    if path.name.endswith(".zst"):
        import zstandard

        data = memoryview(zstandard.ZstdCompressor(level=level, threads=-1).compress(data))
    # the usual mode of a new file (0666 less the umask), as capture's page files have
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def corpus_dir() -> Path:
    """The packaged corpus directory."""
    return Path(str(resources.files("hwzswap.data") / "corpus"))


def bundled_corpus_paths() -> list[Path]:
    """The bundled page files, sorted by source name."""
    return sorted(corpus_dir().glob("*.pages.zst"), key=source_name)


def load_bundled_sources(sources: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """``{source: pages}`` for the bundled corpus (all sources, or those named), sorted by name."""
    paths = {source_name(p): p for p in bundled_corpus_paths()}
    if not paths:
        raise CorpusError(
            f"no bundled corpus in {corpus_dir()}; run scripts/recapture_corpus.py to create it"
        )
    names = sorted(paths) if sources is None else list(sources)
    unknown = [n for n in names if n not in paths]
    if unknown:
        raise CorpusError(f"unknown corpus source(s) {unknown}; bundled: {sorted(paths)}")
    return {n: load_pages(paths[n]) for n in names}


def _spread(n: int, k: int) -> np.ndarray:
    """``k`` row indices spread evenly over ``range(n)`` (all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.linspace(0, n - 1, k).round().astype(np.int64)


def _quotas(sizes: Sequence[int], total: int) -> list[int]:
    """Split ``total`` over sources in proportion to their sizes (largest remainder)."""
    full = sum(sizes)
    if total >= full:
        return list(sizes)
    exact = [s * total / full for s in sizes]
    q = [int(e) for e in exact]
    for i in sorted(range(len(sizes)), key=lambda i: (q[i] - exact[i], i))[: total - sum(q)]:
        q[i] += 1
    return q


def load_bundled(sources: Sequence[str] | None = None, max_pages: int | None = None) -> np.ndarray:
    """The bundled corpus as one ``(N, 4096)`` array: sources in name order, pages in file order.

    ``max_pages`` keeps that many pages, shared among the sources in proportion to their sizes
    and spread evenly within each (so a small sample still holds every region of every source).
    The result is the same on every call and every machine.
    """
    if max_pages is not None and max_pages < 1:
        raise CorpusError(f"max_pages must be at least 1, got {max_pages}")
    by_source = load_bundled_sources(sources)
    arrays = list(by_source.values())
    if max_pages is not None:
        quotas = _quotas([a.shape[0] for a in arrays], max_pages)
        arrays = [a[_spread(a.shape[0], q)] for a, q in zip(arrays, quotas)]
    return np.concatenate(arrays) if len(arrays) > 1 else np.array(arrays[0])


def corpus_hash(pages: np.ndarray) -> str:
    """SHA-256 (hex) of the pages' bytes, in order: identifies a corpus in results."""
    data = memoryview(np.ascontiguousarray(pages, dtype=np.uint8)).cast("B")
    return hashlib.sha256(data).hexdigest()


def same_filled_mask(pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(same-filled, zero-filled) boolean masks, one entry per page."""
    pages = np.ascontiguousarray(pages, dtype=np.uint8)
    n = pages.shape[0]
    words = pages.view(np.uint64).reshape(n, _WORDS)
    same = np.empty(n, dtype=bool)
    for lo in range(0, n, _CHUNK):
        w = words[lo : lo + _CHUNK]
        same[lo : lo + _CHUNK] = (w == w[:, :1]).all(axis=1)
    zero = same & (words[:, 0] == 0) if n else np.zeros(0, dtype=bool)
    return same, zero


def _figures(pages: np.ndarray) -> dict[str, Any]:
    n = int(pages.shape[0])
    same, zero = same_filled_mask(pages)
    ns, nz = int(np.count_nonzero(same)), int(np.count_nonzero(zero))
    return {
        "pages": n,
        "bytes": n * PAGE_SIZE,
        "zero_pages": nz,
        "zero_share": nz / n if n else 0.0,
        "same_filled_pages": ns,
        "same_filled_share": ns / n if n else 0.0,
    }


def describe(pages: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Page count, zero-filled and same-filled counts and shares (same-filled includes zero).

    Given ``{source: pages}`` it reports the totals plus a ``sources`` entry per source.
    """
    if isinstance(pages, Mapping):
        per = {name: _figures(p) for name, p in pages.items()}
        n = sum(f["pages"] for f in per.values())
        nz = sum(f["zero_pages"] for f in per.values())
        ns = sum(f["same_filled_pages"] for f in per.values())
        return {
            "pages": n,
            "bytes": n * PAGE_SIZE,
            "zero_pages": nz,
            "zero_share": nz / n if n else 0.0,
            "same_filled_pages": ns,
            "same_filled_share": ns / n if n else 0.0,
            "sources": per,
        }
    return _figures(pages)


def lz4_ratio(pages: np.ndarray) -> float | None:
    """Σ original / Σ compressed over pages that are not same-filled, with LZ4 block (fast,
    acceleration 1); a page that does not shrink counts 4096 bytes. Same definition as the
    bench's ``ratio``: ``None`` when no page counts (all same-filled, or none)."""
    import lz4.block

    compress = lz4.block.compress
    same, _ = same_filled_mask(pages)
    total = comp = 0
    for page in np.ascontiguousarray(pages)[~same]:
        b = page.tobytes()
        total += PAGE_SIZE
        comp += min(len(compress(b, store_size=False)), PAGE_SIZE)
    return total / comp if comp else None


# ----------------------------------------------------------------------------------------------
# README of the bundled corpus


def _load_index() -> dict[str, Any]:
    import yaml

    from hwzswap.yamlfile import settings_loader

    path = corpus_dir() / "sources.yaml"
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=settings_loader()) or {}  # noqa: S506 (a SafeLoader)


def readme_text() -> str:
    """The corpus README: what each source is and figures computed from the files themselves."""
    index = _load_index()
    by_source = load_bundled_sources()
    d = describe(by_source)
    lines = [
        "# Bundled page corpus",
        "",
        "Real anonymous memory (present, private, writable pages) captured with `hwzswap capture`",
        "from running programs, paused mid-work. One file per source: raw concatenated 4096-byte",
        "pages, zstd-compressed. Re-create with `scripts/recapture_corpus.py`; this file is",
        "generated by `python -m hwzswap.bench.corpus --readme -o hwzswap/data/corpus/README.md`",
        "(figures computed from the files).",
        "",
        "Same-filled = every 8-byte word equal (zswap stores only the word); zero pages count too.",
        "lz4 ratio = Σ original / Σ LZ4-block bytes over the pages that are not same-filled",
        "(a page that does not shrink counts 4096). The **all** row is `load_bundled()`: every",
        "source, in name order.",
        "",
        "| source | pages | stored | zero-filled | same-filled | lz4 ratio | sha256 (first 12) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, pages in by_source.items():
        f = d["sources"][name]
        stored = (corpus_dir() / f"{name}.pages.zst").stat().st_size
        ratio = lz4_ratio(pages)
        lines.append(
            f"| {name} | {f['pages']} | {stored / 2**20:.2f} MiB | {f['zero_share']:.1%} "
            f"| {f['same_filled_share']:.1%} | {'-' if ratio is None else f'{ratio:.2f}'} | "
            f"`{corpus_hash(pages)[:12]}` |"
        )
    allp = np.concatenate(list(by_source.values()))
    total_stored = sum(p.stat().st_size for p in bundled_corpus_paths())
    lines.append(
        f"| **all** | {d['pages']} | {total_stored / 2**20:.2f} MiB | {d['zero_share']:.1%} "
        f"| {d['same_filled_share']:.1%} | {lz4_ratio(allp):.2f} | `{corpus_hash(allp)[:12]}` |"
    )
    lines += ["", "## Sources", ""]
    for name in by_source:
        meta = index.get(name, {})
        lines.append(f"### {name}")
        lines.append("")
        if meta.get("description"):
            lines += [meta["description"].strip(), ""]
        if meta.get("command"):
            lines.append(f"- command: `{meta['command']}`")
        if meta.get("capture"):
            lines.append(f"- capture options: `{meta['capture']}`")
        rep = meta.get("report", {})
        if rep:
            lines.append(
                f"- paused by {rep.get('trigger')} after {rep.get('waited_s')} s at RSS "
                f"{rep.get('rss_kb', 0) / 1024:.0f} MB, {len(rep.get('pids', []))} process(es); "
                f"{rep.get('anon_pages')} present anonymous pages in {rep.get('mappings')} "
                f"mappings, {rep.get('pages')} kept (spread evenly)"
            )
            lines.append(
                f"- captured {rep.get('captured_at')} on {rep.get('cpu')}, "
                f"Linux {rep.get('kernel')}"
            )
        if meta.get("versions"):
            lines.append(f"- program version: {meta['versions']}")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hwzswap.bench.corpus``: describe page files or regenerate the corpus README."""
    ap = argparse.ArgumentParser(
        prog="python -m hwzswap.bench.corpus",
        description="Describe page files (figures as JSON) or regenerate the bundled corpus's "
                    "README.")
    ap.add_argument("files", nargs="*", type=Path, help="page files (default: the bundled corpus)")
    ap.add_argument("--describe", action="store_true", help="print figures as JSON (default)")
    ap.add_argument("--readme", action="store_true",
                    help="print the bundled corpus's README, regenerated from its files")
    ap.add_argument("-o", "--output", metavar="FILE", type=Path,
                    help="with --readme: write the README to FILE instead of printing it "
                         "(scripts/recapture_corpus.py writes hwzswap/data/corpus/README.md)")
    args = ap.parse_args(argv)
    if args.readme and (args.files or args.describe):
        ap.error("--readme regenerates the README from the bundled files; give it alone "
                 "(no files, no --describe)")
    if args.output is not None and not args.readme:
        ap.error("-o/--output writes the README: it goes with --readme (the figures of "
                 "--describe are printed)")
    try:
        if args.readme:
            # printed unless a file is named: running the module never edits the installed
            # package behind the user's back
            text = readme_text() + "\n"
            if args.output is None:
                sys.stdout.write(text)
                return 0
            try:
                write_atomic(args.output,
                             lambda tmp: tmp.write_text(text, encoding="utf-8"))
            except OSError as exc:
                print(f"error: {args.output}: cannot write the README: "
                      f"{exc.strerror or exc}", file=sys.stderr)
                return 2
            print(f"wrote {args.output}", file=sys.stderr)
            return 0
        if args.files:
            by_source = {str(p): load_pages(p) for p in args.files}
        else:
            by_source = load_bundled_sources()
        d = describe(by_source)
        for name, pages in by_source.items():
            ratio = lz4_ratio(pages)
            d["sources"][name]["lz4_ratio"] = None if ratio is None else round(ratio, 4)
            d["sources"][name]["sha256"] = corpus_hash(pages)
        json.dump(d, sys.stdout, indent=2)
        sys.stdout.write("\n")
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
