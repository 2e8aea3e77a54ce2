"""DIPNet Studio desktop app (PySide6). Computation lives in :mod:`dipnet_core`; this package is the GUI."""
