"""Deep Zoom descriptor, tiles and thumbnails behind the permission check.

URLs carry a revision (the mosaic checksum's prefix), so responses are cached for a year and
revalidated by ETag. Paths are built from integers of the URL only: nothing outside a pyramid is reachable.
"""

from __future__ import annotations

from pathlib import Path

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.views.decorators.http import require_GET

from rcmweb.access import get_for_user

from .models import Mosaic
from .selectors import mosaics_visible_to

# Revision-stamped URLs never change content: let browsers keep them for a year.
TILE_CACHE_SECONDS = 365 * 24 * 3600
CACHE_CONTROL = f"private, max-age={TILE_CACHE_SECONDS}, immutable"


def _ready_mosaic(request: HttpRequest, mosaic_id: int, rev: str) -> Mosaic | HttpResponse:
    if not request.user.is_authenticated:
        return HttpResponse("Log in to see tiles.", status=401, content_type="text/plain")
    mosaic = get_for_user(mosaics_visible_to(request.user).only("id", "checksum", "status"), mosaic_id)
    if mosaic.status != Mosaic.Status.READY or not mosaic.checksum.startswith(rev) or len(rev) < 8:
        raise Http404("No such pyramid revision.")
    return mosaic


def _serve(request: HttpRequest, path: Path, etag: str, content_type: str) -> HttpResponse:
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        try:
            handle = path.open("rb")
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise Http404("No such tile.") from exc
        response = FileResponse(handle, content_type=content_type)
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    return response


@require_GET
def dzi_descriptor(request: HttpRequest, mosaic_id: int, rev: str) -> HttpResponse:
    mosaic = _ready_mosaic(request, mosaic_id, rev)
    if isinstance(mosaic, HttpResponse):
        return mosaic
    return _serve(request, mosaic.folder / "dzi" / "image.dzi", f'"{rev}-dzi"', "application/xml")


@require_GET
def dzi_tile(request: HttpRequest, mosaic_id: int, rev: str, level: int, col: int, row: int) -> HttpResponse:
    mosaic = _ready_mosaic(request, mosaic_id, rev)
    if isinstance(mosaic, HttpResponse):
        return mosaic
    path = mosaic.folder / "dzi" / "image_files" / str(level) / f"{col}_{row}.jpg"
    return _serve(request, path, f'"{rev}-{level}-{col}-{row}"', "image/jpeg")


@require_GET
def thumbnail(request: HttpRequest, mosaic_id: int, rev: str) -> HttpResponse:
    mosaic = _ready_mosaic(request, mosaic_id, rev)
    if isinstance(mosaic, HttpResponse):
        return mosaic
    return _serve(request, mosaic.folder / "thumbnail.jpg", f'"{rev}-thumb"', "image/jpeg")
