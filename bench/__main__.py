"""`python -m bench`: run the benchmark (see `--help`)."""

from __future__ import annotations

import sys

from ._run import main

if __name__ == "__main__":
    sys.exit(main())
