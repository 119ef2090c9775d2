"""Label layer rasters move from PNG to raw ``.npy`` (edited in place); convert any stored before this."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import migrations


def _layers_folders() -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "mosaics"
    return sorted(root.glob("*/layers")) if root.is_dir() else []


def png_to_npy(apps, schema_editor) -> None:  # noqa: ANN001
    from PIL import Image

    for folder in _layers_folders():
        for png in folder.glob("*.png"):
            if not png.stem.isdigit():  # revision PNGs ("12.r3.png") are caches, not layers
                continue
            with Image.open(png) as image:
                array = np.asarray(image)
            tmp = png.with_suffix(".npy.tmp")
            with tmp.open("wb") as fh:
                np.save(fh, array)
            os.replace(tmp, png.with_suffix(".npy"))
            png.unlink()


def npy_to_png(apps, schema_editor) -> None:  # noqa: ANN001
    from PIL import Image

    for folder in _layers_folders():
        for npy in folder.glob("*.npy"):
            if npy.stem.isdigit():
                Image.fromarray(np.load(npy)).save(npy.with_suffix(".png"), format="PNG", compress_level=1)
                npy.unlink()
        for cached in folder.glob("*.r*.png"):
            cached.unlink()


class Migration(migrations.Migration):
    dependencies = [("annotations", "0003_reviews_and_edits")]
    operations = [migrations.RunPython(png_to_npy, npy_to_png)]
