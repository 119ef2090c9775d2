"""Writes for mosaics and the audit trail. Keyword-only, atomic, each with its audit row."""

from __future__ import annotations

import hashlib
import io
import logging
import math
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from inference.models import Job
from inference.services import ProgressReporter, job_create, job_enqueue

from . import imaging
from .imaging import ImageRejected
from .models import AuditEvent, LabelClass, LabelLayer, Mosaic

logger = logging.getLogger(__name__)

# Bytes read per chunk while copying and hashing an upload (bounded memory for multi-GB files).
COPY_CHUNK_BYTES = 8 * 1024 * 1024
DEFAULT_UM_PER_PX = 1.0


def audit_record(*, actor: Any, verb: str, target: Any, details: dict[str, Any] | None = None) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor if actor is not None and getattr(actor, "is_authenticated", False) else None,
        verb=verb,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        details=details or {},
    )


def label_classes_sync(*, classes: Iterable[Any]) -> None:
    """Create or update the ``LabelClass`` rows from the core's class list."""
    for info in classes:
        LabelClass.objects.update_or_create(
            value=info.value, defaults={"key": info.key, "name": info.name, "colour": info.colour}
        )


def _max_upload_bytes() -> int:
    return int(settings.RCMWEB_MAX_UPLOAD_BYTES)


