"""Layers over a mosaic: label import, raster serving (lossless, permissions, revisions), class areas."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from annotations import layers, services
from annotations.models import AuditEvent, LabelLayer
from annotations.rasters import reduce_labels
from tests.conftest import client_for, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def browser_for(user) -> Client:
    """Session-authenticated client (tiles and rasters are plain Django views)."""
    client = Client()
    client.force_login(user)
    return client


def label_map(height: int, width: int) -> np.ndarray:
    """Four quadrants: meshwork, ring / nested, unlabelled."""
    labels = np.full((height, width), 255, np.uint8)
    labels[: height // 2, : width // 2] = 2
    labels[: height // 2, width // 2:] = 3
    labels[height // 2:, : width // 2] = 4
    return labels


def import_labels(api, mosaic, array: np.ndarray, **fields: object):
    upload = SimpleUploadedFile("labels.png", png_bytes(array))
    return api.post(f"/api/mosaics/{mosaic.pk}/labels/", {"file": upload, **fields}, format="multipart")


def test_import_at_working_resolution_and_serve_losslessly(ready_mosaic, admin_api, expert_user) -> None:
    mosaic = ready_mosaic()
    labels = label_map(mosaic.working_height, mosaic.working_width)
    response = import_labels(admin_api, mosaic, labels, name="consensus")
    assert response.status_code == 201, response.content
    served = browser_for(expert_user).get(response.json()["url"])
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(b"".join(served.streaming_content)))), labels)
    assert AuditEvent.objects.filter(verb="labels.import").count() == 1


def test_full_resolution_is_reduced_by_majority(ready_mosaic, admin_user) -> None:
    mosaic = ready_mosaic()
    full = label_map(mosaic.height, mosaic.width)
    layer = services.label_layer_import(mosaic=mosaic, source=io.BytesIO(png_bytes(full)), filename="f.png",
                                        user=admin_user)
    from annotations.rasters import read_raster

    np.testing.assert_array_equal(read_raster(layer.raster_path),
                                  label_map(mosaic.working_height, mosaic.working_width))


def test_value_mapping_is_applied(ready_mosaic, admin_api) -> None:
    mosaic = ready_mosaic()
    other_tool = np.where(label_map(mosaic.working_height, mosaic.working_width) == 255, 0, 10).astype(np.uint8)
    response = import_labels(admin_api, mosaic, other_tool, value_mapping='{"0": 255, "10": 5}')
    assert response.status_code == 201, response.content
    from annotations.rasters import read_raster

    raster = read_raster(LabelLayer.objects.get().raster_path)
    assert set(np.unique(raster)) == {5, 255}


@pytest.mark.parametrize("case,expected", [
    ("wrong-size", "must match the mosaic"),
    ("unmapped-values", "does not cover"),
    ("bad-target", "targets must be 0–5 or 255"),
    ("rgb", "one channel"),
])
def test_bad_label_files_are_refused_and_leave_nothing(ready_mosaic, admin_api, case: str, expected: str) -> None:
    mosaic = ready_mosaic()
    good = label_map(mosaic.working_height, mosaic.working_width)
    fields: dict = {}
    if case == "wrong-size":
        array = good[:-3]
    elif case == "unmapped-values":
        array = good.copy()
        array[0, 0] = 77
    elif case == "bad-target":
        array, fields = good, {"value_mapping": '{"2": 9, "3": 3, "4": 4, "255": 255}'}
    else:
        array = np.stack([good] * 3, axis=-1)
    response = import_labels(admin_api, mosaic, array, **fields)
    assert response.status_code == 400
    assert expected in response.json()["file"][0]
    assert not LabelLayer.objects.exists()
    assert not (mosaic.folder / "layers").exists() or not any((mosaic.folder / "layers").iterdir())


def test_trainees_see_no_expert_layers_and_wrong_revision_is_404(ready_mosaic, admin_api, admin_user,
                                                                trainee_user) -> None:
    mosaic = ready_mosaic()
    url = import_labels(admin_api, mosaic, label_map(mosaic.working_height, mosaic.working_width)).json()["url"]
    trainee = client_for(trainee_user)
    assert trainee.get(f"/api/mosaics/{mosaic.pk}/layers/").json() == []
    assert browser_for(trainee_user).get(url).status_code == 404
    assert browser_for(admin_user).get(url).status_code == 200
    assert browser_for(admin_user).get(url.replace("/r1/", "/r2/")).status_code == 404


def test_class_areas_json_csv_png(ready_mosaic, admin_api) -> None:
    mosaic = ready_mosaic()
    labels = label_map(mosaic.working_height, mosaic.working_width)
    key = "layer:" + str(import_labels(admin_api, mosaic, labels).json()["layer"])
    rows = admin_api.get(f"/api/mosaics/{mosaic.pk}/class-areas/", {"layer": key}).json()
    by_key = {row["key"]: row for row in rows}
    quadrant_px = (mosaic.working_height // 2) * (mosaic.working_width // 2)
    pixel_mm2 = (mosaic.working_um_per_px / 1000) ** 2
    assert by_key["meshwork"]["pixels"] == quadrant_px
    assert by_key["meshwork"]["area_mm2"] == pytest.approx(quadrant_px * pixel_mm2)
    assert by_key["ring"]["share_of_lesion"] == pytest.approx(1 / 3)
    assert by_key["background"]["share_of_lesion"] is None
    csv_response = admin_api.get(f"/api/mosaics/{mosaic.pk}/class-areas/", {"layer": key, "output": "csv"})
    table = list(csv.reader(io.StringIO(csv_response.content.decode())))
    assert len(table) == 8, csv_response.content
    assert table[1][:3] == ["value", "class", "pixels"] and table[4][2] == str(quadrant_px)
    png = admin_api.get(f"/api/mosaics/{mosaic.pk}/class-areas/", {"layer": key, "output": "png"})
    assert png["Content-Type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert admin_api.get(f"/api/mosaics/{mosaic.pk}/class-areas/", {"layer": "layer:999"}).status_code == 404


def test_reduce_labels_majority_ignores_unlabelled() -> None:
    labels = np.array([[2, 2, 255, 255], [3, 255, 255, 255]], np.uint8)
    np.testing.assert_array_equal(reduce_labels(labels, 1, 2), np.array([[2, 255]], np.uint8))


def test_class_areas_from_string_keys() -> None:
    rows = layers.class_areas_from_counts({"2": 10, "3": 30}, um_per_px=4.0)
    assert [r.pixels for r in rows][2:4] == [10, 30]
