import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from inference.ml.classes import NUM_CLASSES, UNLABELLED
from inference.ml.metrics import SegmentationReport, confusion_matrix

LABELS = list(range(NUM_CLASSES))


def _random_maps(seed: int, shape: tuple[int, int] = (97, 113)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, NUM_CLASSES, size=shape, dtype=np.uint8)
    # prediction agrees with the truth on ~60 % of pixels so the figures are not all near 1/K
    pred = np.where(rng.random(shape) < 0.6, truth, rng.integers(0, NUM_CLASSES, size=shape)).astype(np.uint8)
    truth[rng.random(shape) < 0.3] = UNLABELLED
    return truth, pred


def _labelled(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = truth != UNLABELLED
    return truth[keep], pred[keep]


def test_confusion_matrix_matches_sklearn_and_ignores_unlabelled():
    truth, pred = _random_maps(0)
    cm = confusion_matrix(truth, pred)
    t, p = _labelled(truth, pred)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(t, p, labels=LABELS))
    assert cm.sum() == int((truth != UNLABELLED).sum())


def test_report_per_class_figures_match_sklearn():
    truth, pred = _random_maps(1)
    report = SegmentationReport.from_maps(truth, pred)
    t, p = _labelled(truth, pred)
    np.testing.assert_allclose(report.sensitivity, skm.recall_score(t, p, labels=LABELS, average=None))
    np.testing.assert_allclose(report.precision, skm.precision_score(t, p, labels=LABELS, average=None))
    np.testing.assert_allclose(report.dice, skm.f1_score(t, p, labels=LABELS, average=None))
    assert report.accuracy == pytest.approx(skm.accuracy_score(t, p))
    assert report.kappa == pytest.approx(skm.cohen_kappa_score(t, p, labels=LABELS))
    assert report.mean_dice == pytest.approx(skm.f1_score(t, p, labels=LABELS, average="macro"))
    assert report.labelled_pixels == t.size


def test_specificity_is_recall_of_the_negative_class():
    truth, pred = _random_maps(2)
    report = SegmentationReport.from_maps(truth, pred)
    t, p = _labelled(truth, pred)
    for k in LABELS:
        expected = skm.recall_score(t != k, p != k)
        assert report.specificity[k] == pytest.approx(expected)


def test_absent_class_is_nan_and_none_in_dict_and_left_out_of_mean_dice():
    truth, pred = _random_maps(3)
    truth[truth == 4] = 0
    pred[pred == 4] = 0
    report = SegmentationReport.from_maps(truth, pred)
    assert math.isnan(report.sensitivity[4]) and math.isnan(report.precision[4]) and math.isnan(report.dice[4])
    present = [k for k in LABELS if k != 4]
    t, p = _labelled(truth, pred)
    assert report.mean_dice == pytest.approx(skm.f1_score(t, p, labels=present, average="macro"))
    as_dict = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert as_dict["dice"]["nested"] is None
    assert as_dict["dice"]["background"] == pytest.approx(report.dice[0])


def test_reports_of_summed_confusions_pool_pixels():
    a_truth, a_pred = _random_maps(4)
    b_truth, b_pred = _random_maps(5)
    pooled = SegmentationReport.from_confusion(confusion_matrix(a_truth, a_pred) + confusion_matrix(b_truth, b_pred))
    together = SegmentationReport.from_maps(np.concatenate([a_truth, b_truth]), np.concatenate([a_pred, b_pred]))
    np.testing.assert_allclose(pooled.dice, together.dice)


def test_confusion_matrix_rejects_out_of_range_prediction():
    truth = np.zeros((4, 4), np.uint8)
    pred = np.full((4, 4), NUM_CLASSES, np.uint8)
    with pytest.raises(ValueError, match="allowed are 0..5"):
        confusion_matrix(truth, pred)


def test_confusion_matrix_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


def test_confusion_matrix_rejects_truth_value_that_is_neither_class_nor_unlabelled():
    truth = np.zeros((4, 4), np.uint8)
    truth[1, 1] = 7
    with pytest.raises(ValueError, match="value 7"):
        confusion_matrix(truth, np.zeros((4, 4), np.uint8))


def test_markdown_table_has_a_row_per_class_with_percentages():
    truth, pred = _random_maps(6)
    report = SegmentationReport.from_maps(truth, pred)
    text = report.to_markdown()
    assert text.count("\n| ") == NUM_CLASSES  # one row per class after the header and separator
    assert f"| background | {100 * report.sensitivity[0]:.2f} |" in text
    assert f"mean Dice {100 * report.mean_dice:.2f} %" in text
