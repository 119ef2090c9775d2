"""REST API of expert reviews: start or resume, edits, undo/redo, submit, history, agreement, next region.

Thin: parse, call ``annotations.reviews`` / ``annotations.agreement``, serialise. Reviews the user may not see
answer 404 (experts see their own, admins every review); a review the user sees but does not own answers 403 to
changes. Every refused change leaves the layer, its rows and its revision exactly as they were.

Geometries are in full-resolution image pixels; a geometry partly outside the image is clipped to the image, one
that covers no pixel of it is refused (400). See ``annotations.geometry`` for the shapes and their limits.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rcmweb.access import Role, get_for_user, has_role, is_admin

from . import agreement, reviews
from .layers import label_layers_visible_to
from .models import LabelClass, Mosaic, Review
from .review_serializers import (
    EditHistorySerializer,
    EditRequestSerializer,
    EditResultSerializer,
    NextRegionSerializer,
    RegionSerializer,
    ReviewSerializer,
    RevisionSerializer,
    edit_result_data,
)
from .selectors import mosaics_visible_to


def _refused(exc: reviews.ReviewError) -> Response:
    if exc.status == 400 and exc.field != "detail":
        return Response({exc.field: [str(exc)]}, status=400)
    body: dict[str, Any] = {"detail": str(exc)}
    if exc.revision is not None:
        body["revision"] = exc.revision
    return Response(body, status=exc.status)


def _png(data: bytes, stem: str) -> HttpResponse:
    response = HttpResponse(data, content_type="image/png")
    response["Content-Disposition"] = f'inline; filename="{stem}.png"'
    return response


class ReviewViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Reviews. List filters: ``?mosaic=<id>``, ``?expert=<user id or username>``, ``?state=in_progress|submitted``.

    Experts see their own reviews, admins everyone's. Start or resume one with ``POST /api/mosaics/{id}/reviews/``.
    """

    serializer_class = ReviewSerializer
    parser_classes = [JSONParser]

    def get_queryset(self):  # noqa: ANN201 - DRF hook
        qs = reviews.reviews_visible_to(self.request.user)
        if self.action != "list":
            return qs
        params = self.request.query_params
        if params.get("mosaic"):
            if not params["mosaic"].isdigit():
                raise ValidationError({"mosaic": ["A mosaic id (integer)."]})
            qs = qs.filter(mosaic_id=int(params["mosaic"]))
        if params.get("expert"):
            expert = params["expert"]
            qs = qs.filter(expert_id=int(expert)) if expert.isdigit() else qs.filter(expert__username=expert)
        if params.get("state"):
            if params["state"] not in Review.State.values:
                raise ValidationError({"state": [f"One of {', '.join(Review.State.values)}."]})
            qs = qs.filter(state=params["state"])
        return qs

    def get_object(self) -> Review:
        return get_for_user(self.get_queryset(), self.kwargs["pk"])

    def _agreement(self, review: Review) -> dict[str, Any]:
        return agreement.review_agreement(review)

    @extend_schema(methods=["GET"], responses=EditHistorySerializer(many=True))
    @extend_schema(methods=["POST"], request=EditRequestSerializer,
                   responses={201: EditResultSerializer, 400: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get", "post"])
    def edits(self, request: Request, pk: str) -> Response:
        """GET: the review's history, oldest first (who, when, op, class, geometry type, pixels changed, undone).

        POST: paint (``class_value`` 0–5), erase (back to unlabelled) or accept (the model's labels) inside a
        geometry in full-resolution image px, drawn on ``revision``. The answer has the new revision, the box
        rewritten (working px) with its new pixels, and the updated agreement. 400 for a bad geometry (NaN or
        infinite or non-numeric coordinates, more than ``annotations.geometry.MAX_POINTS`` points, a radius ≤ 0
        or above ``MAX_RADIUS_UM``, covering no pixel of the image), class or op; 409 with the current
        ``revision`` when the revision is stale or the review submitted. Partly outside the image is clipped.
        """
        review = self.get_object()
        if request.method == "GET":
            rows = review.edits.select_related("author").order_by("id")
            page = self.paginate_queryset(rows)
            context = {"undone": reviews.undone_edit_ids(review),
                       "class_names": dict(LabelClass.objects.values_list("value", "name"))}
            data = EditHistorySerializer(page if page is not None else rows, many=True, context=context).data
            return self.get_paginated_response(data) if page is not None else Response(data)
        form = EditRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        values = form.validated_data
        try:
            result = reviews.review_edit(review=review, user=request.user, revision=values["revision"],
                                         op=values["op"], class_value=values["class_value"],
                                         geometry=values["geometry"])
        except reviews.ReviewError as exc:
            return _refused(exc)
        return Response(edit_result_data(result, self._agreement(result.review)), status=status.HTTP_201_CREATED)

    def _step(self, request: Request, service: Any) -> Response:
        review = self.get_object()
        form = RevisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            result = service(review=review, user=request.user, revision=form.validated_data["revision"])
        except reviews.ReviewError as exc:
            return _refused(exc)
        return Response(edit_result_data(result, self._agreement(result.review)), status=status.HTTP_201_CREATED)

    @extend_schema(request=RevisionSerializer, responses={201: EditResultSerializer, 409: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def undo(self, request: Request, pk: str) -> Response:
        """Revert the last paint, erase or accept not yet undone (409 if none, or the revision is stale)."""
        return self._step(request, reviews.review_undo)

    @extend_schema(request=RevisionSerializer, responses={201: EditResultSerializer, 409: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def redo(self, request: Request, pk: str) -> Response:
        """Re-apply the most recently undone edit, unless a paint, erase or accept came after it (409)."""
        return self._step(request, reviews.review_redo)

    @extend_schema(request=None, responses={200: ReviewSerializer, 409: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk: str) -> Response:
        """Submit the review: it keeps its labels and history and can no longer change."""
        review = self.get_object()
        try:
            review = reviews.review_submit(review=review, user=request.user)
        except reviews.ReviewError as exc:
            return _refused(exc)
        return Response(ReviewSerializer(self.get_queryset().get(pk=review.pk)).data)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def agreement(self, request: Request, pk: str) -> Response:
        """Model against this expert on the pixels labelled so far: pixel agreement (accuracy), Cohen's kappa,
        per-class sensitivity, specificity, Dice, precision and the confusion matrix (rows expert, columns
        model). ``report`` is null when the review has no prediction."""
        return Response(self._agreement(self.get_object()))

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path="agreement/plot")
    def agreement_plot(self, request: Request, pk: str) -> HttpResponse:
        """The review's confusion matrix as a PNG plot."""
        review = self.get_object()
        matrix = reviews.review_confusion(review)
        if matrix is None:
            raise NotFound("This review has no prediction to compare with.")
        title = f"Review #{review.pk} ({review.expert.username}) vs model {review.prediction.model_version.name}"
        return _png(agreement.confusion_png(matrix, title=title), f"review{review.pk}-confusion")

    @extend_schema(responses=NextRegionSerializer)
    @action(detail=True, methods=["get"], url_path="next-region")
    def next_region(self, request: Request, pk: str) -> Response:
        """Where to look next: the most uncertain block of pixels nobody labelled, not yet marked seen here."""
        review = self.get_object()
        if review.prediction is None:
            return Response({"region": None, "detail": "This review has no prediction, so no uncertainty."})
        region = agreement.next_region(review, reviews.frame_of(review.mosaic))
        if region is None:
            return Response({"region": None, "detail": "Every unlabelled region has been seen."})
        return Response({"region": region})

    @extend_schema(request=RegionSerializer, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], url_path="next-region/seen")
    def next_region_seen(self, request: Request, pk: str) -> Response:
        """Mark a region (``x0, y0, x1, y1`` in full-resolution px, as next-region answered it) as seen."""
        review = self.get_object()
        try:
            review = reviews.review_mark_seen(review=review, user=request.user, region=request.data)
        except reviews.ReviewError as exc:
            return _refused(exc)
        return Response({"seen_regions": len(review.seen_regions)})


class MosaicReviewView(APIView):
    """``POST /api/mosaics/{id}/reviews/``: start or resume the user's review of the mosaic (experts, admins)."""

    parser_classes = [JSONParser]

    @extend_schema(request=None, responses={200: ReviewSerializer, 201: ReviewSerializer})
    def post(self, request: Request, mosaic_id: int) -> Response:
        """Answers the user's review in progress (200) or a new one against the active model's prediction (201)."""
        mosaic = get_for_user(mosaics_visible_to(request.user), mosaic_id)
        try:
            review, created = reviews.review_start(mosaic=mosaic, user=request.user)
        except reviews.ReviewError as exc:
            return _refused(exc)
        data = ReviewSerializer(reviews.reviews_visible_to(request.user).get(pk=review.pk)).data
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _mosaic_for_agreement(request: Request, mosaic_id: int) -> Mosaic:
    mosaic = get_for_user(mosaics_visible_to(request.user), mosaic_id)
    if not has_role(request.user, Role.EXPERT, Role.ADMIN):
        raise PermissionDenied("Agreement with the model is for experts and admins.")
    return mosaic


class MosaicAgreementView(APIView):
    """``GET /api/mosaics/{id}/agreement/``: per model version and per expert pair (see annotations.agreement).

    Admins get every layer's figures; experts the pooled figures plus those of the layers they may see (imports
    and their own reviews)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, mosaic_id: int) -> Response:
        """Every expert layer against every prediction (per model version, with the change from the parent
        version) and every two overlapping expert layers against each other."""
        mosaic = _mosaic_for_agreement(request, mosaic_id)
        shown = None if is_admin(request.user) else set(
            label_layers_visible_to(request.user, mosaic).values_list("id", flat=True))
        return Response(agreement.mosaic_agreement(mosaic, shown=shown))


class MosaicAgreementPlotView(APIView):
    """``GET /api/mosaics/{id}/agreement/plot/?version=<model version id>``: confusion matrix PNG."""

    @extend_schema(parameters=[OpenApiParameter("version", OpenApiTypes.INT,
                                                description="Model version (default: the active one's, else newest).")],
                   responses={(200, "image/png"): OpenApiTypes.BINARY})
    def get(self, request: Request, mosaic_id: int) -> HttpResponse:
        """All expert layers of the mosaic against one model version's prediction, as a PNG plot."""
        mosaic = _mosaic_for_agreement(request, mosaic_id)
        predictions = mosaic.predictions.select_related("model_version", "mosaic").order_by(
            "-model_version__activated_at", "-id")
        version = request.query_params.get("version")
        if version:
            if not version.isdigit():
                raise ValidationError({"version": ["A model version id (integer)."]})
            predictions = predictions.filter(model_version_id=int(version))
        prediction = predictions.first()
        if prediction is None:
            raise NotFound("No prediction of this mosaic" + (f" by model version {version}." if version else "."))
        matrix = agreement.mosaic_version_confusion(mosaic, prediction)
        title = f"{mosaic.name}: experts vs model {prediction.model_version.name} (v{prediction.model_version_id})"
        return _png(agreement.confusion_png(matrix, title=title),
                    f"mosaic{mosaic.pk}-v{prediction.model_version_id}-confusion")


__all__ = ["MosaicAgreementPlotView", "MosaicAgreementView", "MosaicReviewView", "ReviewViewSet"]
