"""``nn.Module`` wrappers of :mod:`crfseg.losses.functional`.

Each module checks its settings when it is built, keeps per-class vectors
(``class_weights``, ``alpha``) as buffers so that ``.to(device)`` moves them,
and calls the function of the same name in ``forward(logits, target)``.
The definitions, shapes and corner cases are documented on the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor, nn

from crfseg._validation import check_bool, check_int, is_tensor
from crfseg.losses import functional
from crfseg.losses._common import (
    check_class_vector,
    check_fraction,
    check_nonnegative,
    check_positive,
    check_reduction,
)

__all__ = [
    "CrossEntropyLoss",
    "FocalLoss",
    "DistancePenalizedCELoss",
    "DiceLoss",
    "GeneralizedDiceLoss",
    "CEDiceLoss",
    "JaccardLoss",
    "TverskyLoss",
    "FocalTverskyLoss",
    "LovaszSoftmaxLoss",
    "BoundaryLoss",
    "HausdorffDTLoss",
    "ComboLoss",
    "ExpLogLoss",
    "DenseCRFLoss",
]

ClassVector = Sequence[float] | np.ndarray | Tensor | None


class _SegmentationLoss(nn.Module):
    """Holds validated settings and passes them to ``function`` as keyword arguments."""

    function: Any = None

    def __init__(self, **settings: Any) -> None:
        super().__init__()
        self._setting_names = tuple(settings)
        for name, value in settings.items():
            if is_tensor(value):
                self.register_buffer(name, value, persistent=False)
            else:
                setattr(self, name, value)

    def _settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._setting_names}

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of ``logits (N, C, H, W)`` against ``target (N, H, W)``."""
        return type(self).function(logits, target, **self._settings())

    def extra_repr(self) -> str:
        shown = []
        for name, value in self._settings().items():
            shown.append(f"{name}=tensor({value.tolist()})" if is_tensor(value)
                         else f"{name}={value!r}")
        return ", ".join(shown)


class _DistanceMapLoss(_SegmentationLoss):
    """A loss that also takes precomputed distance maps of the target."""

    def forward(self, logits: Tensor, target: Tensor,
                distance_maps: Tensor | None = None) -> Tensor:
        """Loss of ``logits`` against ``target``; maps computed on the host when omitted."""
        return type(self).function(logits, target, distance_maps=distance_maps,
                                   **self._settings())


def _pixel_settings(ignore_index: Any, reduction: Any) -> dict[str, Any]:
    """Validated ``ignore_index`` and ``reduction``, shared by every module."""
    return {"ignore_index": check_int("ignore_index", ignore_index),
            "reduction": check_reduction(reduction)}


class CrossEntropyLoss(_SegmentationLoss):
    """Pixel-wise softmax cross-entropy, see :func:`crfseg.losses.cross_entropy`.

    Parameters
    ----------
    class_weights : (C,) sequence, ndarray or Tensor, optional
        Non-negative weight of each class (kept as a buffer).
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``(N, H, W)``.

    References
    ----------
    J. Long, E. Shelhamer, T. Darrell, "Fully convolutional networks for
    semantic segmentation", CVPR 2015.

    Examples
    --------
    >>> import torch
    >>> loss = CrossEntropyLoss(class_weights=[1.0, 2.0])
    >>> round(loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]])).item(), 4)
    0.6931
    """

    function = staticmethod(functional.cross_entropy)

    def __init__(self, *, class_weights: ClassVector = None, ignore_index: int = 255,
                 reduction: str = "mean") -> None:
        super().__init__(class_weights=check_class_vector("class_weights", class_weights),
                         **_pixel_settings(ignore_index, reduction))


class FocalLoss(_SegmentationLoss):
    """Softmax focal loss, see :func:`crfseg.losses.focal_loss`.

    Parameters
    ----------
    gamma : float, default 2.0
        Focusing parameter, ``>= 0``.
    alpha : (C,) sequence, ndarray or Tensor, optional
        Per-class balance factor in ``[0, 1]`` (kept as a buffer).
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``(N, H, W)``.

    References
    ----------
    T.-Y. Lin et al., "Focal loss for dense object detection", ICCV 2017.

    Examples
    --------
    >>> import torch
    >>> loss = FocalLoss(gamma=2.0)
    >>> round(loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]])).item(), 4)
    0.1733
    """

    function = staticmethod(functional.focal_loss)

    def __init__(self, *, gamma: float = 2.0, alpha: ClassVector = None,
                 ignore_index: int = 255, reduction: str = "mean") -> None:
        super().__init__(gamma=check_nonnegative("gamma", gamma),
                         alpha=check_class_vector("alpha", alpha, high=1.0),
                         **_pixel_settings(ignore_index, reduction))


