"""Pages: login required, roles, 404s, and the elements each page's scripts build on."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from annotations.models import Mosaic
from rcmweb.access import Role

pytestmark = pytest.mark.django_db

PAGES = [
    ("frontend:mosaic-list", {}),
    ("frontend:mosaic-upload", {}),
    ("frontend:viewer", {"mosaic_id": 1}),
]


def make_mosaic(**fields: object) -> Mosaic:
    values: dict[str, object] = dict(
        name="Lesion 7 / dermis", original_filename="lesion7.tif", checksum="ab" * 32, file_size=1234,
        width=12000, height=9000, um_per_px=0.5, um_per_px_source="file", working_um_per_px=4.0,
        working_width=1500, working_height=1125, status=Mosaic.Status.READY,
    )
    values.update(fields)
    return Mosaic.objects.create(**values)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(("name", "kwargs"), PAGES)
def test_pages_redirect_anonymous_users_to_login(name: str, kwargs: dict) -> None:
    url = reverse(name, kwargs=kwargs)
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


def test_login_page_renders_the_form() -> None:
    response = Client().get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert "csrfmiddlewaretoken" in html
    assert 'class="mainnav"' not in html  # no navigation before logging in


def test_login_with_a_wrong_password_says_so(expert_user) -> None:
    response = Client().post(reverse("login"), {"username": "erin", "password": "wrong"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()


def test_login_redirects_to_next(expert_user) -> None:
    from tests.conftest import PASSWORD

    response = Client().post(reverse("login"), {"username": "erin", "password": PASSWORD, "next": "/mosaics/upload/"})
    assert response.status_code == 302
    assert response["Location"] == "/mosaics/upload/"


def test_nav_shows_user_role_and_logout_form(expert_user) -> None:
    html = logged_in(expert_user).get(reverse("frontend:mosaic-list")).content.decode()
    assert "erin" in html
    assert 'class="role-badge role-expert">Expert<' in html
    assert f'action="{reverse("logout")}"' in html and 'method="post"' in html
    assert reverse("api-docs") in html


def test_nav_hides_admin_links_from_experts(expert_user) -> None:
    html = logged_in(expert_user).get(reverse("frontend:mosaic-list")).content.decode()
    assert reverse("frontend:mosaic-upload") not in html
    assert reverse("admin:index") not in html


def test_nav_shows_admin_links_to_admins(admin_user) -> None:
    html = logged_in(admin_user).get(reverse("frontend:mosaic-list")).content.decode()
    assert f'href="{reverse("frontend:mosaic-upload")}"' in html
    assert f'href="{reverse("admin:index")}"' in html
    assert 'class="role-badge role-admin">Admin<' in html


def test_logout_is_a_post_that_ends_the_session(expert_user) -> None:
    client = logged_in(expert_user)
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("frontend:mosaic-list")).status_code == 302


def test_mosaic_list_has_table_live_region_and_script(expert_user) -> None:
    html = logged_in(expert_user).get(reverse("frontend:mosaic-list")).content.decode()
    assert 'id="mosaic-list"' in html and 'data-live="off"' in html
    assert 'id="mosaic-rows"' in html
    assert 'data-api-root="/api/"' in html
    assert 'type="module" src="/static/frontend/js/mosaic_list.js"' in html


def test_mosaic_list_empty_state_tells_admins_to_upload(admin_user) -> None:
    html = logged_in(admin_user).get(reverse("frontend:mosaic-list")).content.decode()
    assert "Upload an RCM mosaic to start" in html


def test_mosaic_list_empty_state_tells_others_to_ask_an_admin(trainee_user) -> None:
    html = logged_in(trainee_user).get(reverse("frontend:mosaic-list")).content.decode()
    assert "An admin has to upload mosaics" in html
    assert "Upload an RCM mosaic to start" not in html


@pytest.mark.parametrize("role", [Role.EXPERT, Role.TRAINEE, None])
def test_upload_page_is_refused_to_non_admins(make_user, role: Role | None) -> None:
    response = logged_in(make_user("someone", role)).get(reverse("frontend:mosaic-upload"))
    assert response.status_code == 403
    assert "Only admins may upload mosaics." in response.content.decode()


def test_upload_page_renders_for_admins(admin_user, settings) -> None:
    settings.RCMWEB_MAX_UPLOAD_BYTES = 3 * 1024**3
    html = logged_in(admin_user).get(reverse("frontend:mosaic-upload")).content.decode()
    assert 'id="file-input"' in html and "multiple" in html and 'accept=".tif,.tiff,.png,.bmp,.jpg,.jpeg"' in html
    assert 'id="um-input"' in html and 'min="0.05"' in html and 'max="50.0"' in html
    assert f'data-max-bytes="{3 * 1024**3}"' in html
    assert "At most 3 GiB per file." in html
    assert 'data-api-url="/api/mosaics/"' in html
    assert "csrfmiddlewaretoken" in html
    assert "type=\"module\" src=\"/static/frontend/js/upload.js\"" in html



def test_upload_page_offers_expert_labels_with_a_value_mapping(admin_user) -> None:
    from annotations.services import MAX_LABEL_FILE_BYTES

    html = logged_in(admin_user).get(reverse("frontend:mosaic-upload")).content.decode()
    assert 'id="labels-input" accept=".png,.tif,.tiff"' in html
    assert f'data-max-label-bytes="{MAX_LABEL_FILE_BYTES}"' in html and 'data-labels-suffix="_labels"' in html
    assert 'id="mapping-input" name="value_mapping"' in html
    # The classes a mapping may name, from the LabelClass table.
    assert "Classes: 0 background (non-lesion), 1 artifact, 2 meshwork, 3 ring, 4 nested, 5 aspecific, 255 unlabelled." in html


def test_viewer_answers_404_for_a_missing_mosaic(expert_user) -> None:
    response = logged_in(expert_user).get(reverse("frontend:viewer", kwargs={"mosaic_id": 999}))
    assert response.status_code == 404


def test_viewer_answers_404_to_users_without_a_role(make_user) -> None:
    mosaic = make_mosaic()
    response = logged_in(make_user("norole", None)).get(reverse("frontend:viewer", kwargs={"mosaic_id": mosaic.pk}))
    assert response.status_code == 404


def test_viewer_renders_info_panel_and_openseadragon(expert_user) -> None:
    mosaic = make_mosaic()
    html = logged_in(expert_user).get(reverse("frontend:viewer", kwargs={"mosaic_id": mosaic.pk})).content.decode()
    assert "Lesion 7 / dermis" in html
    assert "12,000 × 9,000 px" in html
    assert "6.00 × 4.50 mm" in html
    assert "0.500 µm/px" in html and "from the file’s tags" in html
    assert f'data-mosaic-url="/api/mosaics/{mosaic.pk}/"' in html
    assert 'data-osd-prefix="/static/vendor/openseadragon/images/"' in html
    assert '<script src="/static/vendor/openseadragon/openseadragon.min.js">' in html
    assert 'type="module" src="/static/frontend/js/viewer.js"' in html
    assert 'id="scalebar"' in html and 'id="layer-list"' in html and 'id="help-dialog"' in html


def test_viewer_of_a_mosaic_not_ready_shows_the_status_area(expert_user) -> None:
    mosaic = make_mosaic(status=Mosaic.Status.INGESTING)
    html = logged_in(expert_user).get(reverse("frontend:viewer", kwargs={"mosaic_id": mosaic.pk})).content.decode()
    assert '<div id="viewer-status" class="viewer-status" >' in html
    assert "status-ingesting" in html


def test_viewer_escapes_the_mosaic_name(expert_user) -> None:
    mosaic = make_mosaic(name="<script>alert(1)</script>")
    html = logged_in(expert_user).get(reverse("frontend:viewer", kwargs={"mosaic_id": mosaic.pk})).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("path", ["openseadragon.min.js", "images/zoomin_rest.png"])
def test_openseadragon_is_served_from_node_modules(path: str) -> None:
    from django.contrib.staticfiles import finders

    assert finders.find(f"vendor/openseadragon/{path}") is not None


@pytest.mark.parametrize("path", ["frontend/js/viewer.js", "frontend/js/scalebar.js", "frontend/css/app.css",
                                  "frontend/css/viewer.css", "frontend/img/favicon.svg"])
def test_page_assets_are_found_by_staticfiles(path: str) -> None:
    from django.contrib.staticfiles import finders

    assert finders.find(path) is not None
