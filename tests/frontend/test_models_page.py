"""The Models page: who may open it, what each role gets, and the form defaults taken from the API.

Trainees (and users without a role) get 403, not 404: the page is not an object whose existence could leak, and
a plain "not for your role" says more than "not found" to someone who followed an old link.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from inference.serializers import FinetuneSerializer
from rcmweb.access import Role

pytestmark = pytest.mark.django_db

URL = "/models/"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_models_url_is_named() -> None:
    assert reverse("frontend:models") == URL


def test_anonymous_users_are_sent_to_login() -> None:
    response = Client().get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={URL}"


@pytest.mark.parametrize("role", [Role.TRAINEE, None])
def test_trainees_and_users_without_a_role_get_403(make_user, role: Role | None) -> None:
    response = logged_in(make_user("someone", role)).get(URL)
    assert response.status_code == 403
    assert "Only admins and experts may see the model versions." in response.content.decode()


def test_experts_get_the_page_without_admin_actions(expert_user) -> None:
    html = logged_in(expert_user).get(URL).content.decode()
    assert 'id="models-page" data-can-manage="false"' in html
    assert 'id="version-rows"' in html and 'id="comparison"' in html
    assert 'id="launch-form"' not in html
    assert 'id="held-out-list"' not in html
    assert 'id="training"' not in html  # training jobs are not shown to experts (the jobs API hides them)
    assert "New fine-tuning round" not in html


def test_admins_get_the_launch_form_the_held_out_set_and_the_running_round(admin_user) -> None:
    html = logged_in(admin_user).get(URL).content.decode()
    assert 'id="models-page" data-can-manage="true"' in html
    assert 'id="launch-form"' in html and "csrfmiddlewaretoken" in html
    assert 'id="held-out-list"' in html
    assert 'id="training"' in html and 'id="loss-chart"' in html and 'id="training-cancel"' in html
    assert 'href="#launch"' in html


class InputAttributes(HTMLParser):
    """Attributes of every <input> of a page, by name (radio buttons: the last one)."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, dict[str, str | None]] = {}
        self.radios: dict[str, list[dict[str, str | None]]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("name"):
            self.inputs[values["name"]] = values
            if values.get("type") == "radio":
                self.radios.setdefault(values["name"], []).append(values)


def inputs_of(html: str) -> InputAttributes:
    parser = InputAttributes()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("name", ["epochs", "lr", "steps_per_epoch", "seed"])
def test_launch_form_offers_the_api_default_and_bounds(admin_user, name: str) -> None:
    field = FinetuneSerializer().fields[name]
    attrs = inputs_of(logged_in(admin_user).get(URL).content.decode()).inputs[name]
    assert attrs["type"] == "number"
    assert float(attrs["value"]) == field.default
    assert float(attrs["min"]) == field.min_value
    assert (float(attrs["max"]) if "max" in attrs else None) == field.max_value


def test_launch_form_offers_every_label_source_with_the_api_default_checked(admin_user) -> None:
    field = FinetuneSerializer().fields["labels"]
    radios = inputs_of(logged_in(admin_user).get(URL).content.decode()).radios["labels"]
    assert sorted(r["value"] for r in radios) == sorted(field.choices)
    assert [r["value"] for r in radios if "checked" in r] == [field.default]


def test_page_loads_its_module_and_stylesheet(expert_user) -> None:
    html = logged_in(expert_user).get(URL).content.decode()
    assert 'type="module" src="/static/frontend/js/models.js"' in html
    assert 'href="/static/frontend/css/models.css"' in html


@pytest.mark.parametrize("fixture", ["admin_user", "expert_user"])
def test_nav_links_to_the_page_for_admins_and_experts(request, fixture: str) -> None:
    html = logged_in(request.getfixturevalue(fixture)).get(reverse("frontend:mosaic-list")).content.decode()
    assert f'href="{URL}">Models</a>' in html


def test_nav_marks_the_page_current(expert_user) -> None:
    html = logged_in(expert_user).get(URL).content.decode()
    assert f'href="{URL}" aria-current="page">Models</a>' in html


def test_nav_hides_the_page_from_trainees(trainee_user) -> None:
    html = logged_in(trainee_user).get(reverse("frontend:mosaic-list")).content.decode()
    assert f'href="{URL}"' not in html