class DistancePenalizedCELoss(_DistanceMapLoss):
    """Cross-entropy weighted by ``1 + D``, see :func:`crfseg.losses.distance_penalized_ce`.

    ``forward(logits, target, distance_maps=None)`` takes the ``(N, H, W)``
    maps of :func:`crfseg.losses.inverted_distance_maps` when precomputed.

    Parameters
    ----------
    class_weights : (C,) sequence, ndarray or Tensor, optional
        Non-negative weight of each class (kept as a buffer).
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``(N, H, W)``.

    References
    ----------
    F. Caliva et al., "Distance map loss penalty term for semantic
    segmentation", MIDL 2019.

    Examples
    --------
    >>> import torch
    >>> loss = DistancePenalizedCELoss()
    >>> round(loss(torch.zeros(1, 2, 1, 4), torch.tensor([[[0, 0, 0, 1]]])).item(), 4)
    1.1264
    """

    function = staticmethod(functional.distance_penalized_ce)

    def __init__(self, *, class_weights: ClassVector = None, ignore_index: int = 255,
                 reduction: str = "mean") -> None:
        super().__init__(class_weights=check_class_vector("class_weights", class_weights),
                         **_pixel_settings(ignore_index, reduction))


def _region_settings(smooth: Any, per_image: Any, include_absent: Any, ignore_index: Any,
                     reduction: Any) -> dict[str, Any]:
    """Validated settings shared by the region losses."""
    return {"smooth": check_nonnegative("smooth", smooth),
            "per_image": check_bool("per_image", per_image),
            "include_absent": check_bool("include_absent", include_absent),
            **_pixel_settings(ignore_index, reduction)}


class DiceLoss(_SegmentationLoss):
    """Soft Dice loss, see :func:`crfseg.losses.dice_loss`.

    Parameters
    ----------
    smooth : float, default 0.0
        Added to numerator and denominator.
    squared : bool, default False
        V-Net denominator ``sum p^2 + sum g^2``.
    per_image : bool, default False
        One Dice per image and class.
    include_absent : bool, default False
        Keep classes absent from the target in the mean.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``(C,)`` or ``(N, C)``, NaN for classes left out.

    References
    ----------
    F. Milletari, N. Navab, S.-A. Ahmadi, "V-Net", 3DV 2016.

    Examples
    --------
    >>> import torch
    >>> loss = DiceLoss()
    >>> round(loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]])).item(), 4)
    0.5
    """

    function = staticmethod(functional.dice_loss)

    def __init__(self, *, smooth: float = 0.0, squared: bool = False, per_image: bool = False,
                 include_absent: bool = False, ignore_index: int = 255,
                 reduction: str = "mean") -> None:
        super().__init__(squared=check_bool("squared", squared),
                         **_region_settings(smooth, per_image, include_absent, ignore_index,
                                            reduction))


class GeneralizedDiceLoss(_SegmentationLoss):
    """Generalised Dice loss, see :func:`crfseg.losses.generalized_dice_loss`.

    Parameters
    ----------
    per_image : bool, default False
        One loss per image.
    include_absent : bool, default False
        Give absent classes the largest present weight instead of 0.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        With ``per_image``, ``"none"`` returns ``(N,)``.

    References
    ----------
    C. H. Sudre et al., "Generalised Dice overlap as a deep learning loss
    function for highly unbalanced segmentations", DLMIA 2017.

    Examples
    --------
    >>> import torch
    >>> loss = GeneralizedDiceLoss()
    >>> round(loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]])).item(), 4)
    0.5
    """

    function = staticmethod(functional.generalized_dice_loss)

    def __init__(self, *, per_image: bool = False, include_absent: bool = False,
                 ignore_index: int = 255, reduction: str = "mean") -> None:
        settings = _region_settings(0.0, per_image, include_absent, ignore_index, reduction)
        del settings["smooth"]
        super().__init__(**settings)


