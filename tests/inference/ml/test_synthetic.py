import numpy as np
import pytest
import pyvips
import tifffile
from PIL import Image

from inference.ml import synthetic
from inference.ml.classes import NUM_CLASSES, UNLABELLED
from inference.ml.synthetic import (
    ARTIFACT,
    BACKGROUND,
    MESHWORK,
    NESTED,
    RING,
    generate_mosaic,
    make_gallery,
    read_um_per_px,
    render_class,
    write_mosaic,
)


@pytest.fixture(scope="module")
def moderate():
    """A 4 mm x 4 mm mosaic at working resolution (~1 s)."""
    return generate_mosaic(height=1024, width=1024, um_per_px=4.0, seed=11)


def test_same_seed_gives_identical_arrays():
    a = generate_mosaic(height=96, width=80, um_per_px=4.0, seed=3, shift=0.3)
    b = generate_mosaic(height=96, width=80, um_per_px=4.0, seed=3, shift=0.3)
    for name in ("image", "truth", "partial"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_different_seeds_differ():
    a = generate_mosaic(height=96, width=80, um_per_px=4.0, seed=3)
    b = generate_mosaic(height=96, width=80, um_per_px=4.0, seed=4)
    assert (a.image != b.image).mean() > 0.5
    assert not np.array_equal(a.truth, b.truth)


def test_arrays_have_the_requested_shape_and_dtype():
    m = generate_mosaic(height=70, width=130, um_per_px=2.0, seed=0)
    for name in ("image", "truth", "partial"):
        arr = getattr(m, name)
        assert arr.shape == (70, 130) and arr.dtype == np.uint8
    assert (m.um_per_px, m.seed, m.shift) == (2.0, 0, 0.0)


def test_all_six_classes_present_with_imbalanced_frequencies(moderate):
    shares = np.bincount(moderate.truth.ravel(), minlength=NUM_CLASSES) / moderate.truth.size
    assert len(shares) == NUM_CLASSES and (shares > 0.01).all()
    rare = shares[[ARTIFACT, NESTED]]
    common = shares[[BACKGROUND, RING, MESHWORK]]
    assert rare.max() < common.min()
    assert shares.max() / shares.min() > 3.0


def test_partial_hides_15_to_30_percent_in_blobs_and_equals_truth_elsewhere():
    for seed in range(3):
        m = generate_mosaic(height=256, width=256, um_per_px=4.0, seed=seed)
        hidden = m.partial == UNLABELLED
        assert 0.15 <= hidden.mean() <= 0.30
        np.testing.assert_array_equal(m.partial[~hidden], m.truth[~hidden])
        # blobs, not scattered pixels: almost every hidden pixel's right and lower neighbours are hidden too
        inner = hidden[:-1, :-1]
        assert (hidden[1:, :-1][inner] & hidden[:-1, 1:][inner]).mean() > 0.95


def test_truth_has_only_class_values(moderate):
    assert moderate.truth.max() < NUM_CLASSES


def _texture_features(image: np.ndarray) -> np.ndarray:
    f = image.astype(np.float64)
    return np.array([f.mean(), f.std(), np.abs(np.diff(f, axis=1)).mean()])


def test_class_textures_have_different_statistics():
    feats = np.array([_texture_features(render_class(c, size=128, um_per_px=4.0, seed=2)) for c in range(NUM_CLASSES)])
    dist = np.linalg.norm(feats[:, None] - feats[None], axis=-1)
    off_diagonal = dist[~np.eye(NUM_CLASSES, dtype=bool)]
    assert off_diagonal.min() > 5.0  # grey levels: every pair differs in brightness, contrast or fine texture


def test_class_regions_in_a_mosaic_differ_in_brightness(moderate):
    means = [moderate.image[moderate.truth == c].mean() for c in range(NUM_CLASSES)]
    assert max(means) - min(means) > 15.0


def test_shift_keeps_layout_and_lowers_lesion_contrast():
    base = generate_mosaic(height=384, width=384, um_per_px=4.0, seed=5)
    shifted = generate_mosaic(height=384, width=384, um_per_px=4.0, seed=5, shift=1.0)
    np.testing.assert_array_equal(base.truth, shifted.truth)
    assert np.abs(base.image.astype(int) - shifted.image.astype(int)).mean() > 10.0
    for cls in (MESHWORK, RING, NESTED):
        region = base.truth == cls
        assert region.sum() > 500
        assert shifted.image[region].std() < 0.85 * base.image[region].std()


def _dominant_period_um(image: np.ndarray, um_per_px: float) -> float:
    """Period (µm) of the strongest spatial frequency between 1/200 and 1/30 µm^-1 (radially averaged spectrum)."""
    f = image.astype(np.float64)
    f -= f.mean()
    power = np.abs(np.fft.fft2(f)) ** 2
    n = f.shape[0]
    radius = np.rint(np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")) * n).astype(int)
    radial = np.bincount(radius.ravel(), power.ravel()) / np.bincount(radius.ravel())
    lo, hi = int(n * um_per_px / 200), int(n * um_per_px / 30)
    return n * um_per_px / (lo + int(np.argmax(radial[lo:hi])))


@pytest.mark.parametrize("cls", [MESHWORK, RING])
def test_shift_enlarges_the_texture(cls):
    base = _dominant_period_um(render_class(cls, size=512, um_per_px=2.0, seed=1), 2.0)
    shifted = _dominant_period_um(render_class(cls, size=512, um_per_px=2.0, seed=1, shift=1.0), 2.0)
    assert shifted > 1.15 * base


def test_same_scene_at_any_pixel_size():
    fine = generate_mosaic(height=512, width=512, um_per_px=1.0, seed=8)
    coarse = generate_mosaic(height=128, width=128, um_per_px=4.0, seed=8)
    assert (fine.truth[1::4, 1::4] == coarse.truth).mean() > 0.98
    binned = fine.image.reshape(128, 4, 128, 4).astype(np.float64).mean(axis=(1, 3))
    for cls in np.unique(coarse.truth):
        region = (coarse.truth == cls) & (fine.truth[1::4, 1::4] == cls)
        if region.sum() < 200:
            continue
        assert binned[region].mean() == pytest.approx(coarse.image[region].mean(), rel=0.12)


@pytest.mark.parametrize(
    "kwargs",
    [dict(height=0, width=10), dict(height=10, width=10, shift=1.5), dict(height=10, width=10, um_per_px=0.0)],
)
def test_rejects_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        generate_mosaic(seed=0, **kwargs)


def test_write_mosaic_round_trips_pixels_and_resolution(tmp_path):
    m = generate_mosaic(height=300, width=520, um_per_px=0.8, seed=1)
    files = write_mosaic(m, tmp_path / "out", "m1")
    assert files.image.name == "m1.tif"
    assert (files.truth.name, files.partial.name) == ("m1_truth.png", "m1_partial.png")

    vips = pyvips.Image.new_from_file(str(files.image))
    pixels = np.ndarray(buffer=vips.write_to_memory(), dtype=np.uint8, shape=(vips.height, vips.width))
    np.testing.assert_array_equal(pixels, m.image)
    assert 1000.0 / vips.xres == pytest.approx(0.8)  # pyvips gives pixels per mm
    assert 1000.0 / vips.yres == pytest.approx(0.8)

    np.testing.assert_array_equal(tifffile.imread(files.image), m.image)
    with tifffile.TiffFile(files.image) as tif:
        page = tif.pages.first
        assert page.is_tiled
        assert page.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
        assert not tif.is_bigtiff
    assert read_um_per_px(files.image) == pytest.approx(0.8)

    np.testing.assert_array_equal(np.asarray(Image.open(files.truth)), m.truth)
    np.testing.assert_array_equal(np.asarray(Image.open(files.partial)), m.partial)


def test_write_mosaic_uses_bigtiff_above_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "BIGTIFF_BYTES", 100)
    m = generate_mosaic(height=32, width=32, um_per_px=4.0, seed=0)
    files = write_mosaic(m, tmp_path, "big")
    with tifffile.TiffFile(files.image) as tif:
        assert tif.is_bigtiff
    assert read_um_per_px(files.image) == pytest.approx(4.0)


def test_read_um_per_px_handles_inch(tmp_path):
    path = tmp_path / "inch.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), resolution=(25400 / 0.5, 25400 / 0.5), resolutionunit="INCH")
    assert read_um_per_px(path) == pytest.approx(0.5)


def test_read_um_per_px_is_none_without_a_unit(tmp_path):
    path = tmp_path / "none.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), resolution=(3.0, 3.0), resolutionunit="NONE")
    assert read_um_per_px(path) is None


def test_make_gallery_writes_a_png(tmp_path):
    path = make_gallery(tmp_path / "g" / "gallery.png", seed=0, panel_px=48)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 300 and img.height > img.width
