"""Roles and the one helper through which every object read or write checks the user's right to it.

Missing and forbidden objects both answer 404, so ids of other people's work leak nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.db import models
from django.http import Http404


class Role(StrEnum):
    ADMIN = "admin"
    EXPERT = "expert"
    TRAINEE = "trainee"


ROLE_ORDER: tuple[Role, ...] = (Role.ADMIN, Role.EXPERT, Role.TRAINEE)

M = TypeVar("M", bound=models.Model)
AnyUser = AbstractBaseUser | AnonymousUser


def ensure_role_groups() -> dict[Role, Group]:
    """Create the role groups if missing (idempotent)."""
    return {role: Group.objects.get_or_create(name=role.value)[0] for role in ROLE_ORDER}


def user_roles(user: AnyUser) -> set[Role]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_rcmweb_roles", None)
    if cached is not None:
        return cached
    names = set(user.groups.values_list("name", flat=True))  # type: ignore[union-attr]
    roles = {role for role in ROLE_ORDER if role.value in names}
    if user.is_superuser:  # type: ignore[union-attr]
        roles.add(Role.ADMIN)
    user._rcmweb_roles = roles  # type: ignore[union-attr]
    return roles


def primary_role(user: AnyUser) -> Role | None:
    roles = user_roles(user)
    return next((role for role in ROLE_ORDER if role in roles), None)


def has_role(user: AnyUser, *roles: Role) -> bool:
    return bool(user_roles(user) & set(roles))


def is_admin(user: AnyUser) -> bool:
    return has_role(user, Role.ADMIN)


def get_for_user(queryset: models.QuerySet[M], pk: object) -> M:
    """Fetch one object of a queryset already restricted to what the user may see; 404 otherwise."""
    try:
        return queryset.get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404(f"No {queryset.model._meta.verbose_name} with id {pk!r}.") from exc


# Model permissions per role (codenames of this project's apps); admins get every one of them.
PROJECT_APPS = ("annotations", "inference")
ROLE_PERMISSIONS: dict[Role, tuple[str, ...]] = {
    Role.EXPERT: ("view_mosaic", "view_labelclass", "view_labellayer", "add_labellayer", "change_labellayer",
                  "view_job"),
    Role.TRAINEE: ("view_mosaic", "view_labelclass"),
}


def sync_role_permissions() -> None:
    """Attach model permissions to the role groups (run after every migrate; idempotent)."""
    from django.contrib.auth.models import Permission

    groups = ensure_role_groups()
    project = Permission.objects.filter(content_type__app_label__in=PROJECT_APPS)
    groups[Role.ADMIN].permissions.set(project)
    for role, codenames in ROLE_PERMISSIONS.items():
        groups[role].permissions.set(project.filter(codename__in=codenames))
