"""Segmentation losses as stateless functions of ``logits`` and ``target``.

Every loss takes ``logits (N, C, H, W)`` (raw network output, any float dtype;
float16/bfloat16 are computed in float32) and ``target (N, H, W)`` integer
class labels in ``[0, C)`` or ``ignore_index`` (default 255).  Ignored pixels
contribute nothing to the value and receive exactly zero gradient; a fully
ignored batch gives a loss of 0 with zero gradient, never NaN.  Everything
runs on the device of ``logits``; the only host synchronisations are the input
checks (and the distance transforms of the boundary-aware losses, which run on
the host with SciPy unless the maps are passed in).

Region losses (Dice, Jaccard, Tversky, ...) score each class and average over
the classes present in the target: a class absent from the target is left out
of the mean by default (``include_absent=True`` keeps it, so that predicting
it is penalised), never scored as a perfect 1 or a total failure 0 by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from crfseg._validation import (
    check_array,
    check_bool,
    check_choice,
    check_int,
    check_integer_dtype,
    check_ndim,
    is_tensor,
)
from crfseg.losses._common import (
    binary_ce_sum,
    check_class_vector,
    check_fraction,
    check_label_range,
    check_logits_target,
    check_maps,
    check_nonnegative,
    check_positive,
    check_reduction,
    masked_probs,
    match_classes,
    one_hot,
    reduce_classes,
    reduce_pixels,
    region_sums,
    safe_div,
    safe_pow,
    scored_classes,
)
from crfseg.losses._dense_crf import (
    DENSE_CRF_SCALE,
    check_dense_crf_inputs,
    dense_crf_energy,
)
from crfseg.losses._distance import (
    host_labels,
    inverted_distance_maps,
    inverted_maps_from_labels,
    signed_distance_maps,
    signed_maps_from_labels,
    unsigned_distance_maps,
)

__all__ = [
    "cross_entropy",
    "class_weights_from_labels",
    "focal_loss",
    "distance_penalized_ce",
    "dice_loss",
    "generalized_dice_loss",
    "ce_dice_loss",
    "jaccard_loss",
    "tversky_loss",
    "focal_tversky_loss",
    "lovasz_softmax",
    "boundary_loss",
    "hausdorff_dt_loss",
    "combo_loss",
    "exp_log_loss",
    "dense_crf_loss",
    "DENSE_CRF_SCALE",
    "signed_distance_maps",
    "unsigned_distance_maps",
    "inverted_distance_maps",
]

WEIGHT_METHODS = ("inverse", "median", "inverse_sqrt")


# --------------------------------------------------------------------------- pixel-wise terms


def _nll(logits: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
    """``-log p_t`` per pixel ``(N, H, W)``, 0 at ignored pixels."""
    # cross_entropy(reduction="none") has a large fixed cost on small CPU inputs; this does not
    nll = F.nll_loss(torch.log_softmax(logits, dim=1), labels, reduction="none")
    return nll.masked_fill(~valid, 0.0)


def _pixel_class_weights(weights: Tensor | None, labels: Tensor, valid: Tensor,
                         like: Tensor) -> Tensor:
    """Weight of each pixel's true class ``(N, H, W)``; 1 without weights, 0 where ignored."""
    if weights is None:
        return valid.to(like.dtype)
    return weights[labels].masked_fill(~valid, 0.0)


def _weighted_ce(logits: Tensor, labels: Tensor, valid: Tensor, weights: Tensor | None,
                 reduction: str, *, penalty: Tensor | None = None, target: Tensor | None = None,
                 ignore_index: int = -100) -> Tensor:
    """Class-weighted (and optionally pixel-penalised) CE, normalised by the class weights.

    ``target`` (the validated target, ignored pixels marked ``ignore_index``)
    spares a masked copy of the labels on the fused path.
    """
    if penalty is None and reduction != "none":
        # torch's fused kernel for the sum; only the normalisation is ours (0 when empty)
        if target is None:
            target, ignore_index = labels.masked_fill(~valid, -100), -100
        total = F.cross_entropy(logits, target.long(), weight=weights,
                                ignore_index=ignore_index, reduction="sum")
        if reduction == "sum":
            return total
        norm = valid.sum() if weights is None else weights[labels].masked_fill(~valid, 0).sum()
        return safe_div(total, norm.to(total.dtype))
    pixel_weights = _pixel_class_weights(weights, labels, valid, logits)
    loss = _nll(logits, labels, valid) * pixel_weights
    if penalty is not None:
        loss = loss * penalty
    return reduce_pixels(loss, pixel_weights, reduction)


def _weights_from_counts(counts: Tensor, method: str) -> Tensor:
    """Inverse (``total / (K n_c)``) or inverse-sqrt (``sqrt(total / n_c)``) class weights.

    ``K`` is the number of classes with pixels; a class without pixels gets 0.
    """
    present = counts > 0
    ratio = safe_div(counts.sum(), counts) * present
    if method == "inverse_sqrt":
        return ratio.sqrt()
    return ratio / present.sum().clamp_min(1)


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    class_weights: Sequence[float] | np.ndarray | Tensor | None = None,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Pixel-wise softmax cross-entropy with optional class weights.

    ``loss_i = -w_{t_i} log softmax(logits_i)_{t_i}``.  With ``"mean"`` the sum
    is divided by the sum of the weights of the valid pixels (the convention of
    :func:`torch.nn.functional.cross_entropy`, which this matches wherever that
    is defined); a fully ignored batch gives 0 instead of NaN.

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    class_weights : (C,) sequence, ndarray or Tensor, optional
        Non-negative weight of each class, e.g. from :func:`class_weights_from_labels`.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns the weighted loss of each pixel, ``(N, H, W)``, 0 where ignored.

    Returns
    -------
    Tensor
        Scalar, or ``(N, H, W)`` with ``reduction="none"``.

    References
    ----------
    J. Long, E. Shelhamer, T. Darrell, "Fully convolutional networks for
    semantic segmentation", CVPR 2015.

    Examples
    --------
    >>> logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]])  # N=1, C=2, 1x2
    >>> target = torch.tensor([[[0, 255]]])
    >>> round(cross_entropy(logits, target).item(), 4)  # log(1 + e^-2)
    0.1269
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    reduction = check_reduction(reduction)
    weights = match_classes("class_weights", check_class_vector("class_weights", class_weights),
                            logits.shape[1], logits)
    return _weighted_ce(logits, labels, valid, weights, reduction, target=target,
                        ignore_index=ignore_index)


