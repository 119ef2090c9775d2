import numpy as np
import pytest
import torch

from inference.ml.infer import predict_mosaic
from inference.ml.models import ModelConfig, build_model

pytest.importorskip("torchao")

from inference.ml.quantize import quantize_for_cpu  # noqa: E402

TINY = ModelConfig(arch="munet", levels=2, base_channels=4, extra={"depth": 2})


@pytest.fixture(scope="module")
def tiny_and_quantized():
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    rng = np.random.default_rng(0)
    calibration = rng.integers(0, 256, size=(8, 32, 32), dtype=np.uint8)
    return model, quantize_for_cpu(model, calibration, window=32, batch=2)


@pytest.mark.slow
def test_quantized_model_keeps_the_contract_and_most_labels(tiny_and_quantized):
    model, quantized = tiny_and_quantized
    x = torch.rand(3, 1, 32, 32)  # 3 = one full batch of 2 and a padded one
    with torch.no_grad():
        ref, out = model(x), quantized(x)
    assert [tuple(o.shape) for o in out] == [tuple(r.shape) for r in ref]
    assert (out[0].argmax(1) == ref[0].argmax(1)).float().mean() >= 0.95
    assert quantized.num_levels == 2 and quantized.required_multiple == 32


@pytest.mark.slow
def test_quantized_model_runs_in_predict_mosaic(tiny_and_quantized):
    model, quantized = tiny_and_quantized
    image = np.random.default_rng(1).integers(0, 256, size=(40, 50), dtype=np.uint8)
    a = predict_mosaic(model, image, window=32, overlap=0.5).labels
    b = predict_mosaic(quantized, image, window=32, overlap=0.5).labels
    assert (a == b).mean() >= 0.95


@pytest.mark.slow
def test_quantized_model_rejects_other_window_sizes(tiny_and_quantized):
    _, quantized = tiny_and_quantized
    with pytest.raises(ValueError, match=r"\[B, 1, 32, 32\]"):
        quantized(torch.rand(1, 1, 64, 64))


def test_too_few_calibration_windows_are_refused():
    with pytest.raises(ValueError, match="calibration windows"):
        quantize_for_cpu(build_model(TINY), np.zeros((2, 32, 32), np.uint8), window=32)
