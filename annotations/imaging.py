"""Image checks and conversions for ingest, with pyvips. No database here.

Every check raises :class:`ImageRejected` with a message that says what was wrong and what is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvips
from PIL import Image as PILImage

# Largest mosaic admitted: 20000 × 20000 px (a 20 mm field at 1 µm/px, beyond any RCM mosaic we know of);
# checked from the header before any pixel is decoded.
MAX_PIXELS = 20_000 * 20_000
# Smallest side: below one field of view there is nothing to review, and pyramids/windows degenerate.
MIN_SIDE_PX = 64
# µm/px read from a file is trusted only inside this range; outside it the tags are junk (e.g. 72 dpi).
PLAUSIBLE_UM_PER_PX = (0.05, 50.0)
# 16-bit images: these percentiles map to 0 and 255 (robust to a few saturated or dead pixels).
HIGH_BIT_LOW_PERCENT = 0.1
HIGH_BIT_HIGH_PERCENT = 99.9
# Pyramid layout of the design: 254 px tiles + 1 px overlap, JPEG for the image.
DZI_TILE_SIZE = 254
DZI_OVERLAP = 1
DZI_JPEG_QUALITY = 90
THUMBNAIL_PX = 256

ACCEPTED_DESCRIPTION = (
    "TIFF/BigTIFF (tiled and pyramidal too), PNG, BMP or JPEG; 8- or 16-bit grayscale, or RGB (converted to gray)"
)

_EXTENSIONS = {
    ".tif": "tiff", ".tiff": "tiff", ".png": "png", ".bmp": "bmp", ".jpg": "jpeg", ".jpeg": "jpeg",
}
_SAFE_NAME = re.compile(r"^[^/\\\x00]+$")


class ImageRejected(ValueError):
    """The file is not an image we accept; the message is for the person who uploaded it."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    bands: int
    bit_depth: int
    um_per_px: float | None


def check_filename(filename: str) -> str:
    """Return the extension's format; refuse names with path parts or unknown extensions."""
    if not filename or not _SAFE_NAME.match(filename) or filename.strip() in {".", ".."}:
        raise ImageRejected(
            f"File name {filename!r} is not allowed: give a plain file name without folders, '/', '\\' or '..'."
        )
    suffix = Path(filename).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise ImageRejected(
            f"File type {suffix or '(none)'!r} is not accepted. Accepted: {', '.join(sorted(_EXTENSIONS))} "
            f"({ACCEPTED_DESCRIPTION})."
        )
    return _EXTENSIONS[suffix]


def sniff_format(head: bytes) -> str | None:
    """The format the first bytes announce, or None."""
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:2] == b"BM":
        return "bmp"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    return None


def _um_per_px_from_tags(image: pyvips.Image, fmt: str) -> float | None:
    """µm/px from resolution tags, if the file carries real ones (vips reports xres in pixels per mm)."""
    fields = set(image.get_fields())
    if fmt == "tiff":
        if "resolution-unit" not in fields:
            return None
    elif fmt == "png":
        # libvips sets xres from a pHYs chunk only when one is present; the default is 1 px/mm.
        if image.xres == 1.0:
            return None
    else:
        return None
    if image.xres <= 0:
        return None
    um = 1000.0 / image.xres
    low, high = PLAUSIBLE_UM_PER_PX
    return um if low <= um <= high else None


def inspect(path: Path, *, declared_format: str) -> ImageInfo:
    """Check the header (never decodes pixels): format, size limits, pixel type."""
    with path.open("rb") as fh:
        head = fh.read(16)
    if not head:
        raise ImageRejected("The file is empty. Upload an image: " + ACCEPTED_DESCRIPTION + ".")
    actual = sniff_format(head)
    if actual is None:
        raise ImageRejected(
            f"The file's content is not an image we read (it is not {declared_format.upper()} inside). "
            f"Accepted: {ACCEPTED_DESCRIPTION}."
        )
    if actual != declared_format:
        raise ImageRejected(
            f"The file is named as {declared_format.upper()} but its content is {actual.upper()}. "
            "Rename it with the right extension."
        )
    if actual == "bmp":  # libvips has no BMP loader of its own: Pillow reads BMP
        return _inspect_bmp(path)
    try:
        image = pyvips.Image.new_from_file(str(path), access="sequential")
    except pyvips.Error as exc:
        raise ImageRejected(f"The {actual.upper()} header cannot be read ({_first_line(exc)}).") from exc
    width, height = image.width, image.height
    _check_size(width, height)
    if image.format not in ("uchar", "ushort"):
        raise ImageRejected(
            f"Pixel type {image.format!r} is not supported. Accepted: 8-bit (uchar) or 16-bit (ushort) "
            "grayscale or RGB."
        )
    if image.bands not in (1, 2, 3, 4):
        raise ImageRejected(
            f"The image has {image.bands} channels. Accepted: 1 (gray), 2 (gray + alpha), 3 (RGB), 4 (RGBA)."
        )
    bit_depth = 8 if image.format == "uchar" else 16
    return ImageInfo(actual, width, height, image.bands, bit_depth, _um_per_px_from_tags(image, actual))


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageRejected(
            f"The image is {width} × {height} px; at most {MAX_PIXELS:,} pixels (e.g. 20000 × 20000) are accepted."
        )
    if min(width, height) < MIN_SIDE_PX:
        raise ImageRejected(f"The image is {width} × {height} px; each side must be at least {MIN_SIDE_PX} px.")


