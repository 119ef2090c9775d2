"""The review parts of the pages, without a browser: the viewer loads the review module for experts and admins only
and tells it who is signed in; the agreement page's access rules; the browser's limits match the server's; module
imports resolve. The tools themselves are tested in a browser (tests/e2e/test_review.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from annotations import geometry
from rcmweb.access import Role
from tests.frontend.test_pages import make_mosaic

JS_DIR = Path(__file__).resolve().parents[2] / "frontend" / "static" / "frontend" / "js"
REVIEW_MODULES = ["review.js", "tools.js", "edits.js", "geometry.js", "figures.js", "agreement.js"]
IMPORT = re.compile(r"""^import\s[^;]*?from\s+['"](\./[^'"]+)['"]""", re.MULTILINE | re.DOTALL)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def viewer_html(user, mosaic=None) -> str:
    mosaic = mosaic or make_mosaic()
    return logged_in(user).get(reverse("frontend:viewer", kwargs={"mosaic_id": mosaic.pk})).content.decode()


def js_constant(module: str, name: str) -> float:
    match = re.search(rf"^export const {name} = ([\d_.]+);", (JS_DIR / module).read_text(), re.MULTILINE)
    assert match, f"{module} has no `export const {name} = <number>;`"
    return float(match.group(1).replace("_", ""))


# ---- the viewer -------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_viewer_loads_the_review_module_after_the_overlays_and_its_styles(expert_user) -> None:
    html = viewer_html(expert_user)
    assert 'type="module" src="/static/frontend/js/review.js"' in html
    assert 'href="/static/frontend/css/review.css"' in html
    assert html.index("frontend/js/overlays.js") < html.index("frontend/js/review.js")  # it uses app.overlays


@pytest.mark.django_db
@pytest.mark.parametrize("user_fixture", ["expert_user", "admin_user"])
def test_experts_and_admins_get_the_review_root_with_their_name_and_the_agreement_page(request, user_fixture) -> None:
    user = request.getfixturevalue(user_fixture)
    mosaic = make_mosaic()
    html = viewer_html(user, mosaic)
    assert f'data-username="{user.get_username()}"' in html
    assert f'data-agreement-url="/mosaics/{mosaic.pk}/agreement/"' in html


@pytest.mark.django_db
def test_trainees_get_no_review_root(trainee_user) -> None:
    html = viewer_html(trainee_user)
    assert 'id="review-root"' not in html


@pytest.mark.django_db
def test_the_username_in_the_review_root_is_escaped(make_user) -> None:
    user = make_user('dr"<x>', Role.EXPERT)
    html = viewer_html(user)
    assert 'data-username="dr&quot;&lt;x&gt;"' in html


# ---- the agreement page -----------------------------------------------------------------------------------------
def test_agreement_url_is_named() -> None:
    assert reverse("frontend:agreement", kwargs={"mosaic_id": 7}) == "/mosaics/7/agreement/"


@pytest.mark.django_db
def test_agreement_page_sends_anonymous_users_to_login() -> None:
    url = reverse("frontend:agreement", kwargs={"mosaic_id": make_mosaic().pk})
    response = Client().get(url)
    assert response.status_code == 302 and response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.django_db
@pytest.mark.parametrize("user_fixture", ["expert_user", "admin_user"])
def test_agreement_page_renders_its_sections_for_experts_and_admins(request, user_fixture: str) -> None:
    user = request.getfixturevalue(user_fixture)
    mosaic = make_mosaic()
    html = logged_in(user).get(reverse("frontend:agreement", kwargs={"mosaic_id": mosaic.pk})).content.decode()
    for element in ('id="agreement-page"', 'id="review-section"', 'id="versions-section"', 'id="pairs-section"',
                    'id="review-plot"', 'id="version-plot"', 'src="/static/frontend/js/agreement.js"',
                    f'href="/mosaics/{mosaic.pk}/"'):
        assert element in html, element
    assert f'data-is-admin="{"true" if user_fixture == "admin_user" else "false"}"' in html


@pytest.mark.django_db
def test_agreement_page_is_refused_to_trainees(trainee_user) -> None:
    response = logged_in(trainee_user).get(reverse("frontend:agreement", kwargs={"mosaic_id": make_mosaic().pk}))
    assert response.status_code == 403
    assert "Agreement with the model is for experts and admins." in response.content.decode()


@pytest.mark.django_db
def test_agreement_page_of_a_missing_mosaic_or_one_not_visible_is_404(expert_user, make_user) -> None:
    assert logged_in(expert_user).get(reverse("frontend:agreement", kwargs={"mosaic_id": 999})).status_code == 404
    nobody = make_user("nobody", None)
    url = reverse("frontend:agreement", kwargs={"mosaic_id": make_mosaic().pk})
    assert logged_in(nobody).get(url).status_code == 404


# ---- the browser's limits and modules ---------------------------------------------------------------------------
def test_browser_geometry_limits_are_the_servers() -> None:
    assert js_constant("geometry.js", "MAX_POINTS") == geometry.MAX_POINTS
    assert js_constant("geometry.js", "MAX_RADIUS_UM") == geometry.MAX_RADIUS_UM


def test_strokes_are_split_below_the_servers_point_limit() -> None:
    assert js_constant("review.js", "STROKE_PART_POINTS") <= geometry.MAX_POINTS


@pytest.mark.parametrize("path", [f"frontend/js/{name}" for name in REVIEW_MODULES]
                         + ["frontend/css/review.css", "frontend/css/agreement.css"])
def test_review_assets_are_found_by_staticfiles(path: str) -> None:
    assert finders.find(path) is not None


@pytest.mark.parametrize("name", REVIEW_MODULES)
def test_relative_imports_of_the_review_modules_resolve(name: str) -> None:
    source = (JS_DIR / name).read_text()
    targets = IMPORT.findall(source)
    assert targets or name in ("geometry.js", "figures.js", "tools.js")
    for target in targets:
        assert (JS_DIR / target).is_file(), f"{name} imports {target}, which does not exist"
