"""The viewer page's overlay parts, without a browser: scripts and styles in the page, panel order, module
imports that resolve. The drawing itself is tested in a browser (tests/e2e/test_overlays.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from tests.frontend.test_pages import make_mosaic

JS_DIR = Path(__file__).resolve().parents[2] / "frontend" / "static" / "frontend" / "js"
OVERLAY_MODULES = ["overlay.js", "overlays.js", "legend.js", "predictions.js", "colormap.js", "layers.js"]
IMPORT = re.compile(r"""^import\s[^;]*?from\s+['"](\./[^'"]+)['"]""", re.MULTILINE | re.DOTALL)


def viewer_html(user) -> str:
    client = Client()
    client.force_login(user)
    mosaic = make_mosaic()
    return client.get(reverse("frontend:viewer", kwargs={"mosaic_id": mosaic.pk})).content.decode()


@pytest.mark.django_db
def test_viewer_loads_the_overlays_module_and_styles(expert_user) -> None:
    html = viewer_html(expert_user)
    assert 'type="module" src="/static/frontend/js/overlays.js"' in html
    assert 'href="/static/frontend/css/overlays.css"' in html
    # the overlays module runs after the viewer module it extends
    assert html.index("frontend/js/viewer.js") < html.index("frontend/js/overlays.js")


@pytest.mark.django_db
def test_layers_panel_comes_before_the_mosaic_info(expert_user) -> None:
    html = viewer_html(expert_user)
    assert html.index('id="panel-layers"') < html.index('id="panel-info"')


@pytest.mark.django_db
@pytest.mark.parametrize(("user_fixture", "role"), [("admin_user", "admin"), ("expert_user", "expert"),
                                                    ("trainee_user", "trainee")])
def test_page_tells_the_scripts_the_role(request, user_fixture: str, role: str) -> None:
    """overlays.js shows model output to experts and admins and 'Predict again' to admins from data-role."""
    assert f'data-role="{role}"' in viewer_html(request.getfixturevalue(user_fixture))


@pytest.mark.parametrize("path", [f"frontend/js/{name}" for name in OVERLAY_MODULES] + ["frontend/css/overlays.css"])
def test_overlay_assets_are_found_by_staticfiles(path: str) -> None:
    assert finders.find(path) is not None


@pytest.mark.parametrize("name", OVERLAY_MODULES)
def test_relative_imports_of_the_overlay_modules_resolve(name: str) -> None:
    source = (JS_DIR / name).read_text()
    targets = IMPORT.findall(source)
    assert targets or name == "colormap.js"
    for target in targets:
        assert (JS_DIR / target).is_file(), f"{name} imports {target}, which does not exist"
