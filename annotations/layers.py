"""Reads about the layers drawn over a mosaic: which exist for a user, where their rasters are, class areas.

A *layer* is a label raster at working resolution: a model's prediction (with its uncertainty and coarser
levels) or an expert/imported/trainee label layer. Layers are small enough (≈ 3000² px) to be sent whole as
lossless PNG and coloured in the browser, which makes class toggles and edits immediate.

Label layers are stored as raw ``.npy`` (edited in place, see ``annotations.rasters``); the PNG of a revision is
encoded on its first request and kept next to it until a newer revision is encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse

from inference.ml.classes import NUM_CLASSES
from inference.models import Prediction
from rcmweb.access import Role, has_role

from .models import LabelClass, LabelLayer, Mosaic

# Pattern classes: "the lesion" of the paper's class shares (background and artifact are not lesion).
LESION_CLASS_VALUES = (2, 3, 4, 5)
PREDICTION_RASTERS = ("labels", "uncertainty", "level1", "level2", "level3")


def predictions_visible_to(user: Any, mosaic: Mosaic) -> QuerySet[Prediction]:
    """Experts and admins see model output; trainees label blind and see none."""
    if not has_role(user, Role.ADMIN, Role.EXPERT):
        return Prediction.objects.none()
    return mosaic.predictions.select_related("model_version").order_by("-model_version__activated_at", "-id")


def label_layers_visible_to(user: Any, mosaic: Mosaic) -> QuerySet[LabelLayer]:
    """Admins see every label layer; experts every one but the review layers of other experts (reviews are
    independent); trainees only their own trainee layers."""
    layers = mosaic.label_layers.select_related("author", "review")
    if has_role(user, Role.ADMIN):
        return layers
    if has_role(user, Role.EXPERT):
        return layers.exclude(Q(source=LabelLayer.Source.REVIEW) & ~Q(author=user))
    if has_role(user, Role.TRAINEE):
        return layers.filter(source=LabelLayer.Source.TRAINEE, author=user)
    return layers.none()


def prediction_revision(prediction: Prediction) -> str:
    return f"p{int(prediction.updated_at.timestamp() * 1000)}"  # a prediction made again gets a new URL


def layer_revision(layer: LabelLayer) -> str:
    return f"r{layer.revision}"


def raster_url(mosaic: Mosaic, kind: str, obj_id: int, rev: str, name: str) -> str:
    return reverse("tiles:raster", kwargs={"mosaic_id": mosaic.pk, "kind": kind, "obj_id": obj_id, "rev": rev,
                                          "name": name})


def mosaic_layers(user: Any, mosaic: Mosaic) -> list[dict[str, Any]]:
    """Every layer the user may see over ``mosaic``, newest model first, with raster URLs."""
    layers: list[dict[str, Any]] = []
    for prediction in predictions_visible_to(user, mosaic):
        version = prediction.model_version
        rev = prediction_revision(prediction)
        layers.append({
            "key": f"prediction:{prediction.pk}",
            "kind": "prediction",
            "title": f"Model {version.name} (v{version.pk}{', active' if version.status == 'active' else ''})",
            "model_version": version.pk,
            "model_status": version.status,
            "url": raster_url(mosaic, "prediction", prediction.pk, rev, "labels"),
            "uncertainty_url": raster_url(mosaic, "prediction", prediction.pk, rev, "uncertainty"),
            "levels": [{"level": level, "url": raster_url(mosaic, "prediction", prediction.pk, rev, f"level{level}")}
                       for level in range(1, prediction.levels)],
            "class_pixels": prediction.class_pixels,
            "created_at": prediction.created_at.isoformat(),
        })
    for layer in label_layers_visible_to(user, mosaic):
        layers.append({
            "key": f"layer:{layer.pk}",
            "kind": "labels",
            "source": layer.source,
            "title": f"{layer.get_source_display()}: {layer.name or layer.author or layer.pk}",
            "layer": layer.pk,
            "revision": layer.revision,
            "url": raster_url(mosaic, "layer", layer.pk, layer_revision(layer), "labels"),
            "labelled_pixels": layer.labelled_pixels,
            "author": layer.author.username if layer.author else None,
            "review": _review_of(layer),
        })
    return layers


def _review_of(layer: LabelLayer) -> dict[str, Any] | None:
    """The review a review layer belongs to (id and state), for the viewer to edit it; None for other layers."""
    review = getattr(layer, "review", None) if layer.source == LabelLayer.Source.REVIEW else None
    return {"id": review.pk, "state": review.state} if review is not None else None


def raster_path(user: Any, mosaic: Mosaic, kind: str, obj_id: int, rev: str, name: str) -> Path | None:
    """The file behind a raster URL if the user may see it at this revision; None otherwise."""
    if kind == "prediction" and name in PREDICTION_RASTERS:
        prediction = predictions_visible_to(user, mosaic).filter(pk=obj_id).first()
        if prediction is None or prediction_revision(prediction) != rev:
            return None
        return prediction.uncertainty_path if name == "uncertainty" else prediction.folder / f"{name}.png"
    if kind == "layer" and name == "labels":
        layer = label_layers_visible_to(user, mosaic).filter(pk=obj_id).first()
        if layer is None or layer_revision(layer) != rev:
            return None
        return label_layer_png(layer, layer.revision)
    return None


def label_layer_png(layer: LabelLayer, revision: int) -> Path | None:
    """The PNG of ``layer`` at ``revision``, encoded now if not yet; None if that is no longer the revision.

    The pixels are copied while the layer row is locked, so the PNG never mixes two revisions (edits write under
    the same lock); encoding happens after the lock is released. PNGs of older revisions are deleted.
    """
    from .rasters import read_raster, write_raster

    path = layer.png_path(revision)
    if path.exists():
        return path
    with transaction.atomic():
        current = LabelLayer.objects.select_for_update().filter(pk=layer.pk).values_list("revision", flat=True)
        if list(current) != [revision]:
            return None
        pixels = read_raster(layer.raster_path)
    write_raster(path, pixels)
    for old in path.parent.glob(f"{layer.pk}.r*.png"):
        rev = old.name[len(f"{layer.pk}.r"):-len(".png")]
        if rev.isdigit() and int(rev) < revision:
            old.unlink(missing_ok=True)
    return path


def prediction_array(prediction: Prediction, name: str = "labels") -> np.ndarray:
    """A read-only memory map of a prediction raster (``labels`` or ``uncertainty``), uint8 ``(H, W)``.

    Decoded from its PNG once into ``<mosaic>/cache/`` (see ``annotations.rasters.png_as_npy``), so every edit
    can read the model's labels under its bounding box without decoding a 3000 × 3000 PNG.
    """
    from .rasters import png_as_npy

    if name not in ("labels", "uncertainty"):
        raise ValueError(f"prediction raster {name!r} is not cached; use 'labels' or 'uncertainty'")
    png = prediction.level_path(0) if name == "labels" else prediction.uncertainty_path
    cache = prediction.mosaic.folder / "cache" / f"prediction-{prediction.pk}-{name}.npy"
    return png_as_npy(png, cache)


def label_layer_array(layer: LabelLayer) -> np.ndarray:
    """A read-only memory map of a label layer's raster, uint8 ``(H, W)``, 255 = unlabelled."""
    from .rasters import open_raster

    return open_raster(layer.raster_path)


