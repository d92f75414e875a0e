"""Distance maps of label images for the boundary-aware losses.

All maps are measured in pixels between pixel centres with
:func:`scipy.ndimage.distance_transform_edt`, on the host (they are computed
from labels, never differentiated).  The contour of a class lies half-way
between a pixel of the class and a neighbouring pixel of another label, so a
pixel next to the contour is 0.5 from it.  Ignored pixels count as a label of
their own: they belong to no class, and an ignore band (the VOC object
outlines) is a boundary.  A class absent from an image, or covering all of it,
has no contour and gets an all-zero map.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from crfseg._validation import (
    check_array,
    check_int,
    check_integer_dtype,
    check_ndim,
    is_tensor,
)
from crfseg.losses._common import check_label_range

__all__ = ["signed_distance_maps", "unsigned_distance_maps", "inverted_distance_maps"]

_IGNORED = -1  # label of ignored pixels inside this module


def _signed_image(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Signed distance to each class contour: ``(C, H, W)``, negative inside."""
    out = np.zeros((num_classes,) + labels.shape, dtype=np.float64)
    for c in np.unique(labels):
        if c == _IGNORED:
            continue
        inside = labels == c
        if inside.all():
            continue
        outside = ~inside
        out[c] = np.where(
            inside,
            0.5 - distance_transform_edt(inside),
            distance_transform_edt(outside) - 0.5,
        )
    return out


def _inverted_image(labels: np.ndarray) -> np.ndarray:
    """``1 - d / max(d)``, ``d`` the distance to the nearest boundary pixel: ``(H, W)``.

    A boundary pixel has a 4-neighbour with another label.
    """
    boundary = np.zeros(labels.shape, dtype=bool)
    vertical = labels[:-1, :] != labels[1:, :]
    horizontal = labels[:, :-1] != labels[:, 1:]
    boundary[:-1, :] |= vertical
    boundary[1:, :] |= vertical
    boundary[:, :-1] |= horizontal
    boundary[:, 1:] |= horizontal
    if not boundary.any():
        return np.zeros(labels.shape, dtype=np.float64)
    distance = distance_transform_edt(~boundary)
    farthest = distance.max()
    if farthest == 0:
        return np.ones(labels.shape, dtype=np.float64)
    return 1.0 - distance / farthest


