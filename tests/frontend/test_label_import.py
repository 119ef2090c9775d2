"""The viewer's label import form, without a browser: only admins (who may POST /api/mosaics/{id}/labels/) get the
form and its module; what the form tells the script and the person. Importing itself: tests/e2e/test_label_import.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from annotations.services import MAX_LABEL_FILE_BYTES
from tests.frontend.test_pages import logged_in, make_mosaic

JS_DIR = Path(__file__).resolve().parents[2] / "frontend" / "static" / "frontend" / "js"
MODULES = ["label_import.js", "labelmaps.js", "upload.js"]
IMPORT = re.compile(r"""^import\s[^;]*?from\s+['"](\./[^'"]+)['"]""", re.MULTILINE | re.DOTALL)


def viewer_html(user) -> tuple[str, object]:
    mosaic = make_mosaic()
    response = logged_in(user).get(reverse("frontend:viewer", kwargs={"mosaic_id": mosaic.pk}))
    assert response.status_code == 200
    return response.content.decode(), mosaic


@pytest.mark.django_db
def test_admins_get_the_import_labels_form_in_the_layers_panel(admin_user) -> None:
    html, mosaic = viewer_html(admin_user)
    layers = html[html.index('id="panel-layers"'):html.index('id="layer-list"')]
    assert 'id="label-import-toggle"' in layers and ">Import labels…</button>" in layers
    assert f'data-api-url="{reverse("mosaic-import-labels", args=[mosaic.pk])}"' in layers
    assert f'data-max-bytes="{MAX_LABEL_FILE_BYTES}"' in layers
    assert 'accept=".png,.tif,.tiff"' in layers
    for field in ('id="label-import-file"', 'id="label-import-mapping"', 'id="label-import-name"', 'role="progressbar"'):
        assert field in layers
    # The sizes a map of this mosaic may have, and the classes a mapping may send values to.
    text = " ".join(layers.split())
    assert "Classes: 0 background (non-lesion), 1 artifact, 2 meshwork, 3 ring, 4 nested, 5 aspecific, 255 unlabelled." in text
    assert "12,000 × 9,000 px (full resolution) or 1,500 × 1,125 px (working resolution)" in text
    assert 'type="module" src="/static/frontend/js/label_import.js"' in html
    assert html.index("frontend/js/overlays.js") < html.index("frontend/js/label_import.js")


@pytest.mark.django_db
@pytest.mark.parametrize("user_fixture", ["expert_user", "trainee_user"])
def test_experts_and_trainees_do_not_get_the_import_control(request, user_fixture: str) -> None:
    html, _ = viewer_html(request.getfixturevalue(user_fixture))
    assert 'id="layers-title">Layers</h2>' in html  # the layers panel itself is there
    for absent in ("label-import", "Import labels", "/labels/", "label_import.js"):
        assert absent not in html


@pytest.mark.parametrize("name", MODULES)
def test_label_modules_are_found_and_their_imports_resolve(name: str) -> None:
    assert finders.find(f"frontend/js/{name}") is not None
    targets = IMPORT.findall((JS_DIR / name).read_text())
    assert targets
    for target in targets:
        assert (JS_DIR / target).is_file(), f"{name} imports {target}, which does not exist"
