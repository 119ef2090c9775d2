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
from annotations.selectors import label_classes, mosaics_visible_to
from annotations.services import LABEL_FILE_EXTENSIONS, LABEL_MAP_SUFFIX, MAX_LABEL_FILE_BYTES
from inference.serializers import FinetuneSerializer
from rcmweb.access import Role, get_for_user, has_role, is_admin

# File types offered by the upload page's file picker (the server checks the content, this only filters).
UPLOAD_ACCEPT = ".tif,.tiff,.png,.bmp,.jpg,.jpeg"
# File types of expert label maps, sent with an upload or imported in the viewer (as the label import takes).
LABELS_ACCEPT = ",".join(LABEL_FILE_EXTENSIONS)


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
        "labels_accept": LABELS_ACCEPT, "labels_suffix": LABEL_MAP_SUFFIX, "max_label_bytes": MAX_LABEL_FILE_BYTES,
        "label_classes": list(label_classes()),
    })


@login_required
def viewer(request: HttpRequest, mosaic_id: int) -> HttpResponse:
    """The mosaic viewer. Admins (who may import labels through the API) also get the label import form."""
    mosaic = get_for_user(mosaics_visible_to(request.user), mosaic_id)
    context: dict[str, object] = {"mosaic": mosaic, "can_import_labels": is_admin(request.user)}
    if context["can_import_labels"]:
        context.update(labels_accept=LABELS_ACCEPT, max_label_bytes=MAX_LABEL_FILE_BYTES,
                       label_classes=list(label_classes()))
    return render(request, "frontend/viewer.html", context)


@login_required
def models(request: HttpRequest) -> HttpResponse:
    """Model versions, fine-tuning and comparison. Experts read; admins also launch, promote and discard.

    Trainees (and users without a role) get 403: the page is not an object whose existence could leak, and they
    are not shown model output anywhere (they label blind), so the page says plainly that it is not for them.
    """
    if not has_role(request.user, Role.ADMIN, Role.EXPERT):
        raise PermissionDenied("Only admins and experts may see the model versions.")
    fields = FinetuneSerializer().fields  # the form offers exactly what the API accepts
    finetune = {name: {"default": fields[name].default, "min": fields[name].min_value, "max": fields[name].max_value}
                for name in ("epochs", "lr", "steps_per_epoch", "seed")}
    return render(request, "frontend/models.html", {
        "can_manage": is_admin(request.user), "finetune": finetune, "labels_default": fields["labels"].default,
    })


@login_required
def agreement(request: HttpRequest, mosaic_id: int) -> HttpResponse:
    """Agreement of a mosaic: a review against the model (per-class table, confusion plot), every model version
    against the expert layers (with the change from its parent), and expert against expert. Experts and admins.

    A mosaic the user may not see is 404 (as in the viewer); trainees get 403 (they label blind and see no model).
    """
    mosaic = get_for_user(mosaics_visible_to(request.user), mosaic_id)
    if not has_role(request.user, Role.ADMIN, Role.EXPERT):
        raise PermissionDenied("Agreement with the model is for experts and admins.")
    return render(request, "frontend/agreement.html", {"mosaic": mosaic, "is_admin": is_admin(request.user)})
