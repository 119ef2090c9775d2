"""Expert reviews: start or resume, edits (paint, erase, accept, undo, redo), submit, rebuild, seen regions.

Each review owns a ``LabelLayer`` (source ``review``) whose raster is a raw ``.npy`` edited in place. An edit:

1. validates and rasterises its geometry (``annotations.geometry``) before taking any lock;
2. locks the layer row (``select_for_update``; on SQLite the immediate transaction does the same), checks the
   review is in progress and the revision the browser saw is the current one (409 otherwise, nothing changed);
3. reads the pixels inside the footprint's bounding box, computes the new ones, writes them through a memory map,
   appends an ``Edit`` row with both patches (zlib), bumps the layer revision, updates the review's confusion
   matrix from the two patches and writes the audit row, all in one transaction. If anything fails after the
   write, the old pixels are written back before the lock is released.

Undo and redo are rows too, so they survive reloads: the undo stack is the chain of content edits linked by
``Edit.below`` from ``Review.done_top``; the redo stack is the chain of undo rows from ``Review.redo_top``. Undo
writes its target's ``before`` patch, redo its ``after`` patch; a new paint, erase or accept empties the redo stack.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from inference.ml.classes import NUM_CLASSES, UNLABELLED
from inference.ml.metrics import SegmentationReport, confusion_matrix
from inference.models import ModelVersion, Prediction
from rcmweb.access import Role, has_role

from .geometry import Footprint, Frame, GeometryRejected, parse_geometry, rasterise
from .layers import prediction_array
from .models import Edit, LabelLayer, Mosaic, Review
from .rasters import open_raster_for_update, write_raster
from .services import audit_record

# zlib level of the stored patches: label patches are runs of a few values, level 1 already shrinks them ~20-100×
# and costs well under a millisecond for a stroke's box; higher levels save little and cost time on big boxes.
PATCH_ZLIB_LEVEL = 1
# Regions remembered as seen per review: more than the 64-px blocks of a 3000 × 3000 layer (≈ 2200), so a
# reviewer can walk a whole mosaic, while a runaway client cannot grow the row without bound.
MAX_SEEN_REGIONS = 5000


class ReviewError(Exception):
    """Base of the review errors; ``status`` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, *, field: str = "detail", revision: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.revision = revision


class EditRejected(ReviewError):
    """The request is malformed (bad geometry, class or op): 400, nothing changed."""


class ReviewConflict(ReviewError):
    """The review's state does not allow it (stale revision, submitted, nothing to undo): 409, nothing changed."""

    status = 409


class ReviewForbidden(ReviewError):
    """The user may see the review but not change it (only its expert edits it): 403."""

    status = 403


@dataclass(frozen=True)
class EditResult:
    """What one edit, undo or redo did: the new revision, the box it rewrote and its pixels afterwards."""

    edit: Edit
    review: Review
    revision: int
    bbox: tuple[int, int, int, int]  # working px, half-open
    patch: np.ndarray  # uint8 (y1 - y0, x1 - x0): the layer inside bbox after the step
    changed_pixels: int
    labelled_pixels: int


def frame_of(mosaic: Mosaic) -> Frame:
    return Frame(width=mosaic.width, height=mosaic.height, working_width=mosaic.working_width,
                 working_height=mosaic.working_height, um_per_px=mosaic.um_per_px)


def pack_patch(patch: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(patch, np.uint8).tobytes(), PATCH_ZLIB_LEVEL)


def unpack_patch(data: bytes | memoryview, bbox: list[int] | tuple[int, ...]) -> np.ndarray:
    x0, y0, x1, y1 = bbox
    return np.frombuffer(zlib.decompress(bytes(data)), np.uint8).reshape(y1 - y0, x1 - x0)


def _slices(bbox: list[int] | tuple[int, ...]) -> tuple[slice, slice]:
    x0, y0, x1, y1 = bbox
    return slice(y0, y1), slice(x0, x1)


