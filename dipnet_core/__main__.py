"""``python -m dipnet_core`` runs the ``dipnet`` command line."""

import sys

from .cli import main

sys.exit(main())
