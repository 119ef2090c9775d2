"""Synthetic reflectance confocal microscopy (RCM) mosaics with full and partial ground truth.

These are the project's only data: the demo, the tests and the benchmarks all use them. A mosaic is a grayscale
reflectance image (bright = reflective) in which large smooth lesion regions (mm scale) lie over normal epidermis,
each region showing the texture of its class (``inference.ml.classes``):

- background (non-lesion): cobblestone of polygonal keratinocytes (~12 µm) with dark borders;
- meshwork: a continuous bright honeycomb network (Voronoi edges, ~30-60 µm holes) built of bright beads;
- ring: closed beaded rings (~50-90 µm across) around dark dermal papillae;
- nested: dense bright round clods (~30-75 µm);
- aspecific: disorganised, low-contrast, grainy;
- artifact: bright streaks and saturated blobs.

Ring and meshwork share their fine texture (the same bright beads along bright bands) and differ only at a larger
scale (closed rings around dark centres vs. a continuous network), so a model needs context to tell them apart.

Every texture is defined in micrometres and rendered at the requested µm/px, with feature profiles widened by the
pixel footprint (so a 4 µm/px mosaic looks like a 1 µm/px one of the same seed downsampled). The scene (label
layout and texture point sets) depends only on the seed and the physical extent, not on the pixel size. The
acquisition is imitated on top: slight optical blur, multiplicative speckle and the vignetting of the ~500 µm
tiles that the microscope stitches into a mosaic.

The image is rendered in row strips so that a 12000 × 12000 mosaic needs little more memory than its three
uint8 outputs. Everything random comes from ``np.random.default_rng(seed)`` (and generators spawned from it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

from inference.ml.classes import CLASSES, NUM_CLASSES, UNLABELLED

BACKGROUND, ARTIFACT, MESHWORK, RING, NESTED, ASPECIFIC = range(NUM_CLASSES)

# --- Rendering -------------------------------------------------------------------------------------------------------
STRIP_ROWS = 64  # rows rendered at once: ~3 MB per float32 work array at 12000 px wide, so the temporaries stay
# in cache (measured: 256-row strips were 1.5x slower) while the blur halo (2 rows each side) costs little
FIELD_CELL_UM = 32.0  # node spacing of the smooth scene fields (label layout, brightness); 8x finer than the
# smallest field scale, so bilinear interpolation between nodes gives smooth region boundaries
PREFILTER_PX = 0.5  # every feature profile is widened by this many pixels (in quadrature), i.e. convolved with the
# pixel footprint, so fine textures average out instead of aliasing at coarse µm/px
MIN_BLUR_PX = 0.25  # a Gaussian blur narrower than this (in px) changes nothing visible and is skipped
MIN_RUN_GAP_PX = 64  # column runs of one class closer than this are textured together (fewer, longer calls)
UNLABELLED_SAMPLES = 1_000_000  # pixels sampled to place the unlabelled threshold: share error well under 0.5 %
UM_PER_PX_RANGE = (0.05, 100.0)  # from far below optical resolution to a thumbnail; outside is surely a unit mix-up
MAX_MOSAIC_PIXELS = 40_000 * 40_000  # far above the 12000 x 12000 of a real mosaic; beyond this a typo is likelier
# than a request (the outputs alone would take > 4.8 GB)

# --- Scene layout (all in µm) ----------------------------------------------------------------------------------------
# Mean share of the mosaic area per class (order of ``CLASSES``); each mosaic draws its own around these, so class
# frequencies are imbalanced (background, ring and meshwork common; nested and artifact rare) as in the paper's Fig. 3.
CLASS_SHARES = np.array([0.36, 0.05, 0.20, 0.22, 0.07, 0.10])
SHARE_JITTER = 0.25  # log-normal spread of each mosaic's class shares around CLASS_SHARES
LESION_SCALE_UM = 900.0  # correlation length of the lesion outline: lesions are mm-scale blobs
LESION_CENTRE_WEIGHT = 1.2  # pull of the lesion towards the mosaic centre (mosaics are centred on the lesion)
PATTERN_SCALE_UM = 450.0  # correlation length of the pattern regions inside the lesion
ARTIFACT_SCALE_UM = (140.0, 600.0)  # artifact regions are elongated (short, long axis)
BRIGHTNESS_SCALE_UM = 1200.0  # correlation length of the slow tissue-brightness variation
HAZE_SCALE_UM = 40.0  # blotches of the aspecific pattern
BRIGHTNESS_DEPTH = 0.12  # +-12 % (1 s.d.) slow brightness variation, as depth and pressure vary across a mosaic
UNLABELLED_SCALE_UM = 220.0  # size of the blobs the experts left unlabelled
UNLABELLED_RANGE = (0.17, 0.28)  # share of unlabelled pixels in ``partial``: inside the 15-30 % of the spec,
# with a margin for placing the threshold on a sample of the pixels
UNLABELLED_EDGE_UM = 120.0  # experts leave ambiguous borders between regions unlabelled more often ...
UNLABELLED_EDGE_WEIGHT = 1.0  # ... by this much (in s.d. of the blob field) right at a border

# --- Textures (all sizes in µm, before the ``shift`` rescaling) ------------------------------------------------------
CELL_UM = 12.0  # keratinocyte diameter in the cobblestone of normal epidermis (10-15 µm)
CELL_BORDER_UM = 1.0  # half width of the dark cell border
NUCLEUS_UM = 2.5  # radius of the slightly dark nucleus
BEAD_UM = 6.0  # spacing of the bright beads (basal cells / melanocytes) that make rings and meshwork
BEAD_RADIUS_UM = 2.0  # radius of one bead
MESH_UM = 48.0  # spacing of the meshwork holes: holes ~30-60 µm once the thick edges are taken out
BAND_UM = 5.0  # half width of the bright bands (meshwork edges and rings), the same for both on purpose
RING_UM = 100.0  # spacing of the ring centres (dermal papillae)
RING_RADIUS_UM = (24.0, 44.0)  # ring radius range: 50-90 µm across
NEST_UM = 72.0  # spacing of the nests: dense, nearly touching clods
NEST_RADIUS_UM = (15.0, 37.0)  # clod radius range: 30-75 µm across
NEST_EDGE_UM = 2.5  # softness of the clod outline
ARTIFACT_BLOB_UM = 150.0  # spacing of candidate saturated blobs in artifact regions
ARTIFACT_BLOB_RADIUS_UM = (10.0, 50.0)  # saturated reflections, small to large
ARTIFACT_BLOB_SHARE = 0.3  # share of candidate blob sites that hold a blob
STREAK_WAVELENGTHS_UM = (23.0, 37.0, 61.0)  # incommensurate periods so the streaks look irregular
STREAK_LENGTH_UM = 400.0  # streaks wander and fade over this length
# --- Acquisition -----------------------------------------------------------------------------------------------------
TILE_UM = 500.0  # field of view of one RCM image; the mosaic is a grid of these
VIGNETTE_DEPTH = 0.25  # tile corners are up to this much darker than the tile centre
VIGNETTE_POWER = 3.0  # the darkening is concentrated near the tile edges
TILE_GAIN_SD = 0.05  # tile-to-tile brightness differences left by stitching
BLUR_UM = 0.6  # optical blur (Gaussian s.d.); lateral resolution of RCM is ~1 µm
SPECKLE_SD = 0.3  # multiplicative speckle s.d. at 1 µm/px
SPECKLE_GRAIN_UM = 1.5  # speckle grain size; at coarser µm/px each pixel averages (grain/px)^2 grains
# --- Domain shift ----------------------------------------------------------------------------------------------------
SHIFT_SCALE = 0.25  # shift=1 makes cells, holes, rings and clods 25 % larger
SHIFT_CONTRAST = 0.45  # shift=1 keeps 55 % of the contrast
SHIFT_NOISE = 1.0  # shift=1 doubles the speckle
CONTRAST_PIVOT = 0.3  # reflectance the contrast change pivots around (about the mean of a mosaic)
N_STREAMS = 10  # independent random streams spawned from the seed (see ``_Scene``)

TIFF_TILE = 256  # TIFF tile edge: what pyvips and viewers read efficiently
BIGTIFF_BYTES = 2**32 - 2**25  # classic TIFF offsets are 32-bit; keep 32 MB for tags and tile tables


@dataclass
class SyntheticMosaic:
    """One synthetic mosaic; all arrays are (H, W) uint8."""

    image: np.ndarray  # (H, W) uint8 grayscale reflectance
    truth: np.ndarray  # (H, W) uint8 class 0..5, full ground truth
    partial: np.ndarray  # (H, W) uint8, truth with 15-30 % of pixels set to 255 in blobs
    um_per_px: float
    seed: int
    shift: float


@dataclass(frozen=True)
class MosaicFiles:
    image: Path  # tiled TIFF with µm/px in its resolution tags
    truth: Path  # PNG label map, values 0..5
    partial: Path  # PNG label map, values 0..5 and 255


# ---------------------------------------------------------------------------------------------------------------------
# Jittered point lattices and their Worley (cellular) features
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Lattice:
    """One random point per ``spacing`` square, with a random attribute in [0, 1).

    Cell ``(i, j)`` covers ``[(i-1) s, i s) x [(j-1) s, j s)`` µm, so there is a margin cell on every side.
    """

    spacing: float
    py: np.ndarray  # (ny, nx) float32 point positions in µm
    px: np.ndarray
    attr: np.ndarray  # (ny, nx) float32 in [0, 1)


def _lattice(rng: np.random.Generator, spacing: float, extent_y: float, extent_x: float, jitter: float) -> _Lattice:
    """Points over ``extent_y`` x ``extent_x`` µm; ``jitter`` 0 puts each at its cell centre, 1 anywhere in its cell."""
    ny = math.ceil(extent_y / spacing) + 3
    nx = math.ceil(extent_x / spacing) + 3
    iy = np.arange(ny, dtype=np.float32)[:, None] - 0.5
    ix = np.arange(nx, dtype=np.float32)[None, :] - 0.5
    py = (iy + jitter * (rng.random((ny, nx), dtype=np.float32) - 0.5)) * np.float32(spacing)
    px = (ix + jitter * (rng.random((ny, nx), dtype=np.float32) - 0.5)) * np.float32(spacing)
    return _Lattice(spacing, py, px, rng.random((ny, nx), dtype=np.float32))


def _worley(
    lat: _Lattice, ys: np.ndarray, xs: np.ndarray, *, second: bool = False, attr: bool = False
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Distance to the nearest lattice point, to the second-nearest (if ``second``) and the nearest point's
    attribute (if ``attr``).

    ``ys`` (h,) and ``xs`` (w,) are increasing pixel-centre coordinates in µm. Returns (h, w) float32 arrays (None
    for what was not asked). Rows in the same lattice row share their 3 x 3 candidate points, so the work is done
    per band of rows with no per-pixel gather.
    """
    s = lat.spacing
    h, w = len(ys), len(xs)
    cx = np.floor(xs / s).astype(np.intp) + 1
    cy = np.floor(ys / s).astype(np.intp) + 1
    f1 = np.full((h, w), np.inf, np.float32)
    f2 = np.full((h, w), np.inf, np.float32) if second else None
    near_attr = np.zeros((h, w), np.float32) if attr else None
    cuts = np.flatnonzero(np.diff(cy)) + 1
    for r0, r1 in zip(np.r_[0, cuts], np.r_[cuts, h], strict=True):
        c = cy[r0]
        b1 = f1[r0:r1]
        yb = ys[r0:r1, None]
        d2 = np.empty((r1 - r0, w), np.float32)
        tmp = np.empty_like(d2)
        nearer = np.empty(d2.shape, bool)
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                qy = lat.py[c + di, cx + dj]
                dx = xs - lat.px[c + di, cx + dj]
                dx *= dx
                np.subtract(yb, qy, out=d2)
                np.multiply(d2, d2, out=d2)
                d2 += dx
                if f2 is not None:
                    np.maximum(b1, d2, out=tmp)
                    np.minimum(f2[r0:r1], tmp, out=f2[r0:r1])
                if near_attr is not None:
                    np.less(d2, b1, out=nearer)
                    np.copyto(near_attr[r0:r1], lat.attr[c + di, cx + dj], where=nearer)
                np.minimum(b1, d2, out=b1)
    np.sqrt(f1, out=f1)
    if f2 is not None:
        np.sqrt(f2, out=f2)
    return f1, f2, near_attr


