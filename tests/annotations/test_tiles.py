"""Deep Zoom descriptor and tiles behind the permission check: caching, 304, and nothing outside the pyramid."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.test import Client

from annotations import services, tiles
from annotations.models import Mosaic
from tests.conftest import PASSWORD, gray_image, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_grants():
    tiles.forget_tile_grants()
    yield
    tiles.forget_tile_grants()


@pytest.fixture
def mosaic(admin_user, media_root, eager_celery) -> Mosaic:
    import io

    record, _ = services.mosaic_upload(source=io.BytesIO(png_bytes(gray_image(600, 500))), filename="m.png",
                                       user=admin_user, um_per_px=1.0)
    record.refresh_from_db()
    assert record.status == Mosaic.Status.READY
    return record


@pytest.fixture
def expert_client(expert_user) -> Client:
    client = Client()
    assert client.login(username=expert_user.username, password=PASSWORD)
    return client


def urls(mosaic: Mosaic) -> tuple[str, str]:
    base = f"/tiles/mosaics/{mosaic.pk}/{mosaic.checksum[:12]}"
    return f"{base}/image.dzi", f"{base}/image_files"


def test_descriptor_and_tile_are_served_with_long_cache(expert_client, mosaic) -> None:
    dzi, files = urls(mosaic)
    response = expert_client.get(dzi)
    assert response.status_code == 200
    size = ET.fromstring(b"".join(response.streaming_content)).find("{*}Size")
    assert (size.get("Width"), size.get("Height")) == ("600", "500")
    tile = expert_client.get(f"{files}/10/0_0.jpg")
    assert tile.status_code == 200 and tile["Content-Type"] == "image/jpeg"
    assert b"".join(tile.streaming_content)[:3] == b"\xff\xd8\xff"
    assert "max-age=31536000" in tile["Cache-Control"] and tile["ETag"]


def test_matching_etag_answers_304(expert_client, mosaic) -> None:
    _, files = urls(mosaic)
    etag = expert_client.get(f"{files}/10/0_0.jpg")["ETag"]
    again = expert_client.get(f"{files}/10/0_0.jpg", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304


@pytest.mark.parametrize("suffix", [
    "/image_files/99/0_0.jpg",          # level beyond the pyramid
    "/image_files/10/9_9.jpg",          # tile beyond the level
    "/image_files/../../original.png",  # traversal
    "/image_files/10/..%2F..%2Foriginal.png",
    "/../original.png",
    "/working.png",
])
def test_anything_outside_the_pyramid_is_404(expert_client, mosaic, suffix: str) -> None:
    base = f"/tiles/mosaics/{mosaic.pk}/{mosaic.checksum[:12]}"
    assert expert_client.get(base + suffix).status_code == 404


def test_wrong_revision_and_missing_mosaic_are_404(expert_client, mosaic) -> None:
    assert expert_client.get(f"/tiles/mosaics/{mosaic.pk}/000000000000/image.dzi").status_code == 404
    assert expert_client.get(f"/tiles/mosaics/{mosaic.pk + 99}/{mosaic.checksum[:12]}/image.dzi").status_code == 404


def test_anonymous_and_roleless_users_get_no_tiles(client, make_user, mosaic) -> None:
    dzi, _ = urls(mosaic)
    assert client.get(dzi).status_code == 401
    make_user("nobody", None)
    assert client.login(username="nobody", password=PASSWORD)
    assert client.get(dzi).status_code == 404


def test_grant_is_per_session_and_expires(expert_client, client, make_user, mosaic, monkeypatch) -> None:
    dzi, _ = urls(mosaic)
    assert expert_client.get(dzi).status_code == 200  # remembered for this session only
    make_user("nobody", None)
    assert client.login(username="nobody", password=PASSWORD)
    assert client.get(dzi).status_code == 404
    expert_client.logout()
    monkeypatch.setattr(tiles, "TILE_GRANT_TTL_S", 0.0)
    tiles.forget_tile_grants()
    assert expert_client.get(dzi).status_code == 401
