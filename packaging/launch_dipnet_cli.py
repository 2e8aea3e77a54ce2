"""Entry script of the bundle's `dipnet` command-line program (see launch_dipnet_studio.py for why)."""

import sys

from dipnet_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