def _is_user(user: Any) -> bool:
    return getattr(user, "is_authenticated", False)


# --- Start, submit ------------------------------------------------------------------------------------------


def current_prediction(mosaic: Mosaic) -> Prediction | None:
    """The mosaic's prediction by the active model version, if it exists yet."""
    return Prediction.objects.filter(mosaic=mosaic, model_version__status=ModelVersion.Status.ACTIVE).first()


def review_start(*, mosaic: Mosaic, user: Any) -> tuple[Review, bool]:
    """The user's review of ``mosaic`` in progress, or a new one against the active model's prediction (None if
    the mosaic has none yet). Returns ``(review, created)``. Experts and admins only."""
    if not has_role(user, Role.EXPERT, Role.ADMIN):
        raise ReviewForbidden("Only experts and admins review mosaics.")
    if mosaic.status != Mosaic.Status.READY:
        raise ReviewConflict(f"Mosaic {mosaic.pk} is {mosaic.status}; it can be reviewed once it is ready.")
    existing = Review.objects.filter(expert=user, mosaic=mosaic, state=Review.State.IN_PROGRESS).first()
    if existing is not None:
        return existing, False
    prediction = current_prediction(mosaic)
    raster_path = None
    try:
        with transaction.atomic():
            layer = LabelLayer.objects.create(mosaic=mosaic, source=LabelLayer.Source.REVIEW, author=user,
                                              name=f"Review by {user.get_username()}"[:128], labelled_pixels=0)
            raster_path = layer.raster_path
            write_raster(raster_path, np.full((mosaic.working_height, mosaic.working_width), UNLABELLED, np.uint8))
            review = Review.objects.create(
                expert=user, mosaic=mosaic, prediction=prediction, layer=layer,
                confusion=np.zeros((NUM_CLASSES, NUM_CLASSES), int).tolist() if prediction else None,
                confusion_basis=prediction.updated_at if prediction else None)
            audit_record(actor=user, verb="review.start", target=review,
                         details={"mosaic": mosaic.pk, "layer": layer.pk,
                                  "prediction": prediction.pk if prediction else None})
    except IntegrityError:  # the same expert started the same review concurrently: one review
        if raster_path is not None:
            raster_path.unlink(missing_ok=True)
        return Review.objects.get(expert=user, mosaic=mosaic, state=Review.State.IN_PROGRESS), False
    except BaseException:
        if raster_path is not None:
            raster_path.unlink(missing_ok=True)
        raise
    return review, True


def _lock(review: Review, user: Any) -> tuple[LabelLayer, Review]:
    """Inside a transaction: lock the review's layer row and read the review afresh (it may have changed).

    A review's mosaic and prediction never change, so those already loaded with ``review`` are reused.
    """
    layer = LabelLayer.objects.select_for_update().get(pk=review.layer_id)
    fresh = Review.objects.get(pk=review.pk)
    if fresh.expert_id != getattr(user, "pk", None):
        raise ReviewForbidden("Only the expert who started this review may change it.")
    layer.mosaic = fresh.mosaic = review.mosaic
    fresh.layer = layer
    if fresh.prediction_id is not None:
        fresh.prediction = review.prediction
    return layer, fresh


def _check_open(layer: LabelLayer, review: Review, revision: int | None) -> None:
    if review.state != Review.State.IN_PROGRESS:
        raise ReviewConflict(f"Review {review.pk} was submitted; it cannot change any more. Start a new review.",
                             revision=layer.revision)
    if revision is not None and revision != layer.revision:
        raise ReviewConflict(f"The edit was made on revision {revision}, but the layer is at revision "
                             f"{layer.revision}: reload the layer and edit again.", revision=layer.revision)


def review_submit(*, review: Review, user: Any) -> Review:
    """Mark the review submitted (it stays readable; it can no longer change)."""
    with transaction.atomic():
        layer, review = _lock(review, user)
        _check_open(layer, review, None)
        review.state = Review.State.SUBMITTED
        review.submitted_at = timezone.now()
        review.save(update_fields=["state", "submitted_at", "updated_at"])
        audit_record(actor=user, verb="review.submit", target=review,
                     details={"revision": layer.revision, "labelled_pixels": layer.labelled_pixels,
                              "edits": review.edits.count()})
    return review


