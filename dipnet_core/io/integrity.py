"""Container-level truncation checks for cases Pillow's decoders accept silently."""

from __future__ import annotations

import struct
from pathlib import Path


def png_complete(path: Path) -> bool:
    """True if the PNG's chunk chain reaches IEND within the file.

    Pillow stops reading after the last IDAT it needs, so a download cut off
    after the pixel data (losing IEND, and eXIf or text chunks stored late)
    would otherwise load without complaint.
    """
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        pos = 8
        while pos + 12 <= size:
            fh.seek(pos)
            length, kind = struct.unpack(">I4s", fh.read(8))
            end = pos + 12 + length
            if end > size:
                return False
            if kind == b"IEND":
                return True
            pos = end
    return False
