"""Exports of a layer (prediction or label layer): the label mask as PNG at working or full resolution, its
classes as GeoJSON polygons in full-resolution image pixels, and its class areas as CSV.

Geometry convention shared by the full-resolution PNG and the GeoJSON: working pixel ``(row i, column j)`` covers
the full-resolution rectangle ``[j·sx, (j+1)·sx) × [i·sy, (i+1)·sy)`` with ``sx = width / working_width`` and
``sy = height / working_height`` (x right, y down, origin at the image's top-left corner). A full-resolution pixel
takes the label of the working pixel its centre falls in, which is plain ``np.repeat`` when the factors are
integers.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from affine import Affine
from PIL import Image
from rasterio import features

from inference.ml.classes import UNLABELLED

from .layers import ClassArea
from .models import LabelLayer
from .rasters import read_raster

EXPORT_FORMATS = ("png", "png-full", "geojson", "csv")
# zlib level of exported PNGs: label masks are long runs of one value, level 1 already compresses them ~50×;
# higher levels cost several times the CPU on a 20000² mask for a few per cent.
PNG_COMPRESS_LEVEL = 1
# Full-resolution rows encoded per step of the PNG stream: 256 rows of a 20000 px wide mask are 5 MB, so memory
# stays flat whatever the height, and zlib gets enough data per call to be efficient.
FULL_RES_STRIP_ROWS = 256
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def layer_labels(layer: dict[str, Any]) -> np.ndarray:
    """The working-resolution label mask, uint8 ``(h, w)`` (0–5, 255 unlabelled), of a layer entry of
    ``annotations.layers.mosaic_layers`` (a prediction or a label layer)."""
    if layer["kind"] == "prediction":
        from inference.models import Prediction

        prediction = Prediction.objects.get(pk=int(layer["key"].split(":", 1)[1]))
        return read_raster(prediction.level_path(0))
    return read_raster(LabelLayer.objects.get(pk=layer["layer"]).raster_path)


def png_bytes(labels: np.ndarray) -> bytes:
    """``labels`` uint8 ``(h, w)`` as a lossless single-channel PNG."""
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (h, w) label mask, got {labels.dtype} {labels.shape}")
    buffer = io.BytesIO()
    Image.fromarray(labels).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _source_index(full: int, working: int, start: int, stop: int) -> np.ndarray:
    """Working index of each full-resolution index in ``[start, stop)``: the working pixel its centre lies in."""
    return np.minimum(((np.arange(start, stop) + 0.5) * working / full).astype(np.int64), working - 1)


def upscale_rows(labels: np.ndarray, height: int, width: int, start: int, stop: int) -> np.ndarray:
    """Rows ``[start, stop)`` of ``labels`` (uint8 ``(h, w)``) upscaled by nearest neighbour to ``height × width``:
    uint8 ``(stop - start, width)``."""
    h, w = labels.shape
    if not 0 <= start <= stop <= height:
        raise ValueError(f"rows [{start}, {stop}) are outside 0..{height}")
    if height % h == 0 and width % w == 0:  # integer factors: every working pixel becomes an fy × fx block
        fy, fx = height // h, width // w
        block = labels[start // fy: -(-stop // fy)]
        rows = np.repeat(np.repeat(block, fy, axis=0), fx, axis=1)
        offset = start - (start // fy) * fy
        return rows[offset: offset + stop - start]
    return labels[np.ix_(_source_index(height, h, start, stop), _source_index(width, w, 0, width))]


def upscale_nearest(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """``labels`` uint8 ``(h, w)`` at full resolution, uint8 ``(height, width)`` (whole, in memory)."""
    return upscale_rows(labels, height, width, 0, height)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def full_resolution_png(labels: np.ndarray, height: int, width: int) -> Iterator[bytes]:
    """A greyscale 8-bit PNG of ``labels`` upscaled to ``height × width``, produced strip by strip (memory stays
    at a few strips, whatever the size): chunks of bytes to stream as they come."""
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (h, w) label mask, got {labels.dtype} {labels.shape}")
    yield PNG_SIGNATURE + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    compressor = zlib.compressobj(PNG_COMPRESS_LEVEL)
    for start in range(0, height, FULL_RES_STRIP_ROWS):
        strip = upscale_rows(labels, height, width, start, min(height, start + FULL_RES_STRIP_ROWS))
        filtered = np.zeros((strip.shape[0], width + 1), np.uint8)  # filter byte 0 (none) before each row
        filtered[:, 1:] = strip
        data = compressor.compress(filtered.tobytes())
        if data:
            yield _png_chunk(b"IDAT", data)
    yield _png_chunk(b"IDAT", compressor.flush()) + _png_chunk(b"IEND", b"")


def layer_geojson(labels: np.ndarray, *, height: int, width: int, classes: Sequence[ClassArea]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection with one MultiPolygon per class present in ``labels`` (uint8 ``(h, w)``).

    Polygons follow the pixel edges exactly (traced by GDAL through ``rasterio.features.shapes``, 4-connected, so
    two regions touching at a corner are two polygons) with their holes, in full-resolution image pixels.
    ``classes`` gives each class's key, name, colour and area (``annotations.layers.class_areas``).
    """
    h, w = labels.shape
    transform = Affine.scale(width / w, height / h)
    polygons: dict[int, list[list[list[list[float]]]]] = {}
    for geometry, value in features.shapes(labels, mask=labels != UNLABELLED, connectivity=4, transform=transform):
        polygons.setdefault(int(value), []).append(
            [[[float(x), float(y)] for x, y in ring] for ring in geometry["coordinates"]])
    feature_list = [
        {
            "type": "Feature",
            "geometry": {"type": "MultiPolygon", "coordinates": polygons[info.value]},
            "properties": {"value": info.value, "key": info.key, "name": info.name, "colour": info.colour,
                           "area_mm2": info.area_mm2},
        }
        for info in classes if info.value in polygons
    ]
    return {"type": "FeatureCollection", "features": feature_list}