def signed_maps_from_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Signed maps of a batch ``(N, H, W)`` of labels (ignored pixels = -1)."""
    return np.stack([_signed_image(image, num_classes) for image in labels])


def inverted_maps_from_labels(labels: np.ndarray) -> np.ndarray:
    """Inverted boundary distance of a batch ``(N, H, W)`` of labels (ignored = -1)."""
    return np.stack([_inverted_image(image) for image in labels])


def host_labels(labels: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    """Labels on the host as int64 numpy, ignored pixels marked -1."""
    return torch.where(valid, labels, _IGNORED).cpu().numpy()


def _checked_labels(target: Any, num_classes: int | None, ignore_index: Any) -> np.ndarray:
    """Validate labels ``(H, W)`` or ``(N, H, W)``; return them as ``(N, H, W)`` numpy.

    ``num_classes=None`` only requires non-negative labels.
    """
    check_array("target", target)
    check_ndim("target", target, (2, 3), "(H, W) or (N, H, W) labels")
    check_integer_dtype("target", target)
    ignore_index = check_int("ignore_index", ignore_index)
    tensor = target.detach() if is_tensor(target) else torch.as_tensor(target)
    valid = tensor != ignore_index
    if num_classes is None:
        negative = valid & (tensor < 0)
        if bool(negative.any()):
            raise ValueError(
                f"target must hold non-negative class indices or ignore_index={ignore_index}, "
                f"got {int(tensor[negative][0])}"
            )
    else:
        check_label_range("target", tensor, valid, num_classes, ignore_index)
    labels = host_labels(tensor.long(), valid)
    return labels[None] if target.ndim == 2 else labels


def _maps(target: Any, maps: np.ndarray) -> Any:
    """Match ``target``: numpy stays numpy, a tensor keeps its device; 2-D drops the batch."""
    if target.ndim == 2:
        maps = maps[0]
    if is_tensor(target):
        return torch.from_numpy(np.ascontiguousarray(maps)).to(target.device)
    return maps


def signed_distance_maps(target: Any, num_classes: int, *, ignore_index: int = 255) -> Any:
    """Signed distance from each pixel to the contour of each class (Kervadec et al. 2019).

    ``phi_c(x) = -dist(x, contour of c)`` inside class ``c`` and
    ``+dist(x, contour of c)`` outside it, with the contour half a pixel from
    the centres on either side (so the smallest magnitude is 0.5).  This is the
    map :func:`crfseg.losses.boundary_loss` multiplies the softmax with.

    Parameters
    ----------
    target : (H, W) or (N, H, W) integer ndarray or Tensor
        Class labels in ``[0, num_classes)`` or ``ignore_index``.
    num_classes : int
        Number of classes ``C``.
    ignore_index : int, default 255
        Label of pixels that belong to no class.

    Returns
    -------
    (C, H, W) or (N, C, H, W) float64 ndarray or Tensor
        Same container as ``target`` (a tensor stays on its device).  A class
        absent from an image, or filling all of it, has an all-zero map.

    References
    ----------
    H. Kervadec et al., "Boundary loss for highly unbalanced segmentation",
    MIDL 2019 / Medical Image Analysis 67 (2021).

    Examples
    --------
    >>> import numpy as np
    >>> signed_distance_maps(np.array([[0, 0, 1]]), 2)[1]
    array([[ 1.5,  0.5, -0.5]])
    """
    num_classes = check_int("num_classes", num_classes, low=1)
    labels = _checked_labels(target, num_classes, ignore_index)
    return _maps(target, signed_maps_from_labels(labels, num_classes))


def unsigned_distance_maps(target: Any, num_classes: int, *, ignore_index: int = 255) -> Any:
    """Distance from each pixel to the contour of each class: ``|signed_distance_maps|``.

    The ground-truth map ``d_g`` of :func:`crfseg.losses.hausdorff_dt_loss`.

    Parameters
    ----------
    target : (H, W) or (N, H, W) integer ndarray or Tensor
        Class labels in ``[0, num_classes)`` or ``ignore_index``.
    num_classes : int
        Number of classes ``C``.
    ignore_index : int, default 255
        Label of pixels that belong to no class.

    Returns
    -------
    (C, H, W) or (N, C, H, W) float64 ndarray or Tensor
        Same container as ``target``; zero for a class without a contour.

    References
    ----------
    D. Karimi and S. E. Salcudean, "Reducing the Hausdorff distance in medical
    image segmentation with convolutional neural networks", IEEE TMI 39(2), 2020
    (arXiv:1904.10030, 2019).

    Examples
    --------
    >>> import numpy as np
    >>> unsigned_distance_maps(np.array([[0, 0, 1]]), 2)[0]
    array([[1.5, 0.5, 0.5]])
    """
    num_classes = check_int("num_classes", num_classes, low=1)
    labels = _checked_labels(target, num_classes, ignore_index)
    return _maps(target, np.abs(signed_maps_from_labels(labels, num_classes)))


def inverted_distance_maps(target: Any, *, ignore_index: int = 255) -> Any:
    """Inverted distance to the ground-truth boundaries, ``D`` in ``[0, 1]`` (Caliva et al. 2019).

    A boundary pixel is one whose 4-neighbour carries another label (ignored
    pixels count as a label of their own).  With ``d`` the Euclidean distance
    to the nearest boundary pixel, ``D = 1 - d / max(d)`` per image: 1 on the
    boundaries, 0 at the pixel farthest from them.  An image with a single
    label has no boundary and ``D = 0``.

    Parameters
    ----------
    target : (H, W) or (N, H, W) integer ndarray or Tensor
        Class labels (any non-negative integers) or ``ignore_index``.
    ignore_index : int, default 255
        Label of pixels that belong to no class.

    Returns
    -------
    (H, W) or (N, H, W) float64 ndarray or Tensor
        Same container as ``target``.

    References
    ----------
    F. Caliva et al., "Distance map loss penalty term for semantic
    segmentation", MIDL 2019 (arXiv:1908.03679).

    Examples
    --------
    >>> import numpy as np
    >>> inverted_distance_maps(np.array([[0, 0, 0, 1]]))
    array([[0. , 0.5, 1. , 1. ]])
    """
    labels = _checked_labels(target, None, ignore_index)
    return _maps(target, inverted_maps_from_labels(labels))