def _gauss(x: np.ndarray, width: float, peak: float) -> np.ndarray:
    """``peak * exp(-(x / width)^2)``, in place in ``x``."""
    x *= np.float32(1.0 / width)
    np.square(x, out=x)
    np.negative(x, out=x)
    np.exp(x, out=x)
    x *= np.float32(peak)
    return x


def _sigmoid_inside(dist: np.ndarray, radius: np.ndarray, edge: float) -> np.ndarray:
    """Soft disc indicator ``1 / (1 + exp((dist - radius) / edge))``, in place in ``dist``."""
    dist -= radius
    dist *= np.float32(1.0 / edge)
    np.clip(dist, -30.0, 30.0, out=dist)
    np.exp(dist, out=dist)
    dist += 1.0
    np.reciprocal(dist, out=dist)
    return dist


def _runs(flags: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """[start, stop) runs of True in the 1-D ``flags``, merging runs separated by fewer than ``min_gap`` False."""
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > min_gap)
    starts = np.r_[idx[0], idx[breaks + 1]]
    stops = np.r_[idx[breaks], idx[-1]] + 1
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def _splat_dots(lat: _Lattice, r0: int, r1: int, width: int, um_per_px: float, radius: float) -> np.ndarray:
    """Gaussian dots of radius ``radius`` µm at the lattice points, peak 0.6-1.0 (from the attribute), on rows
    ``r0:r1`` of the pixel grid. Returns (r1 - r0, width) float32.

    Each dot is an impulse carrying its integrated brightness, blurred by a Gaussian of the dot's width, so the
    mean brightness of the field does not depend on the pixel size.
    """
    sigma_px = radius / math.sqrt(2.0) / um_per_px
    margin = math.ceil(3.0 * sigma_px) + 1
    h = r1 - r0 + 2 * margin
    s = lat.spacing
    lo = max(0, math.floor((r0 - margin) * um_per_px / s))  # lattice rows whose points can land in the buffer
    hi = min(lat.py.shape[0], math.floor((r1 + margin) * um_per_px / s) + 3)
    iy = np.floor(lat.py[lo:hi] / um_per_px).astype(np.intp) - (r0 - margin)
    ix = np.floor(lat.px[lo:hi] / um_per_px).astype(np.intp)
    keep = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < width)
    weight = (0.6 + 0.4 * lat.attr[lo:hi][keep]) * (math.pi * radius * radius / (um_per_px * um_per_px))
    acc = np.bincount(iy[keep] * width + ix[keep], weights=weight, minlength=h * width)
    dots = acc.astype(np.float32).reshape(h, width)
    # truncate=3 keeps the kernel inside the margin; the normalised kernel keeps the integrated brightness
    dots = ndimage.gaussian_filter(dots, sigma_px, truncate=3.0, mode="constant")
    return dots[margin : margin + r1 - r0]


