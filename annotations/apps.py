from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _after_migrate(sender: AppConfig, **kwargs: object) -> None:
    from rcmweb.access import sync_role_permissions

    sync_role_permissions()


class AnnotationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotations"

    def ready(self) -> None:
        post_migrate.connect(_after_migrate, sender=self)
