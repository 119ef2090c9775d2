"""Label layer storage: raw .npy rasters, PNG per revision encoded on request, prediction caches, migration."""

from __future__ import annotations

import importlib
import io
import os

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from annotations import services
from annotations.models import LabelLayer
from annotations.rasters import open_raster_for_update, png_as_npy, read_raster, write_raster
from tests.conftest import png_bytes


def browser_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def served(client: Client, url: str) -> np.ndarray:
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(b"".join(response.streaming_content))))


@pytest.mark.django_db(transaction=True)
def test_review_layer_png_is_encoded_per_revision_and_older_ones_go(ready_mosaic, expert_api, expert_user) -> None:
    mosaic = ready_mosaic()
    review = expert_api.post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json").json()
    layer = LabelLayer.objects.get(pk=review["layer"])
    browser = browser_for(expert_user)
    assert not layer.png_path(1).exists()  # nothing encoded before someone asks
    assert (served(browser, review["raster_url"]) == 255).all()
    assert layer.png_path(1).exists()
    edit = expert_api.post(f"/api/reviews/{review['id']}/edits/", {
        "revision": 1, "op": "paint", "class_value": 4,
        "geometry": {"type": "rectangle", "x0": 0, "y0": 0, "x1": 40, "y1": 40}}, format="json").json()
    np.testing.assert_array_equal(served(browser, edit["raster_url"]), read_raster(layer.raster_path))
    assert not layer.png_path(1).exists() and layer.png_path(2).exists()
    assert browser.get(review["raster_url"]).status_code == 404  # revision 1 is gone


@pytest.mark.django_db(transaction=True)
def test_imported_layers_are_stored_as_npy(ready_mosaic, admin_user) -> None:
    mosaic = ready_mosaic()
    labels = np.full((mosaic.working_height, mosaic.working_width), 255, np.uint8)
    labels[3:9, 4:20] = 5
    layer = services.label_layer_import(mosaic=mosaic, source=io.BytesIO(png_bytes(labels)), filename="l.png",
                                        user=admin_user)
    assert layer.raster_path.suffix == ".npy"
    np.testing.assert_array_equal(np.load(layer.raster_path), labels)


def test_in_place_update_writes_only_the_box(tmp_path) -> None:
    path = tmp_path / "layer.npy"
    write_raster(path, np.full((30, 40), 255, np.uint8))
    raster = open_raster_for_update(path)
    raster[5:10, 6:8] = 3
    raster.flush()
    del raster
    expected = np.full((30, 40), 255, np.uint8)
    expected[5:10, 6:8] = 3
    np.testing.assert_array_equal(read_raster(path), expected)


def test_prediction_cache_follows_a_rewritten_png(tmp_path) -> None:
    png, cache = tmp_path / "labels.png", tmp_path / "cache" / "labels.npy"
    write_raster(png, np.zeros((8, 8), np.uint8))
    assert (png_as_npy(png, cache) == 0).all()
    write_raster(png, np.ones((8, 8), np.uint8))
    later = cache.stat().st_mtime_ns + 10**9
    os.utime(png, ns=(later, later))
    assert (png_as_npy(png, cache) == 1).all()


def test_migration_converts_png_layers_to_npy(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path
    folder = tmp_path / "mosaics" / "7" / "layers"
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_raster(folder / "3.png", labels)
    write_raster(folder / "3.r2.png", labels)  # a revision cache, not a layer
    migration = importlib.import_module("annotations.migrations.0004_label_layers_as_npy")
    migration.png_to_npy(None, None)
    assert not (folder / "3.png").exists()
    np.testing.assert_array_equal(np.load(folder / "3.npy"), labels)
    migration.npy_to_png(None, None)
    np.testing.assert_array_equal(read_raster(folder / "3.png"), labels)
    assert not (folder / "3.npy").exists() and not (folder / "3.r2.png").exists()


@pytest.mark.django_db(transaction=True)
def test_review_layers_are_hidden_from_other_experts(ready_mosaic, expert_api, expert_user, admin_user,
                                                     make_user) -> None:
    from rcmweb.access import Role

    mosaic = ready_mosaic()
    review = expert_api.post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json").json()
    own = expert_api.get(f"/api/mosaics/{mosaic.pk}/layers/").json()
    assert [(item["layer"], item["review"]) for item in own] == [(review["layer"],
                                                                 {"id": review["id"], "state": "in_progress"})]
    olga = make_user("olga", Role.EXPERT)
    assert browser_for(olga).get(f"/api/mosaics/{mosaic.pk}/layers/").json() == []
    assert browser_for(olga).get(review["raster_url"]).status_code == 404
    assert browser_for(admin_user).get(review["raster_url"]).status_code == 200
