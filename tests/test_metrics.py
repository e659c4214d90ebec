import numpy as np
import pytest
import torch

from seglib import metrics


def test_confusion_matrix_rows_are_ground_truth_and_ignore_is_skipped():
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [2, 2, 0]])
    conf = metrics.confusion_matrix(pred, target, 3)
    expected = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(conf, expected)
    assert conf.dtype == np.int64
    np.testing.assert_array_equal(metrics.confusion_matrix(torch.tensor(pred), torch.tensor(target), 3), expected)


def test_scores_match_hand_computation_with_an_absent_class():
    # class 3 never appears in prediction or ground truth: NaN, left out of the means
    target = np.array([0, 0, 0, 1, 1, 2, 255])
    pred = np.array([0, 0, 1, 1, 2, 2, 3])
    s = metrics.scores(metrics.confusion_matrix(pred, target, 4), ["a", "b", "c", "d"])
    iou = [2 / 3, 1 / 3, 1 / 2]          # TP/(TP+FP+FN)
    acc = [2 / 3, 1 / 2, 1]              # TP/(TP+FN)
    assert s["per_class"]["a"]["IoU"] == pytest.approx(iou[0] * 100)
    assert s["per_class"]["b"]["IoU"] == pytest.approx(iou[1] * 100)
    assert s["per_class"]["c"]["Acc"] == pytest.approx(100)
    assert np.isnan(s["per_class"]["d"]["IoU"]) and np.isnan(s["per_class"]["d"]["Acc"])
    assert s["mIoU"] == pytest.approx(np.mean(iou) * 100)
    assert s["mAcc"] == pytest.approx(np.mean(acc) * 100)
    assert s["aAcc"] == pytest.approx(4 / 6 * 100)  # the ignored pixel (predicted 3) does not count


def test_class_only_predicted_counts_as_zero_iou():
    target, pred = np.array([0, 0]), np.array([0, 1])
    s = metrics.scores(metrics.confusion_matrix(pred, target, 2), ["a", "b"])
    assert s["per_class"]["b"]["IoU"] == 0 and np.isnan(s["per_class"]["b"]["Acc"])
    assert s["mIoU"] == pytest.approx(25)


def test_boundary_iou_of_shifted_squares_by_hand():
    # 40x40 image: diagonal 56.6 -> d = max(1, round(0.02 * 56.6)) = 1: bands are 1 px wide
    target = np.zeros((40, 40), np.int64)
    target[10:20, 10:20] = 1
    pred = np.zeros_like(target)
    pred[10:20, 11:21] = 1
    b = metrics.boundary_iou(pred, target, 3)
    # class 1: each band is a 10x10 square ring of 36 px; shifted by one column they share 18 px
    gt_band = np.zeros_like(target, bool); gt_band[10:20, 10:20] = True; gt_band[11:19, 11:19] = False
    pr_band = np.zeros_like(target, bool); pr_band[10:20, 11:21] = True; pr_band[11:19, 12:20] = False
    assert b[1] == pytest.approx((gt_band & pr_band).sum() / (gt_band | pr_band).sum())
    assert np.isnan(b[2])                      # class 2 in neither mask
    assert metrics.boundary_iou(target, target, 3)[1] == 1.0


def test_boundary_band_counts_the_image_border_as_contour():
    target = np.ones((30, 30), np.int64)  # one class filling the image: its band runs along the border
    _, union = metrics.boundary_counts(target, target, 2)
    assert union[1] == 30 * 30 - 28 * 28


@pytest.mark.parametrize("distance", [1, 3, 12])
def test_boundary_band_is_the_mask_minus_its_repeated_3x3_erosion(distance):
    from scipy import ndimage

    rng = np.random.default_rng(distance)
    mask = ndimage.gaussian_filter(rng.random((60, 80)), 3) > 0.5
    padded = np.pad(mask, 1, constant_values=False)  # the definition: outside the image is background
    eroded = ndimage.binary_erosion(padded, structure=np.ones((3, 3), bool), iterations=distance)[1:-1, 1:-1]
    assert mask.any() and (metrics._boundary_band(mask, distance) == (mask & ~eroded)).all()


def test_boundary_f_score_perfect_and_tolerance():
    target = np.zeros((50, 50), np.int64)
    target[10:30, 10:30] = 1
    f = metrics.boundary_f_score(metrics.boundary_f_counts(target, target, 2))
    assert f[1] == pytest.approx(1.0)
    shifted = np.roll(target, 1, axis=1)
    assert metrics.boundary_f_score(metrics.boundary_f_counts(shifted, target, 2, tolerance=2))[1] == pytest.approx(1.0)
    far = np.roll(target, 8, axis=1)
    assert metrics.boundary_f_score(metrics.boundary_f_counts(far, target, 2, tolerance=2))[1] < 0.6


def test_perimeter_ratio_is_larger_for_ragged_masks():
    target = np.zeros((60, 60), np.int64)
    target[10:50, 10:50] = 1
    ragged = target.copy()
    ragged[10:50:2, 10] = 0  # a comb along the left edge
    smooth, jagged = metrics.perimeter_counts(target, target, 2)[1], metrics.perimeter_counts(ragged, target, 2)[1]
    assert smooth[0] == smooth[1] and jagged[0] > jagged[1]
