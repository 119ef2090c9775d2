"""Builders of small image files, good and bad, for the ingest tests."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pyvips
import tifffile
from PIL import Image

from tests.conftest import gray_image


def write_tiff(path: Path, array: np.ndarray, *, um_per_px: float | None = None, bigtiff: bool = False,
               tile: tuple[int, int] | None = None) -> Path:
    kwargs: dict = {}
    if um_per_px is not None:
        kwargs.update(resolution=(1e4 / um_per_px, 1e4 / um_per_px), resolutionunit="CENTIMETER")
    tifffile.imwrite(path, array, bigtiff=bigtiff, tile=tile, photometric="minisblack" if array.ndim == 2 else "rgb",
                     **kwargs)
    return path


def write_pyramidal_tiff(path: Path, array: np.ndarray) -> Path:
    image = pyvips.Image.new_from_memory(np.ascontiguousarray(array).tobytes(), array.shape[1], array.shape[0], 1,
                                         "uchar")
    image.tiffsave(str(path), tile=True, pyramid=True, tile_width=64, tile_height=64)
    return path


def pillow_bytes(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width × height`` pixels (its data is a few bytes)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _png_chunk(b"IEND", b""))


def truncated_tiff_bytes(tmp: Path) -> bytes:
    path = write_tiff(tmp / "full.tif", gray_image(400, 300))
    data = path.read_bytes()
    return data[: len(data) // 2]


def float_tiff_bytes(tmp: Path) -> bytes:
    path = write_tiff(tmp / "float.tif", gray_image(200, 100).astype(np.float32) / 255.0)
    return path.read_bytes()


HTML_BYTES = b"<!DOCTYPE html><html><body>not an image</body></html>"
SVG_BYTES = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'


# --- Label maps sent with uploads (for a 300 × 200 mosaic at 1 µm/px: working size 75 × 50) ---------------

def expected_working(width: int = 75, height: int = 50) -> np.ndarray:
    """The layer expected at working resolution: meshwork on the left, nested top right, unlabelled elsewhere."""
    expected = np.full((height, width), 255, np.uint8)
    expected[:, : width // 2] = 2
    expected[: height // 2, width // 2:] = 4
    return expected


def other_tool_labels(scale: int = 4) -> np.ndarray:
    """The same map as another tool writes it, at full resolution (``scale`` × working): 0 unlabelled,
    10 meshwork, 20 nested."""
    tool_values = np.zeros(256, np.uint8)
    tool_values[[2, 4]] = [10, 20]
    return tool_values[np.kron(expected_working(), np.ones((scale, scale), np.uint8))]


# The mapping of ``other_tool_labels`` values to classes, as the upload form sends it.
OTHER_TOOL_MAPPING = '{"0": 255, "10": 2, "20": 4}'
