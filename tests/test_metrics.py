"""crfseg.metrics: hand-computed values, the absent-class rule, every input kind and error."""

import math

import numpy as np
import pytest
import torch

from crfseg import metrics
from crfseg.metrics import (
    SegmentationMetrics,
    class_accuracy,
    confusion_matrix,
    dice,
    dice_score,
    frequency_weighted_iou,
    iou,
    iou_score,
    mean_dice,
    mean_iou,
    mean_pixel_accuracy,
    pixel_accuracy,
)

# target / pred of a 3x3 image with 4 classes; class 3 is absent from both,
# class 2 is only predicted, one pixel is ignored.
TARGET = np.array([[0, 0, 1], [0, 1, 1], [255, 1, 0]])
PRED = np.array([[0, 1, 1], [0, 1, 2], [0, 1, 0]])
# counted pixels: (0,0)x3 correct, (0->1)x1, (1,1)x3 correct, (1->2)x1
EXPECTED = np.array([[3, 1, 0, 0], [0, 3, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_confusion_matrix_hand_computed():
    m = confusion_matrix(PRED, TARGET, 4)
    assert m.dtype == np.int64
    np.testing.assert_array_equal(m, EXPECTED)


def test_scores_hand_computed():
    m = EXPECTED
    assert pixel_accuracy(m) == pytest.approx(6 / 8)
    np.testing.assert_allclose(class_accuracy(m), [3 / 4, 3 / 4, np.nan, np.nan])
    assert mean_pixel_accuracy(m) == pytest.approx(3 / 4)
    # IoU: class0 3/(4+3-3)=3/4, class1 3/(4+4-3)=3/5, class2 only predicted -> 0, class3 NaN
    np.testing.assert_allclose(iou(m), [3 / 4, 3 / 5, 0.0, np.nan])
    assert mean_iou(m) == pytest.approx((3 / 4 + 3 / 5 + 0) / 3)
    np.testing.assert_allclose(dice(m), [6 / 7, 6 / 8, 0.0, np.nan])
    assert mean_dice(m) == pytest.approx((6 / 7 + 6 / 8 + 0) / 3)
    assert frequency_weighted_iou(m) == pytest.approx(0.5 * 3 / 4 + 0.5 * 3 / 5)
    assert iou_score(PRED, TARGET, 4) == pytest.approx(mean_iou(m))
    assert dice_score(PRED, TARGET, 4) == pytest.approx(mean_dice(m))


def test_class_absent_from_both_is_nan_and_left_out():
    target = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 1, 1])
    per_class = iou(confusion_matrix(pred, target, 5))
    assert per_class[:2].tolist() == [1.0, 1.0]
    assert np.isnan(per_class[2:]).all()
    assert iou_score(pred, target, 5) == 1.0
    assert dice_score(pred, target, 5) == 1.0


def test_class_only_predicted_counts_as_zero():
    target = np.array([0, 0, 0, 0])
    pred = np.array([0, 0, 0, 1])
    assert iou(confusion_matrix(pred, target, 2)).tolist() == [0.75, 0.0]
    assert iou_score(pred, target, 2) == pytest.approx(0.375)
    # mean pixel accuracy only averages classes present in the ground truth
    assert mean_pixel_accuracy(confusion_matrix(pred, target, 2)) == pytest.approx(0.75)


def test_all_ignored_image_gives_nan_everywhere():
    target = np.full((4, 4), 255)
    pred = np.zeros((4, 4), dtype=np.int64)
    m = confusion_matrix(pred, target, 3)
    assert m.sum() == 0
    for score in (pixel_accuracy, mean_pixel_accuracy, mean_iou, mean_dice,
                  frequency_weighted_iou):
        assert math.isnan(score(m))


def test_prediction_equal_to_ignore_index_is_left_out():
    m = confusion_matrix(np.array([255, 0]), np.array([1, 0]), 2)
    np.testing.assert_array_equal(m, [[1, 0], [0, 0]])


def test_single_pixel_objects():
    target = np.zeros((5, 5), dtype=np.uint8)
    target[2, 2] = 1
    pred = np.zeros((5, 5), dtype=np.uint8)
    pred[2, 3] = 1
    per_class = iou(confusion_matrix(pred, target, 2))
    np.testing.assert_allclose(per_class, [23 / 25, 0.0])
    pred[2, 2] = 1
    pred[2, 3] = 0
    assert iou_score(pred, target, 2) == 1.0


@pytest.mark.parametrize("pred_dtype", [np.uint8, np.int8, np.int16, np.uint16, np.int32,
                                        np.int64, np.uint32, np.uint64, np.bool_])
@pytest.mark.parametrize("target_dtype", [np.uint8, np.int64])
def test_every_integer_dtype_matches_bincount(rng, pred_dtype, target_dtype):
    classes = 2 if pred_dtype == np.bool_ else 6
    target = rng.integers(0, classes, (3, 7, 9)).astype(target_dtype)
    pred = rng.integers(0, classes, (3, 7, 9)).astype(pred_dtype)
    expected = np.bincount(target.astype(np.int64).ravel() * classes
                           + pred.astype(np.int64).ravel(), minlength=classes**2)
    np.testing.assert_array_equal(confusion_matrix(pred, target, classes),
                                  expected.reshape(classes, classes))


@pytest.mark.parametrize("dtype", [">i2", ">i4", ">i8", ">u2", ">u8", "<i4"])
def test_non_native_byte_order_is_converted(rng, dtype):
    target = rng.integers(0, 5, (6, 7))
    pred = rng.integers(0, 5, (6, 7))
    expected = confusion_matrix(pred, target, 5)
    np.testing.assert_array_equal(
        confusion_matrix(pred.astype(dtype), target.astype(dtype), 5), expected)
    with pytest.raises(ValueError, match=r"target contains label 5 at index \(1, 2\)"):
        bad = target.astype(dtype)
        bad[1, 2] = 5
        confusion_matrix(pred.astype(dtype), bad, 5)


def test_huge_ignore_index_and_labels():
    labels = np.array([0, 1, 2**62])
    matrix = confusion_matrix(labels, labels, 2, ignore_index=2**62)
    np.testing.assert_array_equal(matrix, [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="pred holds label 18446744073709551615, beyond the int64"):
        confusion_matrix(np.array([2**64 - 1], np.uint64), np.zeros(1, np.uint64), 2)
    with pytest.raises(ValueError, match=f"ignore_index must be <= {2**63 - 1}, got {2**63}"):
        confusion_matrix(labels, labels, 2, ignore_index=2**63)
    with pytest.raises(ValueError, match=r"num_classes=4294967296 needs a \(C, C\) int64 matrix"):
        confusion_matrix(labels, labels, 2**32)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("score", [iou, mean_iou, dice, mean_dice, pixel_accuracy,
                                   class_accuracy, frequency_weighted_iou])
def test_non_finite_matrix_is_refused(score, bad):
    matrix = np.array([[3.0, 1.0], [0.0, 4.0]])
    matrix[0, 1] = bad
    with pytest.raises(ValueError, match=r"matrix contains 1 non-finite value\(s\)"):
        score(matrix)


def test_non_contiguous_inputs(rng):
    target = rng.integers(0, 4, (20, 30))
    pred = rng.integers(0, 4, (30, 20)).T
    expected = confusion_matrix(np.ascontiguousarray(pred), target, 4)
    np.testing.assert_array_equal(confusion_matrix(pred, target, 4), expected)


def test_torch_inputs_match_numpy(rng, device):
    target = rng.integers(0, 5, (2, 16, 16))
    target[0, :3] = 255
    pred = rng.integers(0, 5, (2, 16, 16))
    expected = confusion_matrix(pred, target, 5)
    got = confusion_matrix(torch.as_tensor(pred, device=device),
                           torch.as_tensor(target, device=device).to(torch.uint8), 5)
    assert isinstance(got, torch.Tensor)
    assert got.device.type == device.type
    assert got.dtype == torch.int64
    np.testing.assert_array_equal(got.cpu().numpy(), expected)


def test_device_side_bincount_path_matches_kernel(rng):
    # the path used for CUDA tensors, exercised on CPU tensors
    target = rng.integers(0, 4, (6, 5))
    target[0, :2] = 255
    pred = rng.integers(0, 4, (6, 5))
    pred[3, 3] = 255
    got = metrics._confusion_bincount(torch.as_tensor(pred), torch.as_tensor(target), 4, 255)
    np.testing.assert_array_equal(got.numpy(), confusion_matrix(pred, target, 4))
    with pytest.raises(ValueError, match=r"pred contains label 4 at index \(1, 1\)"):
        pred[1, 1] = 4
        metrics._confusion_bincount(torch.as_tensor(pred), torch.as_tensor(target), 4, 255)


def test_out_of_range_label_names_value_and_position():
    with pytest.raises(ValueError, match=r"pred contains label 7 at index \(1, 2\)"):
        confusion_matrix(np.array([[0, 0, 0], [0, 0, 7]]), np.zeros((2, 3), int), 3)
    with pytest.raises(ValueError, match=r"target contains label -1 at index \(0,\)"):
        confusion_matrix(np.array([0, 1]), np.array([-1, 1]), 3)
    with pytest.raises(ValueError, match="target contains label 9"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([9, 1]), 3)


def test_errors():
    with pytest.raises(ValueError, match=r"same shape, got \(2,\) and \(3,\)"):
        confusion_matrix(np.zeros(2, int), np.zeros(3, int), 2)
    with pytest.raises(TypeError, match="pred must hold integer class labels"):
        confusion_matrix(np.zeros(2), np.zeros(2, int), 2)
    with pytest.raises(TypeError, match="target must hold integer"):
        confusion_matrix(torch.zeros(2, dtype=torch.long), torch.zeros(2), 2)
    with pytest.raises(TypeError, match="must both be numpy arrays or both torch tensors"):
        confusion_matrix(np.zeros(2, int), torch.zeros(2, dtype=torch.long), 2)
    with pytest.raises(TypeError, match="pred must be a numpy array or torch tensor"):
        confusion_matrix([0, 1], np.zeros(2, int), 2)
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        confusion_matrix(np.zeros(2, int), np.zeros(2, int), 0)
    with pytest.raises(ValueError, match="square"):
        mean_iou(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        mean_iou(-np.eye(2))
    with pytest.raises(TypeError, match="counts"):
        mean_iou(np.eye(2, dtype=complex))


def test_segmentation_metrics_accumulates_and_merges(rng):
    preds = [rng.integers(0, 3, (8, 8)) for _ in range(4)]
    targets = [rng.integers(0, 3, (8, 8)) for _ in range(4)]
    total = SegmentationMetrics(3, class_names=["a", "b", "c"])
    half_a, half_b = SegmentationMetrics(3), SegmentationMetrics(3)
    for i, (p, t) in enumerate(zip(preds, targets)):
        total.update(p, t)
        (half_a if i % 2 else half_b).update(torch.as_tensor(p), torch.as_tensor(t))
    expected = confusion_matrix(np.stack(preds), np.stack(targets), 3)
    np.testing.assert_array_equal(total.matrix, expected)
    np.testing.assert_array_equal(half_a.merge(half_b).matrix, expected)
    scores = total.compute()
    assert scores["mean_iou"] == pytest.approx(mean_iou(expected))
    assert scores["iou"].shape == (3,)
    assert set(scores) >= {"pixel_accuracy", "mean_pixel_accuracy", "mean_iou",
                           "frequency_weighted_iou", "mean_dice", "iou", "dice",
                           "class_accuracy", "confusion_matrix"}
    table = total.summary()
    assert "mIoU" in table and table.splitlines()[1].startswith("a")
    assert str(total) == table
    total.reset()
    assert total.matrix.sum() == 0
    assert total.sync() is total  # no process group: nothing to do


def test_segmentation_metrics_errors():
    with pytest.raises(ValueError, match="class_names must have num_classes=3 entries, got 2"):
        SegmentationMetrics(3, class_names=["a", "b"])
    with pytest.raises(TypeError, match="class_names must be a sequence of num_classes=3 names, "
                                        "got str 'abc'"):
        SegmentationMetrics(3, class_names="abc")
    with pytest.raises(TypeError, match="class_names must be a sequence .* got int"):
        SegmentationMetrics(3, class_names=3)
    assert SegmentationMetrics(2, class_names=("a", "b")).class_names == ["a", "b"]
    # a (2**31)^2 matrix would take 32 EiB: refused before the allocation, naming the argument
    with pytest.raises(ValueError, match=r"num_classes=2147483648 needs a \(C, C\) int64 matrix"):
        SegmentationMetrics(2**31)
    with pytest.raises(ValueError, match=f"ignore_index must be <= {2**63 - 1}, got {2**63}"):
        SegmentationMetrics(2, ignore_index=2**63)
    with pytest.raises(ValueError, match=f"ignore_index must be >= {-2**63}"):
        SegmentationMetrics(2, ignore_index=-2**63 - 1)
    with pytest.raises(ValueError, match="cannot merge metrics with num_classes=2"):
        SegmentationMetrics(3).merge(SegmentationMetrics(2))
    with pytest.raises(TypeError, match="other must be a SegmentationMetrics"):
        SegmentationMetrics(3).merge(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="num_classes must be an integer"):
        SegmentationMetrics(2.5)


def test_summary_marks_absent_classes():
    m = SegmentationMetrics(3)
    m.update(np.array([0, 1]), np.array([0, 1]))
    row = m.summary().splitlines()[3]
    assert row.split()[-4:] == ["-", "-", "-", "0"]
