"""Bulk upload: `manage.py ingest_folder` makes one mosaic per accepted file, skips label maps and duplicates,
imports a sibling ``<stem>_labels`` map with its mosaic, and reports rejected files without stopping."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from annotations.models import LabelLayer, Mosaic
from annotations.rasters import read_raster
from tests.annotations.files import HTML_BYTES, OTHER_TOOL_MAPPING, expected_working, other_tool_labels, write_tiff
from tests.conftest import gray_image, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_folder_is_uploaded_once(admin_user, media_root, eager_celery, tmp_path, capsys) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    write_tiff(folder / "a.tif", gray_image(seed=1), um_per_px=0.8)
    (folder / "b.png").write_bytes(png_bytes(gray_image(seed=2)))
    (folder / "b_partial.png").write_bytes(png_bytes(gray_image(seed=3)))  # a label map, not a mosaic
    (folder / "broken.png").write_bytes(HTML_BYTES)
    (folder / "notes.txt").write_text("not an image")
    call_command("ingest_folder", str(folder), "--user", admin_user.username)
    out = capsys.readouterr()
    assert "2 new, 0 already there, 1 rejected" in out.out
    assert "broken.png" in out.err and "not an image" in out.err
    assert sorted(Mosaic.objects.values_list("original_filename", flat=True)) == ["a.tif", "b.png"]
    assert set(Mosaic.objects.values_list("status", flat=True)) == {"ready"}
    assert Mosaic.objects.get(original_filename="a.tif").um_per_px == pytest.approx(0.8, rel=1e-3)
    call_command("ingest_folder", str(folder), "--user", admin_user.username)
    assert "0 new, 2 already there, 1 rejected" in capsys.readouterr().out
    assert Mosaic.objects.count() == 2


def test_unknown_user_or_folder_is_an_error(admin_user, tmp_path) -> None:
    with pytest.raises(CommandError, match="No user"):
        call_command("ingest_folder", str(tmp_path), "--user", "nobody")
    with pytest.raises(CommandError, match="not a folder"):
        call_command("ingest_folder", str(tmp_path / "missing"), "--user", admin_user.username)


def test_sibling_label_maps_are_imported_with_their_mosaics(admin_user, media_root, eager_celery, tmp_path,
                                                            capsys) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(gray_image(300, 200, seed=1)))
    (folder / "a_labels.png").write_bytes(png_bytes(other_tool_labels()))
    (folder / "b.png").write_bytes(png_bytes(gray_image(300, 200, seed=2)))
    (folder / "b_labels.png").write_bytes(png_bytes(other_tool_labels()[:, :-4]))  # wrong size
    (folder / "c.png").write_bytes(png_bytes(gray_image(300, 200, seed=3)))
    (folder / "c_labels.png").write_bytes(png_bytes(expected_working()))
    write_tiff(folder / "c_labels.tif", expected_working())
    args = [str(folder), "--user", admin_user.username, "--um-per-px", "1.0", "--value-mapping", OTHER_TOOL_MAPPING]
    call_command("ingest_folder", *args)
    out = capsys.readouterr()
    assert "1 new, 0 already there, 2 rejected, 1 label maps imported" in out.out
    assert "b.png: label map b_labels.png: The label map is 296 × 200 px" in out.err
    assert "c.png: more than one label map (c_labels.png, c_labels.tif)" in out.err
    mosaic = Mosaic.objects.get()  # b and c left nothing behind
    assert mosaic.original_filename == "a.png" and mosaic.status == Mosaic.Status.READY
    layer = LabelLayer.objects.get()
    assert (layer.mosaic_id, layer.source, layer.name) == (mosaic.pk, LabelLayer.Source.IMPORT, "a_labels.png")
    np.testing.assert_array_equal(read_raster(layer.raster_path), expected_working())
    call_command("ingest_folder", *args)  # again: nothing duplicated
    assert "0 new, 1 already there, 2 rejected, 0 label maps imported" in capsys.readouterr().out
    assert LabelLayer.objects.count() == 1


def test_value_mapping_must_be_json_of_integers(admin_user, tmp_path) -> None:
    with pytest.raises(CommandError, match="--value-mapping must be a JSON object of integers"):
        call_command("ingest_folder", str(tmp_path), "--user", admin_user.username, "--value-mapping", "1=2")
