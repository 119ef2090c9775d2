from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _after_migrate(sender: AppConfig, **kwargs: object) -> None:
    """Role permissions, and label classes that are missing (a flushed database; admins' colours are kept)."""
    from inference.ml.classes import CLASSES
    from rcmweb.access import sync_role_permissions

    from .models import LabelClass

    sync_role_permissions()
    for info in CLASSES:
        LabelClass.objects.get_or_create(value=info.value,
                                         defaults={"key": info.key, "name": info.name, "colour": info.colour})


class AnnotationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotations"

    def ready(self) -> None:
        # After every app (not only this one): permissions of apps migrated later must exist first.
        post_migrate.connect(_after_migrate, dispatch_uid="rcmweb-role-permissions")
