"""Template filters of the pages (frontend/templatetags/frontend_tags.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from frontend.templatetags.frontend_tags import binary_size, is_admin_filter, role_key, role_label, sig3, thousands
from rcmweb.access import Role


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "label", "key"), [
    (Role.ADMIN, "Admin", "admin"), (Role.EXPERT, "Expert", "expert"), (Role.TRAINEE, "Trainee", "trainee"),
    (None, "No role", ""),
])
def test_role_label_and_key(make_user, role: Role | None, label: str, key: str) -> None:
    user = make_user("someone", role)
    assert role_label(user) == label
    assert role_key(user) == key
    assert is_admin_filter(user) is (role == Role.ADMIN)


def test_anonymous_user_has_no_role() -> None:
    assert role_label(AnonymousUser()) == "No role"
    assert is_admin_filter(AnonymousUser()) is False


@pytest.mark.parametrize(("value", "text"), [(12000, "12,000"), (64, "64"), ("x", "x")])
def test_thousands(value: object, text: str) -> None:
    assert thousands(value) == text


@pytest.mark.parametrize(("value", "text"), [(0.5, "0.500"), (1.0, "1.00"), (4, "4.00"), (12.25, "12.2"),
                                             (0.1234, "0.123"), (123.4, "123")])
def test_sig3_keeps_three_significant_digits(value: float, text: str) -> None:
    assert sig3(value) == text


@pytest.mark.parametrize(("value", "text"), [(512, "512 B"), (1536, "1.5 KiB"), (2 * 1024**3, "2 GiB"),
                                             (150 * 1024**2, "150 MiB"), (5 * 1024**4, "5 TiB")])
def test_binary_size(value: int, text: str) -> None:
    assert binary_size(value) == text
