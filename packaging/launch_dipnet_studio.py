"""Entry script of the PyInstaller bundle.

PyInstaller runs its entry file as a top-level script, where ``app/__main__.py``'s relative imports
fail; this imports the package properly instead.
"""

import sys

from app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
