"""A seller's product photo, checked and turned into thumbnails with Pillow.

Uploads are untrusted bytes: they must open as a JPEG, PNG or WebP, pass Pillow's ``verify``,
decode completely (a truncated file is refused, never half-loaded), and stay under a pixel budget
checked from the header before any pixel is decoded (a 50,000 x 50,000 "decompression bomb" is
a few KiB of PNG and gigabytes of memory). What is kept is pixels only: the thumbnails are new
WebP files, without EXIF (GPS position, camera serial), XMP or ICC data; the EXIF orientation is
applied first so a phone's portrait photo stays upright. All of this is CPU work: callers run
`make_thumbnails` in a thread.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from livecommerce.errors import ErrorCode, InvalidInput, LiveCommerceError

MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 48 MP phone photo is refused; 40 MP decodes to about 160 MB RGBA
MAX_SIDE = 12_000
THUMBNAIL_SIDES = (200, 800)
FORMATS = ("JPEG", "PNG", "WEBP")
CONTENT_TYPE = "image/webp"


class NotAnImage(InvalidInput):
    """The upload is not a photo we take; the message says what is wrong with it."""


@dataclass(frozen=True)
class Thumbnails:
    width: int  # of the original, after its orientation is applied
    height: int
    webp: dict[int, bytes]  # longest side in px -> WebP bytes

    def __post_init__(self) -> None:
        if set(self.webp) != set(THUMBNAIL_SIDES):
            raise ValueError("one thumbnail per size")


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise NotAnImage("the file is not an image (JPEG, PNG or WebP expected)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise NotAnImage(f"the image has more than {MAX_PIXELS} pixels") from None
    if image.format not in FORMATS:
        raise NotAnImage(f"{image.format} images are not taken: send JPEG, PNG or WebP")
    width, height = image.size
    if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
        raise NotAnImage(
            f"the image is {width}x{height}: at most {MAX_PIXELS} pixels and {MAX_SIDE} px a side"
        )
    if width < 1 or height < 1:
        raise NotAnImage("the image is empty")
    return image


def make_thumbnails(data: bytes) -> Thumbnails:
    """Check ``data`` and make a WebP thumbnail per `THUMBNAIL_SIDES`; raises `NotAnImage`.

    Blocking and CPU-heavy: run it in a thread.
    """
    if len(data) > MAX_PHOTO_BYTES:
        raise LiveCommerceError(
            ErrorCode.PAYLOAD_TOO_LARGE, f"a photo is at most {MAX_PHOTO_BYTES} bytes"
        )
    if not data:
        raise NotAnImage("the file is empty")
    try:
        _open(data).verify()  # structure and checksums, without decoding pixels
    except NotAnImage:
        raise
    except Exception:
        raise NotAnImage("the image is damaged (its structure does not verify)") from None
    image = _open(data)  # verify() leaves the image unusable: open again to decode
    # A JPEG decodes straight at a fraction of its size (1/2 to 1/8) when that is still larger
    # than the biggest thumbnail: a quarter of the memory and time or less.
    width, height = image.size
    try:
        if image.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation: a quarter turn
            width, height = height, width
    except Exception:
        raise NotAnImage("the image's metadata is damaged") from None
    if image.format == "JPEG":
        image.draft("RGB", (THUMBNAIL_SIDES[-1], THUMBNAIL_SIDES[-1]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
            image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning):
        raise NotAnImage("the image is truncated or damaged (it does not decode)") from None
    mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info else "RGB"
    # A new image from the pixels alone: no EXIF, XMP, ICC or comments survive.
    pixels = Image.new(mode, image.size)
    pixels.paste(image.convert(mode))
    webp: dict[int, bytes] = {}
    for side in THUMBNAIL_SIDES:
        thumb = pixels.copy()
        thumb.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        thumb.save(out, "WEBP", quality=82, method=4)
        webp[side] = out.getvalue()
    return Thumbnails(width=width, height=height, webp=webp)