def _widen(width_um: float, um_per_px: float) -> tuple[float, float]:
    """A profile of half width ``width_um`` seen through the pixel footprint: (effective width, 1-D peak factor)."""
    eff = math.hypot(width_um, PREFILTER_PX * um_per_px)
    return eff, width_um / eff


# ---------------------------------------------------------------------------------------------------------------------
# Scene: label layout fields and texture lattices, all in physical units
# ---------------------------------------------------------------------------------------------------------------------
def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], scale_um: float | tuple[float, float]
) -> np.ndarray:
    """Zero-mean, unit-s.d. Gaussian random field on the node grid with correlation length ``scale_um``."""
    sigma = np.atleast_1d(np.asarray(scale_um, dtype=np.float64)) / FIELD_CELL_UM
    field = ndimage.gaussian_filter(rng.standard_normal(shape), np.broadcast_to(sigma, (2,)), mode="reflect")
    sd = field.std()
    return (field - field.mean()) / (sd if sd > 0 else 1.0)


def _quantile_threshold(values: np.ndarray, share_above: float) -> float:
    """Threshold with ``share_above`` of ``values`` above it (+inf for an empty selection or share 0)."""
    if values.size == 0 or share_above <= 0:
        return math.inf
    return float(np.quantile(values, min(1.0, max(0.0, 1.0 - share_above))))


