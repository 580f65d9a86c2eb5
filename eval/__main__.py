"""`python -m eval GOLD --corpus PATH ...`: the same as `rag eval GOLD --corpus PATH ...`."""

import sys

from rag.cli import main

sys.exit(main(["eval", *sys.argv[1:]]))
