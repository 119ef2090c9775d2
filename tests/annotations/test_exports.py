"""Layer exports: label mask PNG (working and full resolution), GeoJSON polygons, class-area CSV, permissions."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from annotations import exports
from annotations.models import LabelLayer
from annotations.rasters import read_raster
from tests.annotations.test_layers import import_labels
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


def labels_with_holes(height: int, width: int) -> np.ndarray:
    """Meshwork with two holes (one ring, one unlabelled), nested apart, two diagonal nested pixels, rest unlabelled."""
    labels = np.full((height, width), 255, np.uint8)
    labels[10:50, 10:60] = 2
    labels[20:30, 20:40] = 3  # hole of meshwork filled with ring
    labels[35:45, 45:55] = 255  # unlabelled hole of meshwork
    labels[60:90, 70:120] = 4
    labels[0, 0] = labels[1, 1] = 4  # touch at a corner only
    return labels


@pytest.fixture
def exported(ready_mosaic, admin_api):
    """A mosaic with an imported label layer; returns (mosaic, key, working labels) and a GET helper."""
    mosaic = ready_mosaic()
    labels = labels_with_holes(mosaic.working_height, mosaic.working_width)
    response = import_labels(admin_api, mosaic, labels)
    assert response.status_code == 201, response.content
    key = f"layer:{response.json()['layer']}"

    def get(fmt: str, layer: str = key, api=admin_api):
        return api.get(f"/api/mosaics/{mosaic.pk}/export/", {"layer": layer, "as": fmt})

    return mosaic, key, labels, get


def ring_area(ring: list[list[float]]) -> float:
    """Unsigned shoelace area of a closed ring."""
    xy = np.asarray(ring, dtype=np.float64)
    x, y = xy[:, 0], xy[:, 1]
    return abs(float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))) / 2


def test_png_is_the_stored_raster_as_attachment(exported) -> None:
    mosaic, key, _, get = exported
    response = get("png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == f'attachment; filename="mosaic{mosaic.pk}-{key.replace(":", "-")}.png"'
    stored = read_raster(LabelLayer.objects.get().raster_path)
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "L"
    np.testing.assert_array_equal(np.asarray(image), stored)


def test_png_full_has_full_size_and_samples_back_to_working(exported) -> None:
    mosaic, _, labels, get = exported
    response = get("png-full")
    assert response.status_code == 200 and "-full.png" in response["Content-Disposition"]
    full = np.asarray(Image.open(io.BytesIO(b"".join(response.streaming_content))))
    assert full.shape == (mosaic.height, mosaic.width)
    factor = mosaic.width // mosaic.working_width
    assert factor > 1 and mosaic.height // mosaic.working_height == factor
    np.testing.assert_array_equal(full[::factor, ::factor], labels)


def test_full_resolution_png_with_non_integer_factor_is_nearest_by_pixel_centre() -> None:
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    height, width = 700, 10  # 700 rows: several strips; 10 / 4 and 700 / 3 are not integers
    full = exports.upscale_nearest(labels, height, width)
    ys = np.minimum(((np.arange(height) + 0.5) * 3 / height).astype(int), 2)
    xs = np.minimum(((np.arange(width) + 0.5) * 4 / width).astype(int), 3)
    np.testing.assert_array_equal(full, labels[ys][:, xs])
    streamed = np.asarray(Image.open(io.BytesIO(b"".join(exports.full_resolution_png(labels, height, width)))))
    np.testing.assert_array_equal(streamed, full)


def test_integer_factor_strips_match_repeat() -> None:
    labels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    expected = np.repeat(np.repeat(labels, 300, axis=0), 2, axis=1)
    streamed = np.asarray(Image.open(io.BytesIO(b"".join(exports.full_resolution_png(labels, 600, 6)))))
    np.testing.assert_array_equal(streamed, expected)


def test_geojson_areas_holes_and_bounds(exported) -> None:
    mosaic, _, labels, get = exported
    response = get("geojson")
    assert response.status_code == 200 and response["Content-Type"] == "application/geo+json"
    assert response["Content-Disposition"].endswith('.geojson"')
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    by_value = {feature["properties"]["value"]: feature for feature in collection["features"]}
    assert sorted(by_value) == [2, 3, 4]
    full_px_per_working_px = (mosaic.width / mosaic.working_width) * (mosaic.height / mosaic.working_height)
    for value, feature in by_value.items():
        assert feature["geometry"]["type"] == "MultiPolygon"
        area = sum(ring_area(polygon[0]) - sum(ring_area(hole) for hole in polygon[1:])
                   for polygon in feature["geometry"]["coordinates"])
        expected = np.count_nonzero(labels == value) * full_px_per_working_px
        assert area == pytest.approx(expected, rel=1e-6)
        points = np.asarray([p for polygon in feature["geometry"]["coordinates"] for ring in polygon for p in ring])
        assert points[:, 0].min() >= 0 and points[:, 0].max() <= mosaic.width
        assert points[:, 1].min() >= 0 and points[:, 1].max() <= mosaic.height
    meshwork = by_value[2]["geometry"]["coordinates"]
    assert len(meshwork) == 1
    holes = sorted(ring_area(hole) for hole in meshwork[0][1:])
    assert holes == pytest.approx([10 * 10 * full_px_per_working_px, 10 * 20 * full_px_per_working_px])
    assert len(by_value[4]["geometry"]["coordinates"]) == 3  # the corner-touching pixels stay two polygons
    assert by_value[2]["properties"]["key"] == "meshwork"
    assert by_value[2]["properties"]["area_mm2"] == pytest.approx(
        np.count_nonzero(labels == 2) * (mosaic.working_um_per_px / 1000) ** 2)


def test_csv_is_the_class_area_table(exported) -> None:
    _, _, labels, get = exported
    response = get("csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.content.decode())))
    assert table[1] == ["value", "class", "pixels", "area_mm2", "share_of_labelled", "share_of_lesion"]
    assert table[2 + 2][2] == str(np.count_nonzero(labels == 2))


def test_unknown_layer_is_404_with_available_keys(exported) -> None:
    _, key, _, get = exported
    response = get("png", layer="layer:999")
    assert response.status_code == 404 and key in response.json()["detail"]


def test_unknown_format_is_400_saying_what_is_allowed(exported) -> None:
    _, _, _, get = exported
    response = get("tiff")
    assert response.status_code == 400
    assert "png, png-full, geojson, csv" in response.json()["as"][0]


def test_trainee_cannot_export_expert_layers(exported, trainee_user) -> None:
    _, _, _, get = exported
    assert get("png", api=client_for(trainee_user)).status_code == 404
