import sys

from hwzswap.cli import main

sys.exit(main())