def _label_images(labels: Any) -> list[Any]:
    """Split labels into 2-D images: one array, a batch, or a sequence of arrays."""
    if isinstance(labels, (list, tuple)):
        images: list[Any] = []
        for item in labels:
            check_array("labels", item)
            check_ndim("labels", item, (2, 3), "(H, W) or (N, H, W) labels")
            images.extend([item] if item.ndim == 2 else list(item))
        return images
    check_array("labels", labels)
    check_ndim("labels", labels, (2, 3), "(H, W) or (N, H, W) labels, or a list of them")
    return [labels] if labels.ndim == 2 else list(labels)


def class_weights_from_labels(
    labels: Any,
    num_classes: int,
    *,
    method: str = "median",
    ignore_index: int = 255,
) -> Tensor:
    """Class weights from the label histogram of a set of images.

    With ``n_c`` the number of pixels of class ``c`` and ``T = sum_c n_c``:

    * ``"inverse"``: ``w_c = T / (K n_c)``, ``K`` the number of classes with
      pixels, so that the mean weight per pixel is 1;
    * ``"median"`` (median-frequency balancing, Eigen & Fergus 2015):
      ``w_c = median_k f_k / f_c`` with ``f_c = n_c / (pixels of the images
      in which c appears)``, the median over the classes that appear;
    * ``"inverse_sqrt"``: ``w_c = sqrt(T / n_c)``, the label weights of
      :func:`exp_log_loss` (Wong et al. 2018).

    A class with no pixel gets weight 0.  Ignored pixels are not counted.

    Parameters
    ----------
    labels : (H, W) or (N, H, W) integer ndarray or Tensor, or a list of them
        Label images (a list may mix sizes).
    num_classes : int
        Number of classes ``C``.
    method : {"median", "inverse", "inverse_sqrt"}, default "median"
        Weighting scheme.
    ignore_index : int, default 255
        Label of pixels left out.

    Returns
    -------
    (C,) float64 Tensor
        On the CPU; pass it as ``class_weights``.

    References
    ----------
    D. Eigen and R. Fergus, "Predicting depth, surface normals and semantic
    labels with a common multi-scale convolutional architecture", ICCV 2015.

    Examples
    --------
    >>> labels = np.array([[0, 0, 0, 1]])
    >>> class_weights_from_labels(labels, 2, method="inverse")
    tensor([0.6667, 2.0000], dtype=torch.float64)
    """
    num_classes = check_int("num_classes", num_classes, low=1)
    check_choice("method", method, WEIGHT_METHODS)
    ignore_index = check_int("ignore_index", ignore_index)
    counts = []
    for image in _label_images(labels):
        check_integer_dtype("labels", image)
        tensor = image.detach().cpu() if is_tensor(image) else torch.as_tensor(image)
        valid = tensor != ignore_index
        check_label_range("labels", tensor, valid, num_classes, ignore_index)
        counts.append(torch.bincount(tensor[valid].long().flatten(), minlength=num_classes))
    per_image = torch.stack(counts).to(torch.float64)  # (images, C)
    total = per_image.sum(0)
    if method != "median":
        return _weights_from_counts(total, method)
    present = total > 0
    seen_in = ((per_image > 0) * per_image.sum(1, keepdim=True)).sum(0)
    frequency = safe_div(total, seen_in)
    if not bool(present.any()):
        return torch.zeros(num_classes, dtype=torch.float64)
    return safe_div(frequency[present].quantile(0.5) * present, frequency)


def _check_gamma(gamma: Any, *, allow_zero: bool = False) -> float:
    return check_nonnegative("gamma", gamma) if allow_zero else check_positive("gamma", gamma)


def focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: Sequence[float] | np.ndarray | Tensor | None = None,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Softmax focal loss: ``-alpha_t (1 - p_t)^gamma log p_t`` per pixel.

    ``p_t`` is the softmax probability of the true class, computed over all
    ``C`` classes (not ``C`` independent sigmoids).  With ``"mean"`` the sum is
    divided by the number of valid pixels (``alpha`` does not normalise, as in
    Lin et al.).  ``gamma=0`` and no ``alpha`` give the cross-entropy.  For
    the binary ``alpha`` of the paper with ``C = 2`` pass ``alpha=(1 - a, a)``:
    the result then equals :func:`torchvision.ops.sigmoid_focal_loss` of the
    logit difference.

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    gamma : float, default 2.0
        Focusing parameter, ``>= 0``.
    alpha : (C,) sequence, ndarray or Tensor, optional
        Per-class balance factor in ``[0, 1]``; 1 for every class when omitted.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns the loss of each pixel, ``(N, H, W)``, 0 where ignored.

    Returns
    -------
    Tensor
        Scalar, or ``(N, H, W)`` with ``reduction="none"``.

    References
    ----------
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar, "Focal loss for dense
    object detection", ICCV 2017.

    Examples
    --------
    >>> logits = torch.tensor([[[[2.0]], [[0.0]]]])
    >>> target = torch.tensor([[[0]]])
    >>> round(focal_loss(logits, target).item(), 5)  # (1 - 0.8808)^2 * 0.1269
    0.0018
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    gamma = _check_gamma(gamma, allow_zero=True)
    reduction = check_reduction(reduction)
    alpha = match_classes("alpha", check_class_vector("alpha", alpha, high=1.0),
                          logits.shape[1], logits)
    nll = _nll(logits, labels, valid)
    loss = nll if gamma == 0 else safe_pow(-torch.expm1(-nll), gamma) * nll
    if alpha is not None:
        loss = loss * alpha[labels]
    return reduce_pixels(loss, valid, reduction)


