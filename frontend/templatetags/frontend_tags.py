"""Template helpers for the pages: the user's role, read through rcmweb.access (one place decides roles)."""

from __future__ import annotations

from django import template

from rcmweb.access import AnyUser, is_admin, primary_role

register = template.Library()

ROLE_LABELS = {"admin": "Admin", "expert": "Expert", "trainee": "Trainee"}


@register.filter
def role_label(user: AnyUser) -> str:
    """The user's primary role as shown in the header, or "No role" (such users see no mosaics)."""
    role = primary_role(user)
    return ROLE_LABELS.get(role.value, role.value.title()) if role is not None else "No role"


@register.filter
def role_key(user: AnyUser) -> str:
    """The primary role's key for CSS and scripts ("admin", "expert", "trainee" or "")."""
    role = primary_role(user)
    return role.value if role is not None else ""


@register.filter(name="is_admin")
def is_admin_filter(user: AnyUser) -> bool:
    return is_admin(user)


@register.filter
def thousands(value: int | float | str) -> str:
    """12000 → "12,000" (the same grouping as the pages' scripts use)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def sig3(value: float | str) -> str:
    """Three significant digits, trailing zeros kept: 0.5 → "0.500", 1 → "1.00" (as the scripts' toPrecision(3))."""
    try:
        return f"{float(value):#.3g}".rstrip(".")
    except (TypeError, ValueError):
        return str(value)


@register.filter
def binary_size(value: int) -> str:
    """Bytes in binary units as the scripts write them: 2147483648 → "2 GiB", 1572864 → "1.5 MiB"."""
    size = float(value)
    unit = "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    if unit == "B" or size >= 100 or size.is_integer():
        return f"{size:.0f} {unit}"
    return f"{size:.1f} {unit}"
