"""``python -m hwzswap``: the ``hwzswap`` program (:func:`hwzswap.cli.entry`)."""

import sys

try:
    from hwzswap.cli import entry
except KeyboardInterrupt:  # Ctrl-C while the CLI loads: as everywhere, quietly, 130
    print("hwzswap: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(entry())
