"""Edit geometries: validation (every refusal names the problem) and rasterising at working resolution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from annotations.geometry import (
    MAX_POINTS,
    MAX_RADIUS_UM,
    Frame,
    Geometry,
    GeometryRejected,
    parse_geometry,
    rasterise,
)

# 400 × 320 full-resolution px at 1 µm/px, working at 1/4: 100 × 80 px of 4 µm.
FRAME = Frame(width=400, height=320, working_width=100, working_height=80, um_per_px=1.0)


def covered(geometry: dict, frame: Frame = FRAME) -> np.ndarray:
    """The footprint as a full working-size bool map."""
    footprint = rasterise(parse_geometry(geometry, frame), frame)
    full = np.zeros((frame.working_height, frame.working_width), bool)
    full[footprint.slices()] = footprint.mask
    return full


def test_rectangle_covers_every_pixel_it_touches() -> None:
    mask = covered({"type": "rectangle", "x0": 41, "y0": 8, "x1": 80, "y1": 20})  # working 10.25..20, 2..5
    expected = np.zeros_like(mask)
    expected[2:5, 10:20] = True
    np.testing.assert_array_equal(mask, expected)


def test_rectangle_corners_in_any_order() -> None:
    a = covered({"type": "rectangle", "x0": 80, "y0": 20, "x1": 40, "y1": 8})
    b = covered({"type": "rectangle", "x0": 40, "y0": 8, "x1": 80, "y1": 20})
    np.testing.assert_array_equal(a, b)


def test_partly_outside_is_clipped_to_the_image() -> None:
    footprint = rasterise(parse_geometry({"type": "rectangle", "x0": -100, "y0": 300, "x1": 40, "y1": 500}, FRAME),
                          FRAME)
    assert footprint.bbox == (0, 75, 10, 80)
    assert footprint.mask.all()


def test_polygon_fills_its_inside_only() -> None:
    mask = covered({"type": "polygon", "points": [[40, 40], [200, 40], [200, 200], [40, 200]]})  # working 10..50
    assert mask[12:48, 12:48].all()
    assert not mask[:8].any() and not mask[53:].any() and not mask[:, :8].any() and not mask[:, 53:].any()


def test_triangle_leaves_the_other_half_of_its_box_empty() -> None:
    mask = covered({"type": "polygon", "points": [[0, 0], [320, 0], [0, 320]]})  # working (0,0),(80,0),(0,80)
    ys, xs = np.nonzero(mask)
    assert (xs + ys <= 81).all()
    assert mask[5, 5] and not mask[60, 60]


def test_stroke_covers_its_radius_around_the_line_with_round_caps() -> None:
    # horizontal stroke at working y = 40 from x = 20 to 60, radius 40 µm = 40 full px = 10 working px
    mask = covered({"type": "stroke", "points": [[80, 160], [240, 160]], "radius_um": 40})
    ys, xs = np.nonzero(mask)
    cx, cy = xs + 0.5, ys + 0.5
    distance = np.hypot(np.maximum(0, np.maximum(20 - cx, cx - 60)), cy - 40)
    assert distance.max() <= 10 + 0.5  # nothing farther than the radius (plus half a pixel of rasterising)
    yy, xx = np.mgrid[0:80, 0:100] + 0.5
    inside = np.hypot(np.maximum(0, np.maximum(20 - xx, xx - 60)), yy - 40) <= 10 - 0.5
    assert mask[inside].all()  # everything well inside the radius, caps included


def test_stroke_radius_follows_the_mosaic_pixel_size() -> None:
    coarse = Frame(width=400, height=320, working_width=100, working_height=80, um_per_px=2.0)
    fine = covered({"type": "stroke", "points": [[200, 160]], "radius_um": 40})
    big = covered({"type": "stroke", "points": [[200, 160]], "radius_um": 40}, coarse)
    # 40 µm is 40 full px (10 working px) at 1 µm/px, but 20 full px (5 working px) at 2 µm/px
    assert big.sum() == pytest.approx(math.pi * 5**2, rel=0.25)
    assert fine.sum() == pytest.approx(math.pi * 10**2, rel=0.15)


def test_tiny_stroke_still_covers_its_pixel() -> None:
    mask = covered({"type": "stroke", "points": [[203, 161]], "radius_um": 0.1})
    assert mask[40, 50] and mask.sum() >= 1


def test_geometry_entirely_outside_is_refused() -> None:
    with pytest.raises(GeometryRejected, match="covers no pixel"):
        rasterise(parse_geometry({"type": "rectangle", "x0": 500, "y0": 0, "x1": 700, "y1": 100}, FRAME), FRAME)
    with pytest.raises(GeometryRejected, match="covers no pixel"):
        rasterise(parse_geometry({"type": "stroke", "points": [[-50, -50]], "radius_um": 10}, FRAME), FRAME)


@pytest.mark.parametrize("geometry,message", [
    ({"type": "stroke", "points": [[float("nan"), 1]], "radius_um": 5}, "finite"),
    ({"type": "stroke", "points": [[1, float("inf")]], "radius_um": 5}, "finite"),
    ({"type": "stroke", "points": [["1", 2]], "radius_um": 5}, "must be a number"),
    ({"type": "stroke", "points": [[True, 2]], "radius_um": 5}, "must be a number"),
    ({"type": "stroke", "points": [[1, 2, 3]], "radius_um": 5}, r"\[x, y\] pair"),
    ({"type": "stroke", "points": [[1, 2]] * (MAX_POINTS + 1), "radius_um": 5}, f"at most {MAX_POINTS}"),
    ({"type": "stroke", "points": [], "radius_um": 5}, "at least 1"),
    ({"type": "stroke", "points": [[1, 2]], "radius_um": 0}, "radius_um must be above 0"),
    ({"type": "stroke", "points": [[1, 2]], "radius_um": -3}, "radius_um must be above 0"),
    ({"type": "stroke", "points": [[1, 2]], "radius_um": MAX_RADIUS_UM * 1.01}, f"at most {MAX_RADIUS_UM:g}"),
    ({"type": "stroke", "points": [[1, 2]]}, "missing"),
    ({"type": "polygon", "points": [[1, 2], [3, 4]]}, "at least 3"),
    ({"type": "polygon", "points": [[1, 2], [3, 4], [5, 6]], "colour": 1}, "unknown"),
    ({"type": "rectangle", "x0": 0, "y0": 0, "x1": None, "y1": 4}, "must be a number"),
    ({"type": "circle", "points": [[1, 2]]}, "Unknown geometry type"),
    ({"points": [[1, 2]]}, "Unknown geometry type"),
    ([[1, 2]], "must be an object"),
    ({"type": "rectangle", "x0": 0, "y0": 0, "x1": 1e9, "y1": 4}, "far outside"),
])
def test_bad_geometries_are_refused_with_the_reason(geometry: object, message: str) -> None:
    with pytest.raises(GeometryRejected, match=message):
        parse_geometry(geometry, FRAME)


def test_parse_keeps_rectangle_corners_ordered() -> None:
    assert parse_geometry({"type": "rectangle", "x0": 5, "y0": 9, "x1": 1, "y1": 2}, FRAME) == Geometry(
        "rectangle", ((1.0, 2.0), (5.0, 9.0)))


def test_frame_maps_working_boxes_back_to_image_pixels() -> None:
    assert FRAME.to_image((10, 2, 20, 5)) == {"x0": 40.0, "y0": 8.0, "x1": 80.0, "y1": 20.0}
