"""OpenAPI additions: the tile and layer-raster endpoints.

Tiles are plain Django views (``annotations/tiles.py``), kept out of DRF so that a tile costs no serializer,
negotiation or throttling work; drf-spectacular therefore does not see them. This post-processing hook documents
them in the same schema, from the same URL patterns, so that ``/api/docs/`` lists everything a client needs: the
URLs themselves come from the API (``dzi_url`` and ``thumbnail_url`` of a mosaic, ``url``/``uncertainty_url``/
``levels`` of each entry of ``/api/mosaics/{id}/layers/``).
"""

from __future__ import annotations

import re
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

TILES_TAG = "tiles"
# URL-pattern name → (summary, content type, description).
DOCUMENTED: dict[str, tuple[str, str, str]] = {
    "tiles:dzi": (
        "Deep Zoom descriptor of a mosaic's pyramid",
        "application/xml",
        "The DZI XML (tile size, overlap, format, full-resolution size) for OpenSeadragon. `rev` is the first 12 "
        "characters of the mosaic's checksum: take the whole URL from `dzi_url` of `/api/mosaics/{id}/`.",
    ),
    "tiles:tile": (
        "One JPEG tile of a mosaic's pyramid",
        "image/jpeg",
        "Level 0 is 1 × 1 px; the last level is full resolution. A tile outside the pyramid is a 404.",
    ),
    "tiles:thumbnail": (
        "The mosaic's thumbnail",
        "image/jpeg",
        "A small JPEG of the whole mosaic, as in the mosaic list.",
    ),
    "tiles:raster": (
        "A layer raster at working resolution (lossless PNG)",
        "image/png",
        "`kind` is `prediction` (names `labels`, `uncertainty`, `level1`, `level2`, ...) or `layer` (name "
        "`labels`, an expert label layer at a revision). Class values follow `/api/label-classes/`; 255 is "
        "unlabelled; `uncertainty` is 0–255 for 0–1. Take the URLs from `/api/mosaics/{id}/layers/`.",
    ),
}
INTEGER_PARAMS = {"mosaic_id", "obj_id", "level", "col", "row"}
CONVERTER = re.compile(r"<(?:(?P<type>\w+):)?(?P<name>\w+)>")


def _routes() -> dict[str, str]:
    """URL-pattern name (``namespace:name``) → route with ``<converter:name>`` parts, for the documented names."""
    found: dict[str, str] = {}

    def walk(patterns: list[Any], prefix: str, namespace: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, prefix + str(entry.pattern), ns)
            elif isinstance(entry, URLPattern) and f"{namespace}{entry.name}" in DOCUMENTED:
                found[f"{namespace}{entry.name}"] = prefix + str(entry.pattern)

    walk(get_resolver().url_patterns, "/", "")
    return found


def _operation(name: str, route: str) -> tuple[str, dict[str, Any]]:
    summary, content_type, description = DOCUMENTED[name]
    parameters = []
    for match in CONVERTER.finditer(route):
        integer = match["name"] in INTEGER_PARAMS or match["type"] == "int"
        parameters.append({"name": match["name"], "in": "path", "required": True,
                           "schema": {"type": "integer"} if integer else {"type": "string"}})
    parameters.append({"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                       "description": "The ETag of a copy you hold: answered 304 when it is still current."})
    path = CONVERTER.sub(lambda m: "{" + m["name"] + "}", route)
    operation = {
        "operationId": name.replace(":", "_"),
        "summary": summary,
        "description": description + " Needs a logged-in session that may see the mosaic; answers carry an ETag "
                                     "and long cache headers.",
        "tags": [TILES_TAG],
        "parameters": parameters,
        "responses": {
            "200": {"description": summary, "content": {content_type: {"schema": {"type": "string",
                                                                                   "format": "binary"}}}},
            "304": {"description": "Not modified (the `If-None-Match` ETag is current)."},
            "401": {"description": "Not logged in."},
            "404": {"description": "No such mosaic for you, revision, tile or layer."},
        },
        "security": [{"cookieAuth": []}],
    }
    return path, operation


def add_tile_paths(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular post-processing hook: add the tile and raster endpoints under the ``tiles`` tag."""
    paths = result.setdefault("paths", {})
    for name, route in sorted(_routes().items()):
        path, operation = _operation(name, route)
        paths[path] = {"get": operation}
    tags = result.setdefault("tags", [])
    if not any(tag.get("name") == TILES_TAG for tag in tags):
        tags.append({"name": TILES_TAG, "description": "Image pyramids and layer rasters for the viewer."})
    return result
