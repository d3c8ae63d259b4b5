import sys

from hwzswap.cli import entry

sys.exit(entry())
