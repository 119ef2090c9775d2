"""Register a weights file as a model version (optionally make it active)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.services.models import ModelRejected, model_version_register


class Command(BaseCommand):
    help = "Register a safetensors weights file as a model version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("weights", type=Path)
        parser.add_argument("--name", required=True)
        parser.add_argument("--notes", default="")
        parser.add_argument("--activate", action="store_true", help="Make it active and re-predict every mosaic.")
        parser.add_argument("--user", default=None, help="Username recorded as the registering admin.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user {options['user']!r}.")
        try:
            version, created = model_version_register(weights_file=options["weights"], name=options["name"],
                                                      notes=options["notes"], user=user,
                                                      activate=options["activate"])
        except ModelRejected as exc:
            raise CommandError(str(exc)) from exc
        state = "registered" if created else "already registered"
        self.stdout.write(self.style.SUCCESS(f"Model version {version.pk} {version.name!r} {state}; "
                                             f"status {version.status}."))
