"""Pages. Thin: pick the object through the permission helper, render a template; data comes from the API."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotations.selectors import mosaics_visible_to
from rcmweb.access import get_for_user


@login_required
def mosaic_list(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/mosaic_list.html", {})


@login_required
def mosaic_upload(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/mosaic_upload.html", {})


@login_required
def viewer(request: HttpRequest, mosaic_id: int) -> HttpResponse:
    mosaic = get_for_user(mosaics_visible_to(request.user), mosaic_id)
    return render(request, "frontend/viewer.html", {"mosaic": mosaic})
