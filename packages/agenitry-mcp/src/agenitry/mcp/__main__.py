"""``python -m agenitry.mcp serve|proxy``: the same commands as ``agenitry mcp``, without the gateway installed."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
