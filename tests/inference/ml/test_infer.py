import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from scipy import ndimage
from torch import nn

from inference.ml.infer import _blend_profile, evaluate_model, fold_batchnorm, optimise_for_cpu, predict_mosaic
from inference.ml.metrics import confusion_matrix

K = 6
CENTRES = torch.linspace(0.1, 0.9, K)  # class k is the grey level CENTRES[k]


class TinyModel(nn.Module):
    """Follows the model contract: ``[B, 1, H, W] -> [logits [B, K, H, W], [B, K, H/2, W/2], [B, K, H/4, W/4]]``.

    Logits are a Gaussian log-likelihood of a centre-weighted 3x3 (or 1x1 with ``context=False``) mean grey level
    around each class centre: the classes are decided by the grey level and borders are handled by reflection.
    """

    required_multiple = 4
    num_levels = 3
    config = None

    def __init__(self, *, context: bool = True, batchnorm: bool = False) -> None:
        super().__init__()
        size = 3 if context else 1
        smooth = nn.Conv2d(1, 1, size, padding=size // 2, padding_mode="reflect", bias=False)
        # mostly the pixel itself, a little of its 8 neighbours (1/32 each): context, and small window-edge effects
        smooth.weight.data.fill_(1.0 / 32)
        smooth.weight.data[0, 0, size // 2, size // 2] = 1.0 - (size**2 - 1) / 32
        head = nn.Conv2d(1, K, 1)
        sharpness = 400.0
        head.weight.data = (2 * sharpness * CENTRES).view(K, 1, 1, 1)
        head.bias.data = -sharpness * CENTRES**2
        layers: list[nn.Module] = [smooth]
        if batchnorm:
            bn = nn.BatchNorm2d(1)
            bn.running_mean.fill_(0.3)
            bn.running_var.fill_(2.0)
            bn.weight.data.fill_(1.5)
            bn.bias.data.fill_(0.1)
            layers += [bn, nn.Conv2d(1, 1, 1)]
            # undo the BN so the classes stay where they were: y = (x - 0.3) / sqrt(2 + eps) * 1.5 + 0.1
            scale = 1.5 / float(torch.sqrt(torch.tensor(2.0 + bn.eps)))
            layers[-1].weight.data.fill_(1.0 / scale)
            layers[-1].bias.data.fill_(-(0.1 - 0.3 * scale) / scale)
        self.body = nn.Sequential(*layers, head)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        logits = self.body(x)
        return [logits, F.avg_pool2d(logits, 2), F.avg_pool2d(logits, 4)]


def _blocky_image(h: int, w: int, seed: int = 0, block: int = 24) -> np.ndarray:
    """Piecewise-constant square blocks of the class grey levels with a little noise."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, K, size=(-(-h // block), -(-w // block)))
    return _grey(classes.repeat(block, 0).repeat(block, 1)[:h, :w], rng)


def _blob_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Rounded class regions (a smoothed random field cut into K grey levels) with a little noise."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(h, w)), sigma=8)
    classes = np.digitize(field, np.quantile(field, np.linspace(0, 1, K + 1)[1:-1]))
    return _grey(classes, rng)


def _grey(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = CENTRES.numpy()[classes] + rng.normal(0, 0.02, size=classes.shape)
    return np.clip(noisy * 255, 0, 255).astype(np.uint8)


def test_labels_agree_with_monai_sliding_window_inference():
    model = TinyModel().eval()
    image = _blob_image(300, 280)
    ours = predict_mosaic(model, image, window=256, overlap=0.75)
    x = torch.from_numpy(image).float().div(255)[None, None]
    with torch.inference_mode():
        theirs = sliding_window_inference(
            x, roi_size=(256, 256), sw_batch_size=4, predictor=lambda t: torch.softmax(model(t)[0], 1),
            overlap=0.75, mode="constant",
        )
    agreement = (ours.labels == theirs[0].argmax(0).numpy()).mean()
    assert agreement >= 0.999


def test_mean_probabilities_of_a_context_free_model_equal_its_whole_image_output():
    # With a 1x1 model every window predicts the same for a pixel, so the mean over windows is that prediction:
    # any error in the window placement, the sums or the counts shows up here.
    model = TinyModel(context=False).eval()
    image = _blocky_image(72, 100, seed=1)
    padded = np.pad(image, ((0, 0), (0, 0)))
    with torch.inference_mode():
        whole = torch.softmax(model(torch.from_numpy(padded).float().div(255)[None, None])[0], 1)[0].numpy()
    for mode, window, overlap, blend in (("paper", 64, 0.75, "constant"), ("fast", 32, 0.5, "constant"),
                                         ("paper", 48, 0.6, "constant"), ("fast", 32, 0.5, "cosine"),
                                         ("paper", 48, 0.6, "cosine"), ("fast", 64, 0.75, "cosine")):
        out = predict_mosaic(model, image, window=window, overlap=overlap, mode=mode, blend=blend)
        assert out.blend == blend
        np.testing.assert_allclose(out.probabilities.astype(np.float32), whole, atol=2e-3)
        np.testing.assert_array_equal(out.labels, whole.argmax(0))


def test_cosine_profile_is_symmetric_and_neighbours_at_half_overlap_sum_to_one():
    profile = _blend_profile(64, "cosine")
    assert profile.shape == (64,) and profile.min() > 0 and profile.max() <= 1
    np.testing.assert_allclose(profile, profile[::-1], atol=1e-6)
    np.testing.assert_allclose(profile[32:] + profile[:32], 1.0, atol=1e-6)
    assert _blend_profile(64, "constant") is None


def test_cosine_blend_favours_the_window_whose_centre_is_nearest():
    # A model whose prediction depends on where the pixel sits in the window: class 0 (confidently) within 4 px of
    # the window's left edge, class 1 (barely) elsewhere. With constant weighting the edge windows' votes count as much as the others;
    # with cosine weighting a pixel also covered near the centre of another window takes that window's class.
    class EdgeModel(nn.Module):
        required_multiple = 4
        num_levels = 1

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            logits = torch.zeros(x.shape[0], 2, *x.shape[2:])
            logits[:, 0, :, :4] = 8.0
            logits[:, 1, :, 4:] = 0.5
            return [logits]

    image = np.zeros((32, 96), np.uint8)
    constant = predict_mosaic(EdgeModel(), image, window=32, overlap=0.75, mode="fast", blend="constant")
    cosine = predict_mosaic(EdgeModel(), image, window=32, overlap=0.75, mode="fast", blend="cosine")
    # windows start every 8 columns: with constant weighting a column in the first 4 of one window and in the
    # middle of 3 others gets class 0 (mean p0 = (1 + 3 * 0.38) / 4), with cosine weighting the edge vote is
    # weighted down (at most 0.11 against 0.8 to 1) and every column takes class 1
    assert (cosine.labels[:, 8:88] == 1).all()
    assert (constant.labels[:, 8:88] == 0).any()


def test_coarser_levels_are_averaged_at_their_own_resolution():
    model = TinyModel(context=False).eval()
    image = _blocky_image(64, 96, seed=2, block=8)
    out = predict_mosaic(model, image, window=32, overlap=0.75)
    with torch.inference_mode():
        levels = model(torch.from_numpy(image).float().div(255)[None, None])
    assert [lv.shape for lv in out.levels] == [(64, 96), (32, 48), (16, 24)]
    assert out.levels[0] is out.labels
    for m in (1, 2):
        np.testing.assert_array_equal(out.levels[m], levels[m][0].argmax(0).numpy())


def test_level_maps_of_odd_sized_mosaic_round_up():
    out = predict_mosaic(TinyModel().eval(), _blocky_image(70, 45), window=32, overlap=0.5)
    assert [lv.shape for lv in out.levels] == [(70, 45), (35, 23), (18, 12)]


def test_outputs_have_the_documented_shapes_and_types():
    out = predict_mosaic(TinyModel().eval(), _blocky_image(90, 70), window=64, overlap=0.75)
    assert out.labels.shape == (90, 70) and out.labels.dtype == np.uint8
    assert out.probabilities.shape == (K, 90, 70) and out.probabilities.dtype == np.float16
    assert out.uncertainty.shape == (90, 70) and out.confidence.shape == (90, 70)


def test_uncertainty_is_one_minus_the_top_two_margin_and_in_unit_interval():
    out = predict_mosaic(TinyModel().eval(), _blocky_image(64, 64, seed=3), window=32, overlap=0.75)
    p = np.sort(out.probabilities.astype(np.float32), axis=0)
    np.testing.assert_allclose(out.uncertainty, 1 - (p[-1] - p[-2]), atol=2e-3)
    assert out.uncertainty.min() >= 0.0 and out.uncertainty.max() <= 1.0
    assert out.uncertainty.max() > 0.1  # block edges are uncertain, so the map is not all zeros


def test_mosaic_smaller_than_the_window_is_padded_and_fully_labelled():
    image = _blocky_image(40, 24, seed=4, block=8)
    model = TinyModel(context=False).eval()
    out = predict_mosaic(model, image)  # paper mode: 256 px windows
    with torch.inference_mode():
        whole = model(torch.from_numpy(image).float().div(255)[None, None])[0][0].argmax(0).numpy()
    np.testing.assert_array_equal(out.labels, whole)


def test_progress_is_reported_increasing_up_to_one():
    calls: list[tuple[float, str]] = []
    # batch_size counts 256² windows: 3 windows a batch here, batched across rows of windows (8 × 8 windows)
    predict_mosaic(TinyModel().eval(), _blocky_image(300, 300), window=256, overlap=0.75, batch_size=3,
                   progress=lambda f, msg: calls.append((f, msg)))
    fractions = [f for f, _ in calls]
    assert len(calls) == 22 + 1 and calls[0] == (3 / 64, "window 3/64")
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


def test_fast_mode_agrees_with_paper_mode():
    model = TinyModel().eval()
    image = _blocky_image(200, 180, seed=5)
    paper = predict_mosaic(model, image, mode="paper")
    fast = predict_mosaic(model, image, mode="fast")
    assert fast.window == 512 and fast.stride == 256 and paper.window == 256 and paper.stride == 64
    assert (paper.labels == fast.labels).mean() >= 0.99


def test_model_training_mode_is_restored():
    model = TinyModel().train()
    predict_mosaic(model, _blocky_image(32, 32), window=32)
    assert model.training


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.zeros((8, 8, 3), np.uint8), {}, "2-D grayscale"),
        (np.zeros((8, 8), np.float32), {}, "uint8"),
        (np.zeros((8, 8), np.uint8), {"window": 30}, "multiple of the model's required_multiple"),
        (np.zeros((8, 8), np.uint8), {"overlap": 1.0}, "overlap must be in"),
        (np.zeros((8, 8), np.uint8), {"mode": "turbo"}, "mode must be"),
        (np.zeros((8, 8), np.uint8), {"blend": "gaussian"}, "blend must be one of constant, cosine"),
    ],
)
def test_invalid_arguments_are_rejected_with_what_is_allowed(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        predict_mosaic(TinyModel(), image, **kwargs)


def test_fold_batchnorm_removes_batchnorm_and_keeps_outputs():
    model = TinyModel(batchnorm=True).eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.inference_mode():
        before = model(x)[0]
        fold_batchnorm(model)
        after = model(x)[0]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_optimise_for_cpu_gives_the_same_labels_and_leaves_the_original_alone():
    model = TinyModel(batchnorm=True).eval()
    image = _blocky_image(96, 96, seed=6)
    fast = optimise_for_cpu(model)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    reference = predict_mosaic(model, image, window=64).labels
    optimised = predict_mosaic(fast, image, window=64).labels
    assert (reference == optimised).mean() >= 0.995


def test_evaluate_model_pools_the_confusion_of_every_mosaic():
    model = TinyModel().eval()
    rng = np.random.default_rng(7)
    pairs = []
    for seed in (8, 9):
        image = _blob_image(64, 48, seed=seed)
        labels = rng.integers(0, K, size=image.shape).astype(np.uint8)
        labels[:10] = 255
        pairs.append((image, labels))
    pooled, per_mosaic = evaluate_model(model, pairs, window=32)
    expected = sum(
        confusion_matrix(lab, predict_mosaic(model, img, window=32).labels) for img, lab in pairs
    )
    np.testing.assert_array_equal(pooled.confusion, expected)
    assert len(per_mosaic) == 2 and pooled.labelled_pixels == 2 * 54 * 48


def test_optimise_for_cpu_keeps_munet_labels_and_contract():
    from inference.ml.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="munet", levels=2, base_channels=4, extra={"depth": 2})).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    fast = optimise_for_cpu(model)
    assert fast.required_multiple == model.required_multiple and fast.num_levels == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    image = _blob_image(96, 80, seed=10)
    reference = predict_mosaic(model, image, window=32)
    optimised = predict_mosaic(fast, image, window=32)
    assert (reference.labels == optimised.labels).mean() >= 0.995
    np.testing.assert_allclose(optimised.probabilities.astype(np.float32),
                               reference.probabilities.astype(np.float32), atol=2e-3)


def test_bfloat16_copy_keeps_the_contract_and_the_labels_and_leaves_the_original_alone():
    model = TinyModel(batchnorm=True).eval()
    image = _blob_image(96, 80, seed=11)
    low = optimise_for_cpu(model, precision="bfloat16")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(p.dtype == torch.bfloat16 for p in low.parameters())
    assert low.required_multiple == model.required_multiple and low.num_levels == model.num_levels
    with torch.inference_mode():
        outputs = low(torch.rand(2, 1, 32, 32))
    assert [o.dtype for o in outputs] == [torch.float32] * 3
    assert [tuple(o.shape) for o in outputs] == [(2, K, 32, 32), (2, K, 16, 16), (2, K, 8, 8)]
    reference = predict_mosaic(model, image, window=32).labels
    assert (predict_mosaic(low, image, window=32).labels == reference).mean() >= 0.99


def test_unknown_precision_is_rejected():
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16"):
        optimise_for_cpu(TinyModel(), precision="float16")
