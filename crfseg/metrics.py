"""Segmentation scores from one confusion matrix: the single implementation in crfseg.

Every score is computed from a ``(C, C)`` confusion matrix whose rows are the
ground-truth classes and whose columns are the predicted classes.

Rules shared by every score
---------------------------
* Pixels whose target (or prediction) equals ``ignore_index`` are left out.
* A class absent from both the ground truth and the prediction has NaN IoU and
  NaN Dice, and is left out of every mean (``mean_iou``, ``mean_dice``,
  ``frequency_weighted_iou``).  A class that is only predicted has IoU 0.
* ``mean_pixel_accuracy`` averages the per-class recall over the classes
  present in the ground truth.
* A matrix with no pixels at all gives NaN for every score; a matrix with
  NaN, inf or a negative entry is refused (``ValueError``).

The numpy path accumulates in one pass with a compiled kernel; torch tensors
are counted on their own device (CUDA included) with ``torch.bincount``.
CPU tensors share memory with numpy and use the compiled kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from crfseg import _metrics
from crfseg._validation import (
    check_array,
    check_finite,
    check_int,
    check_integer_dtype,
    check_memory,
    check_same_shape,
    is_tensor,
    shape_of,
    to_numpy,
)

__all__ = [
    "confusion_matrix",
    "pixel_accuracy",
    "mean_pixel_accuracy",
    "class_accuracy",
    "iou",
    "mean_iou",
    "frequency_weighted_iou",
    "dice",
    "mean_dice",
    "iou_score",
    "dice_score",
    "SegmentationMetrics",
]

_KERNEL_DTYPES = (np.uint8, np.uint16, np.int32, np.int64)
_INT64 = np.iinfo(np.int64)

ArrayLike = Any  # numpy array or torch tensor


def _check_num_classes(num_classes: Any) -> int:
    """``num_classes`` as an int whose (C, C) int64 matrix fits in memory."""
    num_classes = check_int("num_classes", num_classes, low=1)
    check_memory("num_classes", num_classes, 8 * num_classes**2, "a (C, C) int64 matrix")
    return num_classes


def _check_ignore_index(ignore_index: Any) -> int:
    """``ignore_index`` as an int within int64, the range of every label dtype counted."""
    return check_int("ignore_index", ignore_index, low=int(_INT64.min), high=int(_INT64.max))


def _as_kernel_labels(name: str, x: np.ndarray) -> np.ndarray:
    """Flatten labels to a contiguous 1-D array of a dtype the kernel handles."""
    if not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    elif x.dtype.type not in _KERNEL_DTYPES:
        if x.dtype.itemsize <= 2 and x.dtype.kind == "i":
            x = x.astype(np.int32)
        else:
            if x.dtype == np.uint64 and x.size and int(x.max()) > _INT64.max:
                raise ValueError(
                    f"{name} holds label {int(x.max())}, beyond the int64 range of class labels"
                )
            x = x.astype(np.int64)
    return np.ascontiguousarray(x).reshape(-1)


def _raise_bad_label(name: str, value: int, flat_index: int, shape: tuple[int, ...],
                     num_classes: int, ignore_index: int) -> None:
    position = tuple(int(i) for i in np.unravel_index(flat_index, shape)) if shape else ()
    raise ValueError(
        f"{name} contains label {value} at index {position}, outside [0, {num_classes}) "
        f"and not ignore_index={ignore_index}; check num_classes or the label encoding"
    )


def _confusion_numpy(pred: np.ndarray, target: np.ndarray, num_classes: int,
                     ignore_index: int) -> np.ndarray:
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    p = _as_kernel_labels("pred", pred)
    t = _as_kernel_labels("target", target)
    status, bad = _metrics.accumulate_confusion(p, t, num_classes, ignore_index, out)
    if status == 1:
        _raise_bad_label("pred", int(p[bad]), bad, pred.shape, num_classes, ignore_index)
    if status == 2:
        _raise_bad_label("target", int(t[bad]), bad, target.shape, num_classes, ignore_index)
    return out


def _first_bad_label(name: str, x: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    bad = ((x < 0) | (x >= num_classes)) & (x != ignore_index)
    if bool(bad.any()):
        flat = int(torch.nonzero(bad.reshape(-1))[0, 0])
        _raise_bad_label(name, int(x.reshape(-1)[flat]), flat, shape_of(x), num_classes,
                         ignore_index)


def _confusion_torch(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int) -> torch.Tensor:
    if pred.device.type == "cpu" and target.device.type == "cpu":
        return torch.from_numpy(
            _confusion_numpy(pred.numpy(), target.numpy(), num_classes, ignore_index))
    return _confusion_bincount(pred, target, num_classes, ignore_index)


def _confusion_bincount(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                        ignore_index: int) -> torch.Tensor:
    """Device-side counting (CUDA and other accelerators): no host copy of the labels."""
    p = pred.reshape(-1).long()
    t = target.reshape(-1).long()
    _first_bad_label("target", target, num_classes, ignore_index)
    _first_bad_label("pred", pred, num_classes, ignore_index)
    keep = (t != ignore_index) & (p != ignore_index)
    counts = torch.bincount(t[keep] * num_classes + p[keep], minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def confusion_matrix(pred: ArrayLike, target: ArrayLike, num_classes: int,
                     ignore_index: int = 255) -> ArrayLike:
    """Count (ground truth, prediction) pairs over every pixel.

    Parameters
    ----------
    pred : (...) integer ndarray or Tensor
        Predicted labels, any shape (``(H, W)``, ``(N, H, W)``, …), any
        integer or bool dtype in either byte order, any strides.
    target : (...) integer ndarray or Tensor
        Ground-truth labels, same shape as ``pred``.
    num_classes : int
        Number of classes ``C``; valid labels are ``0 … C-1``.  The ``(C, C)``
        int64 matrix must fit in the memory available.
    ignore_index : int, default 255
        Pixels where the target or the prediction equals this value are left out.
        Within the int64 range.

    Returns
    -------
    matrix : (C, C) int64 ndarray or Tensor
        ``matrix[i, j]`` counts pixels of ground-truth class ``i`` predicted as
        ``j``.  A tensor (on the inputs' device) for tensor inputs, else an ndarray.

    Raises
    ------
    ValueError
        If the shapes differ, a label outside ``[0, C)`` other than
        ``ignore_index`` occurs (the message gives the value and its index),
        ``ignore_index`` is beyond int64 or the matrix would not fit in memory.
    TypeError
        If an input is not an integer array, or numpy and torch are mixed.

    Examples
    --------
    >>> import numpy as np
    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), num_classes=2)
    array([[1, 1],
           [0, 1]])
    """
    check_array("pred", pred)
    check_array("target", target)
    if is_tensor(pred) != is_tensor(target):
        raise TypeError(
            "pred and target must both be numpy arrays or both torch tensors, got "
            f"{type(pred).__name__} and {type(target).__name__}"
        )
    num_classes = _check_num_classes(num_classes)
    ignore_index = _check_ignore_index(ignore_index)
    check_integer_dtype("pred", pred)
    check_integer_dtype("target", target)
    check_same_shape("pred", pred, "target", target)
    if is_tensor(pred):
        if pred.device != target.device:
            raise ValueError(
                f"pred and target must be on the same device, got {pred.device} and {target.device}"
            )
        return _confusion_torch(pred.detach(), target.detach(), num_classes, ignore_index)
    return _confusion_numpy(np.asarray(pred), np.asarray(target), num_classes, ignore_index)


def _matrix(matrix: ArrayLike) -> np.ndarray:
    """Validate a confusion matrix and return it as a float64 ndarray."""
    check_array("matrix", matrix)
    m = to_numpy(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be a square (C, C) confusion matrix, got shape {m.shape}")
    if m.dtype.kind not in "iuf":
        raise TypeError(f"matrix must hold counts, got dtype {m.dtype}")
    check_finite("matrix", m)
    if m.size and m.min() < 0:
        raise ValueError("matrix must hold non-negative counts, got a negative entry")
    return m.astype(np.float64)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


def pixel_accuracy(matrix: ArrayLike) -> float:
    """Fraction of counted pixels whose prediction is right.

    Parameters
    ----------
    matrix : (C, C) array
        Confusion matrix (rows ground truth, columns prediction).

    Returns
    -------
    float
        ``trace / total``; NaN when the matrix counts no pixel.

    Examples
    --------
    >>> pixel_accuracy(np.array([[3, 1], [0, 4]]))
    0.875
    """
    m = _matrix(matrix)
    total = m.sum()
    return float(np.trace(m) / total) if total > 0 else float("nan")


def class_accuracy(matrix: ArrayLike) -> np.ndarray:
    """Per-class recall ``TP / (TP + FN)``.

    Parameters
    ----------
    matrix : (C, C) array
        Confusion matrix (rows ground truth, columns prediction).

    Returns
    -------
    (C,) float64 ndarray
        NaN for classes absent from the ground truth.

    Examples
    --------
    >>> class_accuracy(np.array([[3, 1], [0, 4]]))
    array([0.75, 1.  ])
    """
    m = _matrix(matrix)
    return _divide(np.diag(m), m.sum(axis=1))


def mean_pixel_accuracy(matrix: ArrayLike) -> float:
    """Mean of the per-class recall over the classes present in the ground truth.

    Parameters
    ----------
    matrix : (C, C) array
        Confusion matrix (rows ground truth, columns prediction).

    Returns
    -------
    float
        NaN when no class is present in the ground truth.

    Examples
    --------
    >>> mean_pixel_accuracy(np.array([[3, 1], [0, 4]]))
    0.875
    """
    return _nanmean(class_accuracy(matrix))


def iou(matrix: ArrayLike) -> np.ndarray:
    """Per-class intersection over union ``TP / (TP + FP + FN)``.

    Parameters
    ----------
    matrix : (C, C) array
        Confusion matrix (rows ground truth, columns prediction).

    Returns
    -------
    (C,) float64 ndarray
        NaN for a class absent from both ground truth and prediction; 0 for a
        class that is only predicted (or only in the ground truth).

    Examples
    --------
    >>> iou(np.array([[3, 1, 0], [0, 4, 0], [0, 0, 0]]))
    array([0.75, 0.8 ,  nan])
    """
    m = _matrix(matrix)
    tp = np.diag(m)
    return _divide(tp, m.sum(axis=0) + m.sum(axis=1) - tp)


def mean_iou(matrix: ArrayLike) -> float:
    """Mean IoU over the classes present in the ground truth or the prediction.

    Parameters
    ----------
    matrix : (C, C) array
        Confusion matrix (rows ground truth, columns prediction).

    Returns
    -------
    float
        NaN when the matrix counts no pixel.

    Examples
    --------
    >>> mean_iou(np.array([[3, 1, 0], [0, 4, 0], [0, 0, 0]]))
    0.775
    """
    return _nanmean(iou(matrix))


def frequency_weighted_iou(matrix: ArrayLike) -> float:
    """IoU averaged with weights equal to each class's share of ground-truth pixels.

    Parameters
    ----------
    matrix : (C, C) array
        Confusion matrix (rows ground truth, columns prediction).

    Returns
    -------
    float
        ``Σ_c (n_c / n) · IoU_c`` over classes present in the ground truth;
        NaN when the ground truth is empty.

    Examples
    --------
    >>> round(frequency_weighted_iou(np.array([[3, 1], [0, 4]])), 4)
    0.775
    """
    m = _matrix(matrix)
    gt = m.sum(axis=1)
    total = gt.sum()
    if total == 0:
        return float("nan")
    per_class = iou(m)
    present = gt > 0
    return float(np.sum(gt[present] / total * per_class[present]))


def dice(matrix: ArrayLike) -> np.ndarray:
    """Per-class Dice (F1) ``2 TP / (2 TP + FP + FN)``.

    Parameters
    ----------
    matrix : (C, C) array
        Confusion matrix (rows ground truth, columns prediction).

    Returns
    -------
    (C,) float64 ndarray
        NaN for a class absent from both ground truth and prediction.

    Examples
    --------
    >>> dice(np.array([[3, 1], [0, 4]]))
    array([0.85714286, 0.88888889])
    """
    m = _matrix(matrix)
    return _divide(2.0 * np.diag(m), m.sum(axis=0) + m.sum(axis=1))


def mean_dice(matrix: ArrayLike) -> float:
    """Mean Dice over the classes present in the ground truth or the prediction.

    Parameters
    ----------
    matrix : (C, C) array
        Confusion matrix (rows ground truth, columns prediction).

    Returns
    -------
    float
        NaN when the matrix counts no pixel.

    Examples
    --------
    >>> round(mean_dice(np.array([[3, 1], [0, 4]])), 4)
    0.873
    """
    return _nanmean(dice(matrix))


def iou_score(pred: ArrayLike, target: ArrayLike, num_classes: int,
              ignore_index: int = 255) -> float:
    """Mean IoU of a prediction: ``mean_iou(confusion_matrix(pred, target, ...))``.

    Parameters
    ----------
    pred, target : (...) integer ndarray or Tensor
        Labels of the same shape.
    num_classes : int
        Number of classes.
    ignore_index : int, default 255
        Label left out of the count.

    Returns
    -------
    float
        Mean IoU over classes present in ``pred`` or ``target``.

    Examples
    --------
    >>> iou_score(np.array([0, 1, 1]), np.array([0, 1, 0]), num_classes=2)
    0.5
    """
    return mean_iou(confusion_matrix(pred, target, num_classes, ignore_index))


def dice_score(pred: ArrayLike, target: ArrayLike, num_classes: int,
               ignore_index: int = 255) -> float:
    """Mean Dice of a prediction: ``mean_dice(confusion_matrix(pred, target, ...))``.

    Parameters
    ----------
    pred, target : (...) integer ndarray or Tensor
        Labels of the same shape.
    num_classes : int
        Number of classes.
    ignore_index : int, default 255
        Label left out of the count.

    Returns
    -------
    float
        Mean Dice over classes present in ``pred`` or ``target``.

    Examples
    --------
    >>> round(dice_score(np.array([0, 1, 1]), np.array([0, 1, 0]), num_classes=2), 4)
    0.6667
    """
    return mean_dice(confusion_matrix(pred, target, num_classes, ignore_index))


class SegmentationMetrics:
    """Accumulate a confusion matrix over many images and report every score.

    Parameters
    ----------
    num_classes : int
        Number of classes ``C``.
    ignore_index : int, default 255
        Label left out of the count.
    class_names : sequence of str, optional
        ``C`` names used by :meth:`summary`; defaults to ``class 0`` …

    Examples
    --------
    >>> m = SegmentationMetrics(2)
    >>> m.update(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]))
    >>> round(m.compute()["mean_iou"], 4)
    0.5833
    """

    def __init__(self, num_classes: int, ignore_index: int = 255,
                 class_names: Sequence[str] | None = None) -> None:
        self.num_classes = _check_num_classes(num_classes)
        self.ignore_index = _check_ignore_index(ignore_index)
        if isinstance(class_names, (str, bytes)) or not (
                class_names is None or isinstance(class_names, (Sequence, np.ndarray))):
            raise TypeError(
                f"class_names must be a sequence of num_classes={self.num_classes} names, "
                f"got {type(class_names).__name__} {class_names!r}"
            )
        if class_names is None:
            class_names = [f"class {i}" for i in range(self.num_classes)]
        class_names = [str(n) for n in class_names]
        if len(class_names) != self.num_classes:
            raise ValueError(
                f"class_names must have num_classes={self.num_classes} entries, "
                f"got {len(class_names)}"
            )
        self.class_names = class_names
        self._numpy = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self._tensor: torch.Tensor | None = None  # device-side counts, added lazily

    @property
    def matrix(self) -> np.ndarray:
        """The accumulated ``(C, C)`` int64 confusion matrix (a host copy)."""
        total = self._numpy.copy()
        if self._tensor is not None:
            total += self._tensor.cpu().numpy()
        return total

    def update(self, pred: ArrayLike, target: ArrayLike) -> None:
        """Add a batch of labels (any shape, numpy or torch) to the matrix.

        Parameters
        ----------
        pred, target : (...) integer ndarray or Tensor
            Labels of the same shape; tensors are counted on their device
            without a host copy.
        """
        m = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        if is_tensor(m) and m.device.type != "cpu":
            self._tensor = m if self._tensor is None else self._tensor + m.to(self._tensor.device)
        else:
            self._numpy += np.asarray(m)

    def reset(self) -> None:
        """Forget every counted pixel."""
        self._numpy[:] = 0
        self._tensor = None

    def merge(self, other: SegmentationMetrics) -> SegmentationMetrics:
        """Add the counts of another accumulator (same classes); returns ``self``."""
        if not isinstance(other, SegmentationMetrics):
            raise TypeError(f"other must be a SegmentationMetrics, got {type(other).__name__}")
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge metrics with num_classes={other.num_classes} into "
                f"num_classes={self.num_classes}"
            )
        self._numpy += other.matrix
        return self

    def sync(self) -> SegmentationMetrics:
        """Sum the matrix over all processes of the default ``torch.distributed`` group.

        Does nothing when no process group is initialised.  Every process must
        call it (it is a collective operation).  Returns ``self``.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        counts = torch.as_tensor(self.matrix, device=device)
        dist.all_reduce(counts, op=dist.ReduceOp.SUM)
        self._numpy = counts.cpu().numpy().astype(np.int64)
        self._tensor = None
        return self

    def compute(self) -> dict[str, Any]:
        """Every score of the accumulated matrix.

        Returns
        -------
        dict
            ``pixel_accuracy``, ``mean_pixel_accuracy``, ``mean_iou``,
            ``frequency_weighted_iou``, ``mean_dice`` (floats); ``iou``,
            ``dice``, ``class_accuracy`` (``(C,)`` arrays, NaN for absent
            classes); ``confusion_matrix`` (``(C, C)`` int64).
        """
        m = self.matrix
        return {
            "pixel_accuracy": pixel_accuracy(m),
            "mean_pixel_accuracy": mean_pixel_accuracy(m),
            "mean_iou": mean_iou(m),
            "frequency_weighted_iou": frequency_weighted_iou(m),
            "mean_dice": mean_dice(m),
            "iou": iou(m),
            "dice": dice(m),
            "class_accuracy": class_accuracy(m),
            "confusion_matrix": m,
        }

    def summary(self) -> str:
        """A per-class table (IoU, Dice, accuracy in percent) followed by the means."""
        scores = self.compute()
        width = max(12, *(len(n) for n in self.class_names))
        lines = [f"{'class':<{width}}  {'IoU':>7}  {'Dice':>7}  {'Acc':>7}  {'pixels':>10}"]
        gt = scores["confusion_matrix"].sum(axis=1)

        def pct(v: float) -> str:
            return "      -" if np.isnan(v) else f"{100 * v:7.2f}"

        for i, name in enumerate(self.class_names):
            lines.append(
                f"{name:<{width}}  {pct(scores['iou'][i])}  {pct(scores['dice'][i])}  "
                f"{pct(scores['class_accuracy'][i])}  {int(gt[i]):>10d}"
            )
        lines.append(
            f"mIoU {pct(scores['mean_iou']).strip()}  mDice {pct(scores['mean_dice']).strip()}  "
            f"pixel acc {pct(scores['pixel_accuracy']).strip()}  "
            f"mean acc {pct(scores['mean_pixel_accuracy']).strip()}  "
            f"fwIoU {pct(scores['frequency_weighted_iou']).strip()}"
        )
        return "\n".join(lines)

    __str__ = summary
