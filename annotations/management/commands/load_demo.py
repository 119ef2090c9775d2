"""Demo set-up for `make run`: role accounts (printed) and synthetic mosaics, idempotently.

Passwords are random on the first run and kept in ``<data dir>/demo-accounts.json`` (never committed),
so running it again prints the same accounts and creates nothing twice.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from tqdm import tqdm

from annotations import services
from annotations.models import LabelLayer, Mosaic
from rcmweb.access import Role, ensure_role_groups

# Weights of the demo model, trained by this project's own code on synthetic mosaics (bench/train_demo.py).
DEMO_WEIGHTS = Path(__file__).resolve().parents[3] / "inference" / "weights" / "demo_munet.safetensors"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: Role
    full_name: str


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("admin", Role.ADMIN, "Ada Admin"),
    DemoAccount("expert1", Role.EXPERT, "Erin Expert"),
    DemoAccount("expert2", Role.EXPERT, "Elias Expert"),
    DemoAccount("trainee1", Role.TRAINEE, "Tara Trainee"),
)


@dataclass(frozen=True)
class DemoMosaic:
    name: str
    height: int
    width: int
    um_per_px: float
    seed: int


# One mosaic of the typical clinical size (12000 × 12000 at 1 µm/px) and two smaller ones, all from seeds
# that the demo model never saw in training (its training seeds start at 1000).
DEMO_MOSAICS: tuple[DemoMosaic, ...] = (
    DemoMosaic("demo-lesion-A (12000 px)", 12000, 12000, 1.0, 7),
    DemoMosaic("demo-lesion-B", 6000, 8000, 1.0, 8),
    DemoMosaic("demo-lesion-C", 6000, 6000, 1.0, 9),
)


class Command(BaseCommand):
    help = "Create the demo accounts and load the synthetic demo mosaics (safe to run again)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-mosaics", action="store_true", help="Accounts only.")
        parser.add_argument("--small", action="store_true",
                            help="Small mosaics (for tests and slow machines): 1/4 of each side.")

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = self._accounts()
        if not options["no_mosaics"]:
            self._mosaics(accounts[0], small=options["small"])
            self._model(accounts[0])
        self._print_accounts(accounts)

    def _model(self, admin: Any) -> None:
        """Register and activate the demo weights; activation queues a prediction of every mosaic (worker)."""
        from inference.models import ModelVersion
        from inference.services.models import model_version_activate, model_version_register
        from inference.services.predictions import prediction_request

        if not DEMO_WEIGHTS.exists():
            self.stderr.write(f"No demo weights at {DEMO_WEIGHTS.relative_to(settings.BASE_DIR)}: no predictions.")
            return
        version, created = model_version_register(weights_file=DEMO_WEIGHTS, name="demo MUNet", user=admin,
                                                  notes="Trained on synthetic mosaics by bench/train_demo.py.")
        if version.status != ModelVersion.Status.ACTIVE and not ModelVersion.objects.filter(
                status=ModelVersion.Status.ACTIVE).exists():
            model_version_activate(version=version, user=admin)
        else:
            for mosaic in Mosaic.objects.filter(status=Mosaic.Status.READY):
                prediction_request(mosaic=mosaic)
        self.stdout.write(f"Model: {version.name} (v{version.pk}, {'new' if created else 'already registered'}); "
                          "predictions run in the worker — watch their progress in the browser.")

    def _accounts(self) -> list[Any]:
        store = Path(settings.DATA_DIR) / "demo-accounts.json"
        saved: dict[str, str] = json.loads(store.read_text()) if store.exists() else {}
        User = get_user_model()
        groups = ensure_role_groups()
        users = []
        with transaction.atomic():
            for account in DEMO_ACCOUNTS:
                user = User.objects.filter(username=account.username).first()
                if user is None or account.username not in saved:
                    saved[account.username] = secrets.token_urlsafe(9)
                    first, last = account.full_name.split(" ", 1)
                    user = user or User(username=account.username, first_name=first, last_name=last)
                    user.is_staff = account.role == Role.ADMIN
                    user.is_superuser = account.role == Role.ADMIN
                    user.set_password(saved[account.username])
                    user.save()
                user.groups.add(groups[account.role])
                users.append(user)
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(saved, indent=2))
        store.chmod(0o600)
        self._passwords = saved
        return users

    def _mosaics(self, admin: Any, *, small: bool) -> None:
        from inference.ml.synthetic import generate_mosaic, write_mosaic

        folder = Path(settings.DATA_DIR) / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        for spec in tqdm(DEMO_MOSAICS, desc="Demo mosaics", unit="mosaic"):
            height, width = (spec.height // 4, spec.width // 4) if small else (spec.height, spec.width)
            stem = f"demo-{spec.seed}-{width}x{height}"
            tiff = folder / f"{stem}.tif"
            if not tiff.exists():
                tqdm.write(f"Generating {spec.name}: {width} × {height} px at {spec.um_per_px} µm/px")
                mosaic = generate_mosaic(height=height, width=width, um_per_px=spec.um_per_px, seed=spec.seed)
                files = write_mosaic(mosaic, folder, stem)
                tiff = Path(files.image)
            with tiff.open("rb") as fh:
                # its ingest message also reaches the worker later, which finds the job done (a no-op)
                record, created = services.mosaic_upload(source=fh, filename=tiff.name, user=admin,
                                                         name=spec.name, um_per_px=spec.um_per_px)
            self._ingest_now(record)
            self._import_partial_labels(record, folder / f"{stem}_partial.png", admin)
            tqdm.write(f"{spec.name}: mosaic {record.pk} ({'loaded' if created else 'already loaded'})")

    def _ingest_now(self, mosaic: Mosaic) -> None:
        """Ingest here with a terminal progress bar, so the demo is browsable as soon as the server starts."""
        from inference.models import Job
        from inference.services import run_job

        mosaic.refresh_from_db()
        if mosaic.status == Mosaic.Status.READY:
            return
        job = Job.objects.filter(mosaic=mosaic, kind=Job.Kind.INGEST).order_by("-id").first()
        with tqdm(total=100, desc=f"Ingest {mosaic.name}", unit="%", leave=False) as bar:
            def work(job: Any, progress: Any) -> str:
                def report(fraction: float, message: str = "", info: Any = None, *, force: bool = False) -> None:
                    bar.n = int(100 * fraction)
                    bar.set_postfix_str(message)
                    bar.refresh()
                    progress(fraction, message, info, force=force)

                return services.mosaic_ingest(mosaic_id=mosaic.pk, progress=report)

            run_job(job.pk, work)
        mosaic.refresh_from_db()

    def _import_partial_labels(self, mosaic: Mosaic, labels: Path, admin: Any) -> None:
        """The generator's partial ground truth stands in for an expert's initial labels."""
        if mosaic.status != Mosaic.Status.READY or not labels.exists():
            return
        if mosaic.label_layers.filter(source=LabelLayer.Source.IMPORT).exists():
            return
        with labels.open("rb") as fh:
            services.label_layer_import(mosaic=mosaic, source=fh, filename=labels.name, user=admin,
                                        name="Initial expert labels (synthetic)")

    def _print_accounts(self, users: list[Any]) -> None:
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("Demo accounts (passwords are kept in the data folder):"))
        for account in DEMO_ACCOUNTS:
            self.stdout.write(f"  {account.role.value:8s} {account.username:10s} {self._passwords[account.username]}")
        self.stdout.write("")
