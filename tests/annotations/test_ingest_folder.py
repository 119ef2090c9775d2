"""Bulk upload: `manage.py ingest_folder` makes one mosaic per accepted file, skips label maps and duplicates,
and reports rejected files without stopping."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from annotations.models import Mosaic
from tests.annotations.files import HTML_BYTES, write_tiff
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
