"""Images for photo tests: real JPEG and PNG files, and decompression bombs."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from PIL import Image


def jpeg(width: int = 1600, height: int = 1200, exif: bool = True) -> bytes:
    image = Image.new("RGB", (width, height), (30, 120, 200))
    image.paste((250, 200, 0), (0, 0, width // 2, height // 2))
    out = io.BytesIO()
    extra: dict[str, Any] = {}
    if exif:
        tags = Image.Exif()
        tags[0x010F] = "SecretCamera"  # Make
        tags[0x0112] = 6  # Orientation: rotate 90° clockwise to display
        extra["exif"] = tags.tobytes()
    image.save(out, "JPEG", quality=90, **extra)
    return out.getvalue()


def png(width: int = 640, height: int = 480) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 200, 0, 128)).save(out, "PNG")
    return out.getvalue()


def bomb(side: int = 60_000) -> bytes:
    """A decompression bomb: a valid PNG of ``side`` x ``side`` black pixels (3.6 gigapixels
    for the default), its IDAT a few KiB of zlib that would inflate to gigabytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + b"\x00" * ((side + 7) // 8)  # filter byte + 1-bit pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(min(side, 2000))) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def big_but_quiet() -> bytes:
    """Under Pillow's own bomb limit, over ours (64 MP)."""
    return bomb(8000)
