from __future__ import annotations

from django.urls import path

from . import tiles

app_name = "tiles"

urlpatterns = [
    path("mosaics/<int:mosaic_id>/<str:rev>/image.dzi", tiles.dzi_descriptor, name="dzi"),
    path("mosaics/<int:mosaic_id>/<str:rev>/image_files/<int:level>/<int:col>_<int:row>.jpg", tiles.dzi_tile,
         name="tile"),
    path("mosaics/<int:mosaic_id>/<str:rev>/thumbnail.jpg", tiles.thumbnail, name="thumbnail"),
    path("mosaics/<int:mosaic_id>/rasters/<slug:kind>/<int:obj_id>/<str:rev>/<slug:name>.png", tiles.raster,
         name="raster"),
]