class CEDiceLoss(_SegmentationLoss):
    """Weighted sum of cross-entropy and Dice, see :func:`crfseg.losses.ce_dice_loss`.

    Parameters
    ----------
    ce_weight, dice_weight : float, default 1.0
        Non-negative weights of the two terms.
    class_weights : (C,) sequence, ndarray or Tensor, optional
        Class weights of the cross-entropy term (kept as a buffer).
    smooth, squared, per_image, include_absent
        Options of the Dice term.
    ignore_index : int, default 255
        Label of pixels left out.

    References
    ----------
    F. Isensee et al., "nnU-Net", Nature Methods 18, 2021.

    Examples
    --------
    >>> import torch
    >>> loss = CEDiceLoss(ce_weight=1.0, dice_weight=0.5)
    >>> round(loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]])).item(), 4)
    0.9431
    """

    function = staticmethod(functional.ce_dice_loss)

    def __init__(self, *, ce_weight: float = 1.0, dice_weight: float = 1.0,
                 class_weights: ClassVector = None, smooth: float = 0.0, squared: bool = False,
                 per_image: bool = False, include_absent: bool = False,
                 ignore_index: int = 255) -> None:
        settings = _region_settings(smooth, per_image, include_absent, ignore_index, "mean")
        del settings["reduction"]
        super().__init__(ce_weight=check_nonnegative("ce_weight", ce_weight),
                         dice_weight=check_nonnegative("dice_weight", dice_weight),
                         class_weights=check_class_vector("class_weights", class_weights),
                         squared=check_bool("squared", squared), **settings)


class JaccardLoss(_SegmentationLoss):
    """Soft Jaccard (IoU) loss, see :func:`crfseg.losses.jaccard_loss`.

    Parameters
    ----------
    smooth : float, default 0.0
        Added to numerator and denominator.
    per_image : bool, default False
        One IoU per image and class.
    include_absent : bool, default False
        Keep classes absent from the target in the mean.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``(C,)`` or ``(N, C)``, NaN for classes left out.

    References
    ----------
    M. A. Rahman and Y. Wang, "Optimizing intersection-over-union in deep
    neural networks for image segmentation", ISVC 2016.

    Examples
    --------
    >>> import torch
    >>> loss = JaccardLoss()
    >>> round(loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]])).item(), 4)
    0.6667
    """

    function = staticmethod(functional.jaccard_loss)

    def __init__(self, *, smooth: float = 0.0, per_image: bool = False,
                 include_absent: bool = False, ignore_index: int = 255,
                 reduction: str = "mean") -> None:
        super().__init__(**_region_settings(smooth, per_image, include_absent, ignore_index,
                                            reduction))


class TverskyLoss(_SegmentationLoss):
    """Tversky loss, see :func:`crfseg.losses.tversky_loss` (alpha on FP, beta on FN).

    Parameters
    ----------
    alpha : float, default 0.3
        Weight of false positives, in ``[0, 1]``.
    beta : float, default 0.7
        Weight of false negatives, in ``[0, 1]``.
    smooth, per_image, include_absent
        As in :class:`DiceLoss`.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``(C,)`` or ``(N, C)``, NaN for classes left out.

    References
    ----------
    S. S. M. Salehi, D. Erdogmus, A. Gholipour, "Tversky loss function for
    image segmentation using 3D fully convolutional deep networks", MLMI 2017.

    Examples
    --------
    >>> import torch
    >>> loss = TverskyLoss(alpha=0.5, beta=0.5)
    >>> round(loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]])).item(), 4)
    0.5
    """

    function = staticmethod(functional.tversky_loss)

    def __init__(self, *, alpha: float = 0.3, beta: float = 0.7, smooth: float = 0.0,
                 per_image: bool = False, include_absent: bool = False,
                 ignore_index: int = 255, reduction: str = "mean") -> None:
        alpha, beta = functional._check_tversky(alpha, beta)
        super().__init__(alpha=alpha, beta=beta,
                         **_region_settings(smooth, per_image, include_absent, ignore_index,
                                            reduction))


