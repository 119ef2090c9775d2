"""Deep Zoom descriptor, tiles and thumbnails behind the permission check.

URLs carry a revision (the mosaic checksum's prefix), so responses are cached for a year and
revalidated by ETag. Paths are built from integers of the URL only: nothing outside a pyramid is reachable.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.views.decorators.http import require_GET

from rcmweb.access import get_for_user

from . import layers
from .models import Mosaic
from .selectors import mosaics_visible_to

# Revision-stamped URLs never change content: let browsers keep them for a year.
TILE_CACHE_SECONDS = 365 * 24 * 3600
CACHE_CONTROL = f"private, max-age={TILE_CACHE_SECONDS}, immutable"


# One screen of the viewer asks for dozens of tiles at once. A granted (session, mosaic, revision) is kept this
# long in each server process, so a tile costs no database query; a logout or a revoked right takes effect
# for tiles within this time (pages and the API check on every request).
TILE_GRANT_TTL_S = 10.0
# Bound on remembered grants per process (a few hundred bytes each); the cache is cleared when full.
TILE_GRANT_MAX_ENTRIES = 10_000

_grants: dict[tuple[str, int, str], tuple[float, Path]] = {}
_grants_lock = threading.Lock()


def _ready_folder(request: HttpRequest, mosaic_id: int, rev: str) -> Path | HttpResponse:
    """The mosaic folder if the user may see this pyramid revision; a 401 response if not logged in."""
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    key = (session_key, mosaic_id, rev)
    now = time.monotonic()
    if session_key:
        hit = _grants.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
    if not request.user.is_authenticated:
        return HttpResponse("Log in to see tiles.", status=401, content_type="text/plain")
    mosaic = get_for_user(mosaics_visible_to(request.user).only("id", "checksum", "status"), mosaic_id)
    if mosaic.status != Mosaic.Status.READY or not mosaic.checksum.startswith(rev) or len(rev) < 8:
        raise Http404("No such pyramid revision.")
    if session_key:
        with _grants_lock:
            if len(_grants) >= TILE_GRANT_MAX_ENTRIES:
                _grants.clear()
            _grants[key] = (now + TILE_GRANT_TTL_S, mosaic.folder)
    return mosaic.folder


def forget_tile_grants() -> None:
    """Drop every remembered grant of this process (tests, and after a permission change)."""
    with _grants_lock:
        _grants.clear()


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
    folder = _ready_folder(request, mosaic_id, rev)
    if isinstance(folder, HttpResponse):
        return folder
    return _serve(request, folder / "dzi" / "image.dzi", f'"{rev}-dzi"', "application/xml")


@require_GET
def dzi_tile(request: HttpRequest, mosaic_id: int, rev: str, level: int, col: int, row: int) -> HttpResponse:
    folder = _ready_folder(request, mosaic_id, rev)
    if isinstance(folder, HttpResponse):
        return folder
    path = folder / "dzi" / "image_files" / str(level) / f"{col}_{row}.jpg"
    return _serve(request, path, f'"{rev}-{level}-{col}-{row}"', "image/jpeg")


@require_GET
def thumbnail(request: HttpRequest, mosaic_id: int, rev: str) -> HttpResponse:
    folder = _ready_folder(request, mosaic_id, rev)
    if isinstance(folder, HttpResponse):
        return folder
    return _serve(request, folder / "thumbnail.jpg", f'"{rev}-thumb"', "image/jpeg")


@require_GET
def raster(request: HttpRequest, mosaic_id: int, kind: str, obj_id: int, rev: str, name: str) -> HttpResponse:
    """A layer raster (lossless PNG of class values, or uncertainty 0–255) at working resolution."""
    if not request.user.is_authenticated:
        return HttpResponse("Log in to see layers.", status=401, content_type="text/plain")
    mosaic = get_for_user(mosaics_visible_to(request.user), mosaic_id)
    path = layers.raster_path(request.user, mosaic, kind, obj_id, rev, name)
    if path is None:
        raise Http404("No such layer revision.")
    return _serve(request, path, f'"{kind}-{obj_id}-{rev}-{name}"', "image/png")
