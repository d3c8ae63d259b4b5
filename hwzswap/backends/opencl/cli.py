"""``hwzswap tune lz4-opencl [--refresh]``: run (or show) a device's tuned kernel configuration.

The tuned choice is what ``lz4-opencl`` uses for every kernel parameter left at ``auto``
(:mod:`hwzswap.backends.opencl.tuning`). Without ``--refresh`` a cached choice is shown as it
is; with it the grid is measured again and the cache rewritten.
"""

from __future__ import annotations

import argparse
import json
import sys

from hwzswap.backends.opencl.device import DEVICE_TYPES

TUNABLE = ("lz4-opencl",)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "tune",
        help="measure (or show) a device backend's tuned kernel configuration",
        description=(
            "Measure a small grid of lz4-opencl kernel configurations on one OpenCL device and "
            "cache the fastest (what every kernel parameter left at 'auto' then uses), or show "
            "the cached choice. --refresh measures again and rewrites the cache."
        ),
    )
    p.add_argument("backend", choices=TUNABLE, help="the backend to tune")
    p.add_argument("--refresh", action="store_true",
                   help="measure again even when a choice is cached")
    p.add_argument("--device", default="auto", help="device name substring (default: auto)")
    p.add_argument("--device-type", default="any", choices=DEVICE_TYPES,
                   help="only devices of this type (default: any)")
    p.add_argument("--platform", default="", help="platform name substring")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=_cmd_tune)


def _cmd_tune(args: argparse.Namespace) -> int:
    from hwzswap.backends.opencl import tuning
    from hwzswap.backends.opencl.device import DeviceQuery, select_device

    query = DeviceQuery(args.device, args.device_type, args.platform)
    platform, device = select_device(query)
    if not args.json:
        print(f"tuning cache: {tuning.cache_dir()}", file=sys.stderr)
    result = tuning.tuned_choice(
        platform, device, query, refresh=args.refresh,
        progress=lambda line: print(f"  {line}", file=sys.stderr), require_cache=True,
    )
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(tuning.format_table(result))
    return 0


__all__ = ["register"]