@dataclass(frozen=True)
class ClassArea:
    value: int
    key: str
    name: str
    colour: str
    pixels: int
    area_mm2: float
    share_of_labelled: float
    share_of_lesion: float | None  # None for background and artifact (not lesion)


def class_areas(labels: np.ndarray, *, um_per_px: float) -> list[ClassArea]:
    """Area of each class in mm² and its share of the labelled area and of the lesion (pattern classes)."""
    counts = np.bincount(labels.ravel(), minlength=256)[:NUM_CLASSES]
    return class_areas_from_counts({v: int(c) for v, c in enumerate(counts)}, um_per_px=um_per_px)


def class_areas_from_counts(counts: dict[int, int], *, um_per_px: float) -> list[ClassArea]:
    counts = {int(k): int(v) for k, v in counts.items()}  # JSON keys arrive as strings
    pixel_mm2 = (um_per_px / 1000.0) ** 2
    labelled = sum(counts.get(v, 0) for v in range(NUM_CLASSES))
    lesion = sum(counts.get(v, 0) for v in LESION_CLASS_VALUES)
    rows = []
    for info in LabelClass.objects.order_by("value"):  # names and colours as the database has them
        n = counts.get(info.value, 0)
        rows.append(ClassArea(
            value=info.value, key=info.key, name=info.name, colour=info.colour, pixels=n,
            area_mm2=n * pixel_mm2, share_of_labelled=n / labelled if labelled else 0.0,
            share_of_lesion=(n / lesion if lesion else 0.0) if info.value in LESION_CLASS_VALUES else None,
        ))
    return rows
