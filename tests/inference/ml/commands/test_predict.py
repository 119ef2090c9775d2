import numpy as np
import tifffile
from PIL import Image

from inference.ml.cli import main


def test_predict_writes_labels_uncertainty_levels_and_probabilities(mosaic_folder, tiny_weights, tmp_path):
    tif = mosaic_folder / "synthetic_3.tif"
    status = main(["predict", str(tif), "--weights", str(tiny_weights), "--out", str(tmp_path), "--probabilities"])
    assert status == 0
    h, w = tifffile.imread(tif).shape
    labels = np.asarray(Image.open(tmp_path / "synthetic_3_labels.png"))
    assert labels.shape == (h, w) and labels.max() < 6
    uncertainty = np.asarray(Image.open(tmp_path / "synthetic_3_uncertainty.png"))
    assert uncertainty.shape == (h, w)
    assert np.asarray(Image.open(tmp_path / "synthetic_3_level1.png")).shape == (h // 2, w // 2)
    probs = np.load(tmp_path / "synthetic_3_probs.npy")
    assert probs.shape == (6, h, w)
    np.testing.assert_array_equal(probs.argmax(0), labels)
