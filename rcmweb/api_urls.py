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

# Expert reviews (annotations.review_api): /api/reviews/… and the per-mosaic start, agreement and plot.
from django.urls import path  # noqa: E402

from annotations.review_api import (  # noqa: E402
    MosaicAgreementPlotView,
    MosaicAgreementView,
    MosaicReviewView,
    ReviewViewSet,
)

router.register("reviews", ReviewViewSet, basename="review")
urlpatterns = router.urls + [
    path("mosaics/<int:mosaic_id>/reviews/", MosaicReviewView.as_view(), name="mosaic-review"),
    path("mosaics/<int:mosaic_id>/agreement/", MosaicAgreementView.as_view(), name="mosaic-agreement"),
    path("mosaics/<int:mosaic_id>/agreement/plot/", MosaicAgreementPlotView.as_view(), name="mosaic-agreement-plot"),
]