# --- Edits --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    op: str
    bbox: tuple[int, int, int, int]
    after: Callable[[np.ndarray], np.ndarray]  # before patch -> after patch
    class_value: int | None = None
    geometry: Any = None
    target: Edit | None = None


def _check_class(op: str, class_value: Any) -> int | None:
    if op == Edit.Op.PAINT:
        if isinstance(class_value, bool) or not isinstance(class_value, int) or not 0 <= class_value < NUM_CLASSES:
            raise EditRejected(f"Unknown class value {class_value!r}; paint takes a class value 0–{NUM_CLASSES - 1} "
                               "(0 background, 1 artifact, 2 meshwork, 3 ring, 4 nested, 5 aspecific).",
                               field="class_value")
        return class_value
    if class_value is not None:
        raise EditRejected(f"{op} takes no class value (erase sets pixels unlabelled, accept copies the model's).",
                           field="class_value")
    return None


def footprint_of(review: Review, geometry: Any) -> Footprint:
    """Validate and rasterise ``geometry`` (full-resolution px) on the review's working raster."""
    frame = frame_of(review.mosaic)
    try:
        return rasterise(parse_geometry(geometry, frame), frame)
    except GeometryRejected as exc:
        raise EditRejected(str(exc), field="geometry") from exc


def review_edit(*, review: Review, user: Any, revision: int, op: str, geometry: Any,
                class_value: int | None = None) -> EditResult:
    """Paint a class, erase, or accept the model's labels inside ``geometry`` (see ``annotations.geometry``).

    Raises :class:`EditRejected` (bad input), :class:`ReviewConflict` (stale revision, submitted review, accept
    without a prediction) or :class:`ReviewForbidden` (not the review's expert); in every case nothing changed.
    """
    if op not in Edit.CONTENT_OPS:
        raise EditRejected(f"Unknown op {op!r}; edits are {', '.join(Edit.CONTENT_OPS)} (undo and redo have their "
                           "own endpoints).", field="op")
    value = _check_class(op, class_value)
    footprint = footprint_of(review, geometry)
    mask = footprint.mask

    def make(fresh: Review) -> _Step:
        if op == Edit.Op.PAINT:
            def after(before: np.ndarray) -> np.ndarray:
                return np.where(mask, np.uint8(value), before)
        elif op == Edit.Op.ERASE:
            def after(before: np.ndarray) -> np.ndarray:
                return np.where(mask, np.uint8(UNLABELLED), before)
        else:
            if fresh.prediction is None:
                raise ReviewConflict("This review has no prediction to accept: the mosaic had no prediction by the "
                                     "active model when the review started.")
            model = prediction_array(fresh.prediction)

            def after(before: np.ndarray) -> np.ndarray:
                return np.where(mask, model[footprint.slices()], before)
        return _Step(op=op, bbox=footprint.bbox, after=after, class_value=value, geometry=geometry)

    return _apply(review=review, user=user, revision=revision, make=make)


def review_undo(*, review: Review, user: Any, revision: int) -> EditResult:
    """Revert the last paint, erase or accept not yet undone (409 if there is none)."""

    def make(fresh: Review) -> _Step:
        if fresh.done_top_id is None:
            raise ReviewConflict("Nothing to undo.")
        target = Edit.objects.get(pk=fresh.done_top_id)
        return _Step(op=Edit.Op.UNDO, bbox=tuple(target.bbox), target=target,
                     after=lambda before: unpack_patch(target.before, target.bbox))

    return _apply(review=review, user=user, revision=revision, make=make)


