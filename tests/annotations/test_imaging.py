"""annotations.imaging: header checks, decode checks and gray conversion, on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyvips

from annotations import imaging
from annotations.imaging import ImageRejected
from tests.annotations.files import png_claiming, write_pyramidal_tiff, write_tiff
from tests.conftest import gray_image


@pytest.mark.parametrize("name", ["../evil.png", "a/b.png", "a\\b.png", "..", "x\x00.png"])
def test_filename_with_path_parts_is_refused(name: str) -> None:
    with pytest.raises(ImageRejected, match="plain file name"):
        imaging.check_filename(name)


def test_unknown_extension_lists_accepted_ones() -> None:
    with pytest.raises(ImageRejected, match=r"\.tiff"):
        imaging.check_filename("mosaic.gif")


def test_header_over_pixel_limit_is_refused_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming(20001, 20000))
    with pytest.raises(ImageRejected, match="20000 × 20000"):
        imaging.inspect(path, declared_format="png")


def test_limit_admits_20000_square(tmp_path: Path) -> None:
    path = tmp_path / "edge.png"
    path.write_bytes(png_claiming(20000, 20000))
    info = imaging.inspect(path, declared_format="png")
    assert (info.width, info.height) == (20000, 20000)


def test_um_per_px_read_from_tiff_tags(tmp_path: Path) -> None:
    path = write_tiff(tmp_path / "m.tif", gray_image(), um_per_px=0.75)
    info = imaging.inspect(path, declared_format="tiff")
    assert info.um_per_px == pytest.approx(0.75, rel=1e-3)


def test_tiff_without_tags_has_no_um_per_px(tmp_path: Path) -> None:
    path = write_tiff(tmp_path / "m.tif", gray_image())
    assert imaging.inspect(path, declared_format="tiff").um_per_px is None


def test_bigtiff_tiled_and_pyramidal_tiff_are_read(tmp_path: Path) -> None:
    array = gray_image(256, 192)
    for path in (write_tiff(tmp_path / "big.tif", array, bigtiff=True, tile=(64, 64)),
                 write_pyramidal_tiff(tmp_path / "pyr.tif", array)):
        info = imaging.inspect(path, declared_format="tiff")
        assert (info.width, info.height) == (256, 192)
        imaging.check_decodes(path)
        loaded = imaging.load_gray8(path)
        np.testing.assert_array_equal(np.ndarray((192, 256), np.uint8, loaded.write_to_memory()), array)


def test_sixteen_bit_maps_percentiles_to_full_range(tmp_path: Path) -> None:
    array = (gray_image().astype(np.uint16) * 40 + 1000)
    path = write_tiff(tmp_path / "m16.tif", array)
    assert imaging.inspect(path, declared_format="tiff").bit_depth == 16
    out = np.ndarray((array.shape[0], array.shape[1]), np.uint8, imaging.load_gray8(path).write_to_memory())
    assert out.min() <= 2 and out.max() >= 253
    # monotonic: brighter input never darker output
    order = np.argsort(array.ravel())
    assert np.all(np.diff(out.ravel()[order].astype(int)) >= 0)


def test_rgb_becomes_gray(tmp_path: Path) -> None:
    gray = gray_image()
    rgb = np.stack([gray, gray, gray], axis=-1)
    path = write_tiff(tmp_path / "rgb.tif", rgb)
    loaded = imaging.load_gray8(path)
    assert loaded.bands == 1
    out = np.ndarray(gray.shape, np.uint8, loaded.write_to_memory())
    assert np.abs(out.astype(int) - gray.astype(int)).max() <= 2


def test_working_copy_has_requested_size(tmp_path: Path) -> None:
    image = pyvips.Image.new_from_memory(gray_image(301, 203).tobytes(), 301, 203, 1, "uchar")
    w, h = imaging.working_size(301, 203, um_per_px=1.0, working_um_per_px=4.0)
    imaging.write_working_copy(image, tmp_path / "w.png", width=w, height=h)
    out = pyvips.Image.new_from_file(str(tmp_path / "w.png"))
    assert (out.width, out.height) == (75, 51)