# order of the scene fields (node grids interpolated to pixels)
_F_ART, _F_LES, _F_NEST, _F_ASP, _F_RING, _F_BRIGHT, _F_UNL, _F_HAZE = range(8)
_LAYOUT_FIELDS = (_F_ART, _F_LES, _F_NEST, _F_ASP, _F_RING, _F_BRIGHT, _F_UNL)  # needed on every pixel
_DOTTED = (MESHWORK, RING, NESTED, ASPECIFIC)  # classes whose texture uses the shared bead field
_CLS_SLOT = {f: i for i, f in enumerate(_LAYOUT_FIELDS)}  # field -> its row in a ``field_block(_LAYOUT_FIELDS, ...)``


class _Scene:
    """Everything random about one mosaic, in µm, independent of the pixel size (except the speckle).

    Random streams (spawned from ``default_rng(seed)``): 0 class shares and layout fields, 1 cells, 2 beads,
    3 meshwork, 4 rings, 5 nests, 6 artifacts, 7 tiles, 8 speckle, 9 unlabelled blobs.
    """

    def __init__(self, height: int, width: int, um_per_px: float, seed: int, shift: float) -> None:
        self.height, self.width, self.um_per_px, self.shift = height, width, um_per_px, shift
        streams = np.random.default_rng(seed).spawn(N_STREAMS)
        self.speckle_rng = streams[8]
        ey, ex = height * um_per_px, width * um_per_px
        k = 1.0 + SHIFT_SCALE * shift
        self.scale = k
        self.cells = _lattice(streams[1], CELL_UM * k, ey, ex, jitter=0.85)
        self.beads = _lattice(streams[2], BEAD_UM * k, ey, ex, jitter=0.8)
        self.mesh = _lattice(streams[3], MESH_UM * k, ey, ex, jitter=0.9)
        self.rings = _lattice(streams[4], RING_UM * k, ey, ex, jitter=0.4)
        self.nests = _lattice(streams[5], NEST_UM * k, ey, ex, jitter=0.5)
        art = streams[6]
        self.blobs = _lattice(art, ARTIFACT_BLOB_UM, ey, ex, jitter=0.8)
        theta = art.uniform(0.0, math.pi)
        self.streak_dir = (math.cos(theta), math.sin(theta))  # (y, x) components of the across-streak direction
        self.streak_phase = art.uniform(0.0, 2.0 * math.pi, (len(STREAK_WAVELENGTHS_UM), 2))
        self._tiles(streams[7], ey, ex)
        self._layout(streams[0], streams[9], ey, ex)

    # -- acquisition tiles ----------------------------------------------------------------------------------------
    def _tiles(self, rng: np.random.Generator, ey: float, ex: float) -> None:
        p = self.um_per_px
        off_y, off_x = rng.uniform(0.0, TILE_UM, 2)
        ny, nx = math.ceil((ey + off_y) / TILE_UM) + 1, math.ceil((ex + off_x) / TILE_UM) + 1
        gains = 1.0 + TILE_GAIN_SD * rng.standard_normal((ny, nx))

        def axis(n: int, off: float) -> tuple[np.ndarray, np.ndarray]:
            pos = (np.arange(n) + 0.5) * p + off
            u = np.mod(pos, TILE_UM) / TILE_UM
            return (pos // TILE_UM).astype(np.intp), 1.0 - VIGNETTE_DEPTH * np.abs(2.0 * u - 1.0) ** VIGNETTE_POWER

        self.tile_row, vignette_y = axis(self.height, off_y)
        tile_col, vignette_x = axis(self.width, off_x)
        self.vignette_y = vignette_y.astype(np.float32)
        # (tile rows, W): tile gain times horizontal vignetting, picked per image row
        self.tile_x = (gains[:, tile_col] * vignette_x[None, :]).astype(np.float32)

    # -- label layout ---------------------------------------------------------------------------------------------
    def _layout(self, rng: np.random.Generator, unl_rng: np.random.Generator, ey: float, ex: float) -> None:
        shape = (math.ceil(ey / FIELD_CELL_UM) + 2, math.ceil(ex / FIELD_CELL_UM) + 2)
        shares = CLASS_SHARES * np.exp(SHARE_JITTER * rng.standard_normal(NUM_CLASSES))
        shares /= shares.sum()
        yy = np.arange(shape[0])[:, None] * FIELD_CELL_UM / ey * 2.0 - 1.0
        xx = np.arange(shape[1])[None, :] * FIELD_CELL_UM / ex * 2.0 - 1.0
        radius = np.sqrt(yy * yy + xx * xx) / math.sqrt(2.0)  # 0 at the centre, 1 in the corners
        fields = np.empty((8, *shape), np.float32)
        axes = rng.permutation(ARTIFACT_SCALE_UM).tolist()
        fields[_F_ART] = _smooth_field(rng, shape, (axes[0], axes[1]))
        fields[_F_LES] = _smooth_field(rng, shape, LESION_SCALE_UM) + LESION_CENTRE_WEIGHT * 2.0 * (0.5 - radius)
        fields[_F_NEST] = _smooth_field(rng, shape, PATTERN_SCALE_UM) - 0.5 * radius  # nests towards the centre
        fields[_F_ASP] = _smooth_field(rng, shape, PATTERN_SCALE_UM)
        fields[_F_RING] = _smooth_field(rng, shape, PATTERN_SCALE_UM) + 0.5 * radius  # rings towards the rim
        fields[_F_BRIGHT] = 1.0 + BRIGHTNESS_DEPTH * _smooth_field(rng, shape, BRIGHTNESS_SCALE_UM)
        fields[_F_HAZE] = _smooth_field(rng, shape, HAZE_SCALE_UM)

        # thresholds from the nodes inside the image, applied in turn so that each class gets its drawn share
        inside = (slice(None), slice(0, math.ceil(ey / FIELD_CELL_UM) + 1), slice(0, math.ceil(ex / FIELD_CELL_UM) + 1))
        f = fields[inside]
        t = {}
        t[_F_ART] = _quantile_threshold(f[_F_ART].ravel(), shares[ARTIFACT])
        rest = f[_F_ART] <= t[_F_ART]
        t[_F_LES] = _quantile_threshold(f[_F_LES][rest], 1.0 - shares[BACKGROUND] / (1.0 - shares[ARTIFACT]))
        rest &= f[_F_LES] > t[_F_LES]
        lesion_total = shares[[MESHWORK, RING, NESTED, ASPECIFIC]].sum()
        t[_F_NEST] = _quantile_threshold(f[_F_NEST][rest], shares[NESTED] / lesion_total)
        rest &= f[_F_NEST] <= t[_F_NEST]
        t[_F_ASP] = _quantile_threshold(f[_F_ASP][rest], shares[ASPECIFIC] / (lesion_total - shares[NESTED]))
        rest &= f[_F_ASP] <= t[_F_ASP]
        t[_F_RING] = _quantile_threshold(f[_F_RING][rest], shares[RING] / (shares[RING] + shares[MESHWORK]))
        self.thresholds = t

        # unlabelled blobs, more likely along the borders between regions
        coarse = self._classify(fields[list(_LAYOUT_FIELDS)])
        border = np.zeros(shape, bool)
        for axis in (0, 1):
            step = np.diff(coarse, axis=axis) != 0
            lead = [slice(None)] * 2
            lead[axis] = slice(0, -1)
            border[tuple(lead)] |= step
            lead[axis] = slice(1, None)
            border[tuple(lead)] |= step
        if border.any():
            near_border = np.exp(-ndimage.distance_transform_edt(~border) * FIELD_CELL_UM / UNLABELLED_EDGE_UM)
        else:
            near_border = np.zeros(shape)
        fields[_F_UNL] = _smooth_field(unl_rng, shape, UNLABELLED_SCALE_UM) + UNLABELLED_EDGE_WEIGHT * near_border

        # interpolate along x once, for the whole width: (8, nodes_y, W); rows are interpolated per strip
        xs = (np.arange(self.width) + 0.5) * self.um_per_px / FIELD_CELL_UM
        j0 = np.minimum(np.floor(xs).astype(np.intp), shape[1] - 2)
        tx = (xs - j0).astype(np.float32)
        self.fields_x = fields[:, :, j0] * (1.0 - tx) + fields[:, :, j0 + 1] * tx

        # unlabelled threshold: the drawn share's quantile of the unlabelled score on a sub-grid of ~1 M pixels
        share = float(unl_rng.uniform(*UNLABELLED_RANGE))
        stride = max(1, math.ceil(math.sqrt(self.height * self.width / UNLABELLED_SAMPLES)))
        sample = self.field_block((_F_UNL,), np.arange(0, self.height, stride), 0, self.width)[0, :, ::stride]
        self.unl_threshold = _quantile_threshold(sample.ravel(), share)

    def _classify(self, g: np.ndarray) -> np.ndarray:
        """Class map from the layout fields ``g`` (7, ...) in ``_LAYOUT_FIELDS`` order -> (...) uint8."""
        t = self.thresholds
        lab = np.full(g.shape[1:], MESHWORK, np.uint8)
        lab[g[_CLS_SLOT[_F_RING]] > t[_F_RING]] = RING
        lab[g[_CLS_SLOT[_F_ASP]] > t[_F_ASP]] = ASPECIFIC
        lab[g[_CLS_SLOT[_F_NEST]] > t[_F_NEST]] = NESTED
        lab[g[_CLS_SLOT[_F_LES]] <= t[_F_LES]] = BACKGROUND
        lab[g[_CLS_SLOT[_F_ART]] > t[_F_ART]] = ARTIFACT
        return lab

    def field_block(self, which: tuple[int, ...], rows: np.ndarray, c0: int, c1: int) -> np.ndarray:
        """Scene fields ``which`` on image ``rows`` (n,) (increasing) and columns ``c0:c1``: (len(which), n, c1 - c0).

        Rows between the same two node rows are interpolated together from those node rows (no per-pixel gather).
        """
        ys = (rows + 0.5) * self.um_per_px / FIELD_CELL_UM
        i0 = np.minimum(np.floor(ys).astype(np.intp), self.fields_x.shape[1] - 2)
        ty = (ys - i0).astype(np.float32)
        out = np.empty((len(which), len(rows), c1 - c0), np.float32)
        sel = list(which)
        cuts = np.flatnonzero(np.diff(i0)) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(rows)], strict=True):
            lo = self.fields_x[sel, i0[a], None, c0:c1]
            step = self.fields_x[sel, i0[a] + 1, None, c0:c1] - lo
            np.multiply(ty[None, a:b, None], step, out=out[:, a:b])
            out[:, a:b] += lo
        return out

    # -- textures -------------------------------------------------------------------------------------------------
    def texture(self, cls: int, rows: np.ndarray, c0: int, c1: int, dots: np.ndarray | None) -> np.ndarray:
        """Reflectance (h, c1 - c0) float32 of class ``cls`` on image ``rows`` (h,) and columns ``c0:c1``.

        ``dots`` (h, c1 - c0) is the shared bead field on the same pixels (needed by meshwork, ring, nested and
        aspecific).
        """
        p, k = self.um_per_px, self.scale
        ys = ((rows + 0.5) * p).astype(np.float32)
        xs = ((np.arange(c0, c1) + 0.5) * p).astype(np.float32)
        if cls == BACKGROUND:
            f1, f2, attr = _worley(self.cells, ys, xs, second=True, attr=True)
            w, gain = _widen(CELL_BORDER_UM * k, p)
            f2 -= f1
            f2 *= 0.5  # ~ distance to the cell border
            border = _gauss(f2, w, 0.7 * gain)
            wn, gn = _widen(NUCLEUS_UM * k, p)
            nucleus = _gauss(f1, wn, 0.3 * gn * gn)
            value = attr
            value *= 0.20
            value += 0.40
            value *= 1.0 - border
            value *= 1.0 - nucleus
            return value
        if dots is None and cls in _DOTTED:
            raise ValueError(f"class {cls} is built on the bead field: pass `dots`")
        if cls == ASPECIFIC:
            _, _, attr = _worley(self.cells, ys, xs, attr=True)
            haze = self.field_block((_F_HAZE,), rows, c0, c1)[0]
            # patches where grains show more, over a dull blotchy base
            grains = np.clip(haze, -1.5, 1.5)
            grains += 2.0
            grains *= 0.06
            grains *= dots
            haze *= 0.03
            value = attr
            value *= 0.10
            value += 0.22
            value += haze
            value += grains
            return value
        if cls == MESHWORK:
            f1, f2, _ = _worley(self.mesh, ys, xs, second=True)
            w, gain = _widen(BAND_UM * k, p)
            f2 -= f1
            f2 *= 0.5  # ~ distance to the network edge
            band = _gauss(f2, w, gain)
            value = 0.25 + 0.75 * dots
            value *= band
            value += 0.10 + 0.05 * dots
            return value
        if cls == RING:
            f1, _, attr = _worley(self.rings, ys, xs, attr=True)
            lo, hi = RING_RADIUS_UM
            radius = attr
            radius *= (hi - lo) * k
            radius += lo * k
            w, gain = _widen(BAND_UM * k, p)
            inside = f1 < radius
            f1 -= radius
            band = _gauss(f1, w, gain)
            value = 0.25 + 0.75 * dots
            value *= band
            value += np.where(inside, 0.05 + 0.05 * dots, 0.18 + 0.12 * dots)  # dark papilla, dim epidermis between
            return value
        if cls == NESTED:
            f1, _, attr = _worley(self.nests, ys, xs, attr=True)
            lo, hi = NEST_RADIUS_UM
            radius = attr
            radius *= (hi - lo) * k
            radius += lo * k
            edge, _ = _widen(NEST_EDGE_UM * k, p)
            clod = _sigmoid_inside(f1, radius, edge)
            value = 0.45 + 0.35 * dots
            value *= clod
            value += 0.12 + 0.06 * dots
            return value
        if cls == ARTIFACT:
            cy, cx = self.streak_dir
            across = ys[:, None] * np.float32(cy) + xs[None, :] * np.float32(cx)
            along = ys[:, None] * np.float32(-cx) + xs[None, :] * np.float32(cy)
            streak = np.zeros(across.shape, np.float32)
            for lam, (phase, wobble) in zip(STREAK_WAVELENGTHS_UM, self.streak_phase, strict=True):
                # lines that wander sideways and fade in and out along their length
                arg = np.sin(along * np.float32(2.0 * math.pi / STREAK_LENGTH_UM) + np.float32(wobble))
                fade = 0.5 + 0.5 * arg
                arg *= np.float32(2.5)
                arg += across * np.float32(2.0 * math.pi / lam) + np.float32(phase)
                line = np.cos(arg).clip(0.0, None) ** 12
                line *= fade
                streak += line
            f1, _, attr = _worley(self.blobs, ys, xs, attr=True)
            lo, hi = ARTIFACT_BLOB_RADIUS_UM
            radius = np.where(attr < ARTIFACT_BLOB_SHARE, lo + (hi - lo) * attr / ARTIFACT_BLOB_SHARE, -1e3)
            edge, _ = _widen(3.0, p)
            blob = _sigmoid_inside(f1, radius.astype(np.float32), edge)
            streak *= 0.45
            streak += 0.28
            blob *= 1.2  # saturated: > 1 clips to 255
            streak += blob
            return streak
        raise ValueError(f"unknown class {cls}; classes are 0..{NUM_CLASSES - 1}")

    def render_rows(
        self, r0: int, r1: int, labels: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render image rows ``r0:r1``: (image, truth, partial), each (r1 - r0, W) uint8.

        ``labels`` (H, W) uint8 forces the class map instead of the scene's layout (used by the gallery).
        """
        p = self.um_per_px
        sigma_px = BLUR_UM / p
        halo = math.ceil(3.0 * sigma_px) if sigma_px >= MIN_BLUR_PX else 0
        a0, a1 = max(0, r0 - halo), min(self.height, r1 + halo)
        rows = np.arange(a0, a1)
        g = self.field_block(_LAYOUT_FIELDS, rows, 0, self.width)
        lab = self._classify(g) if labels is None else labels[a0:a1]
        need_dots = np.isin(lab, _DOTTED).any()
        dots = _splat_dots(self.beads, a0, a1, self.width, p, BEAD_RADIUS_UM * self.scale) if need_dots else None
        value = np.zeros(lab.shape, np.float32)
        for cls in range(NUM_CLASSES):
            mask = lab == cls
            for c0, c1 in _runs(mask.any(axis=0), MIN_RUN_GAP_PX):
                tex = self.texture(cls, rows, c0, c1, None if dots is None else dots[:, c0:c1])
                np.copyto(value[:, c0:c1], tex, where=mask[:, c0:c1])
        value *= g[_CLS_SLOT[_F_BRIGHT]]
        if self.shift:
            value -= CONTRAST_PIVOT
            value *= 1.0 - SHIFT_CONTRAST * self.shift
            value += CONTRAST_PIVOT
        if halo:
            value = ndimage.gaussian_filter(value, sigma_px, truncate=3.0, mode="nearest")
        keep = slice(r0 - a0, r1 - a0)
        value = value[keep]
        value *= self.vignette_y[r0:r1, None]
        value *= self.tile_x[self.tile_row[r0:r1]]
        noise_sd = SPECKLE_SD * (1.0 + SHIFT_NOISE * self.shift) * min(1.0, SPECKLE_GRAIN_UM / p)
        noise = self.speckle_rng.standard_normal(value.shape, dtype=np.float32)
        noise *= noise_sd
        noise += 1.0
        value *= noise
        value *= 255.0
        value += 0.5
        np.clip(value, 0.0, 255.0, out=value)
        truth = lab[keep]
        partial = truth.copy()
        np.copyto(partial, np.uint8(UNLABELLED), where=g[_CLS_SLOT[_F_UNL], keep] > self.unl_threshold)
        return value.astype(np.uint8), truth, partial


# ---------------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------------
def _check_args(height: int, width: int, um_per_px: float, shift: float) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"mosaic size must be at least 1 x 1 px, got {height} x {width}")
    if height * width > MAX_MOSAIC_PIXELS:
        raise ValueError(f"mosaic of {height} x {width} px exceeds the limit of {MAX_MOSAIC_PIXELS} pixels")
    lo, hi = UM_PER_PX_RANGE
    if not (lo <= um_per_px <= hi):
        raise ValueError(f"um_per_px must be in [{lo}, {hi}] (RCM is ~1 µm/px full size, ~4 working), got {um_per_px}")
    if not (0.0 <= shift <= 1.0):
        raise ValueError(f"shift must be in [0, 1], got {shift}")


def generate_mosaic(
    *, height: int, width: int, um_per_px: float = 1.0, seed: int, shift: float = 0.0
) -> SyntheticMosaic:
    """Generate one synthetic RCM mosaic of ``height`` x ``width`` px at ``um_per_px``.

    Same arguments -> identical arrays. ``shift`` in [0, 1] moves the mosaic into a shifted domain (larger texture,
    lower contrast, more noise, in proportion) for fine-tuning tests.
    """
    _check_args(height, width, um_per_px, shift)
    scene = _Scene(height, width, um_per_px, seed, shift)
    image = np.empty((height, width), np.uint8)
    truth = np.empty((height, width), np.uint8)
    partial = np.empty((height, width), np.uint8)
    for r0 in range(0, height, STRIP_ROWS):
        r1 = min(height, r0 + STRIP_ROWS)
        image[r0:r1], truth[r0:r1], partial[r0:r1] = scene.render_rows(r0, r1)
    return SyntheticMosaic(image=image, truth=truth, partial=partial, um_per_px=um_per_px, seed=seed, shift=shift)


def write_mosaic(mosaic: SyntheticMosaic, folder: Path, name: str) -> MosaicFiles:
    """Write ``<name>.tif`` (tiled, µm/px in the resolution tags), ``<name>_truth.png`` and ``<name>_partial.png``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = MosaicFiles(
        image=folder / f"{name}.tif", truth=folder / f"{name}_truth.png", partial=folder / f"{name}_partial.png"
    )
    px_per_cm = 1e4 / mosaic.um_per_px
    tifffile.imwrite(
        files.image,
        mosaic.image,
        photometric="minisblack",
        tile=(TIFF_TILE, TIFF_TILE),
        resolution=(px_per_cm, px_per_cm),
        resolutionunit=tifffile.RESUNIT.CENTIMETER,
        bigtiff=mosaic.image.nbytes > BIGTIFF_BYTES,
        metadata=None,
    )
    dpi = 25400.0 / mosaic.um_per_px
    for path, labels in ((files.truth, mosaic.truth), (files.partial, mosaic.partial)):
        Image.fromarray(labels).save(path, format="PNG", compress_level=3, dpi=(dpi, dpi))
    return files


_UNIT_UM = {
    int(tifffile.RESUNIT.INCH): 25400.0,
    int(tifffile.RESUNIT.CENTIMETER): 1e4,
    int(tifffile.RESUNIT.MILLIMETER): 1e3,
    int(tifffile.RESUNIT.MICROMETER): 1.0,
}


def read_um_per_px(tiff_path: Path) -> float | None:
    """µm/px from the first page's XResolution and ResolutionUnit tags (INCH, CENTIMETER, and tifffile's
    MILLIMETER/MICROMETER extensions); None when there is no XResolution, the unit is NONE or the value is zero.

    A missing ResolutionUnit means INCH (TIFF 6.0). Whether the value is plausible is for the caller to judge.
    """
    with tifffile.TiffFile(tiff_path) as tif:
        tags = tif.pages.first.tags
        xres = tags.get("XResolution")
        if xres is None:
            return None
        unit_tag = tags.get("ResolutionUnit")
        unit = int(unit_tag.value) if unit_tag is not None else int(tifffile.RESUNIT.INCH)
        value = xres.value
        num, den = (value if isinstance(value, tuple) else (value, 1))[:2]
    if unit not in _UNIT_UM or num == 0 or den == 0:
        return None
    return _UNIT_UM[unit] * den / num


def render_class(cls: int, *, size: int, um_per_px: float, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    """A (size, size) uint8 image of class ``cls``'s texture alone (acquisition effects included)."""
    if not 0 <= cls < NUM_CLASSES:
        raise ValueError(f"class must be in 0..{NUM_CLASSES - 1}, got {cls}")
    _check_args(size, size, um_per_px, shift)
    scene = _Scene(size, size, um_per_px, seed, shift)
    labels = np.full((size, size), cls, np.uint8)
    image = np.empty((size, size), np.uint8)
    for r0 in range(0, size, STRIP_ROWS):
        r1 = min(size, r0 + STRIP_ROWS)
        image[r0:r1] = scene.render_rows(r0, r1, labels)[0]
    return image


GALLERY_TILE_PX = 320  # pixels per gallery panel: big enough to see the 1 µm/px texture, small enough to be quick


def make_gallery(path: Path, *, seed: int = 0, panel_px: int = GALLERY_TILE_PX) -> Path:
    """Write a PNG with, per class, its texture at 1 µm/px and 4 µm/px next to its label colour and name; below,
    a small mosaic (3 x 3 panels) with its ground truth and partial labels. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    n = panel_px
    mosaic = generate_mosaic(height=3 * n, width=3 * n, um_per_px=4.0, seed=seed)
    colours = [c.colour for c in CLASSES]
    lut = np.zeros((256, 3))
    lut[: len(colours)] = [matplotlib.colors.to_rgb(c) for c in colours]
    lut[UNLABELLED] = (1.0, 1.0, 1.0)

    fig = plt.figure(figsize=(7.5, 2.5 * NUM_CLASSES + 3.0), dpi=120)
    grid = fig.add_gridspec(NUM_CLASSES + 1, 3, height_ratios=[1] * NUM_CLASSES + [1.15], hspace=0.12, wspace=0.05)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.975, bottom=0.01)
    for cls in CLASSES:
        for col, p in enumerate((1.0, 4.0)):
            ax = fig.add_subplot(grid[cls.value, col])
            ax.imshow(render_class(cls.value, size=n, um_per_px=p, seed=seed), cmap="gray", vmin=0, vmax=255)
            ax.set_axis_off()
            if cls.value == 0:
                ax.set_title(f"{p:g} µm/px ({n * p / 1000:.2g} mm wide)", fontsize=9)
            bar = 100.0 / p
            ax.plot([n * 0.05, n * 0.05 + bar], [n * 0.94] * 2, color="white", linewidth=2)
            ax.text(n * 0.05, n * 0.9, "100 µm", color="white", fontsize=7)
        ax = fig.add_subplot(grid[cls.value, 2])
        ax.imshow(np.full((1, 1), cls.value), cmap=ListedColormap([cls.colour]))
        ax.text(
            0.0,
            0.0,
            f"{cls.value}  {cls.name}",
            ha="center",
            va="center",
            fontsize=9,
            color="white",
            fontweight="bold",
            wrap=True,
        )
        ax.set_axis_off()
        if cls.value == 0:
            ax.set_title("label colour", fontsize=9)
    panels = (
        (mosaic.image, f"mosaic, 4 µm/px ({3 * n * 4 / 1000:.2g} mm)"),
        (lut[mosaic.truth], "ground truth"),
        (lut[mosaic.partial], "partial labels (white: unlabelled)"),
    )
    for col, (img, title) in enumerate(panels):
        ax = fig.add_subplot(grid[NUM_CLASSES, col])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