def review_redo(*, review: Review, user: Any, revision: int) -> EditResult:
    """Re-apply the most recently undone edit, if no paint, erase or accept came after it (409 otherwise)."""

    def make(fresh: Review) -> _Step:
        if fresh.redo_top_id is None:
            raise ReviewConflict("Nothing to redo.")
        undo = Edit.objects.select_related("target").get(pk=fresh.redo_top_id)
        target = undo.target
        return _Step(op=Edit.Op.REDO, bbox=tuple(target.bbox), target=target,
                     after=lambda before: unpack_patch(target.after, target.bbox))

    return _apply(review=review, user=user, revision=revision, make=make)


def _confusion_stale(review: Review) -> bool:
    """Whether the prediction was made again since the review's confusion matrix was counted."""
    return review.confusion is None or review.confusion_basis != review.prediction.updated_at


def _confusion_after(review: Review, raster: np.ndarray, bbox: tuple[int, int, int, int], before: np.ndarray,
                     after: np.ndarray) -> list[list[int]] | None:
    """The review's confusion matrix once ``before`` became ``after`` inside ``bbox`` of ``raster``: two counts
    over the box; a full count when the prediction was made again since the last one."""
    if review.prediction_id is None:
        return None  # no prediction (or it was deleted): nothing to agree with
    model = prediction_array(review.prediction)
    if _confusion_stale(review):
        matrix = confusion_matrix(np.asarray(raster), np.asarray(model))
    else:
        box = np.asarray(model[_slices(bbox)])
        matrix = np.asarray(review.confusion, np.int64) - confusion_matrix(before, box) + confusion_matrix(after, box)
    review.confusion_basis = review.prediction.updated_at
    return matrix.tolist()


def _apply(*, review: Review, user: Any, revision: int, make: Callable[[Review], _Step]) -> EditResult:
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise EditRejected(f"revision must be the integer revision the edit was made on; got {revision!r}.",
                           field="revision")
    written: tuple[np.memmap, tuple[slice, slice], np.ndarray] | None = None

    def restore() -> None:
        if written is not None:
            raster, where, old = written
            raster[where] = old

    try:
        with transaction.atomic():
            layer, fresh = _lock(review, user)
            _check_open(layer, fresh, revision)
            step = make(fresh)
            where = _slices(step.bbox)
            raster = open_raster_for_update(layer.raster_path)
            before = np.array(raster[where])
            after = np.ascontiguousarray(step.after(before), np.uint8)
            # Written into the shared page cache, where every process reads it at once; no msync: the edit rows
            # hold every patch, so a raster that lost its last writes in a power cut is rebuilt from them
            # (review_repair), and waiting for the disk here would double an edit's time.
            raster[where] = after
            written = (raster, where, before)
            try:
                result = _record(layer=layer, review=fresh, user=user, step=step, before=before, after=after,
                                 raster=raster)
            except BaseException:
                restore()  # still under the lock: no other edit has read these pixels
                written = None
                raise
    except BaseException:
        restore()  # the commit itself failed
        raise
    return result


def _record(*, layer: LabelLayer, review: Review, user: Any, step: _Step, before: np.ndarray,
            after: np.ndarray, raster: np.ndarray) -> EditResult:
    changed = int(np.count_nonzero(before != after))
    labelled = layer.labelled_pixels + int(np.count_nonzero(after != UNLABELLED)) - int(
        np.count_nonzero(before != UNLABELLED))
    content = step.op in Edit.CONTENT_OPS
    edit = Edit.objects.create(
        review=review, author=user if _is_user(user) else None, op=step.op, class_value=step.class_value,
        geometry=step.geometry, target=step.target, revision_before=layer.revision,
        revision_after=layer.revision + 1, bbox=list(step.bbox), changed_pixels=changed,
        before=pack_patch(before) if content else None, after=pack_patch(after) if content else None,
        below_id=review.done_top_id if content else (review.redo_top_id if step.op == Edit.Op.UNDO else None),
    )
    if content:
        review.done_top_id, review.redo_top_id = edit.pk, None
    elif step.op == Edit.Op.UNDO:
        review.done_top_id, review.redo_top_id = step.target.below_id, edit.pk
    else:
        undo = Edit.objects.only("below_id").get(pk=review.redo_top_id)
        review.done_top_id, review.redo_top_id = step.target.pk, undo.below_id
    review.confusion = _confusion_after(review, raster, step.bbox, before, after)
    review.save(update_fields=["done_top", "redo_top", "confusion", "confusion_basis", "updated_at"])
    layer.revision += 1
    layer.labelled_pixels = labelled
    layer.save(update_fields=["revision", "labelled_pixels", "updated_at"])
    audit_record(actor=user, verb=f"review.{step.op}", target=review,
                 details={"edit": edit.pk, "revision": layer.revision, "bbox": list(step.bbox),
                          "changed_pixels": changed, "class_value": step.class_value,
                          "target": step.target.pk if step.target else None})
    return EditResult(edit=edit, review=review, revision=layer.revision, bbox=step.bbox, patch=after,
                      changed_pixels=changed, labelled_pixels=labelled)


