"""`python -m pipeline.cli`: the `recsys` command line at the module path scripts and tests use
to start it. The command line itself is `pipeline.orchestrate.cli` (the console script's entry
point); this module only hands over to it.
"""

import sys

from pipeline.orchestrate.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
