from __future__ import annotations

from rest_framework.routers import DefaultRouter

from annotations.api import LabelClassViewSet, MosaicViewSet
from inference.api import JobViewSet, ModelVersionViewSet, PredictionViewSet

router = DefaultRouter()
router.register("mosaics", MosaicViewSet, basename="mosaic")
router.register("label-classes", LabelClassViewSet, basename="labelclass")
router.register("jobs", JobViewSet, basename="job")
router.register("model-versions", ModelVersionViewSet, basename="modelversion")
router.register("predictions", PredictionViewSet, basename="prediction")

urlpatterns = router.urls
