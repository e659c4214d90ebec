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


def test_one_images_miou_counts_only_the_classes_it_shows_or_predicts():
    target = np.array([[0, 0, 1, 1]])
    assert metrics.image_miou(metrics.confusion_matrix(target, target, 7)) == 100.0  # five absent classes: no NaN
    pred = np.array([[0, 0, 1, 2]])  # class 1: 1/2, class 2 only predicted: 0, background: 1
    assert metrics.image_miou(metrics.confusion_matrix(pred, target, 7)) == pytest.approx(100 * (1 + 0.5 + 0) / 3)


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


def test_the_image_frame_is_not_a_border():
    target = np.ones((30, 30), np.int64)  # one class filling the image: no border inside the photo
    _, union = metrics.boundary_counts(target, target, 2)
    assert union[1] == 0
    counts = metrics.boundary_f_counts(target, target, 2)
    assert counts[1].tolist() == [0, 0, 0, 0]
    half = np.zeros((30, 30), np.int64)
    half[:, 15:] = 1  # one straight border, down the middle; the frame around it does not count
    _, union = metrics.boundary_counts(half, half, 2)
    d = metrics.boundary_distance(half.shape, 0.02)
    assert union[1] == 30 * d and union[0] == 30 * d
    assert metrics.boundary_f_counts(half, half, 2)[1].tolist() == [30, 30, 30, 30]
    assert metrics.perimeter(half == 1) == 30


@pytest.mark.parametrize("distance", [1, 3, 12])
def test_boundary_band_is_the_mask_minus_its_repeated_3x3_erosion(distance):
    from scipy import ndimage

    rng = np.random.default_rng(distance)
    mask = ndimage.gaussian_filter(rng.random((60, 80)), 3) > 0.5
    padded = np.pad(mask, distance, mode="edge")  # the definition: regions continue beyond the frame
    eroded = ndimage.binary_erosion(padded, structure=np.ones((3, 3), bool), iterations=distance)
    eroded = eroded[distance:-distance, distance:-distance]
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


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2).astype(np.int64)


def test_roughness_of_the_ground_truth_itself_is_one():
    target = _disk((120, 160), (60, 70), 40) + 2 * _disk((120, 160), (30, 130), 15)
    r = metrics.roughness_ratio(target, target, 3)
    assert r.tolist() == [1.0, 1.0, 1.0]


def test_roughness_does_not_depend_on_how_much_is_predicted():
    target = _disk((200, 200), (100, 100), 60)
    for radius in (25, 40, 80):  # a smaller or larger copy of the same smooth shape
        pred = _disk((200, 200), (100, 100), radius)
        assert metrics.roughness_ratio(pred, target, 2)[1] == pytest.approx(1.0, abs=0.08), radius


def test_a_saw_tooth_border_of_the_same_area_is_rougher():
    target = np.zeros((100, 100), np.int64)
    target[20:80, 20:80] = 1
    saw = np.zeros_like(target)
    saw[20:80, 20:80] = 1
    for row in range(20, 80):  # teeth 4 px deep along left and right sides, area kept
        tooth = 4 if row % 4 < 2 else 0
        saw[row, 20:20 + tooth] = 0
        saw[row, 80:80 + tooth] = 1
    assert saw.sum() == target.sum()
    rough = metrics.roughness_ratio(saw, target, 2)[1]
    assert rough > 1.5
    fragments = target.copy()
    fragments[20:80:6, 20:80] = 0  # the same region cut into strips: fragmented
    assert metrics.roughness_ratio(fragments, target, 2)[1] > 1.5


def test_roughness_is_nan_where_a_side_lacks_the_class_and_averages_geometrically():
    target = np.zeros((40, 40), np.int64)
    target[10:30, 10:30] = 1
    empty = np.zeros_like(target)
    r = metrics.roughness_ratio(empty, target, 3)
    assert np.isnan(r[1]) and np.isnan(r[2])  # class 1 not predicted, class 2 in neither
    r = metrics.roughness_ratio(np.ones_like(target), target, 2)  # the prediction fills the photo: no border to judge
    assert np.isnan(r).all()
    logs, counts = np.log(np.array([2.0, 1.0])) + np.log(np.array([0.5, 1.0])), np.array([2, 2])
    assert metrics.geometric_mean(logs, counts).tolist() == pytest.approx([1.0, 1.0])
    assert np.isnan(metrics.geometric_mean(np.zeros(1), np.zeros(1, np.int64))[0])
