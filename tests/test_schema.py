"""The OpenAPI schema documents the tile and raster endpoints (rcmweb/schema.py), and what it documents works."""

from __future__ import annotations

import pytest
from django.urls import resolve

from annotations import tiles

pytestmark = pytest.mark.django_db(transaction=True)  # ingest is queued on commit


def _schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_tile_endpoints_are_in_the_schema_with_their_parameters(admin_api) -> None:
    paths = _schema(admin_api)["paths"]
    tile = paths["/tiles/mosaics/{mosaic_id}/{rev}/image_files/{level}/{col}_{row}.jpg"]["get"]
    assert tile["tags"] == ["tiles"]
    assert {p["name"] for p in tile["parameters"] if p["in"] == "path"} == {"mosaic_id", "rev", "level", "col", "row"}
    assert "image/jpeg" in tile["responses"]["200"]["content"]
    assert {"304", "401", "404"} <= set(tile["responses"])
    raster = paths["/tiles/mosaics/{mosaic_id}/rasters/{kind}/{obj_id}/{rev}/{name}.png"]["get"]
    assert "image/png" in raster["responses"]["200"]["content"]
    assert "/tiles/mosaics/{mosaic_id}/{rev}/image.dzi" in paths
    assert "/tiles/mosaics/{mosaic_id}/{rev}/thumbnail.jpg" in paths


def test_documented_paths_resolve_to_the_tile_views(admin_api) -> None:
    paths = _schema(admin_api)["paths"]
    values = {"mosaic_id": "7", "rev": "abcdef012345", "level": "3", "col": "1", "row": "2", "kind": "prediction",
              "obj_id": "4", "name": "labels"}
    views = {tiles.dzi_descriptor, tiles.dzi_tile, tiles.thumbnail, tiles.raster}
    seen = set()
    for path, item in paths.items():
        if "tiles" not in item.get("get", {}).get("tags", []):
            continue
        match = resolve(path.format(**values))
        assert match.func in views
        seen.add(match.func)
    assert seen == views


def test_the_documented_descriptor_url_serves_the_mosaic(admin_api, admin_user, client, ready_mosaic) -> None:
    mosaic = ready_mosaic()
    template = "/tiles/mosaics/{mosaic_id}/{rev}/image.dzi"
    assert template in _schema(admin_api)["paths"]
    detail = admin_api.get(f"/api/mosaics/{mosaic.pk}/").json()
    url = template.format(mosaic_id=mosaic.pk, rev=mosaic.checksum[:12])
    assert detail["dzi_url"].endswith(url)
    client.force_login(admin_user)  # tiles take the browser's session
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml"
    assert b"<Image" in b"".join(response.streaming_content)
