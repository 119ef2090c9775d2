"""Edit geometries: validate what the browser sends and rasterise it at working resolution.

The browser sends geometries in full-resolution image pixels (``x`` right, ``y`` down, the image spanning
``[0, width) × [0, height)``):

- ``{"type": "stroke", "points": [[x, y], ...], "radius_um": r}``: a brush stroke, a polyline with round caps
  and joints, ``r`` µm from its centre line (one point is a dot);
- ``{"type": "polygon", "points": [[x, y], ...]}``: a filled polygon (3 points or more);
- ``{"type": "rectangle", "x0": .., "y0": .., "x1": .., "y1": ..}``: a filled rectangle (corners in any order).

A geometry partly outside the image is clipped to it; one that covers no pixel of the image is refused.
Rasterising is done with PIL on a canvas the size of the geometry's bounding box only, so its cost follows the
stroke, not the mosaic. The result is a :class:`Footprint`: the tight bounding box in working pixels and the
boolean mask of covered pixels inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# A stroke sampled at the pointer's rate (≈ 120 Hz) for a whole minute has ≈ 7200 points and a hand-clicked
# polygon a few hundred; 10 000 leaves room for both while bounding the request and the rasterising work.
MAX_POINTS = 10_000
# The viewer's largest brush: a 0.5 mm radius (1 mm wide) already covers ~1 % of a 12 mm mosaic per dab; larger
# areas are faster with a polygon or an accepted rectangle. Also bounds the canvas a single stroke needs.
MAX_RADIUS_UM = 500.0
# Coordinates may lie outside the image (a rectangle dragged past the edge) but within this many image sizes of
# it: a viewer never sends points farther away, and the bound keeps the rasteriser's integers small.
OUTSIDE_LIMIT_IMAGES = 1.0

GEOMETRY_TYPES = ("stroke", "polygon", "rectangle")
_KEYS = {"stroke": {"type", "points", "radius_um"}, "polygon": {"type", "points"},
         "rectangle": {"type", "x0", "y0", "x1", "y1"}}


class GeometryRejected(ValueError):
    """The geometry cannot be used; the message says what is wrong and what is allowed."""


@dataclass(frozen=True)
class Geometry:
    """A validated geometry in full-resolution image pixels (rectangles as their two corners)."""

    type: str
    points: tuple[tuple[float, float], ...]
    radius_um: float | None = None


@dataclass(frozen=True)
class Footprint:
    """Pixels a geometry covers at working resolution: ``mask`` is bool ``(y1 - y0, x1 - x0)`` over ``bbox``."""

    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (half-open) in working pixels
    mask: np.ndarray

    def slices(self) -> tuple[slice, slice]:
        x0, y0, x1, y1 = self.bbox
        return slice(y0, y1), slice(x0, x1)


@dataclass(frozen=True)
class Frame:
    """How full-resolution coordinates map onto the working raster of one mosaic."""

    width: int  # full-resolution size
    height: int
    working_width: int
    working_height: int
    um_per_px: float  # full-resolution pixel size

    @property
    def scale_x(self) -> float:
        return self.working_width / self.width

    @property
    def scale_y(self) -> float:
        return self.working_height / self.height

    def to_image(self, bbox: tuple[int, int, int, int]) -> dict[str, float]:
        """A working-pixel box as a rectangle in full-resolution image pixels."""
        x0, y0, x1, y1 = bbox
        return {"x0": x0 / self.scale_x, "y0": y0 / self.scale_y, "x1": x1 / self.scale_x, "y1": y1 / self.scale_y}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GeometryRejected(f"{where} must be a number; got {value!r}.")
    number = float(value)
    if not math.isfinite(number):
        raise GeometryRejected(f"{where} must be a finite number; got {value!r}.")
    return number


def _check_range(x: float, y: float, frame: Frame, where: str) -> None:
    mx, my = OUTSIDE_LIMIT_IMAGES * frame.width, OUTSIDE_LIMIT_IMAGES * frame.height
    if not (-mx <= x <= frame.width + mx and -my <= y <= frame.height + my):
        raise GeometryRejected(
            f"{where} ({x:g}, {y:g}) is far outside the {frame.width} × {frame.height} px image; coordinates are "
            f"full-resolution image pixels and may exceed the image by at most {OUTSIDE_LIMIT_IMAGES:g} image size.")


def _points(value: Any, frame: Frame, minimum: int) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list):
        raise GeometryRejected('"points" must be a list of [x, y] pairs.')
    if len(value) < minimum:
        raise GeometryRejected(f'"points" needs at least {minimum} point(s); got {len(value)}.')
    if len(value) > MAX_POINTS:
        raise GeometryRejected(f'"points" has {len(value)} points; at most {MAX_POINTS} are allowed. '
                               "Split long strokes, or simplify the polygon.")
    points = []
    for index, item in enumerate(value):
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise GeometryRejected(f"points[{index}] must be an [x, y] pair; got {item!r}.")
        x, y = _number(item[0], f"points[{index}][0]"), _number(item[1], f"points[{index}][1]")
        _check_range(x, y, frame, f"points[{index}]")
        points.append((x, y))
    return tuple(points)


def parse_geometry(data: Any, frame: Frame) -> Geometry:
    """Validate a geometry as sent by the browser (see the module docstring); raises :class:`GeometryRejected`."""
    if not isinstance(data, dict):
        raise GeometryRejected("The geometry must be an object with a \"type\": " + ", ".join(GEOMETRY_TYPES) + ".")
    kind = data.get("type")
    if kind not in GEOMETRY_TYPES:
        raise GeometryRejected(f"Unknown geometry type {kind!r}; use one of {', '.join(GEOMETRY_TYPES)}.")
    extra = sorted(set(data) - _KEYS[kind])
    missing = sorted(_KEYS[kind] - set(data))
    if extra or missing:
        raise GeometryRejected(f"A {kind} has exactly the fields {sorted(_KEYS[kind])}; "
                               + (f"unknown: {extra}. " if extra else "") + (f"missing: {missing}." if missing else ""))
    if kind == "rectangle":
        x0, y0, x1, y1 = (_number(data[k], k) for k in ("x0", "y0", "x1", "y1"))
        _check_range(x0, y0, frame, "(x0, y0)")
        _check_range(x1, y1, frame, "(x1, y1)")
        return Geometry("rectangle", ((min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))))
    if kind == "polygon":
        return Geometry("polygon", _points(data["points"], frame, minimum=3))
    radius = _number(data["radius_um"], "radius_um")
    if not 0 < radius <= MAX_RADIUS_UM:
        raise GeometryRejected(f"radius_um must be above 0 and at most {MAX_RADIUS_UM:g} µm; got {radius:g}.")
    return Geometry("stroke", _points(data["points"], frame, minimum=1), radius_um=radius)


def rasterise(geometry: Geometry, frame: Frame) -> Footprint:
    """The working pixels ``geometry`` covers, clipped to the image; raises :class:`GeometryRejected` if none.

    A working pixel ``(i, j)`` spans ``[i, i + 1) × [j, j + 1)`` in working coordinates ``(x * scale_x,
    y * scale_y)``. Rectangles cover every pixel they touch; polygons and strokes cover the pixels PIL fills
    (pixel centres inside, plus the outline); a stroke's radius is ``radius_um / um_per_px`` full-resolution px.
    """
    sx, sy = frame.scale_x, frame.scale_y
    w, h = frame.working_width, frame.working_height
    if geometry.type == "rectangle":
        (ax, ay), (bx, by) = geometry.points
        x0, x1 = max(0, math.floor(ax * sx)), min(w, math.ceil(bx * sx))
        y0, y1 = max(0, math.floor(ay * sy)), min(h, math.ceil(by * sy))
        if x1 <= x0 or y1 <= y0:
            raise _covers_nothing(frame)
        return Footprint((x0, y0, x1, y1), np.ones((y1 - y0, x1 - x0), bool))
    pts = np.array(geometry.points, np.float64) * (sx, sy)
    radius = (geometry.radius_um or 0.0) / frame.um_per_px * sx if geometry.type == "stroke" else 0.0
    margin = radius + 2.0
    x0, y0 = max(0, math.floor(pts[:, 0].min() - margin)), max(0, math.floor(pts[:, 1].min() - margin))
    x1, y1 = min(w, math.ceil(pts[:, 0].max() + margin)), min(h, math.ceil(pts[:, 1].max() + margin))
    if x1 <= x0 or y1 <= y0:
        raise _covers_nothing(frame)
    canvas = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw = ImageDraw.Draw(canvas)
    # PIL's integer coordinate i is the centre of pixel i: shift by half a pixel and into the canvas.
    local = [(float(x) - x0 - 0.5, float(y) - y0 - 0.5) for x, y in pts]
    if geometry.type == "polygon":
        draw.polygon(local, fill=1, outline=1)
    else:
        if len(local) > 1:
            draw.line(local, fill=1, width=max(1, round(2 * radius)))
        # Round caps and joints. PIL's ellipse box is inclusive of its last pixel, so a disc of radius r about a
        # pixel centre spans r - 0.5 on either side of it.
        inner = max(0.0, radius - 0.5)
        for x, y in local:
            draw.ellipse((x - inner, y - inner, x + inner, y + inner), fill=1)
            draw.point((math.floor(x + 0.5), math.floor(y + 0.5)), fill=1)  # a dot covers at least its pixel
    mask = np.asarray(canvas, dtype=np.uint8).astype(bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise _covers_nothing(frame)
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return Footprint((x0 + c0, y0 + r0, x0 + c1, y0 + r1), mask[r0:r1, c0:c1].copy())


def _covers_nothing(frame: Frame) -> GeometryRejected:
    return GeometryRejected(
        f"The geometry covers no pixel of the image (0 ≤ x < {frame.width}, 0 ≤ y < {frame.height} in "
        f"full-resolution pixels, rasterised at {frame.working_width} × {frame.working_height}).")
