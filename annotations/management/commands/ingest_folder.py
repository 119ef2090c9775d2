"""Bulk upload: every accepted image file of a folder becomes a mosaic (duplicates are skipped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotations import services
from annotations.imaging import ImageRejected, check_filename


class Command(BaseCommand):
    help = "Upload every TIFF/PNG/BMP/JPEG of a folder as a mosaic and queue its ingest."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path)
        parser.add_argument("--user", required=True, help="Username of the admin recorded as uploader.")
        parser.add_argument("--um-per-px", type=float, default=None,
                            help="Pixel size for every file (default: each file's tags, else 1.0).")
        parser.add_argument("--recursive", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        folder: Path = options["folder"]
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder.")
        try:
            user = get_user_model().objects.get(username=options["user"])
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"No user {options['user']!r}.") from exc
        pattern = "**/*" if options["recursive"] else "*"
        files = sorted(p for p in folder.glob(pattern) if p.is_file() and not _is_label_map(p))
        created = existing = rejected = 0
        for path in tqdm(files, desc="Uploading", unit="file"):
            try:
                check_filename(path.name)
            except ImageRejected:
                continue
            try:
                with path.open("rb") as fh:
                    mosaic, is_new = services.mosaic_upload(source=fh, filename=path.name, user=user,
                                                            um_per_px=options["um_per_px"])
            except ImageRejected as exc:
                rejected += 1
                self.stderr.write(f"{path.name}: {exc}")
                continue
            created += is_new
            existing += not is_new
            tqdm.write(f"{path.name}: mosaic {mosaic.pk} ({'new' if is_new else 'already there'})")
        self.stdout.write(self.style.SUCCESS(
            f"{created} new, {existing} already there, {rejected} rejected. Ingest runs in the worker."))


def _is_label_map(path: Path) -> bool:
    """Label maps written beside mosaics (``*_truth.png``, ``*_partial.png``, ``*_labels.png``) are not mosaics."""
    return path.stem.endswith(("_truth", "_partial", "_labels"))