def review_confusion(review: Review) -> np.ndarray | None:
    """The review's confusion matrix ``[K, K]``: the incrementally kept one, or a full count if the prediction
    was made again since (the next edit stores it)."""
    if review.prediction_id is None:
        return None
    if _confusion_stale(review):
        return review_confusion_full(review)
    return np.asarray(review.confusion, np.int64)


def review_report(review: Review) -> SegmentationReport | None:
    """Model against expert on the review's labelled pixels (see :func:`review_confusion`)."""
    matrix = review_confusion(review)
    return None if matrix is None else SegmentationReport.from_confusion(matrix)


# --- History and rebuild ------------------------------------------------------------------------------------


def undone_edit_ids(review: Review) -> set[int]:
    """Ids of the review's paints, erases and accepts that are currently undone (not on the undo stack)."""
    below = dict(review.edits.filter(op__in=Edit.CONTENT_OPS).values_list("id", "below_id"))
    done: set[int] = set()
    top = review.done_top_id
    while top is not None and top not in done:
        done.add(top)
        top = below.get(top)
    return set(below) - done


class RebuildMismatch(RuntimeError):
    """Replaying an edit's geometry no longer gives the box it covered when it was made."""


def review_rebuild(review: Review, *, rasterise_again: bool = True) -> np.ndarray:
    """Replay the review's edits, in order, onto an empty (all unlabelled) raster and return it, uint8 ``(H, W)``.

    With ``rasterise_again`` (the default) every paint and erase is rasterised again from its stored geometry
    and every accept re-reads the prediction's labels (so a prediction stored again since gives other pixels);
    otherwise the stored ``after`` patches are written. Undo and redo write their target's stored patches. For a
    consistent review the result equals the stored raster exactly.
    """
    mosaic = review.mosaic
    raster = np.full((mosaic.working_height, mosaic.working_width), UNLABELLED, np.uint8)
    frame = frame_of(mosaic)
    model = prediction_array(review.prediction) if review.prediction_id else None
    patches = {}  # target id -> (bbox, before, after) of content edits, blobs kept compressed
    for edit in review.edits.order_by("id").iterator(chunk_size=200):
        if edit.op in Edit.CONTENT_OPS:
            patches[edit.pk] = (edit.bbox, edit.before, edit.after)
            where = _slices(edit.bbox)
            if not rasterise_again:
                raster[where] = unpack_patch(edit.after, edit.bbox)
                continue
            footprint = rasterise(parse_geometry(edit.geometry, frame), frame)
            if list(footprint.bbox) != list(edit.bbox):
                raise RebuildMismatch(f"edit {edit.pk}: geometry now covers {footprint.bbox}, stored {edit.bbox}")
            if edit.op == Edit.Op.PAINT:
                source: Any = np.uint8(edit.class_value)
            elif edit.op == Edit.Op.ERASE:
                source = np.uint8(UNLABELLED)
            else:
                if model is None:
                    raise RebuildMismatch(f"edit {edit.pk} accepted a prediction the review no longer has")
                source = model[where]
            raster[where] = np.where(footprint.mask, source, raster[where])
        else:
            bbox, before, after = patches[edit.target_id]
            raster[_slices(bbox)] = unpack_patch(before if edit.op == Edit.Op.UNDO else after, bbox)
    return raster