class FocalTverskyLoss(_SegmentationLoss):
    """Focal Tversky loss, see :func:`crfseg.losses.focal_tversky_loss`.

    Parameters
    ----------
    alpha : float, default 0.3
        Weight of false positives, in ``[0, 1]``.
    beta : float, default 0.7
        Weight of false negatives, in ``[0, 1]``.
    gamma : float, default 4/3
        Focal parameter, ``> 0``; each class loss is raised to ``1 / gamma``.
    smooth, per_image, include_absent
        As in :class:`DiceLoss`.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``(C,)`` or ``(N, C)``, NaN for classes left out.

    References
    ----------
    N. Abraham and N. M. Khan, "A novel focal Tversky loss function with
    improved attention U-Net for lesion segmentation", ISBI 2019.

    Examples
    --------
    >>> import torch
    >>> loss = FocalTverskyLoss()
    >>> round(loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]])).item(), 4)
    0.5946
    """

    function = staticmethod(functional.focal_tversky_loss)

    def __init__(self, *, alpha: float = 0.3, beta: float = 0.7, gamma: float = 4.0 / 3.0,
                 smooth: float = 0.0, per_image: bool = False, include_absent: bool = False,
                 ignore_index: int = 255, reduction: str = "mean") -> None:
        alpha, beta = functional._check_tversky(alpha, beta)
        super().__init__(alpha=alpha, beta=beta, gamma=check_positive("gamma", gamma),
                         **_region_settings(smooth, per_image, include_absent, ignore_index,
                                            reduction))


class LovaszSoftmaxLoss(_SegmentationLoss):
    """Lovasz-softmax loss, see :func:`crfseg.losses.lovasz_softmax`.

    Parameters
    ----------
    classes : {"present", "all"} or sequence of int, default "present"
        Classes averaged.
    per_image : bool, default False
        One loss per image.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``(C,)`` or ``(N, C)``, NaN for classes not averaged.

    References
    ----------
    M. Berman, A. Rannen Triki, M. B. Blaschko, "The Lovasz-softmax loss",
    CVPR 2018.

    Examples
    --------
    >>> import torch
    >>> loss = LovaszSoftmaxLoss(per_image=True)
    >>> round(loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]])).item(), 4)
    0.5
    """

    function = staticmethod(functional.lovasz_softmax)

    def __init__(self, *, classes: str | Sequence[int] = "present", per_image: bool = False,
                 ignore_index: int = 255, reduction: str = "mean") -> None:
        super().__init__(classes=functional._check_lovasz_classes(classes),
                         per_image=check_bool("per_image", per_image),
                         **_pixel_settings(ignore_index, reduction))


class BoundaryLoss(_DistanceMapLoss):
    """Boundary loss, see :func:`crfseg.losses.boundary_loss`.

    ``forward(logits, target, distance_maps=None)`` takes the ``(N, C, H, W)``
    maps of :func:`crfseg.losses.signed_distance_maps` when precomputed.

    Parameters
    ----------
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``(N, H, W)``.

    References
    ----------
    H. Kervadec et al., "Boundary loss for highly unbalanced segmentation",
    MIDL 2019.

    Examples
    --------
    >>> import torch
    >>> loss = BoundaryLoss()
    >>> logits = torch.tensor([[[[3.0, -3.0]], [[-3.0, 3.0]]]])
    >>> round(loss(logits, torch.tensor([[[0, 1]]])).item(), 4)
    -0.4975
    """

    function = staticmethod(functional.boundary_loss)

    def __init__(self, *, ignore_index: int = 255, reduction: str = "mean") -> None:
        super().__init__(**_pixel_settings(ignore_index, reduction))


class HausdorffDTLoss(_DistanceMapLoss):
    """Distance-transform Hausdorff loss, see :func:`crfseg.losses.hausdorff_dt_loss`.

    ``forward(logits, target, distance_maps=None)`` takes the ``(N, C, H, W)``
    maps of :func:`crfseg.losses.unsigned_distance_maps` when precomputed.

    Parameters
    ----------
    alpha : float, default 2.0
        Exponent of the distances, ``> 0``.
    ignore_index : int, default 255
        Label of pixels left out.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns ``(N, H, W)``.

    References
    ----------
    D. Karimi and S. E. Salcudean, "Reducing the Hausdorff distance in medical
    image segmentation with convolutional neural networks", IEEE TMI 2020.

    Examples
    --------
    >>> import torch
    >>> loss = HausdorffDTLoss()
    >>> round(loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]])).item(), 4)
    0.0625
    """

    function = staticmethod(functional.hausdorff_dt_loss)

    def __init__(self, *, alpha: float = 2.0, ignore_index: int = 255,
                 reduction: str = "mean") -> None:
        super().__init__(alpha=check_positive("alpha", alpha),
                         **_pixel_settings(ignore_index, reduction))