def _copy_and_hash(source: BinaryIO, target: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    limit = _max_upload_bytes()
    with target.open("wb") as out:
        while chunk := source.read(COPY_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise ImageRejected(
                    f"The file is larger than the limit of {limit / 2**20:,.0f} MiB. "
                    "Export the mosaic as a compressed TIFF, or ask an admin to raise RCMWEB_MAX_UPLOAD_BYTES."
                )
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _resolve_um_per_px(given: float | None, from_tags: float | None) -> tuple[float, str]:
    if given is not None:
        low, high = imaging.PLAUSIBLE_UM_PER_PX
        if not math.isfinite(given) or not low <= given <= high:
            raise ImageRejected(f"µm/px must be a number between {low} and {high}; got {given!r}.")
        return float(given), "given"
    if from_tags is not None:
        return from_tags, "file"
    return DEFAULT_UM_PER_PX, "default"


@dataclass(frozen=True)
class LabelFile:
    """An expert label map sent with a mosaic upload; accepted as by :func:`label_layer_import`."""

    source: BinaryIO
    filename: str
    value_mapping: dict[int, int] | None = None
    name: str = ""


@dataclass(frozen=True)
class UploadResult:
    mosaic: Mosaic
    created: bool
    # The import layer made from the upload's label file (None without one). ``labels_created`` is False when
    # the same labels were already imported onto that mosaic: the existing layer is given instead of a copy.
    label_layer: LabelLayer | None = None
    labels_created: bool = False


def mosaic_upload(*, source: BinaryIO, filename: str, user: Any, name: str = "",
                  um_per_px: float | None = None) -> tuple[Mosaic, bool]:
    """Validate an uploaded file, store it and queue its ingest. Returns ``(mosaic, created)``.

    The same bytes uploaded twice give the existing mosaic (``created`` False). Any rejection raises
    :class:`ImageRejected` and leaves nothing in the database or on disk.
    """
    result = mosaic_upload_with_labels(source=source, filename=filename, user=user, name=name, um_per_px=um_per_px)
    return result.mosaic, result.created


def mosaic_upload_with_labels(*, source: BinaryIO, filename: str, user: Any, name: str = "",
                              um_per_px: float | None = None, labels: LabelFile | None = None) -> UploadResult:
    """:func:`mosaic_upload` with an optional expert label map imported as the mosaic's expert-labels layer.

    The label file is checked against the mosaic (format, full- or working-resolution size, values covered by
    the mapping) before anything is stored: a bad mosaic raises :class:`ImageRejected`, a bad label file
    :class:`LabelsRejected`, and either leaves nothing in the database or on disk. A new mosaic gets its label
    layer in the same transaction as its rows (the import needs only the sizes known here, not the ingest).

    The same mosaic bytes uploaded again with labels import them onto the existing mosaic, unless an imported
    layer with the same content is already there (then that layer is given, ``labels_created`` False); a
    mosaic whose ingest failed takes no labels.
    """
    declared = imaging.check_filename(filename)
    staging_dir = Path(settings.MEDIA_ROOT) / "staging"
    staging_dir.mkdir(parents=True, exist_ok=True)
    staged = staging_dir / f"{uuid.uuid4().hex}{Path(filename).suffix.lower()}"
    try:
        checksum, size = _copy_and_hash(source, staged)
        if size == 0:
            raise ImageRejected("The file is empty. Upload an image: " + imaging.ACCEPTED_DESCRIPTION + ".")
        existing = Mosaic.objects.filter(checksum=checksum).first()
        if existing is not None:
            return _upload_existing(existing, labels=labels, user=user)
        info = imaging.inspect(staged, declared_format=declared)
        imaging.check_decodes(staged)
        resolved_um, um_source = _resolve_um_per_px(um_per_px, info.um_per_px)
        working_um = float(settings.WORKING_UM_PER_PX)
        work_w, work_h = imaging.working_size(info.width, info.height, um_per_px=resolved_um,
                                              working_um_per_px=working_um)
        working_labels = None
        if labels is not None:
            working_labels = label_map_prepare(source=labels.source, filename=labels.filename,
                                               value_mapping=labels.value_mapping,
                                               full_wh=(info.width, info.height), working_wh=(work_w, work_h))
        try:
            mosaic, layer = _mosaic_create(
                staged=staged, filename=filename, name=name or Path(filename).stem, checksum=checksum, size=size,
                info=info, um_per_px=resolved_um, um_source=um_source, working_um=working_um,
                working_wh=(work_w, work_h), user=user, labels=labels, working_labels=working_labels,
            )
        except IntegrityError:  # the same file arrived concurrently: one mosaic
            existing = Mosaic.objects.get(checksum=checksum)
            if labels is not None:
                labels.source.seek(0)
            return _upload_existing(existing, labels=labels, user=user)
        return UploadResult(mosaic=mosaic, created=True, label_layer=layer, labels_created=layer is not None)
    finally:
        staged.unlink(missing_ok=True)


def _upload_existing(mosaic: Mosaic, *, labels: LabelFile | None, user: Any) -> UploadResult:
    """The uploaded bytes are already ``mosaic``: import the labels onto it (once), or just answer it."""
    if labels is None:
        return UploadResult(mosaic=mosaic, created=False)
    if mosaic.status == Mosaic.Status.FAILED:
        raise LabelsRejected(
            f"This file is already mosaic {mosaic.pk} ({mosaic.name!r}), whose ingest failed "
            f"({mosaic.failure_reason or 'no reason given'}); labels are not imported onto a failed mosaic. "
            "Delete it and upload the file again with its labels."
        )
    working = label_map_prepare(source=labels.source, filename=labels.filename, value_mapping=labels.value_mapping,
                                full_wh=(mosaic.width, mosaic.height),
                                working_wh=(mosaic.working_width, mosaic.working_height))
    from .rasters import read_raster

    for layer in mosaic.label_layers.filter(source=LabelLayer.Source.IMPORT).order_by("pk"):
        if layer.raster_path.exists() and np.array_equal(read_raster(layer.raster_path), working):
            return UploadResult(mosaic=mosaic, created=False, label_layer=layer, labels_created=False)
    layer = _label_layer_store(mosaic=mosaic, working=working, filename=labels.filename, user=user,
                               value_mapping=labels.value_mapping, name=labels.name,
                               details={"at_upload": True, "duplicate_upload": True})
    return UploadResult(mosaic=mosaic, created=False, label_layer=layer, labels_created=True)


def _mosaic_create(*, staged: Path, filename: str, name: str, checksum: str, size: int,
                   info: imaging.ImageInfo, um_per_px: float, um_source: str, working_um: float,
                   working_wh: tuple[int, int], user: Any, labels: LabelFile | None = None,
                   working_labels: np.ndarray | None = None) -> tuple[Mosaic, LabelLayer | None]:
    """Rows (mosaic, ingest job, audit; the label layer if labels came along) and the stored original (and the
    label raster), all or nothing."""
    folder: Path | None = None
    try:
        with transaction.atomic():
            mosaic = Mosaic.objects.create(
                name=name[:255], original_filename=filename[:255], checksum=checksum, file_size=size,
                width=info.width, height=info.height, um_per_px=um_per_px, um_per_px_source=um_source,
                bit_depth=info.bit_depth, working_um_per_px=working_um, working_width=working_wh[0],
                working_height=working_wh[1], uploaded_by=user if getattr(user, "is_authenticated", False) else None,
            )
            job = job_create(kind=Job.Kind.INGEST, mosaic=mosaic, user=user)
            audit_record(actor=user, verb="mosaic.upload", target=mosaic,
                         details={"filename": filename, "checksum": checksum, "bytes": size})
            folder = mosaic.folder
            if folder.exists():  # left by a database that was reset under the media folder
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            shutil.copyfile(staged, original_path(mosaic))
            layer = None
            if labels is not None and working_labels is not None:
                layer = _label_layer_store(mosaic=mosaic, working=working_labels, filename=labels.filename,
                                           user=user, value_mapping=labels.value_mapping, name=labels.name,
                                           details={"at_upload": True})
            job_enqueue(job=job)
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return mosaic, layer


def original_path(mosaic: Mosaic) -> Path:
    suffix = Path(mosaic.original_filename).suffix.lower()
    return mosaic.folder / f"original{suffix}"


def mosaic_ingest(*, mosaic_id: int, progress: ProgressReporter) -> str:
    """Build the pyramid, the working-resolution copy and the thumbnail. Idempotent: outputs are written
    to a scratch folder and moved into place, so a rerun after a crash starts clean."""
    mosaic = Mosaic.objects.get(pk=mosaic_id)
    Mosaic.objects.filter(pk=mosaic_id).update(status=Mosaic.Status.INGESTING, failure_reason="")
    folder = mosaic.folder
    scratch = folder / "ingest-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        progress(0.05, "Decoding", force=True)
        image = imaging.load_gray8(original_path(mosaic))
        progress(0.25, "Building the Deep Zoom pyramid", force=True)
        imaging.write_pyramid(image, scratch / "dzi")
        progress(0.8, "Writing the working-resolution copy", force=True)
        imaging.write_working_copy(image, scratch / "working.png", width=mosaic.working_width,
                                   height=mosaic.working_height)
        progress(0.95, "Writing the thumbnail", force=True)
        imaging.write_thumbnail(image, scratch / "thumbnail.jpg")
        for name in ("dzi", "working.png", "thumbnail.jpg"):
            target = folder / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            (scratch / name).rename(target)
    except Exception as exc:
        Mosaic.objects.filter(pk=mosaic_id).update(status=Mosaic.Status.FAILED, failure_reason=str(exc)[:2000])
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    Mosaic.objects.filter(pk=mosaic_id).update(status=Mosaic.Status.READY)
    mosaic.refresh_from_db()
    from inference.services.predictions import prediction_request

    prediction_request(mosaic=mosaic)  # with the active model, if there is one
    return f"Ready: {mosaic.width} × {mosaic.height} px"


def mosaic_delete(*, mosaic: Mosaic, user: Any) -> None:
    """Delete a mosaic, its rows and its files; the audit row stays."""
    folder = mosaic.folder
    with transaction.atomic():
        audit_record(actor=user, verb="mosaic.delete", target=mosaic,
                     details={"name": mosaic.name, "checksum": mosaic.checksum})
        mosaic.delete()
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


# --- Label layers -------------------------------------------------------------------------------------------

# Largest label file accepted: a full-resolution 20000² 8-bit map uncompressed is 400 MB; label PNGs are far
# smaller, so anything above this is not a label map.
MAX_LABEL_FILE_BYTES = 512 * 1024**2
# Label map formats (lossless, one channel of integer values).
LABEL_FILE_EXTENSIONS = (".png", ".tif", ".tiff")
# Name of a label map that goes with a mosaic, in a bulk folder or dropped together on the Upload page:
# ``lesion.tif`` + ``lesion_labels.png``.
LABEL_MAP_SUFFIX = "_labels"


class LabelsRejected(ValueError):
    """The label file cannot be imported; the message says what was wrong and what is allowed."""


def _read_label_file(source: BinaryIO, filename: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    suffix = Path(filename).suffix.lower()
    if suffix not in LABEL_FILE_EXTENSIONS:
        raise LabelsRejected(f"Label maps must be PNG or TIFF; got {suffix or 'no extension'!r}.")
    data = source.read(MAX_LABEL_FILE_BYTES + 1)
    if len(data) > MAX_LABEL_FILE_BYTES:
        raise LabelsRejected(f"The label file is larger than {MAX_LABEL_FILE_BYTES // 2**20} MiB.")
    if not data:
        raise LabelsRejected("The label file is empty.")
    Image.MAX_IMAGE_PIXELS = imaging.MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode not in ("L", "P", "I;16", "I"):
                raise LabelsRejected(
                    f"Label maps must have one channel of integer class values; this one is {image.mode!r}.")
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise LabelsRejected(f"The label file cannot be read as PNG or TIFF ({exc}).") from exc
    if array.ndim != 2:
        raise LabelsRejected(f"Label maps must be a single 2-D channel; got shape {array.shape}.")
    return array


def _check_label_size(array: np.ndarray, *, full_wh: tuple[int, int], working_wh: tuple[int, int]) -> None:
    height, width = array.shape
    if (width, height) not in (tuple(full_wh), tuple(working_wh)):
        raise LabelsRejected(
            f"The label map is {width} × {height} px; it must match the mosaic at full resolution "
            f"({full_wh[0]} × {full_wh[1]}) or at working resolution ({working_wh[0]} × {working_wh[1]})."
        )


def _apply_mapping(array: np.ndarray, mapping: dict[int, int] | None) -> np.ndarray:
    from inference.ml.classes import NUM_CLASSES, UNLABELLED

    allowed = set(range(NUM_CLASSES)) | {UNLABELLED}
    mapping = mapping if mapping is not None else {v: v for v in allowed}
    bad_targets = sorted({t for t in mapping.values() if t not in allowed})
    if bad_targets:
        raise LabelsRejected(f"The value mapping sends values to {bad_targets}; targets must be 0–5 or 255.")
    present = np.unique(array)
    unmapped = [int(v) for v in present if int(v) not in mapping]
    if unmapped:
        raise LabelsRejected(
            f"The label map has values {unmapped[:20]} that the value mapping does not cover. "
            f"Mapped values: {sorted(mapping)}; give a mapping for every value in the file (255 = unlabelled)."
        )
    lut = np.full(max(int(present.max()), 255) + 1, UNLABELLED, np.uint8)
    for source_value, target in mapping.items():
        if 0 <= source_value < lut.size:
            lut[source_value] = target
    return lut[array]


def label_map_prepare(*, source: BinaryIO, filename: str, value_mapping: dict[int, int] | None,
                      full_wh: tuple[int, int], working_wh: tuple[int, int]) -> np.ndarray:
    """Read a label file, check its size against a mosaic of ``full_wh`` (working size ``working_wh``), map its
    values and return the uint8 ``(H, W)`` raster at working resolution (full resolution is reduced by the
    majority of labelled pixels). Writes nothing; raises :class:`LabelsRejected` with what was wrong."""
    from .rasters import reduce_labels

    array = _read_label_file(source, filename)
    _check_label_size(array, full_wh=full_wh, working_wh=working_wh)
    mapped = _apply_mapping(array, value_mapping)
    work_w, work_h = working_wh
    if mapped.shape == (work_h, work_w):
        return mapped
    return reduce_labels(mapped, work_h, work_w)


def _label_layer_store(*, mosaic: Mosaic, working: np.ndarray, filename: str, user: Any,
                       value_mapping: dict[int, int] | None, name: str,
                       details: dict[str, Any] | None = None) -> LabelLayer:
    """The import layer's row, raster and audit row, all or nothing."""
    from .rasters import labelled_pixels, write_raster

    raster_path: Path | None = None
    try:
        with transaction.atomic():
            layer = LabelLayer.objects.create(mosaic=mosaic, source=LabelLayer.Source.IMPORT,
                                              name=(name or Path(filename).name)[:128],
                                              author=user if getattr(user, "is_authenticated", False) else None,
                                              labelled_pixels=labelled_pixels(working))
            raster_path = layer.raster_path
            write_raster(raster_path, working)
            audit_record(actor=user, verb="labels.import", target=layer,
                         details={"filename": filename, "mapping": value_mapping, "mosaic": mosaic.pk,
                                  "labelled_pixels": layer.labelled_pixels, **(details or {})})
    except BaseException:
        if raster_path is not None:
            raster_path.unlink(missing_ok=True)
        raise
    return layer


def label_layer_import(*, mosaic: Mosaic, source: BinaryIO, filename: str, user: Any,
                       value_mapping: dict[int, int] | None = None, name: str = "") -> LabelLayer:
    """Import an expert label map (PNG/TIFF, working or full resolution, values mapped to 0–5/255)."""
    if mosaic.status != Mosaic.Status.READY:
        raise LabelsRejected(f"Mosaic {mosaic.pk} is {mosaic.status}; labels can be imported once it is ready.")
    working = label_map_prepare(source=source, filename=filename, value_mapping=value_mapping,
                                full_wh=(mosaic.width, mosaic.height),
                                working_wh=(mosaic.working_width, mosaic.working_height))
    return _label_layer_store(mosaic=mosaic, working=working, filename=filename, user=user,
                              value_mapping=value_mapping, name=name)