def review_repair(*, review: Review, user: Any = None) -> bool:
    """Rewrite the review's raster from its edits' stored patches if it differs (e.g. after a power cut lost
    writes the database had committed). Returns whether anything was rewritten."""
    with transaction.atomic():
        layer = LabelLayer.objects.select_for_update().get(pk=review.layer_id)
        rebuilt = review_rebuild(review, rasterise_again=False)
        try:
            if np.array_equal(np.load(layer.raster_path, allow_pickle=False), rebuilt):
                return False
        except (OSError, ValueError):  # missing or unreadable: rewrite it
            pass
        write_raster(layer.raster_path, rebuilt)
        labelled = int(np.count_nonzero(rebuilt != UNLABELLED))
        LabelLayer.objects.filter(pk=layer.pk).update(labelled_pixels=labelled)
        audit_record(actor=user, verb="review.repair", target=review,
                     details={"revision": layer.revision, "labelled_pixels": labelled})
    return True


def review_confusion_full(review: Review) -> np.ndarray | None:
    """The review's confusion matrix computed afresh from the whole stored raster and prediction ``[K, K]``."""
    if review.prediction is None:
        return None
    from .layers import label_layer_array

    return confusion_matrix(np.asarray(label_layer_array(review.layer)), np.asarray(prediction_array(review.prediction)))


# --- Where to look next: seen regions -----------------------------------------------------------------------


def review_mark_seen(*, review: Review, user: Any, region: Any) -> Review:
    """Remember a region (full-resolution px ``{"x0", "y0", "x1", "y1"}``, as answered by next-region) as seen."""
    if not isinstance(region, dict) or any(k not in region for k in ("x0", "y0", "x1", "y1")):
        raise EditRejected('Send the region as {"x0": .., "y0": .., "x1": .., "y1": ..} in full-resolution px.',
                           field="region")
    values = []
    for key in ("x0", "y0", "x1", "y1"):
        value = region[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise EditRejected(f"{key} must be a finite number; got {value!r}.", field=key)
        values.append(float(value))
    frame = frame_of(review.mosaic)
    x0 = max(0, math.floor(min(values[0], values[2]) * frame.scale_x))
    x1 = min(frame.working_width, math.ceil(max(values[0], values[2]) * frame.scale_x))
    y0 = max(0, math.floor(min(values[1], values[3]) * frame.scale_y))
    y1 = min(frame.working_height, math.ceil(max(values[1], values[3]) * frame.scale_y))
    if x1 <= x0 or y1 <= y0:
        raise EditRejected("The region covers no pixel of the image.", field="region")
    with transaction.atomic():
        _layer, fresh = _lock(review, user)
        seen = list(fresh.seen_regions)
        if [x0, y0, x1, y1] not in seen:
            if len(seen) >= MAX_SEEN_REGIONS:
                raise ReviewConflict(f"This review already remembers {MAX_SEEN_REGIONS} seen regions.")
            seen.append([x0, y0, x1, y1])
            fresh.seen_regions = seen
            fresh.save(update_fields=["seen_regions", "updated_at"])
    return fresh


# --- Reads --------------------------------------------------------------------------------------------------


def reviews_visible_to(user: Any) -> QuerySet[Review]:
    """Admins see every review (who reviewed what); experts see their own; nobody else sees any."""
    reviews = Review.objects.select_related("expert", "mosaic", "layer", "prediction__model_version",
                                            "prediction__mosaic")
    if has_role(user, Role.ADMIN):
        return reviews
    if has_role(user, Role.EXPERT):
        return reviews.filter(expert=user)
    return reviews.none()