# Pillow modes we accept from BMP files, with their bit depth.
_BMP_MODES = {"L": 8, "P": 8, "RGB": 8, "RGBA": 8}


def _inspect_bmp(path: Path) -> ImageInfo:
    try:
        with PILImage.open(path) as image:  # reads the header only
            width, height, mode = image.width, image.height, image.mode
    except (OSError, ValueError, PILImage.DecompressionBombError) as exc:
        raise ImageRejected(f"The BMP header cannot be read ({exc}).") from exc
    _check_size(width, height)
    if mode not in _BMP_MODES:
        raise ImageRejected(f"BMP pixel mode {mode!r} is not supported. Accepted: 8-bit gray, palette or RGB.")
    return ImageInfo("bmp", width, height, 1 if mode in ("L", "P") else 3, 8, None)


def _load_bmp(path: Path) -> pyvips.Image:
    PILImage.MAX_IMAGE_PIXELS = MAX_PIXELS  # the header was checked; allow up to our own limit
    try:
        with PILImage.open(path) as image:
            array = np.asarray(image.convert("L"))
    except (OSError, ValueError) as exc:
        raise ImageRejected(f"The image data is truncated or corrupt ({exc}). Upload the complete file.") from exc
    height, width = array.shape
    return pyvips.Image.new_from_memory(np.ascontiguousarray(array).tobytes(), width, height, 1, "uchar")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else exc.__class__.__name__


def check_decodes(path: Path) -> None:
    """Decode every pixel once (streaming): truncated or corrupt files are refused here."""
    if _is_bmp(path):
        _load_bmp(path)
        return
    try:
        image = pyvips.Image.new_from_file(str(path), access="sequential", fail_on="error")
        image.avg()
    except pyvips.Error as exc:
        raise ImageRejected(
            f"The image data is truncated or corrupt ({_first_line(exc)}). Upload the complete file."
        ) from exc


def _drop_alpha_and_colour(image: pyvips.Image) -> pyvips.Image:
    if image.bands in (2, 4):
        image = image.extract_band(0, n=image.bands - 1)
    if image.bands == 3:
        image = image.colourspace("b-w") if image.format == "uchar" else image.colourspace("grey16")
    return image


def to_gray8(image: pyvips.Image, *, high_bit_range: tuple[float, float] | None = None) -> pyvips.Image:
    """Gray, 8-bit: alpha dropped, RGB → luminance, 16-bit mapped linearly from ``high_bit_range``
    (by default its ``HIGH_BIT_LOW_PERCENT``–``HIGH_BIT_HIGH_PERCENT`` percentiles) to 0–255, clipped."""
    image = _drop_alpha_and_colour(image)
    if image.format == "ushort":
        low, high = high_bit_range if high_bit_range is not None else _percentile_range(image)
        image = ((image - low) * (255.0 / max(high - low, 1.0))).cast("uchar")  # cast clips to 0..255
    elif image.format != "uchar":
        image = image.cast("uchar")
    return image.copy(interpretation="b-w")


def _percentile_range(image: pyvips.Image) -> tuple[float, float]:
    return float(image.percent(HIGH_BIT_LOW_PERCENT)), float(image.percent(HIGH_BIT_HIGH_PERCENT))


def load_gray8(path: Path) -> pyvips.Image:
    """The whole image as 8-bit gray, in memory (decoded once, then reused by every output).

    16-bit files are read twice in streaming mode (percentiles, then conversion) rather than held in memory
    at 16 bits."""
    if _is_bmp(path):
        return _load_bmp(path).copy(interpretation="b-w")

    def open_() -> pyvips.Image:
        return pyvips.Image.new_from_file(str(path), access="sequential", fail_on="error")

    source = open_()
    high_bit_range = _percentile_range(_drop_alpha_and_colour(source)) if source.format == "ushort" else None
    if high_bit_range is not None:
        source = open_()
    return to_gray8(source, high_bit_range=high_bit_range).copy_memory()


def _is_bmp(path: Path) -> bool:
    with path.open("rb") as fh:
        return sniff_format(fh.read(16)) == "bmp"


def working_size(width: int, height: int, *, um_per_px: float, working_um_per_px: float) -> tuple[int, int]:
    scale = um_per_px / working_um_per_px
    return max(1, round(width * scale)), max(1, round(height * scale))


def write_pyramid(image: pyvips.Image, folder: Path) -> Path:
    """Deep Zoom pyramid ``folder/image.dzi`` + ``folder/image_files/``; returns the descriptor path."""
    folder.mkdir(parents=True, exist_ok=True)
    image.dzsave(
        str(folder / "image"),
        tile_size=DZI_TILE_SIZE,
        overlap=DZI_OVERLAP,
        suffix=f".jpg[Q={DZI_JPEG_QUALITY}]",
    )
    return folder / "image.dzi"


def write_working_copy(image: pyvips.Image, path: Path, *, width: int, height: int) -> None:
    """The image at working resolution (area-averaged), lossless PNG."""
    resized = image.resize(width / image.width, vscale=height / image.height, kernel="linear")
    if resized.width != width or resized.height != height:
        resized = resized.gravity("north-west", width, height, extend="copy")
    resized.pngsave(str(path), compression=1)


def write_thumbnail(image: pyvips.Image, path: Path) -> None:
    image.thumbnail_image(THUMBNAIL_PX).jpegsave(str(path), Q=85)
