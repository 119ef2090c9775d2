from __future__ import annotations

from django.urls import path

from . import views

app_name = "frontend"

urlpatterns = [
    path("", views.mosaic_list, name="mosaic-list"),
    path("mosaics/upload/", views.mosaic_upload, name="mosaic-upload"),
    path("mosaics/<int:mosaic_id>/", views.viewer, name="viewer"),
    path("models/", views.models, name="models"),
]

urlpatterns += [
    path("mosaics/<int:mosaic_id>/agreement/", views.agreement, name="agreement"),
]