class ComboLoss(_SegmentationLoss):
    """Combo loss, see :func:`crfseg.losses.combo_loss`.

    Parameters
    ----------
    alpha : float, default 0.5
        Share of the weighted CE term, in ``[0, 1]``.
    beta : float, default 0.5
        Weight of the false-negative side of the CE, in ``[0, 1]``.
    smooth, include_absent
        Options of the Dice term.
    ignore_index : int, default 255
        Label of pixels left out.

    References
    ----------
    S. A. Taghanaki et al., "Combo loss: handling input and output imbalance in
    multi-organ segmentation", CMIG 75, 2019.

    Examples
    --------
    >>> import torch
    >>> loss = ComboLoss(alpha=0.5, beta=0.7)
    >>> round(loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]])).item(), 4)
    0.4233
    """

    function = staticmethod(functional.combo_loss)

    def __init__(self, *, alpha: float = 0.5, beta: float = 0.5, smooth: float = 0.0,
                 include_absent: bool = False, ignore_index: int = 255) -> None:
        super().__init__(alpha=check_fraction("alpha", alpha), beta=check_fraction("beta", beta),
                         smooth=check_nonnegative("smooth", smooth),
                         include_absent=check_bool("include_absent", include_absent),
                         ignore_index=check_int("ignore_index", ignore_index))


class ExpLogLoss(_SegmentationLoss):
    """Exponential logarithmic loss, see :func:`crfseg.losses.exp_log_loss`.

    Parameters
    ----------
    gamma : float, default 0.3
        Exponent of both terms, ``> 0``.
    dice_weight, ce_weight : float, default 0.8, 0.2
        Non-negative weights of the two terms.
    class_weights : (C,) sequence, ndarray or Tensor, optional
        Label weights ``w_l`` (kept as a buffer); from the batch when omitted.
    smooth : float, default 1.0
        Pseudocount of the Dice term.
    include_absent : bool, default False
        Keep classes absent from the target in the Dice term.
    ignore_index : int, default 255
        Label of pixels left out.

    References
    ----------
    K. C. L. Wong et al., "3D segmentation with exponential logarithmic loss
    for highly unbalanced object sizes", MICCAI 2018.

    Examples
    --------
    >>> import torch
    >>> loss = ExpLogLoss()
    >>> round(loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]])).item(), 4)
    0.8636
    """

    function = staticmethod(functional.exp_log_loss)

    def __init__(self, *, gamma: float = 0.3, dice_weight: float = 0.8, ce_weight: float = 0.2,
                 class_weights: ClassVector = None, smooth: float = 1.0,
                 include_absent: bool = False, ignore_index: int = 255) -> None:
        super().__init__(gamma=check_positive("gamma", gamma),
                         dice_weight=check_nonnegative("dice_weight", dice_weight),
                         ce_weight=check_nonnegative("ce_weight", ce_weight),
                         class_weights=check_class_vector("class_weights", class_weights),
                         smooth=check_nonnegative("smooth", smooth),
                         include_absent=check_bool("include_absent", include_absent),
                         ignore_index=check_int("ignore_index", ignore_index))


class DenseCRFLoss(_SegmentationLoss):
    """Dense CRF loss of a soft segmentation, see :func:`crfseg.losses.dense_crf_loss`.

    Unlike the other losses it takes the image, not a target:
    ``forward(logits, image, roi=None)``.

    Parameters
    ----------
    sxy : float, default 80.0
        Spatial standard deviation of the affinity, in pixels.
    srgb : float, default 15.0
        Intensity standard deviation of the affinity.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns the loss of each image ``(N,)``.

    References
    ----------
    M. Tang, F. Perazzi, A. Djelouah, I. Ben Ayed, C. Schroers, Y. Boykov,
    "On Regularized Losses for Weakly-supervised CNN Segmentation", ECCV 2018.

    Examples
    --------
    >>> import torch
    >>> loss = DenseCRFLoss(sxy=4.0)
    >>> image = torch.zeros(1, 1, 6, 6)
    >>> bool(loss(torch.zeros(1, 2, 6, 6), image) > 0)  # undecided pixels cut every affinity
    True
    """

    function = staticmethod(functional.dense_crf_loss)

    def __init__(self, *, sxy: float = 80.0, srgb: float = 15.0,
                 reduction: str = "mean") -> None:
        super().__init__(sxy=check_positive("sxy", sxy), srgb=check_positive("srgb", srgb),
                         reduction=check_reduction(reduction))

    def forward(self, logits: Tensor, image: Tensor,  # type: ignore[override]
                roi: Tensor | None = None) -> Tensor:
        """Loss of ``logits (N, C, *S)`` on ``image (N, K, *S)``, ``roi (N, *S)`` optional."""
        return functional.dense_crf_loss(logits, image, roi=roi, **self._settings())
