"""Statistics in the shape of the pSeries NX-842 sysfs files (842.md §4.6).

``comp_complete``/``comp_failed``/``decomp_complete``/``decomp_failed``/``swdecomp`` and the
``comp_times``/``decomp_times`` latency histograms: 16 power-of-two microsecond buckets, bucket
``i`` holding latencies whose highest set bit is ``i`` (0-1 µs, 2-3 µs, 4-7 µs, ...), the last
one open-ended (32768 µs and up).
"""

from __future__ import annotations

HIST_BUCKETS = 16


def hist_bucket(us: float) -> int:
    """Bucket index of a latency in µs (pSeries ``ibm_nx842_incr_hist`` semantics)."""
    b = int(us).bit_length() - 1
    return 0 if b < 0 else (b if b < HIST_BUCKETS else HIST_BUCKETS - 1)


def hist_labels() -> list[str]:
    """``["0-1us", "2-3us", "4-7us", ..., "32768us -"]``."""
    labels = ["0-1us"]
    for i in range(1, HIST_BUCKETS - 1):
        labels.append(f"{1 << i}-{(1 << (i + 1)) - 1}us")
    labels.append(f"{1 << (HIST_BUCKETS - 1)}us -")
    return labels


def format_histogram(buckets: list[int]) -> str:
    """The histogram as the sysfs file prints it, one ``<range>:\\t<count>`` line per bucket."""
    return "\n".join(f"{label}:\t{n}" for label, n in zip(hist_labels(), buckets, strict=True))