def distance_penalized_ce(
    logits: Tensor,
    target: Tensor,
    *,
    distance_maps: Tensor | None = None,
    class_weights: Sequence[float] | np.ndarray | Tensor | None = None,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Cross-entropy weighted pixel-wise by ``1 + D``, ``D`` the inverted boundary distance.

    ``loss_i = -(1 + D_i) w_{t_i} log p_{t_i}``, with ``D`` from
    :func:`inverted_distance_maps` (1 on the ground-truth boundaries, falling
    linearly with the distance to 0 at the farthest pixel), so pixels near
    boundaries weigh up to twice as much.  ``"mean"`` divides by the sum of
    the class weights of the valid pixels, as :func:`cross_entropy` does; the
    penalty is not normalised away, so the value exceeds the plain CE
    wherever a boundary exists.

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    distance_maps : (N, H, W) float Tensor, optional
        Precomputed ``D`` (e.g. :func:`inverted_distance_maps` in the data
        loader); computed from ``target`` on the host when omitted.
    class_weights : (C,) sequence, ndarray or Tensor, optional
        Non-negative weight of each class.
    ignore_index : int, default 255
        Label of pixels left out (they count as a label of their own when
        the boundaries are found).
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns the loss of each pixel, ``(N, H, W)``, 0 where ignored.

    Returns
    -------
    Tensor
        Scalar, or ``(N, H, W)`` with ``reduction="none"``.

    References
    ----------
    F. Caliva, C. Iriondo, A. M. Martinez, S. Majumdar, V. Pedoia, "Distance
    map loss penalty term for semantic segmentation", MIDL 2019.

    Examples
    --------
    >>> logits = torch.zeros(1, 2, 1, 4)
    >>> target = torch.tensor([[[0, 0, 0, 1]]])  # D = [0, 0.5, 1, 1]
    >>> round(distance_penalized_ce(logits, target).item(), 4)  # log(2) * (1 + 1.5 + 2 + 2) / 4
    1.1264
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    reduction = check_reduction(reduction)
    weights = match_classes("class_weights", check_class_vector("class_weights", class_weights),
                            logits.shape[1], logits)
    n, _, h, w = logits.shape
    if distance_maps is None:
        maps = inverted_maps_from_labels(host_labels(labels, valid))
        distance_maps = torch.from_numpy(maps).to(device=logits.device, dtype=logits.dtype)
    else:
        distance_maps = check_maps("distance_maps", distance_maps, (n, h, w), logits)
    return _weighted_ce(logits, labels, valid, weights, reduction, penalty=1.0 + distance_maps)


# --------------------------------------------------------------------------- region losses


def _dice(logits: Tensor, labels: Tensor, valid: Tensor, *, smooth: float, squared: bool,
          per_image: bool, include_absent: bool, reduction: str) -> Tensor:
    tp, sum_p, sum_g = region_sums(logits, labels, valid, per_image, squared)
    denominator = sum_p + sum_g + smooth
    dice = safe_div(2.0 * tp + smooth, denominator)
    return reduce_classes(1.0 - dice, scored_classes(sum_g, denominator, include_absent),
                          reduction)


def _check_region(smooth: Any, per_image: Any, include_absent: Any,
                  reduction: Any) -> tuple[float, bool, bool, str]:
    return (check_nonnegative("smooth", smooth), check_bool("per_image", per_image),
            check_bool("include_absent", include_absent), check_reduction(reduction))


def dice_loss(
    logits: Tensor,
    target: Tensor,
    *,
    smooth: float = 0.0,
    squared: bool = False,
    per_image: bool = False,
    include_absent: bool = False,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Soft Dice loss: ``1 - mean_c (2 sum p g + smooth) / (sum p + sum g + smooth)``.

    ``p`` is the softmax, ``g`` the one-hot target; sums run over the batch and
    the pixels (one Dice per class for the whole batch), or over the pixels of
    each image with ``per_image``.  ``squared`` uses the V-Net denominator
    ``sum p^2 + sum g^2``.

    Absent classes: a class with no pixel in the target (of the batch, or of
    the image with ``per_image``) is left out of the mean by default.  With
    ``include_absent=True`` it is kept and scores ``smooth / (sum p + smooth)``:
    near 1 when little of it is predicted if ``smooth > 0``, and 0 (loss 1)
    with ``smooth = 0``, since any predicted mass is then a false positive.

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    smooth : float, default 0.0
        Added to numerator and denominator, ``>= 0``.
    squared : bool, default False
        Square the probabilities in the denominator (Milletari et al.).
    per_image : bool, default False
        One Dice per image and class, averaged over classes then images.
    include_absent : bool, default False
        Keep classes absent from the target in the mean.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``1 - Dice`` per class, ``(C,)`` (``(N, C)`` with
        ``per_image``), NaN for the classes left out; ``"sum"`` sums its entries.

    Returns
    -------
    Tensor
        Scalar, or ``(C,)`` / ``(N, C)`` with ``reduction="none"``.

    References
    ----------
    F. Milletari, N. Navab, S.-A. Ahmadi, "V-Net: fully convolutional neural
    networks for volumetric medical image segmentation", 3DV 2016.

    Examples
    --------
    >>> logits = torch.zeros(1, 3, 2, 2)  # p = 1/3 everywhere
    >>> target = torch.tensor([[[0, 0], [1, 1]]])  # class 2 absent: left out
    >>> round(dice_loss(logits, target).item(), 4)  # 1 - (2 * 2/3) / (4/3 + 2)
    0.6
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    smooth, per_image, include_absent, reduction = _check_region(
        smooth, per_image, include_absent, reduction)
    squared = check_bool("squared", squared)
    return _dice(logits, labels, valid, smooth=smooth, squared=squared,
                 per_image=per_image, include_absent=include_absent, reduction=reduction)


def generalized_dice_loss(
    logits: Tensor,
    target: Tensor,
    *,
    per_image: bool = False,
    include_absent: bool = False,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Generalised Dice loss ``1 - 2 sum_c w_c sum pg / sum_c w_c sum (p + g)``, ``w_c = 1/G_c^2``.

    ``G_c = sum g`` is the number of target pixels of class ``c``.

    A class absent from the target would get an infinite weight; here it gets
    weight 0 (left out) by default, or with ``include_absent=True`` the largest
    weight of the classes present, so that predicting it is penalised.  When
    no class is present (a fully ignored image) the loss is 0.

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    per_image : bool, default False
        One loss per image (averaged over the images with valid pixels)
        instead of one over the batch.
    include_absent : bool, default False
        Give absent classes the largest present weight instead of 0.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        With ``per_image``, ``"none"`` returns the loss of each image ``(N,)``
        (NaN for an image without valid pixels); without it every reduction
        returns the batch loss.

    Returns
    -------
    Tensor
        Scalar, or ``(N,)`` with ``per_image`` and ``reduction="none"``.

    References
    ----------
    C. H. Sudre, W. Li, T. Vercauteren, S. Ourselin, M. J. Cardoso,
    "Generalised Dice overlap as a deep learning loss function for highly
    unbalanced segmentations", DLMIA 2017.

    Examples
    --------
    >>> logits = torch.zeros(1, 2, 1, 4)  # p = 1/2
    >>> target = torch.tensor([[[0, 0, 0, 1]]])  # w = (1/9, 1)
    >>> round(generalized_dice_loss(logits, target).item(), 4)  # 1 - 2(1/6 + 1/2)/(5/9 + 3)
    0.625
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    _, per_image, include_absent, reduction = _check_region(0.0, per_image, include_absent,
                                                            reduction)
    tp, sum_p, sum_g = region_sums(logits, labels, valid, per_image)
    present = sum_g > 0
    weights = safe_div(present.to(sum_g.dtype), sum_g * sum_g)
    if include_absent:
        largest = weights.amax(-1, keepdim=True)
        weights = torch.where(present, weights, largest)
    denominator = (weights * (sum_p + sum_g)).sum(-1)
    loss = 1.0 - 2.0 * safe_div((weights * tp).sum(-1), denominator)
    scored = present.any(-1)
    if not per_image:
        return torch.where(scored, loss, torch.zeros_like(loss))
    return reduce_classes(loss, scored, reduction)


def ce_dice_loss(
    logits: Tensor,
    target: Tensor,
    *,
    ce_weight: float = 1.0,
    dice_weight: float = 1.0,
    class_weights: Sequence[float] | np.ndarray | Tensor | None = None,
    smooth: float = 0.0,
    squared: bool = False,
    per_image: bool = False,
    include_absent: bool = False,
    ignore_index: int = 255,
) -> Tensor:
    """``ce_weight * cross_entropy + dice_weight * dice_loss``, both with ``"mean"``.

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    ce_weight, dice_weight : float, default 1.0
        Non-negative weights of the two terms.
    class_weights : (C,) sequence, ndarray or Tensor, optional
        Class weights of the cross-entropy term.
    smooth, squared, per_image, include_absent
        Options of the Dice term, see :func:`dice_loss`.
    ignore_index : int, default 255
        Label of pixels left out.

    Returns
    -------
    Tensor
        Scalar.

    References
    ----------
    F. Isensee et al., "nnU-Net: a self-configuring method for deep
    learning-based biomedical image segmentation", Nature Methods 18, 2021.

    Examples
    --------
    >>> logits = torch.zeros(1, 3, 2, 2)
    >>> target = torch.tensor([[[0, 0], [1, 1]]])
    >>> round(ce_dice_loss(logits, target).item(), 4)  # log(3) + 0.6
    1.6986
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    ce_weight = check_nonnegative("ce_weight", ce_weight)
    dice_weight = check_nonnegative("dice_weight", dice_weight)
    smooth, per_image, include_absent, _ = _check_region(smooth, per_image, include_absent,
                                                         "mean")
    squared = check_bool("squared", squared)
    weights = match_classes("class_weights", check_class_vector("class_weights", class_weights),
                            logits.shape[1], logits)
    ce = _weighted_ce(logits, labels, valid, weights, "mean", target=target,
                      ignore_index=ignore_index)
    dice = _dice(logits, labels, valid, smooth=smooth, squared=squared,
                 per_image=per_image, include_absent=include_absent, reduction="mean")
    return ce_weight * ce + dice_weight * dice


def jaccard_loss(
    logits: Tensor,
    target: Tensor,
    *,
    smooth: float = 0.0,
    per_image: bool = False,
    include_absent: bool = False,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Soft Jaccard loss ``1 - mean_c (sum pg + smooth) / (sum p + sum g - sum pg + smooth)``.

    Sums, absent classes and reductions follow :func:`dice_loss`.

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    smooth : float, default 0.0
        Added to numerator and denominator, ``>= 0``.
    per_image : bool, default False
        One IoU per image and class, averaged over classes then images.
    include_absent : bool, default False
        Keep classes absent from the target in the mean.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``1 - IoU`` per class, ``(C,)`` or ``(N, C)``, NaN
        for the classes left out.

    Returns
    -------
    Tensor
        Scalar, or ``(C,)`` / ``(N, C)`` with ``reduction="none"``.

    References
    ----------
    M. A. Rahman and Y. Wang, "Optimizing intersection-over-union in deep
    neural networks for image segmentation", ISVC 2016.

    Examples
    --------
    >>> logits = torch.zeros(1, 3, 2, 2)
    >>> target = torch.tensor([[[0, 0], [1, 1]]])
    >>> round(jaccard_loss(logits, target).item(), 4)  # 1 - (2/3) / (4/3 + 2 - 2/3)
    0.75
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    smooth, per_image, include_absent, reduction = _check_region(
        smooth, per_image, include_absent, reduction)
    tp, sum_p, sum_g = region_sums(logits, labels, valid, per_image)
    denominator = sum_p + sum_g - tp + smooth
    iou = safe_div(tp + smooth, denominator)
    return reduce_classes(1.0 - iou, scored_classes(sum_g, denominator, include_absent),
                          reduction)


def _tversky_index(logits: Tensor, valid: Tensor, labels: Tensor, alpha: float, beta: float,
                   smooth: float, per_image: bool, include_absent: bool) -> tuple[Tensor, Tensor]:
    """Tversky index per class and the classes that enter the mean."""
    tp, sum_p, sum_g = region_sums(logits, labels, valid, per_image)
    false_pos = sum_p - tp
    false_neg = sum_g - tp
    denominator = tp + alpha * false_pos + beta * false_neg + smooth
    index = safe_div(tp + smooth, denominator)
    return index, scored_classes(sum_g, denominator, include_absent)


def _check_tversky(alpha: Any, beta: Any) -> tuple[float, float]:
    alpha = check_fraction("alpha", alpha)
    beta = check_fraction("beta", beta)
    if alpha + beta == 0:
        raise ValueError("alpha and beta must not both be 0: the Tversky index would be 1 "
                         "whatever the prediction")
    return alpha, beta


def tversky_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth: float = 0.0,
    per_image: bool = False,
    include_absent: bool = False,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Tversky loss ``1 - mean_c TI_c``, ``TI = sum p g / (sum p g + alpha FP + beta FN)``.

    ``FP = sum p (1 - g)`` and ``FN = sum (1 - p) g``: **alpha weights false
    positives, beta false negatives**.  ``alpha = beta = 0.5`` gives the Dice
    loss, ``alpha = beta = 1`` the Jaccard loss; the default ``beta > alpha``
    favours recall (Salehi et al.).  ``smooth`` is added to numerator and
    denominator.  Sums, absent classes and reductions follow :func:`dice_loss`.

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    alpha : float, default 0.3
        Weight of false positives, in ``[0, 1]``.
    beta : float, default 0.7
        Weight of false negatives, in ``[0, 1]``.
    smooth : float, default 0.0
        Added to numerator and denominator, ``>= 0``.
    per_image : bool, default False
        One index per image and class.
    include_absent : bool, default False
        Keep classes absent from the target in the mean.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``1 - TI`` per class, ``(C,)`` or ``(N, C)``, NaN for
        the classes left out.

    Returns
    -------
    Tensor
        Scalar, or ``(C,)`` / ``(N, C)`` with ``reduction="none"``.

    References
    ----------
    S. S. M. Salehi, D. Erdogmus, A. Gholipour, "Tversky loss function for
    image segmentation using 3D fully convolutional deep networks", MLMI 2017.

    Examples
    --------
    >>> logits = torch.zeros(1, 2, 1, 4)  # p = 1/2
    >>> target = torch.tensor([[[0, 0, 1, 1]]])  # TP = FP = FN = 1 for both classes
    >>> round(tversky_loss(logits, target).item(), 4)  # 1 - 1 / (1 + 0.3 + 0.7)
    0.5
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    alpha, beta = _check_tversky(alpha, beta)
    smooth, per_image, include_absent, reduction = _check_region(
        smooth, per_image, include_absent, reduction)
    index, scored = _tversky_index(logits, valid, labels, alpha, beta, smooth, per_image,
                                   include_absent)
    return reduce_classes(1.0 - index, scored, reduction)


def focal_tversky_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.3,
    beta: float = 0.7,
    gamma: float = 4.0 / 3.0,
    smooth: float = 0.0,
    per_image: bool = False,
    include_absent: bool = False,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Focal Tversky loss: ``mean_c (1 - TI_c)^(1/gamma)``, the exponent applied per class.

    ``TI_c`` is the Tversky index of :func:`tversky_loss` (alpha on false
    positives, beta on false negatives).  The exponent is applied to each class
    before the mean over classes, as in Abraham & Khan (applying it after the
    mean is a different, weaker loss).  ``gamma > 1`` raises small losses,
    focusing on classes that are nearly right but not quite.  The derivative
    of ``x^(1/gamma)`` is infinite at 0 for ``gamma > 1``; a class predicted
    perfectly gets a zero gradient.

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    alpha : float, default 0.3
        Weight of false positives, in ``[0, 1]``.
    beta : float, default 0.7
        Weight of false negatives, in ``[0, 1]``.
    gamma : float, default 4/3
        Focal parameter, ``> 0``; the exponent is ``1 / gamma``.
    smooth : float, default 0.0
        Added to numerator and denominator of TI, ``>= 0``.
    per_image : bool, default False
        One index per image and class.
    include_absent : bool, default False
        Keep classes absent from the target in the mean.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``(1 - TI)^(1/gamma)`` per class, ``(C,)`` or
        ``(N, C)``, NaN for the classes left out.

    Returns
    -------
    Tensor
        Scalar, or ``(C,)`` / ``(N, C)`` with ``reduction="none"``.

    References
    ----------
    N. Abraham and N. M. Khan, "A novel focal Tversky loss function with
    improved attention U-Net for lesion segmentation", ISBI 2019.

    Examples
    --------
    >>> logits = torch.zeros(1, 2, 1, 4)
    >>> target = torch.tensor([[[0, 0, 1, 1]]])
    >>> round(focal_tversky_loss(logits, target).item(), 4)  # 0.5 ** 0.75
    0.5946
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    alpha, beta = _check_tversky(alpha, beta)
    gamma = _check_gamma(gamma)
    smooth, per_image, include_absent, reduction = _check_region(
        smooth, per_image, include_absent, reduction)
    index, scored = _tversky_index(logits, valid, labels, alpha, beta, smooth, per_image,
                                   include_absent)
    return reduce_classes(safe_pow((1.0 - index).clamp_min(0.0), 1.0 / gamma), scored,
                          reduction)


def _descending_order(errors: Tensor) -> Tensor:
    """Indices sorting the last axis in decreasing order (ties in any order).

    On the CPU numpy's introsort is several times faster than ``torch.sort``,
    which is stable; the Lovasz extension does not depend on the order of ties.
    """
    if errors.device.type == "cpu":
        return torch.from_numpy(np.argsort(-errors.numpy(), axis=-1))
    return errors.argsort(dim=-1, descending=True)


def _check_lovasz_classes(classes: Any, num_classes: int | None = None) -> str | list[int]:
    if isinstance(classes, str):
        check_choice("classes", classes, ("present", "all"))
        return classes
    if not isinstance(classes, Sequence) or len(classes) == 0:
        raise ValueError(f"classes must be 'present', 'all' or a non-empty sequence of class "
                         f"indices, got {classes!r}")
    high = None if num_classes is None else num_classes - 1
    return [check_int("classes", c, low=0, high=high) for c in classes]


def lovasz_softmax(
    logits: Tensor,
    target: Tensor,
    *,
    classes: str | Sequence[int] = "present",
    per_image: bool = False,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Lovasz-softmax loss: the Lovasz extension of the Jaccard loss of each class.

    For class ``c`` the errors ``e_i = |g_i - p_i|`` of the valid pixels are
    sorted in decreasing order, and the loss is ``sum_i e_(i) * dJ_i`` with
    ``dJ_i`` the increments of the Jaccard loss ``1 - |g & top_i| / |g | top_i|``
    over the first ``i`` sorted pixels.

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    classes : {"present", "all"} or sequence of int, default "present"
        Classes averaged: those present in the target (of the batch, or of the
        image with ``per_image``), all of them, or the listed ones.
    per_image : bool, default False
        One loss per image, averaged over the images with valid pixels,
        instead of one over the flattened batch.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns the loss per class, ``(C,)`` or ``(N, C)`` with
        ``per_image``, NaN for the classes not averaged.

    Returns
    -------
    Tensor
        Scalar, or ``(C,)`` / ``(N, C)`` with ``reduction="none"``.

    References
    ----------
    M. Berman, A. Rannen Triki, M. B. Blaschko, "The Lovasz-softmax loss: a
    tractable surrogate for the optimization of the intersection-over-union
    measure in neural networks", CVPR 2018.

    Examples
    --------
    >>> logits = torch.zeros(1, 2, 1, 2)  # p = 1/2, every error is 1/2
    >>> target = torch.tensor([[[0, 1]]])
    >>> round(lovasz_softmax(logits, target).item(), 4)
    0.5
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    classes = _check_lovasz_classes(classes, logits.shape[1])
    per_image = check_bool("per_image", per_image)
    reduction = check_reduction(reduction)
    n, c = logits.shape[:2]
    probs = torch.softmax(logits, dim=1)
    class_axis = torch.arange(c, device=logits.device)[:, None, None]
    truth = (labels[:, None] == class_axis) & valid[:, None]
    # Errors |g - p|.  Ignored pixels get -1 so that they sort after every valid pixel and
    # leave the Jaccard increments of the valid ones untouched; their terms are dropped.
    errors = torch.where(valid[:, None], torch.where(truth, 1.0 - probs, probs), -1.0)
    if per_image:
        errors, truth = errors.reshape(n, c, -1), truth.reshape(n, c, -1)
        mask = valid.reshape(n, 1, -1)
    else:
        errors = errors.transpose(0, 1).reshape(1, c, -1)
        truth = truth.transpose(0, 1).reshape(1, c, -1)
        mask = valid.reshape(1, 1, -1)
    order = _descending_order(errors.detach())
    errors = errors.gather(-1, order)
    truth = truth.gather(-1, order).to(probs.dtype)
    truth_total = truth.sum(-1, keepdim=True)
    intersection = truth_total - truth.cumsum(-1)
    union = truth_total + (1.0 - truth).cumsum(-1)
    jaccard = 1.0 - intersection / union
    increments = torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)
    losses = (errors.clamp_min(0.0) * increments).sum(-1)
    has_pixels = mask.any(-1)
    if classes == "present":
        scored = truth_total[..., 0] > 0
    elif classes == "all":
        scored = has_pixels.expand(-1, c)
    else:
        chosen = torch.zeros(c, dtype=torch.bool, device=logits.device)
        chosen[classes] = True
        scored = has_pixels & chosen
    if not per_image:
        losses, scored = losses[0], scored[0]
    return reduce_classes(losses, scored, reduction)


# --------------------------------------------------------------------------- boundary losses


def boundary_loss(
    logits: Tensor,
    target: Tensor,
    *,
    distance_maps: Tensor | None = None,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Boundary loss: ``sum_c softmax_c * phi_c`` per pixel, ``phi`` the signed distance maps.

    ``phi_c`` (:func:`signed_distance_maps`) is negative inside class ``c`` and
    positive outside, so the loss is smallest (negative) when each pixel puts
    its mass on its own class, and mass far from a class's region costs more.
    A class absent from an image has a zero map, as in Kervadec et al.'s code.
    The minimum is not 0.  Alone it can drive a network to predict no
    foreground at all (once the softmax saturates its gradient
    ``p_c (phi_c - sum_k p_k phi_k)`` vanishes); combine it with a region loss
    as Kervadec et al. do (:func:`generalized_dice_loss`, raising the weight of
    the boundary term during training).

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    distance_maps : (N, C, H, W) float Tensor, optional
        Precomputed ``phi`` (e.g. :func:`signed_distance_maps` in the data
        loader); computed from ``target`` on the host when omitted.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``sum_c p_c phi_c`` per pixel ``(N, H, W)``, 0 where
        ignored; ``"mean"`` averages it over the valid pixels.

    Returns
    -------
    Tensor
        Scalar, or ``(N, H, W)`` with ``reduction="none"``.

    References
    ----------
    H. Kervadec, J. Bouchtiba, C. Desrosiers, E. Granger, J. Dolz, I. Ben Ayed,
    "Boundary loss for highly unbalanced segmentation", MIDL 2019.

    Examples
    --------
    >>> logits = torch.zeros(1, 2, 1, 3)
    >>> target = torch.tensor([[[0, 0, 1]]])  # phi_0 = [-1.5, -0.5, 0.5], phi_1 = [1.5, 0.5, -0.5]
    >>> boundary_loss(logits, target).item()
    0.0
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    reduction = check_reduction(reduction)
    if distance_maps is None:
        maps = signed_maps_from_labels(host_labels(labels, valid), logits.shape[1])
        distance_maps = torch.from_numpy(maps).to(device=logits.device, dtype=logits.dtype)
    else:
        distance_maps = check_maps("distance_maps", distance_maps, tuple(logits.shape), logits)
    distance_maps = distance_maps.masked_fill(~valid[:, None], 0.0)
    probs = torch.softmax(logits, dim=1)
    if reduction == "none":
        return (probs * distance_maps).sum(1)
    total = torch.dot(probs.reshape(-1), distance_maps.reshape(-1))  # no (N, C, H, W) product
    return reduce_pixels(total, valid, reduction)


def hausdorff_dt_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float = 2.0,
    distance_maps: Tensor | None = None,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Hausdorff-distance loss of Karimi & Salcudean, distance-transform form.

    ``mean over pixels and classes of (p_c - g_c)^2 (d_p,c^alpha + d_g,c^alpha)``,
    where ``d_g,c`` is the distance to the ground-truth contour of class ``c``
    and ``d_p,c`` the distance to the contour of the predicted segmentation
    (the argmax of ``logits``), both from :func:`unsigned_distance_maps`.
    ``d_p`` is recomputed at every call on the host and carries no gradient.
    Like :func:`boundary_loss` it can collapse a network to a single class
    when used alone; Karimi & Salcudean add a Dice term (:func:`dice_loss`).

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    alpha : float, default 2.0
        Exponent of the distances, ``> 0``.
    distance_maps : (N, C, H, W) float Tensor, optional
        Precomputed ``d_g``; computed from ``target`` when omitted.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns the mean over classes per pixel ``(N, H, W)``, 0 where
        ignored; ``"mean"`` averages it over the valid pixels.

    Returns
    -------
    Tensor
        Scalar, or ``(N, H, W)`` with ``reduction="none"``.

    References
    ----------
    D. Karimi and S. E. Salcudean, "Reducing the Hausdorff distance in medical
    image segmentation with convolutional neural networks", IEEE TMI 39(2),
    2020 (arXiv:1904.10030).

    Examples
    --------
    >>> logits = torch.tensor([[[[1.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]]]])  # predicts [0, 0, 1]
    >>> target = torch.tensor([[[0, 1, 1]]])  # d_p^2 + d_g^2 = [2.5, 0.5, 2.5] for both classes
    >>> round(hausdorff_dt_loss(logits, target).item(), 4)
    0.2096
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    alpha = check_positive("alpha", alpha)
    reduction = check_reduction(reduction)
    num_classes = logits.shape[1]
    if distance_maps is None:
        truth_maps = np.abs(signed_maps_from_labels(host_labels(labels, valid), num_classes))
        distance_maps = torch.from_numpy(truth_maps).to(device=logits.device, dtype=logits.dtype)
    else:
        distance_maps = check_maps("distance_maps", distance_maps, tuple(logits.shape), logits)
    predicted = logits.detach().argmax(1).cpu().numpy()
    pred_maps = np.abs(signed_maps_from_labels(predicted, num_classes))
    pred_maps = torch.from_numpy(pred_maps).to(device=logits.device, dtype=logits.dtype)
    weight = pred_maps**alpha + distance_maps.abs() ** alpha
    error = (masked_probs(logits, valid) - one_hot(labels, valid, logits)) ** 2
    return reduce_pixels((error * weight).mean(1), valid, reduction)


# --------------------------------------------------------------------------- compound losses


def combo_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    smooth: float = 0.0,
    include_absent: bool = False,
    ignore_index: int = 255,
) -> Tensor:
    """Combo loss: ``alpha * weighted CE + (1 - alpha) * (1 - Dice)``.

    The weighted CE is the per-class binary form of Taghanaki et al.,
    ``-[beta g log p + (1 - beta) (1 - g) log(1 - p)]`` on the softmax
    probabilities, averaged over classes and valid pixels: ``beta > 0.5``
    penalises false negatives more, ``beta < 0.5`` false positives.  The
    Dice term is :func:`dice_loss` over the batch.  The paper subtracts the
    Dice itself; ``1 - Dice`` only shifts the value so that the minimum is 0.

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    alpha : float, default 0.5
        Share of the CE term, in ``[0, 1]``.
    beta : float, default 0.5
        Weight of the false-negative side of the CE, in ``[0, 1]``.
    smooth, include_absent
        Options of the Dice term, see :func:`dice_loss`.
    ignore_index : int, default 255
        Label of pixels left out.

    Returns
    -------
    Tensor
        Scalar.

    References
    ----------
    S. A. Taghanaki et al., "Combo loss: handling input and output imbalance in
    multi-organ segmentation", Computerized Medical Imaging and Graphics 75, 2019.

    Examples
    --------
    >>> logits = torch.zeros(1, 2, 1, 2)  # p = 1/2
    >>> target = torch.tensor([[[0, 1]]])
    >>> round(combo_loss(logits, target).item(), 4)  # 0.5 * 0.5 log 2 + 0.5 * 0.5
    0.4233
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    alpha = check_fraction("alpha", alpha)
    beta = check_fraction("beta", beta)
    smooth, _, include_absent, _ = _check_region(smooth, False, include_absent, "mean")
    n = logits.shape[0]
    binary_ce = binary_ce_sum(logits, labels.reshape(n, -1), valid.reshape(n, -1).to(logits.dtype),
                              beta)
    ce = reduce_pixels(binary_ce / logits.shape[1], valid, "mean")
    dice = _dice(logits, labels, valid, smooth=smooth, squared=False, per_image=False,
                 include_absent=include_absent, reduction="mean")
    return alpha * ce + (1.0 - alpha) * dice


def exp_log_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma: float = 0.3,
    dice_weight: float = 0.8,
    ce_weight: float = 0.2,
    class_weights: Sequence[float] | np.ndarray | Tensor | None = None,
    smooth: float = 1.0,
    include_absent: bool = False,
    ignore_index: int = 255,
) -> Tensor:
    """Exp-log loss: ``w_dice E_c[(-ln Dice_c)^gamma] + w_ce E_x[w_l (-ln p_l)^gamma]``.

    ``Dice_c = (2 sum p g + smooth) / (sum p + sum g + smooth)`` over the batch,
    averaged over the classes present in the target (see :func:`dice_loss` for
    ``include_absent``); the second expectation runs over the valid pixels, with
    ``l`` the pixel's label and ``w_l`` its class weight.  Without
    ``class_weights`` the paper's ``w_l = (sum_k f_k / f_l)^0.5`` is computed
    from the label frequencies ``f`` of the batch.  ``smooth = 1`` is the
    paper's pseudocount.

    Parameters
    ----------
    logits : (N, C, H, W) Tensor
        Raw class scores.
    target : (N, H, W) integer Tensor
        Class labels in ``[0, C)`` or ``ignore_index``.
    gamma : float, default 0.3
        Exponent of both terms, ``> 0``.
    dice_weight, ce_weight : float, default 0.8, 0.2
        Non-negative weights of the Dice and cross-entropy terms.
    class_weights : (C,) sequence, ndarray or Tensor, optional
        ``w_l``, e.g. ``class_weights_from_labels(..., method="inverse_sqrt")``
        over the training set.
    smooth : float, default 1.0
        Pseudocount of the Dice term, ``>= 0``.
    include_absent : bool, default False
        Keep classes absent from the target in the Dice term.
    ignore_index : int, default 255
        Label of pixels left out.

    Returns
    -------
    Tensor
        Scalar.

    References
    ----------
    K. C. L. Wong, M. Moradi, H. Tang, T. Syeda-Mahmood, "3D segmentation with
    exponential logarithmic loss for highly unbalanced object sizes", MICCAI 2018.

    Examples
    --------
    >>> logits = torch.zeros(1, 2, 1, 2)  # p = 1/2, Dice_c = (1 + 1) / (2 + 1), w_l = 2 ** 0.5
    >>> target = torch.tensor([[[0, 1]]])
    >>> round(exp_log_loss(logits, target).item(), 4)  # 0.8 * log(1.5)**0.3 + 0.2 * w * log(2)**0.3
    0.8636
    """
    logits, valid, labels = check_logits_target(logits, target, ignore_index)
    gamma = _check_gamma(gamma)
    dice_weight = check_nonnegative("dice_weight", dice_weight)
    ce_weight = check_nonnegative("ce_weight", ce_weight)
    smooth, _, include_absent, _ = _check_region(smooth, False, include_absent, "mean")
    weights = match_classes("class_weights", check_class_vector("class_weights", class_weights),
                            logits.shape[1], logits)
    tp, sum_p, sum_g = region_sums(logits, labels, valid, per_image=False)
    denominator = sum_p + sum_g + smooth
    dice = safe_div(2.0 * tp + smooth, denominator)
    tiny = torch.finfo(dice.dtype).tiny
    dice_term = reduce_classes(safe_pow(-torch.log(dice.clamp_min(tiny)), gamma),
                               scored_classes(sum_g, denominator, include_absent), "mean")
    if weights is None:
        weights = _weights_from_counts(sum_g, "inverse_sqrt")
    pixel_weights = _pixel_class_weights(weights, labels, valid, logits)
    ce_term = reduce_pixels(pixel_weights * safe_pow(_nll(logits, labels, valid), gamma), valid,
                            "mean")
    return dice_weight * dice_term + ce_weight * ce_term


def dense_crf_loss(
    logits: Tensor,
    image: Tensor,
    *,
    sxy: float = 80.0,
    srgb: float = 15.0,
    roi: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Dense CRF loss: the relaxed Potts energy of the softmax under a bilateral affinity.

    ``loss = sum_k S_kᵀ W (1 - S_k)`` with ``S = softmax(logits)`` and ``W``
    the bilateral Gaussian affinity ``W_ij = exp(-|p_i - p_j|**2 / (2 sxy**2)
    - |I_i - I_j|**2 / (2 srgb**2))`` between pixels (or voxels) ``i != j``
    (positions ``p`` in pixels, intensities ``I`` of every image channel):
    the expected affinity cut by a labelling drawn from ``S``.  It is small
    when the prediction changes only where the image does, and it needs no
    target, so a weakly supervised network is trained with it beside a
    partial cross-entropy on the few labelled pixels (Tang et al. 2018;
    their loss ``-sum_k S_kᵀ W S_k`` differs from this one by
    ``sum_k S_kᵀ W 1``, which is constant, and by the diagonal).

    ``W`` is applied on one permutohedral lattice for the whole batch
    (:class:`~crfseg.crf.lattice.PermutohedralLattice`) with the lattice's own
    weight of each pixel with itself removed exactly, so the value is the
    lattice's un-normalised kernel (densecrf's, which Tang et al. use) and not
    the exact Gaussian sum: about ``DENSE_CRF_SCALE[d]`` times it, where
    ``d = ndim + K`` is the feature dimension (2 or 3 spatial axes and ``K``
    image channels)::

        d                  3     4     5     6
        DENSE_CRF_SCALE    0.76  0.68  0.58  0.44

    (least squares of the lattice kernel against the Gaussian over random
    point pairs).  The ratio of the loss itself to the exact loss depends a
    little on the scene: measured on SyntheticShapes crops with ``sxy`` 5 to
    80 and ``srgb`` 5 to 30 it lay within 0.66–0.81 for ``d = 3``,
    0.60–0.80 for 4, 0.44–0.64 for 5 and 0.41–0.65 for 6.  Divide by the
    factor to compare with the exact loss; to train, fold it into the weight.

    Parameters
    ----------
    logits : (N, C, H, W) or (N, C, D, H, W) float Tensor
        Raw class scores, ``C >= 2``; gradients flow to them.
    image : (N, K, H, W) or (N, K, D, H, W) Tensor
        Intensities of any ``K >= 1`` channels in the units ``srgb`` is
        given in (0–255 for RGB); integer dtypes are converted.  No gradient
        flows to it.
    sxy : float, default 80.0
        Spatial standard deviation of the affinity, in pixels (voxels).
    srgb : float, default 15.0
        Intensity standard deviation of the affinity.
    roi : (N, H, W) or (N, D, H, W) Tensor, optional
        Pixels where ``roi`` is zero (False) are left out: they neither
        contribute nor receive a gradient (an ignore region, or the padding
        around a crop).  Their intensities still enter the lattice, harmlessly.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` gives the loss of each image ``(N,)``; ``"sum"`` their
        total (divide by ``N`` for Tang et al.'s per-image normalisation);
        ``"mean"`` the total over the number of pixels in the roi (0 when the
        roi is empty).

    Returns
    -------
    Tensor
        Scalar, or ``(N,)`` with ``reduction="none"``, in the dtype of the
        logits (float32 for float16/bfloat16).

    Raises
    ------
    TypeError
        ``logits``, ``image`` or ``roi`` is not a tensor of a suitable dtype, or
        ``sxy``/``srgb`` is not a number.
    ValueError
        Shapes that do not match, fewer than two classes, NaN or inf in
        ``logits``, ``image`` or ``roi``, a non-positive ``sxy``/``srgb``,
        tensors on different devices, or an unknown reduction.

    Notes
    -----
    One lattice of ``N * H * W`` points in ``d`` dimensions is built per call
    (its cost grows with ``d``: keep images small, as Tang et al. do by
    down-scaling); backward reuses it.  The exact diagonal costs
    ``O(P d**3)`` index operations, compiled on the CPU: for 8 random RGB
    images of 256x256 (P = 524 288, d = 5) it took 0.58 s there against 3.7 s
    for the same walks in tensors (2 threads, idle 2-core machine); the whole
    forward + backward at 21 classes took 1.4 s, 14x cross-entropy's time.

    References
    ----------
    M. Tang, F. Perazzi, A. Djelouah, I. Ben Ayed, C. Schroers, Y. Boykov,
    "On Regularized Losses for Weakly-supervised CNN Segmentation", ECCV 2018.

    Examples
    --------
    >>> image = torch.zeros(1, 3, 8, 8)
    >>> image[..., 4:] = 255.0  # a dark left half and a bright right half
    >>> follows = torch.zeros(1, 2, 8, 8)
    >>> follows[:, 0, :, :4] = follows[:, 1, :, 4:] = 8.0
    >>> cuts = follows.transpose(2, 3)  # the same split, across the edge
    >>> bool(dense_crf_loss(follows, image, sxy=4.0) < dense_crf_loss(cuts, image, sxy=4.0))
    True
    """
    logits, image, mask = check_dense_crf_inputs(logits, image, roi)
    sxy = check_positive("sxy", sxy)
    srgb = check_positive("srgb", srgb)
    reduction = check_reduction(reduction)
    per_image = dense_crf_energy(logits, image, mask, sxy, srgb)
    if reduction == "none":
        return per_image
    total = per_image.sum()
    if reduction == "sum":
        return total
    count = mask.sum() if mask is not None else logits[:, 0].numel()
    return safe_div(total, torch.as_tensor(count, dtype=total.dtype, device=total.device))
