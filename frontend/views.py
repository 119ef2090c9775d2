"""Pages. Thin: check the role, pick the object through the permission helper, render a template.

The pages get their data from the REST API (``/api/…``) in the browser, so the list, the upload page and the
viewer show the same numbers as any other client, and they update live while jobs run.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotations.imaging import ACCEPTED_DESCRIPTION, PLAUSIBLE_UM_PER_PX
from annotations.selectors import mosaics_visible_to
from rcmweb.access import get_for_user, is_admin

# File types offered by the upload page's file picker (the server checks the content, this only filters).
UPLOAD_ACCEPT = ".tif,.tiff,.png,.bmp,.jpg,.jpeg"


@login_required
def mosaic_list(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/mosaic_list.html", {"can_upload": is_admin(request.user)})


@login_required
def mosaic_upload(request: HttpRequest) -> HttpResponse:
    if not is_admin(request.user):
        raise PermissionDenied("Only admins may upload mosaics.")
    low, high = PLAUSIBLE_UM_PER_PX
    return render(request, "frontend/mosaic_upload.html", {
        "accept": UPLOAD_ACCEPT, "accepted_description": ACCEPTED_DESCRIPTION, "um_min": low, "um_max": high,
        "max_upload_bytes": int(settings.RCMWEB_MAX_UPLOAD_BYTES), "working_um_per_px": settings.WORKING_UM_PER_PX,
    })


@login_required
def viewer(request: HttpRequest, mosaic_id: int) -> HttpResponse:
    mosaic = get_for_user(mosaics_visible_to(request.user), mosaic_id)
    return render(request, "frontend/viewer.html", {"mosaic": mosaic})
