"""Fully connected CRF post-processing (Krähenbühl & Koltun, 2011).

This is the only module that knows pydensecrf's demands: a C-contiguous
float32 unary of shape ``(C, H*W)``, a C-contiguous uint8 ``(H, W, 3)`` image
and a constructor that takes the width first.  Scores in any layout crfseg
accepts are converted here, once, so the classic mistake of reshaping
``(H, W, C)`` to ``(C, -1)`` without a transpose cannot happen.

The torch backend (``backend="torch"``) runs the same mean field with
:mod:`crfseg.crf.mean_field` on a permutohedral lattice in PyTorch: batched,
on any device.  Its inputs go through the same conversions defined here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from crfseg._validation import (
    check_array,
    check_bool,
    check_choice,
    check_finite,
    check_floating_dtype,
    check_int,
    check_integer_dtype,
    check_memory,
    check_ndim,
    check_number,
    is_tensor,
    shape_of,
    to_numpy,
)

__all__ = ["DenseCRF", "scores_to_unary", "scores_to_labels", "labels_to_unary", "prepare_image",
           "INPUT_TYPES", "REFINE_INPUT_TYPES"]

INPUT_TYPES = ("auto", "logits", "probs", "unary")
REFINE_INPUT_TYPES = INPUT_TYPES + ("labels",)
BACKENDS = ("pydensecrf", "torch", "auto")

# Probabilities are clipped away from 0 before the log so a hard 0 costs a
# large, finite energy (pydensecrf's own unary_from_softmax does the same).
_PROB_FLOOR = 1e-8
_PROB_SUM_TOLERANCE = 1e-3


def resolve_input_type(scores: Any, input_type: str, axis: int = 0) -> str:
    """Name the kind of ``scores``: ``auto`` becomes ``probs`` or ``logits``.

    Probabilities are recognised when every value is non-negative and the
    values sum to 1 (within 1e-3) over the class axis; anything else is logits.
    Negative values with ``input_type="probs"`` are rejected.
    """
    check_choice("input_type", input_type, INPUT_TYPES)
    if 0 in shape_of(scores):
        raise ValueError(f"scores must not be empty, got shape {shape_of(scores)}")
    if input_type == "auto":
        if is_tensor(scores):
            is_probs = bool(scores.min() >= 0) and torch.allclose(
                scores.sum(dim=axis), scores.new_ones(()), atol=_PROB_SUM_TOLERANCE)
        else:
            is_probs = scores.min() >= 0 and np.allclose(scores.sum(axis=axis), 1.0,
                                                         atol=_PROB_SUM_TOLERANCE)
        return "probs" if is_probs else "logits"
    if input_type == "probs" and scores.min() < 0:
        raise ValueError(
            f"scores were given as probabilities but contain negative values "
            f"(min {float(scores.min()):.4g}); pass input_type='logits' for raw CNN output"
        )
    return input_type


def scores_to_unary(scores: Any, input_type: str = "auto", axis: int = 0) -> Any:
    """Convert class scores to a unary energy ``-log p``.

    Parameters
    ----------
    scores : (C, H, W) or (N, C, H, W) float ndarray or Tensor
        Logits, probabilities or unary energies; the class axis is ``axis``.
        Not empty (``ValueError`` otherwise).
    input_type : {"auto", "logits", "probs", "unary"}
        What ``scores`` holds; ``auto`` recognises probabilities (non-negative,
        summing to 1 over the classes) and otherwise assumes logits.
    axis : int, default 0
        The class axis.

    Returns
    -------
    unary : ndarray or Tensor, same shape as ``scores``
        ``-log_softmax(logits)``, ``-log(max(p, 1e-8))`` or the unary itself,
        in float64 (float32 for float32 input).  A Tensor for Tensor
        ``scores``, on their device.

    Examples
    --------
    >>> u = scores_to_unary(np.array([[0.0], [np.log(3.0)]]), "logits")
    >>> np.round(np.exp(-u).ravel(), 3)
    array([0.25, 0.75])
    """
    if is_tensor(scores):
        check_floating_dtype("scores", scores)
        check_finite("scores", scores)
        x = scores.detach()
        x = x if x.dtype == torch.float32 else x.to(torch.float64)
        kind = resolve_input_type(x, input_type, axis)
        if kind == "unary":
            return x.clone()
        if kind == "probs":
            return -torch.log(x.clamp_min(_PROB_FLOOR))
        return -torch.log_softmax(x, dim=axis)
    arr = to_numpy(scores)
    check_floating_dtype("scores", arr)
    check_finite("scores", arr)
    dtype = np.float32 if arr.dtype == np.float32 else np.float64
    arr = arr.astype(dtype, copy=False)
    kind = resolve_input_type(arr, input_type, axis)
    if kind == "unary":
        return arr.copy()
    if kind == "probs":
        return -np.log(np.maximum(arr, dtype(_PROB_FLOOR)))
    shifted = arr - arr.max(axis=axis, keepdims=True)
    return -(shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True)))


def scores_to_labels(scores: Any, input_type: str = "auto", axis: int = 0) -> Any:
    """The most likely class of every pixel, read straight from the scores (no CRF).

    Parameters
    ----------
    scores : (C, H, W) or (N, C, H, W) float ndarray or Tensor
        Logits, probabilities or unary energies; the class axis is ``axis``.
    input_type : {"auto", "logits", "probs", "unary"}
        What ``scores`` holds, as in :func:`scores_to_unary`: the largest
        logit or probability wins, or the smallest energy.
    axis : int, default 0
        The class axis.

    Returns
    -------
    labels : (H, W) or (N, H, W) int64 ndarray or Tensor
        ``scores`` without the class axis; a Tensor on the scores' device for
        Tensor ``scores``.

    Examples
    --------
    >>> scores_to_labels(np.array([[0.2, 0.9], [0.8, 0.1]]), "probs").tolist()
    [1, 0]
    >>> scores_to_labels(np.array([[0.2, 0.9], [0.8, 0.1]]), "unary").tolist()
    [0, 1]
    """
    if not is_tensor(scores):
        scores = to_numpy(scores)
    check_floating_dtype("scores", scores)
    check_finite("scores", scores)
    if scores.ndim < 1 or not -scores.ndim <= axis < scores.ndim:
        raise ValueError(f"axis must index one of the {scores.ndim} axes of scores, got {axis}")
    kind = resolve_input_type(scores, input_type, axis)
    if is_tensor(scores):
        return scores.argmin(dim=axis) if kind == "unary" else scores.argmax(dim=axis)
    labels = scores.argmin(axis=axis) if kind == "unary" else scores.argmax(axis=axis)
    return labels.astype(np.int64)


def prepare_image(image: Any, *, integers: bool = True, warn_units: bool = True) -> torch.Tensor:
    """Check an image's values for a bilateral kernel and return it as a Tensor.

    The one place where DenseCRF and CRFasRNN check image values: uint8 or
    float (float in the units of the colour standard deviation), finite,
    with a warning when a float image meant for 0–255 units looks otherwise.

    Parameters
    ----------
    image : ndarray or Tensor, any shape
        The image, uint8 or float; other integer dtypes (16-bit images) too
        when ``integers``.
    integers : bool, default True
        Accept integer dtypes besides uint8 (converted to float32).
    warn_units : bool, default True
        Warn when float values leave 0–255 or all lie in [0, 1] (a
        normalised image given to a kernel whose colour width is in 0–255
        units).

    Returns
    -------
    image : Tensor, the shape of ``image``
        uint8 or floating point; a NumPy array is wrapped without a copy
        (unless its strides are negative), a Tensor stays on its device.

    Raises
    ------
    TypeError
        Boolean, complex or non-numeric images (and integers other than
        uint8 unless ``integers``).
    ValueError
        NaN or inf.

    Examples
    --------
    >>> prepare_image(np.zeros((2, 3, 3), np.uint8)).dtype
    torch.uint8
    >>> prepare_image(np.full((2, 2), 300, np.uint16), warn_units=False).dtype
    torch.float32
    """
    check_array("image", image)
    kind = "tensor" if is_tensor(image) else "array"
    expected = f"image must be uint8 or a float {kind} in 0-255 units"
    if is_tensor(image):
        img = image.detach()
    elif image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.number) \
            or np.issubdtype(image.dtype, np.complexfloating):
        raise TypeError(f"{expected}, got {image.dtype}")
    else:
        if not image.dtype.isnative:
            image = image.astype(image.dtype.newbyteorder("="))
        img = torch.from_numpy(np.ascontiguousarray(image) if min(image.strides, default=0) < 0
                               else image)
    if img.dtype == torch.uint8:
        return img
    if img.dtype == torch.bool or img.is_complex() or (
            not img.is_floating_point() and not integers):
        raise TypeError(f"{expected}, got {img.dtype}")
    img = img if img.is_floating_point() else img.float()
    check_finite("image", img)
    if warn_units and img.numel():
        low, high = float(img.min()), float(img.max())
        if low < 0 or high > 255:
            warnings.warn(
                f"image values span [{low:.3g}, {high:.3g}], outside 0-255; the bilateral "
                "kernel's colour width assumes 0-255 units", stacklevel=3)
        elif high <= 1.0:
            warnings.warn(
                "image values all lie in [0, 1]; the bilateral kernel's colour width assumes "
                "0-255 units, multiply by 255 if this is a normalised image", stacklevel=3)
    return img


def labels_to_unary(labels: Any, num_classes: int, gt_prob: float = 0.5,
                    unknown_label: int | None = None) -> Any:
    """Unary energies of a label map (an annotation, or a first segmentation).

    A pixel labelled ``l`` is ``l`` with probability ``gt_prob`` and any
    other class with ``(1 - gt_prob) / (C - 1)``; a pixel equal to
    ``unknown_label`` is uniform.  This is pydensecrf's ``unary_from_labels``
    with the unknown value chosen freely (pydensecrf shifts every label by one
    to make 0 the unknown one).

    Parameters
    ----------
    labels : (*shape) integer ndarray or Tensor
        Class indices in ``[0, num_classes)``, apart from ``unknown_label``.
    num_classes : int
        ``C >= 2``.
    gt_prob : float, default 0.5
        Confidence in the labels, in (0, 1).
    unknown_label : int, optional
        The value of unlabelled pixels (any integer, inside or outside
        ``[0, C)``); none by default.

    Returns
    -------
    unary : (C, *shape) float32 ndarray or Tensor
        ``-log`` of the probabilities; a Tensor on the labels' device for
        Tensor labels.

    Raises
    ------
    ValueError
        Labels outside ``[0, num_classes)``, ``gt_prob`` outside (0, 1),
        ``num_classes < 2``.
    TypeError
        Non-integer labels.

    Examples
    --------
    >>> u = labels_to_unary(np.array([0, 1, 9]), 3, gt_prob=0.8, unknown_label=9)
    >>> np.round(np.exp(-u.astype(np.float64)), 3).T.tolist()
    [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.333, 0.333, 0.333]]
    """
    check_array("labels", labels)
    check_integer_dtype("labels", labels)
    num_classes = check_int("num_classes", num_classes, low=2)
    check_memory("num_classes", num_classes, 4 * num_classes * math.prod(shape_of(labels)),
                 f"a float32 unary of shape (C, {', '.join(map(str, shape_of(labels)))})")
    gt_prob = check_number("gt_prob", gt_prob, low=0, high=1, low_inclusive=False,
                           high_inclusive=False)
    if unknown_label is not None:
        unknown_label = check_int("unknown_label", unknown_label, low=-2**63, high=2**63 - 1)
    lab = labels.detach() if is_tensor(labels) else torch.from_numpy(
        np.ascontiguousarray(labels).astype(np.int64, copy=False))
    lab = lab.long()
    unknown = (lab == unknown_label) if unknown_label is not None else torch.zeros_like(
        lab, dtype=torch.bool)
    known = lab[~unknown]
    if known.numel() and (int(known.min()) < 0 or int(known.max()) >= num_classes):
        low, high = int(known.min()), int(known.max())
        bad = high if high >= num_classes else low
        hint = "" if unknown_label is not None else "; mark unlabelled pixels with unknown_label"
        raise ValueError(
            f"labels must lie in [0, num_classes) = [0, {num_classes}), got {bad}{hint}")
    energy = torch.tensor([-math.log(gt_prob), -math.log((1 - gt_prob) / (num_classes - 1)),
                           -math.log(1 / num_classes)], dtype=torch.float32)
    unary = torch.full((num_classes, *lab.shape), float(energy[1]), dtype=torch.float32,
                       device=lab.device)
    unary.scatter_(0, lab.clamp(0, num_classes - 1)[None], float(energy[0]))
    unary[:, unknown] = energy[2].to(lab.device)
    return unary if is_tensor(labels) else unary.numpy()


def check_spacing(spacing: Any) -> tuple[float, float, float] | None:
    """Validate a voxel spacing ``(sz, sy, sx)``: three positive finite numbers, or None."""
    if spacing is None:
        return None
    values = to_numpy(spacing) if is_tensor(spacing) else spacing
    if isinstance(values, (str, bytes)) or np.ndim(values) != 1 or len(values) != 3:
        raise ValueError(f"spacing must be three numbers (sz, sy, sx), got {spacing!r}")
    return tuple(check_number(f"spacing[{i}]", float(v) if isinstance(v, np.generic) else v,
                              low=0, low_inclusive=False)
                 for i, v in enumerate(values))


def check_srgb(srgb: Any) -> float | tuple[float, ...]:
    """Validate ``bilateral_srgb``: one positive number, or one per image channel."""
    if np.isscalar(srgb) or ((is_tensor(srgb) or isinstance(srgb, np.ndarray))
                             and srgb.ndim == 0):
        value = srgb.item() if hasattr(srgb, "item") and not isinstance(srgb, str) else srgb
        return check_number("bilateral_srgb", value, low=0, low_inclusive=False)
    values = to_numpy(srgb) if is_tensor(srgb) else srgb
    if isinstance(values, (str, bytes)) or np.ndim(values) != 1 or len(values) < 1:
        raise ValueError(f"bilateral_srgb must be a number or one number per image channel, "
                         f"got {srgb!r}")
    return tuple(check_number(f"bilateral_srgb[{i}]",
                              float(v) if isinstance(v, np.generic) else v,
                              low=0, low_inclusive=False)
                 for i, v in enumerate(values))


def _binary_to_two_classes(scores: Any, input_type: str, class_axis: int) -> tuple[Any, str]:
    """``[1 - p, p]`` (probabilities) or ``[0, l]`` (logits) along ``class_axis``."""
    if input_type == "unary":
        raise ValueError(
            "a binary map holds the foreground's probability or logit, so input_type='unary' "
            "does not apply; give (C, ...) unary energies of both classes instead")
    low, high = float(scores.min()), float(scores.max())
    kind = input_type
    if kind == "auto":
        kind = "probs" if low >= 0 and high <= 1 else "logits"
    if kind == "probs" and (low < 0 or high > 1):
        raise ValueError(f"a binary probability map must lie in [0, 1], got values in "
                         f"[{low:.4g}, {high:.4g}]; pass input_type='logits' for logits")
    if is_tensor(scores):
        back = 1 - scores if kind == "probs" else torch.zeros_like(scores)
        return torch.cat([back, scores], class_axis), kind
    back = 1 - scores if kind == "probs" else np.zeros_like(scores)
    return np.concatenate([back, scores], class_axis), kind


def check_compat(name: str, compat: Any) -> float | np.ndarray:
    """Validate a label compatibility: a scalar, a ``(C,)`` vector or a ``(C, C)`` matrix."""
    if np.isscalar(compat):
        return check_number(name, compat)
    arr = to_numpy(compat).astype(np.float64)
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[0] != arr.shape[1]):
        raise ValueError(
            f"{name} must be a scalar, a (C,) vector or a square (C, C) matrix, "
            f"got shape {arr.shape}"
        )
    check_finite(name, arr)
    return arr


def compat_matrix(compat: float | np.ndarray, num_classes: int) -> np.ndarray:
    """The ``(C, C)`` compatibility, in the energy convention, equivalent to ``compat``.

    A scalar ``w`` is the Potts model (agreement rewarded by ``w``), a vector
    gives one Potts weight per class, and a matrix ``μ`` is a penalty
    ``μ[l, l']`` for labels ``l`` and ``l'`` (symmetrised, as pydensecrf does).
    """
    if np.isscalar(compat):
        return -float(compat) * np.eye(num_classes)
    arr = np.asarray(compat, dtype=np.float64)
    if arr.shape[0] != num_classes:
        raise ValueError(
            f"compatibility has {arr.shape[0]} classes but the scores have C={num_classes}"
        )
    if arr.ndim == 1:
        return -np.diag(arr)
    return 0.5 * (arr + arr.T)


class DenseCRF:
    """Mean-field inference in a fully connected CRF with Gaussian edge potentials.

    The pairwise energy is a sum of two kernels: a spatial (smoothness)
    Gaussian with standard deviation ``gaussian_sxy`` pixels, and a bilateral
    (appearance) kernel with ``bilateral_sxy`` pixels and ``bilateral_srgb``
    colour levels.  Images may have any number of channels (RGB, RGB +
    depth, multispectral), and 3-D volumes are refined alike, with the
    spatial widths in the units of the voxel ``spacing``.

    Parameters
    ----------
    n_iter : int, default 5
        Mean-field iterations.
    gaussian_sxy : float, default 3
        Spatial standard deviation of the smoothness kernel, in pixels (in
        the units of ``spacing`` for volumes).
    gaussian_compat : float, (C,) or (C, C) array, default 3
        Compatibility of the smoothness kernel: a scalar is a Potts weight
        (agreeing neighbours are rewarded by it), a vector holds one Potts
        weight per class, a matrix ``μ[l, l']`` is the energy paid when labels
        ``l`` and ``l'`` meet (symmetrised).
    bilateral_sxy : float, default 80
        Spatial standard deviation of the appearance kernel, in pixels (in
        the units of ``spacing`` for volumes).
    bilateral_srgb : float or sequence of float, default 13
        Colour standard deviation of the appearance kernel, one for every
        channel or one per channel, in the units of the image.  With one
        number a gray 2-D image ``(H, W)`` or ``(H, W, 1)`` is repeated to
        RGB and the alpha of ``(H, W, 4)`` is dropped, as pydensecrf's
        ``addPairwiseBilateral`` does for photos; any other channel count
        ``K`` (2, 5, …: RGB + depth, multispectral) uses all ``K`` channels
        with that one width; give four values to use a fourth channel.
        Volume intensities ``(D, H, W[, K])`` take either form and use every
        channel.
    bilateral_compat : float, (C,) or (C, C) array, default 10
        Compatibility of the appearance kernel (same forms as ``gaussian_compat``).
    backend : {"pydensecrf", "torch", "auto"}, default "pydensecrf"
        The inference engine.  ``torch`` runs the same mean field (same
        kernels, normalisation and compatibilities) on a permutohedral
        lattice in PyTorch, on any device and on batches; ``auto`` picks
        ``torch`` on CUDA (or the accelerator ``device`` names), and on
        the CPU when the compiled lattice (``crfseg._lattice``) is built,
        where it is the faster engine (``benchmarks/bench_dense.py`` on an
        idle 2-core machine: 0.4–0.51× pydensecrf's time with two threads,
        0.83× with one); ``pydensecrf`` otherwise.  Its kernels share
        torch's OpenMP threads, so a machine busy with other work slows
        them as it slows torch.
    device : str or torch.device, optional
        Where the torch backend computes.  By default: the device of Tensor
        scores, else CUDA when available, else the CPU.  The pydensecrf
        backend runs on the CPU only.
    deterministic : bool, default False
        Torch backend: gather-based splat and slice, bitwise repeatable on
        CUDA (CPU results are repeatable either way).

    Every setting is keyword-only.

    Notes
    -----
    :meth:`refine` returns what it is given: NumPy scores give float32
    NumPy probabilities, Tensor scores give a Tensor (on the device with
    the torch backend; float32, or float64 for float64 scores), single
    images and volumes give ``(C, ...)``, batches (torch backend) ``(N, C, ...)``.

    What the scores may be:

    ========================  ===========================================
    ``(C, H, W)``             class scores of one image
    ``(N, C, H, W)``          a batch (torch backend)
    ``(H, W)``, ``(1, H, W)`` a binary map: the foreground's probability
                              (or logit with ``input_type="logits"``); two
                              classes, as if ``[1 - p, p]`` were given
    ``(H, W)`` integers       a label map with ``input_type="labels"``
    ``(C, D, H, W)``          a volume, with ``spacing=(sz, sy, sx)``
    ``(N, C, D, H, W)``       a batch of volumes (torch backend)
    ========================  ===========================================

    The torch backend keeps the lattice of the smoothness kernel, which
    depends only on the image size, for the last size it saw: repeated calls
    on images of one size build only the bilateral lattice.

    Feature range of the pydensecrf backend.  Its lattice keeps coordinates
    in 16-bit integers, so the kernel features (positions divided by
    ``gaussian_sxy`` or ``bilateral_sxy``, image values divided by
    ``bilateral_srgb``) must span a limited number of standard deviations:
    about 21 900 for the smoothness kernel and 6 700 for the appearance kernel
    of an RGB image (5 features), per feature (precisely: the lattice
    embedding of the features' bounding box, centred, stays within
    +-30 000).  Features beyond it as given but within it centred (16-bit
    images, float images far from 0) are centred, which changes none of their
    differences; beyond it even centred (e.g. ``bilateral_srgb=1e-12`` on an
    image that is not constant) they raise ``ValueError`` before pydensecrf
    sees them.  Inside it, any units work: 16-bit and float images with
    ``bilateral_srgb`` in their units, tiny or huge standard deviations.

    References
    ----------
    P. Krähenbühl and V. Koltun, "Efficient Inference in Fully Connected CRFs
    with Gaussian Edge Potentials", NIPS 2011.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    >>> logits = rng.normal(size=(4, 20, 30)).astype(np.float32)
    >>> probs = DenseCRF(n_iter=2).refine(logits, image)
    >>> probs.shape, probs.dtype
    ((4, 20, 30), dtype('float32'))
    >>> annotation = np.full((20, 30), 255)  # 255: unknown
    >>> annotation[:, :5], annotation[:, -5:] = 0, 1
    >>> DenseCRF(n_iter=2).predict(annotation, image, "labels", num_classes=2,
    ...                            gt_prob=0.7, unknown_label=255).shape
    (20, 30)
    >>> import torch
    >>> crf = DenseCRF(n_iter=2, backend="torch", device="cpu")
    >>> batch = crf.refine(torch.randn(2, 4, 20, 30), torch.rand(2, 3, 20, 30) * 255)
    >>> batch.shape
    torch.Size([2, 4, 20, 30])
    >>> volume = crf.refine(rng.normal(size=(3, 8, 20, 30)), rng.random((8, 20, 30)) * 100,
    ...                     spacing=(2.5, 1.0, 1.0))
    >>> volume.shape
    (3, 8, 20, 30)
    """

    def __init__(
        self,
        *,
        n_iter: int = 5,
        gaussian_sxy: float = 3.0,
        gaussian_compat: float | np.ndarray = 3.0,
        bilateral_sxy: float = 80.0,
        bilateral_srgb: float | Sequence[float] = 13.0,
        bilateral_compat: float | np.ndarray = 10.0,
        backend: str = "pydensecrf",
        device: str | torch.device | None = None,
        deterministic: bool = False,
    ) -> None:
        self.n_iter = check_int("n_iter", n_iter, low=0, high=2**31 - 1)
        self.gaussian_sxy = check_number("gaussian_sxy", gaussian_sxy, low=0,
                                         low_inclusive=False)
        self.bilateral_sxy = check_number("bilateral_sxy", bilateral_sxy, low=0,
                                          low_inclusive=False)
        self.bilateral_srgb = check_srgb(bilateral_srgb)
        self.gaussian_compat = check_compat("gaussian_compat", gaussian_compat)
        self.bilateral_compat = check_compat("bilateral_compat", bilateral_compat)
        check_choice("backend", backend, BACKENDS)
        if backend == "auto":
            backend = _auto_backend(_check_device(device, "torch"))
        self.backend = backend
        self.device = _check_device(device, backend)
        self.deterministic = check_bool("deterministic", deterministic)
        self._spatial_cache: tuple[tuple, Any] | None = None

    def __repr__(self) -> str:
        device = "" if self.device is None else f", device='{self.device}'"
        return (
            f"DenseCRF(n_iter={self.n_iter}, gaussian_sxy={self.gaussian_sxy}, "
            f"bilateral_sxy={self.bilateral_sxy}, bilateral_srgb={self.bilateral_srgb}, "
            f"backend={self.backend!r}{device})"
        )

    def _check_scores(self, scores: Any, input_type: str, spacing: tuple | None,
                      label_options: dict[str, Any]) -> tuple[Any, str]:
        """``(C, *spatial)`` or ``(N, C, *spatial)`` float scores and their kind."""
        check_array("scores", scores)
        nsp = 2 if spacing is None else 3
        spatial = "H, W" if spacing is None else "D, H, W"
        torch_backend = self.backend == "torch"
        arr = scores if torch_backend and is_tensor(scores) else to_numpy(scores)
        ndims = (nsp, nsp + 1, nsp + 2) if torch_backend else (nsp, nsp + 1)
        if input_type == "labels":
            layout = f"({spatial}) labels" + (f" or (N, {spatial}) labels" if torch_backend
                                              else f"; batches (N, {spatial}) need "
                                              "backend='torch'")
            check_ndim("labels", arr, ndims[:2] if torch_backend else nsp, layout)
            if label_options["num_classes"] is None:
                raise ValueError("num_classes is required with input_type='labels': the number "
                                 "of classes C the labels are drawn from")
            unary = labels_to_unary(arr, **label_options)
            return (unary if unary.ndim == nsp + 1 else unary.swapaxes(0, 1)), "unary"
        given = [name for name, value in label_options.items()
                 if value != (0.5 if name == "gt_prob" else None)]
        if given:
            raise ValueError(f"{', '.join(given)} apply to input_type='labels' only, "
                             f"not to input_type={input_type!r}")
        if torch_backend:
            layout = (f"(C, {spatial}) or (N, C, {spatial}) (channels first), or a binary "
                      f"({spatial}) map")
        else:
            layout = (f"(C, {spatial}) (channels first) or a binary ({spatial}) map; "
                      f"batches (N, C, {spatial}) need backend='torch'")
        if spacing is None:
            layout += "; volumes (C, D, H, W) need spacing=(sz, sy, sx)"
        check_ndim("scores", arr, ndims, layout)
        check_floating_dtype("scores", arr)
        if not is_tensor(arr) and not arr.dtype.isnative:  # torch takes native byte order only
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if 0 in shape_of(arr):
            raise ValueError(f"scores must not be empty, got shape {shape_of(arr)}")
        kind = input_type
        if arr.ndim == nsp or arr.shape[-nsp - 1] == 1:
            check_finite("scores", arr)
            binary = arr[None] if arr.ndim == nsp else arr
            low, high = float(binary.min()), float(binary.max())
            if input_type == "auto" and (low < 0 or high > 1):
                batch = f"(N, C, {spatial})" if torch_backend else f"(C, {spatial})"
                raise ValueError(
                    f"scores of shape {shape_of(arr)} are a binary map, read as the "
                    f"foreground's probability, but hold values in [{low:.4g}, {high:.4g}]; "
                    f"pass input_type='logits' for a logit map, or give scores of at least 2 "
                    f"classes (scores must be (C, {spatial}) or {batch}, channels first)")
            arr, kind = _binary_to_two_classes(binary, input_type, -nsp - 1)
        classes = arr.shape[-nsp - 1]
        for name, compat in (("gaussian_compat", self.gaussian_compat),
                             ("bilateral_compat", self.bilateral_compat)):
            if not np.isscalar(compat) and compat.shape[0] != classes:
                raise ValueError(
                    f"{name} has shape {compat.shape} but the scores have C={classes} classes"
                )
        return arr, kind

    def refine(self, scores: Any, image: Any, input_type: str = "auto", *,
               num_classes: int | None = None, gt_prob: float = 0.5,
               unknown_label: int | None = None,
               spacing: Sequence[float] | None = None) -> Any:
        """Refined class probabilities of an image, a volume or (torch backend) a batch.

        Parameters
        ----------
        scores : ndarray or Tensor
            Class scores, channels first, any float dtype and memory order:
            ``(C, H, W)``, ``(C, D, H, W)`` with ``spacing``, batches
            ``(N, C, ...)`` with the torch backend; a binary ``(H, W)`` or
            ``(1, H, W)`` map (the foreground's probability, or logit with
            ``input_type="logits"``); or integer labels ``(H, W)``
            (``(D, H, W)``, ``(N, ...)``) with ``input_type="labels"``.
        image : ndarray or Tensor
            The image the kernels compare, uint8 or float (in the units of
            ``bilateral_srgb``): ``(H, W)`` or ``(H, W, K)`` for one image
            (see ``bilateral_srgb`` for gray and RGBA), ``(N, K, H, W)`` or
            ``(N, H, W, K)`` for a batch; volume intensities ``(D, H, W)``
            or ``(D, H, W, K)`` (``K`` modalities), batched ``(N, D, H, W)``,
            ``(N, K, D, H, W)`` or ``(N, D, H, W, K)``.
        input_type : {"auto", "logits", "probs", "unary", "labels"}, default "auto"
            What ``scores`` holds (see :func:`scores_to_unary`); ``labels``
            turns a label map into scores with :func:`labels_to_unary`.
        num_classes : int, optional
            ``input_type="labels"`` only, and required there: the number of
            classes ``C``.
        gt_prob : float, default 0.5
            ``input_type="labels"`` only: the confidence in the labels, in (0, 1).
        unknown_label : int, optional
            ``input_type="labels"`` only: the value of unlabelled pixels,
            which get a uniform unary.
        spacing : (sz, sy, sx) floats, optional
            The voxel size of a volume in physical units; giving it makes
            ``scores`` a volume, and the kernels' spatial widths are then in
            the same units.

        Returns
        -------
        probs : ndarray or Tensor, (C, ...) or (N, C, ...)
            Mean-field marginals; they sum to 1 over C.  NumPy for NumPy
            scores (float32), a Tensor for Tensor scores; see the class Notes.

        Raises
        ------
        ValueError
            NaN/inf scores, C < 2, spatial sizes or batch sizes that differ,
            negative probabilities, labels outside ``[0, num_classes)``,
            ``gt_prob`` outside (0, 1), a bad ``spacing``, an image of an
            unsupported shape or whose channel count differs from
            ``bilateral_srgb``, empty scores, or (pydensecrf backend) kernel
            features beyond its range (see the class Notes).
        TypeError
            Non-float scores (non-integer labels), images that are neither
            uint8 nor float.
        """
        check_choice("input_type", input_type, REFINE_INPUT_TYPES)
        spacing = check_spacing(spacing)
        label_options = {"num_classes": num_classes, "gt_prob": gt_prob,
                         "unknown_label": unknown_label}
        tensor_in = is_tensor(scores)
        arr, kind = self._check_scores(scores, input_type, spacing, label_options)
        nsp = 2 if spacing is None else 3
        single = arr.ndim == nsp + 1
        batch = arr[None] if single else arr
        img = self._image_batch(image, batch.shape[0], tuple(batch.shape[2:]), single)
        if self.backend == "torch":
            probs = self._refine_torch(batch, kind, img, spacing)
            probs = probs[0] if single else probs
            return probs if tensor_in else probs.to(torch.float32).cpu().numpy()
        unary = scores_to_unary(arr, kind, axis=0)
        probs = self._refine_pydensecrf(unary, img, spacing)
        return torch.from_numpy(probs).to(scores.device) if tensor_in else probs

    def predict(self, scores: Any, image: Any, input_type: str = "auto", **options: Any) -> Any:
        """Refined labels: the argmax over the classes of :meth:`refine`.

        Parameters
        ----------
        scores : ndarray or Tensor
            Class scores, a binary map or labels, as for :meth:`refine`.
        image : ndarray or Tensor
            The image(s) or volume(s), as for :meth:`refine`.
        input_type : {"auto", "logits", "probs", "unary", "labels"}, default "auto"
            What ``scores`` holds.
        **options
            ``num_classes``, ``gt_prob``, ``unknown_label``, ``spacing``,
            as for :meth:`refine`.

        Returns
        -------
        labels : int64 ndarray or Tensor, (H, W), (D, H, W) or (N, ...)
            The same kind as :meth:`refine` returns.
        """
        probs = self.refine(scores, image, input_type, **options)
        axis = -3 if options.get("spacing") is None else -4
        return probs.argmax(dim=axis) if is_tensor(probs) else probs.argmax(axis=axis)

    def _image_batch(self, image: Any, num: int, spatial: tuple[int, ...],
                     single: bool) -> torch.Tensor:
        """The image(s) as an ``(N, K, *spatial)`` Tensor, checked, in their own dtype."""
        check_array("image", image)
        volume = len(spatial) == 3
        per_channel = isinstance(self.bilateral_srgb, tuple)
        channels = len(self.bilateral_srgb) if per_channel else None
        names = "D, H, W" if volume else "H, W"
        if single:
            if image.ndim == len(spatial):
                image = image[..., None]
            elif image.ndim != len(spatial) + 1:
                forms = f"({names}) or ({names}, K)"
                raise ValueError(f"image must be {forms}, got an array of shape "
                                 f"{shape_of(image)}")
            if tuple(image.shape[:-1]) != spatial:
                raise ValueError(
                    f"scores and image must have the same spatial size, got scores "
                    f"({names}) = {spatial} and image ({names}) = {shape_of(image)[:-1]}")
            image = self._check_channels(image, -1, volume)
            img = prepare_image(image, warn_units=not (volume or per_channel))
            return img.movedim(-1, 0)[None]
        k = channels or 3
        forms = f"(N, {k}, {names}) or (N, {names}, {k})"
        if volume and k == 1:
            forms = f"(N, D, H, W), {forms}"
        if image.ndim not in (len(spatial) + 1, len(spatial) + 2) or (
                image.ndim == len(spatial) + 1 and not volume):
            raise ValueError(f"image must be {forms} for batched scores, got an array of shape "
                             f"{shape_of(image)}")
        shape = shape_of(image)
        if image.ndim == len(spatial) + 1 and shape[1:] == spatial:
            image = image[:, None]
        elif shape[2:] == spatial and (not per_channel and volume or shape[1] == k):
            pass
        elif shape[1:-1] == spatial and (not per_channel and volume or shape[-1] == k):
            image = image.movedim(-1, 1) if is_tensor(image) else np.moveaxis(image, -1, 1)
        else:
            raise ValueError(f"image must be {forms} with ({names}) = {spatial} like the "
                             f"scores, got shape {shape}")
        if image.shape[0] != num:
            raise ValueError(f"scores and image must hold the same number of images, got "
                             f"scores N={num} and image N={image.shape[0]}")
        image = self._check_channels(image, 1, volume)
        return prepare_image(image, warn_units=not (volume or per_channel))

    def _check_channels(self, image: Any, axis: int, volume: bool) -> Any:
        """Match the image's channels with ``bilateral_srgb``: gray and RGBA photos, or one each."""
        k = image.shape[axis]
        if isinstance(self.bilateral_srgb, tuple):
            if k != len(self.bilateral_srgb):
                raise ValueError(
                    f"the image has K={k} channels but bilateral_srgb has "
                    f"{len(self.bilateral_srgb)} values; give one value per channel (or one "
                    f"number for every channel)")
            return image
        if volume or k not in (1, 4):
            return image
        if k == 1:
            return image.repeat_interleave(3, axis) if is_tensor(image) else np.repeat(
                image, 3, axis)
        index = [slice(None)] * image.ndim
        index[axis] = slice(0, 3)
        return image[tuple(index)]

    def _srgb(self, ndim: int, device: torch.device, dtype: torch.dtype) -> float | torch.Tensor:
        """``bilateral_srgb`` shaped to divide ``(N, K, *spatial)`` images."""
        if not isinstance(self.bilateral_srgb, tuple):
            return self.bilateral_srgb
        return torch.tensor(self.bilateral_srgb, device=device, dtype=dtype).reshape(
            -1, *[1] * (ndim - 2))

    def _kernel_features(self, image: torch.Tensor, spacing: tuple | None) -> torch.Tensor:
        """The bilateral kernel's ``(N, d, *spatial)`` features: positions, then channels."""
        from crfseg.crf.mean_field import bilateral_features, grid_features

        srgb = self._srgb(image.ndim, image.device, image.dtype)
        if spacing is None:
            return bilateral_features(image, self.bilateral_sxy, srgb)
        num, _, *spatial = image.shape
        positions = grid_features(num, spatial, [self.bilateral_sxy / s for s in spacing],
                                  device=image.device, dtype=image.dtype)
        return torch.cat([positions, image / srgb], 1)

    def _refine_torch(self, scores: Any, kind: str, image: torch.Tensor,
                      spacing: tuple | None) -> torch.Tensor:
        from crfseg.crf.lattice import images_per_group
        from crfseg.crf.mean_field import mean_field

        numpy_in = not is_tensor(scores)
        if self.device is not None:
            device = self.device
        elif numpy_in:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            device = scores.device
        batch = torch.from_numpy(np.ascontiguousarray(scores)) if numpy_in else scores.detach()
        num, classes, *spatial = batch.shape
        kind = resolve_input_type(batch, kind, axis=1)
        # never an out-of-memory kill: images in groups that fit, or a clear refusal
        group = images_per_group(
            num, classes, math.prod(spatial),
            feature_dims=(len(spatial), len(spatial) + image.shape[1]),
            dtype=torch.float32 if batch.dtype == torch.float32 else torch.float64,
            device=device, what="image" if spacing is None else "volume")
        if group < num:
            return torch.cat([self._refine_torch(scores[i:i + group], kind, image[i:i + group],
                                                 spacing) for i in range(0, num, group)])
        # classes last and contiguous: the engine's layout (and a fast log-softmax for the
        # kinds that need one)
        channels_last = batch.to(device).movedim(1, -1).contiguous()
        if kind == "logits":
            # every iteration's softmax is blind to a shift per pixel, so the logits serve as
            # -U as they are: the log-softmax of scores_to_unary would change no result
            check_finite("scores", channels_last)
            neg_unary = channels_last if channels_last.dtype == torch.float32 else (
                channels_last.to(torch.float64))
            neg_unary = neg_unary.movedim(-1, 1)
        else:
            neg_unary = scores_to_unary(channels_last, kind, axis=-1).movedim(-1, 1).neg_()
        dtype = neg_unary.dtype
        img = image.to(device=device, dtype=dtype)

        def compat(value: float | np.ndarray) -> torch.Tensor:
            return torch.as_tensor(compat_matrix(value, classes), dtype=dtype, device=device)

        kernels = [
            (self._spatial_lattice(num, tuple(spatial), spacing, device, dtype),
             compat(self.gaussian_compat)),
            (self._kernel_features(img, spacing), compat(self.bilateral_compat)),
        ]
        with torch.no_grad():
            refined = mean_field(neg_unary, kernels, self.n_iter, normalization="symmetric",
                                 deterministic=self.deterministic)
            # the softmax over the classes where they are contiguous in memory
            return torch.softmax(refined.movedim(1, -1), -1).movedim(-1, 1).contiguous()

    def _spatial_features(self, num: int, spatial: tuple[int, ...], spacing: tuple | None,
                          device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The smoothness kernel's ``(N, d, *spatial)`` features."""
        from crfseg.crf.mean_field import grid_features, spatial_features

        if spacing is None:
            return spatial_features(num, *spatial, self.gaussian_sxy, device=device, dtype=dtype)
        return grid_features(num, spatial, [self.gaussian_sxy / s for s in spacing],
                             device=device, dtype=dtype)

    def _spatial_lattice(self, num: int, spatial: tuple[int, ...], spacing: tuple | None,
                         device: torch.device, dtype: torch.dtype) -> Any:
        """The smoothness kernel's lattice, rebuilt only when the image size changes."""
        from crfseg.crf.lattice import PermutohedralLattice

        key = (num, spatial, spacing, str(device), dtype, self.gaussian_sxy, self.deterministic)
        if self._spatial_cache is None or self._spatial_cache[0] != key:
            features = self._spatial_features(num, spatial, spacing, device, dtype)
            features = features.reshape(num, features.shape[1], 1, -1) if spacing else features
            self._spatial_cache = (key, PermutohedralLattice(features,
                                                             deterministic=self.deterministic))
        return self._spatial_cache[1]

    def _refine_pydensecrf(self, unary: np.ndarray, image: torch.Tensor,
                           spacing: tuple | None) -> np.ndarray:
        import pydensecrf.densecrf as dcrf

        num_classes, *spatial = unary.shape
        flat_unary = np.ascontiguousarray(unary.reshape(num_classes, -1), dtype=np.float32)
        gaussian_compat = _pydensecrf_compat(self.gaussian_compat)
        bilateral_compat = _pydensecrf_compat(self.bilateral_compat)
        if spacing is None:
            height, width = spatial
            crf = dcrf.DenseCRF2D(width, height, num_classes)
            crf.setUnaryEnergy(flat_unary)
            reach = np.array([width - 1, height - 1]) / self.gaussian_sxy
            if _embedding_extent(np.zeros(2), reach) <= _PYDENSECRF_EXTENT:
                crf.addPairwiseGaussian(sxy=self.gaussian_sxy, compat=gaussian_compat)
            else:
                positions = self._spatial_features(1, (height, width), None, torch.device("cpu"),
                                                   torch.float64)
                crf.addPairwiseEnergy(_pydensecrf_features(positions, "gaussian_sxy"),
                                      compat=gaussian_compat)
        else:
            crf = dcrf.DenseCRF(flat_unary.shape[1], num_classes)
            crf.setUnaryEnergy(flat_unary)
            positions = self._spatial_features(1, tuple(spatial), spacing, torch.device("cpu"),
                                               torch.float64)
            crf.addPairwiseEnergy(_pydensecrf_features(positions, "gaussian_sxy"),
                                  compat=gaussian_compat)
        if spacing is None and image.dtype == torch.uint8 and image.shape[1] == 3 \
                and not isinstance(self.bilateral_srgb, tuple) \
                and self._builtin_bilateral_fits(image):
            crf.addPairwiseBilateral(sxy=self.bilateral_sxy, srgb=self.bilateral_srgb,
                                     rgbim=image[0].permute(1, 2, 0).contiguous().numpy(),
                                     compat=bilateral_compat)
        else:
            # The features of addPairwiseBilateral, in its (x, y, channels) order (the
            # permutohedral lattice is not invariant to the order of the features),
            # computed by the torch backend's own function so that both see the same values.
            features = self._kernel_features(image.to(torch.float64), spacing)
            crf.addPairwiseEnergy(_pydensecrf_features(features, "bilateral_sxy, bilateral_srgb"),
                                  compat=bilateral_compat)
        q = crf.inference(self.n_iter)
        return np.asarray(q, dtype=np.float32).reshape(num_classes, *spatial)

    def _builtin_bilateral_fits(self, image: torch.Tensor) -> bool:
        """Whether pydensecrf's own (x, y, r, g, b) features of a uint8 image fit its lattice."""
        height, width = image.shape[-2:]
        channels = image[0].reshape(3, -1)
        low = np.concatenate([[0.0, 0.0], channels.amin(1).double().numpy() / self.bilateral_srgb])
        high = np.concatenate([np.array([width - 1, height - 1]) / self.bilateral_sxy,
                               channels.amax(1).double().numpy() / self.bilateral_srgb])
        return _embedding_extent(low, high) <= _PYDENSECRF_EXTENT


# pydensecrf's permutohedral lattice keeps its coordinates in 16-bit integers, rounded from
# float32: features whose embedding reaches beyond this overflow them and corrupt memory
_PYDENSECRF_EXTENT = 30000.0


def _embedding_rows(d: int) -> np.ndarray:
    """``(d+1, d)`` matrix of the lattice's embedding of ``d`` features (Adams et al., p. 5)."""
    scale = math.sqrt(2.0 / 3.0) * (d + 1) / np.sqrt((np.arange(d) + 1.0) * (np.arange(d) + 2.0))
    rows = np.zeros((d + 1, d))
    for j in range(d + 1):
        rows[j, j:] = scale[j:]
        if j:
            rows[j, j - 1] = -j * scale[j - 1]
    return rows


def _embedding_extent(low: np.ndarray, high: np.ndarray) -> float:
    """Largest ``|coordinate|`` of the embedding over the box ``[low, high]`` of features."""
    rows = _embedding_rows(low.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):
        a, b = rows * low, rows * high
        extent = max(float(np.maximum(a, b).sum(1).max()), float(-np.minimum(a, b).sum(1).min()))
    return extent if math.isfinite(extent) else math.inf


def _pydensecrf_features(features: torch.Tensor, names: str) -> np.ndarray:
    """pydensecrf's ``(d, P)`` float32 features of one ``(1, d, *spatial)`` float64 Tensor.

    As they are when their embedding fits the lattice, else centred on their mid-range:
    the Gaussian kernel sees only differences of features, which centring keeps.  Features
    that do not fit even centred raise ``ValueError`` naming the settings behind them.
    """
    flat = features[0].reshape(features.shape[1], -1).numpy()
    what = ("positions / bilateral_sxy, then image / bilateral_srgb"
            if "srgb" in names else "positions / gaussian_sxy")
    low, high = flat.min(1), flat.max(1)
    if _embedding_extent(low, high) <= _PYDENSECRF_EXTENT:
        return np.ascontiguousarray(flat, dtype=np.float32)
    half = high / 2 - low / 2
    if not _embedding_extent(-half, half) <= _PYDENSECRF_EXTENT:
        fits = _PYDENSECRF_EXTENT / float(np.abs(_embedding_rows(flat.shape[0])).sum(1).max())
        spans = ", ".join(f"{2 * h:.3g}" for h in half)
        raise ValueError(
            f"the pydensecrf backend cannot hold these kernel features: they span ({spans}) "
            f"standard deviations ({what}), but its lattice keeps "
            f"16-bit coordinates, which hold a span of about {2 * fits:.4g} standard "
            f"deviations in each of these {flat.shape[0]} features; raise {names}, rescale "
            "the image, or use backend='torch'")
    centre = low / 2 + high / 2
    return np.ascontiguousarray(flat - centre[:, None], dtype=np.float32)


def _auto_backend(device: torch.device | None) -> str:
    """The faster engine here: torch on an accelerator, or on a CPU with the compiled lattice."""
    from crfseg.crf.lattice import compiled_engine_available

    if device is not None and device.type != "cpu" or device is None and torch.cuda.is_available():
        return "torch"
    return "torch" if compiled_engine_available() else "pydensecrf"


def _check_device(device: Any, backend: str) -> torch.device | None:
    """Validate the ``device`` argument of :class:`DenseCRF`."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError) as exc:
        raise ValueError(
            f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; "
                         "use device='cpu'")
    if backend == "pydensecrf" and dev.type != "cpu":
        raise ValueError(f"the pydensecrf backend runs on the CPU only, got device={device!r}; "
                         "use backend='torch' for other devices")
    return dev


def _pydensecrf_compat(compat: float | np.ndarray) -> float | np.ndarray:
    """pydensecrf's own form: Potts scalar, diagonal (energy sign) or matrix (float32)."""
    if np.isscalar(compat):
        return float(compat)
    arr = np.asarray(compat, dtype=np.float32)
    if arr.ndim == 1:
        return np.ascontiguousarray(-arr)
    return np.ascontiguousarray(arr)
