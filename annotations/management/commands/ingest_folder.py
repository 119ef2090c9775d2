"""Bulk upload: every accepted image file of a folder becomes a mosaic (duplicates are skipped).

A label map beside a mosaic, named ``<mosaic stem>_labels.png`` (or ``.tif`` / ``.tiff``), is imported with it
as its expert-labels layer, exactly as a label file sent with an upload: it is checked first, and a bad label
map refuses that mosaic (nothing stored) and is reported. ``--value-mapping`` applies to every label map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotations import services
from annotations.imaging import ImageRejected, check_filename

LABELS_SUFFIX = services.LABEL_MAP_SUFFIX
LABEL_EXTENSIONS = services.LABEL_FILE_EXTENSIONS


class Command(BaseCommand):
    help = ("Upload every TIFF/PNG/BMP/JPEG of a folder as a mosaic and queue its ingest; a sibling "
            f"<stem>{LABELS_SUFFIX}.png/.tif is imported as that mosaic's expert labels.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path)
        parser.add_argument("--user", required=True, help="Username of the admin recorded as uploader.")
        parser.add_argument("--um-per-px", type=float, default=None,
                            help="Pixel size for every file (default: each file's tags, else 1.0).")
        parser.add_argument("--recursive", action="store_true")
        parser.add_argument("--value-mapping", default=None,
                            help='Value mapping for every label map, as JSON: {"file value": class}, e.g. '
                                 '\'{"1": 2, "2": 3, "0": 255}\' (default: values are already 0-5 and 255).')

    def handle(self, *args: Any, **options: Any) -> None:
        folder: Path = options["folder"]
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder.")
        try:
            user = get_user_model().objects.get(username=options["user"])
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"No user {options['user']!r}.") from exc
        mapping = _parse_mapping(options["value_mapping"])
        pattern = "**/*" if options["recursive"] else "*"
        files = sorted(p for p in folder.glob(pattern) if p.is_file() and not _is_label_map(p))
        created = existing = rejected = labelled = 0
        for path in tqdm(files, desc="Uploading", unit="file"):
            try:
                check_filename(path.name)
            except ImageRejected:
                continue
            label_paths = _label_maps_for(path)
            if len(label_paths) > 1:
                rejected += 1
                self.stderr.write(f"{path.name}: more than one label map ({', '.join(p.name for p in label_paths)}); "
                                  "keep one.")
                continue
            try:
                result = self._upload(path, label_paths[0] if label_paths else None, user=user, mapping=mapping,
                                      um_per_px=options["um_per_px"])
            except ImageRejected as exc:
                rejected += 1
                self.stderr.write(f"{path.name}: {exc}")
                continue
            except services.LabelsRejected as exc:
                rejected += 1
                self.stderr.write(f"{path.name}: label map {label_paths[0].name}: {exc}")
                continue
            created += result.created
            existing += not result.created
            labelled += result.labels_created
            note = "new" if result.created else "already there"
            if result.label_layer is not None:
                note += f", labels {'imported' if result.labels_created else 'already imported'}"
            tqdm.write(f"{path.name}: mosaic {result.mosaic.pk} ({note})")
        self.stdout.write(self.style.SUCCESS(
            f"{created} new, {existing} already there, {rejected} rejected, {labelled} label maps imported. "
            "Ingest runs in the worker."))

    @staticmethod
    def _upload(path: Path, label_path: Path | None, *, user: Any, mapping: dict[int, int] | None,
                um_per_px: float | None) -> services.UploadResult:
        with path.open("rb") as fh:
            if label_path is None:
                return services.mosaic_upload_with_labels(source=fh, filename=path.name, user=user,
                                                          um_per_px=um_per_px)
            with label_path.open("rb") as labels_fh:
                labels = services.LabelFile(source=labels_fh, filename=label_path.name, value_mapping=mapping)
                return services.mosaic_upload_with_labels(source=fh, filename=path.name, user=user,
                                                          um_per_px=um_per_px, labels=labels)


def _parse_mapping(raw: str | None) -> dict[int, int] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise TypeError
        return {int(k): int(v) for k, v in value.items()}
    except (ValueError, TypeError) as exc:
        raise CommandError(f'--value-mapping must be a JSON object of integers, e.g. {{"1": 2, "0": 255}}; '
                           f"got {raw!r}.") from exc


def _label_maps_for(mosaic_path: Path) -> list[Path]:
    return [candidate for ext in LABEL_EXTENSIONS
            if (candidate := mosaic_path.with_name(f"{mosaic_path.stem}{LABELS_SUFFIX}{ext}")).is_file()]


def _is_label_map(path: Path) -> bool:
    """Label maps written beside mosaics (``*_truth.png``, ``*_partial.png``, ``*_labels.png``) are not mosaics."""
    return path.stem.endswith(("_truth", "_partial", LABELS_SUFFIX))
