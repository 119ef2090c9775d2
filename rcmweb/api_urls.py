from __future__ import annotations

from rest_framework.routers import DefaultRouter

from annotations.api import LabelClassViewSet, MosaicViewSet
from inference.api import JobViewSet

router = DefaultRouter()
router.register("mosaics", MosaicViewSet, basename="mosaic")
router.register("label-classes", LabelClassViewSet, basename="labelclass")
router.register("jobs", JobViewSet, basename="job")

urlpatterns = router.urls
