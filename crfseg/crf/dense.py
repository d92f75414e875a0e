"""Fully connected CRF post-processing (Krähenbühl & Koltun, 2011).

This is the only module that knows pydensecrf's demands: a C-contiguous
float32 unary of shape ``(C, H*W)``, a C-contiguous uint8 ``(H, W, 3)`` image
and a constructor that takes the width first.  Scores in any layout crfseg
accepts are converted here, once, so the classic mistake of reshaping
``(H, W, C)`` to ``(C, -1)`` without a transpose cannot happen.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from crfseg._validation import (
    check_array,
    check_choice,
    check_finite,
    check_floating_dtype,
    check_int,
    check_ndim,
    check_number,
    is_tensor,
)

__all__ = ["DenseCRF", "scores_to_unary", "INPUT_TYPES"]

INPUT_TYPES = ("auto", "logits", "probs", "unary")
BACKENDS = ("pydensecrf",)

# Probabilities are clipped away from 0 before the log so a hard 0 costs a
# large, finite energy (pydensecrf's own unary_from_softmax does the same).
_PROB_FLOOR = 1e-8
_PROB_SUM_TOLERANCE = 1e-3


def _to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if is_tensor(x) else np.asarray(x)


def resolve_input_type(scores: np.ndarray, input_type: str, axis: int = 0) -> str:
    """Name the kind of ``scores``: ``auto`` becomes ``probs`` or ``logits``.

    Probabilities are recognised when every value is non-negative and the
    values sum to 1 (within 1e-3) over the class axis; anything else is logits.
    Negative values with ``input_type="probs"`` are rejected.
    """
    check_choice("input_type", input_type, INPUT_TYPES)
    if input_type == "auto":
        if scores.min() >= 0 and np.allclose(scores.sum(axis=axis), 1.0,
                                             atol=_PROB_SUM_TOLERANCE):
            return "probs"
        return "logits"
    if input_type == "probs" and scores.min() < 0:
        raise ValueError(
            f"scores were given as probabilities but contain negative values "
            f"(min {float(scores.min()):.4g}); pass input_type='logits' for raw CNN output"
        )
    return input_type


def scores_to_unary(scores: Any, input_type: str = "auto", axis: int = 0) -> np.ndarray:
    """Convert class scores to a unary energy ``-log p``.

    Parameters
    ----------
    scores : (C, H, W) or (N, C, H, W) float ndarray or Tensor
        Logits, probabilities or unary energies; the class axis is ``axis``.
    input_type : {"auto", "logits", "probs", "unary"}
        What ``scores`` holds; ``auto`` recognises probabilities (non-negative,
        summing to 1 over the classes) and otherwise assumes logits.
    axis : int, default 0
        The class axis.

    Returns
    -------
    unary : ndarray, same shape as ``scores``
        ``-log_softmax(logits)``, ``-log(max(p, 1e-8))`` or the unary itself,
        in float64 (float32 for float32 input).

    Examples
    --------
    >>> u = scores_to_unary(np.array([[0.0], [np.log(3.0)]]), "logits")
    >>> np.round(np.exp(-u).ravel(), 3)
    array([0.25, 0.75])
    """
    arr = _to_numpy(scores)
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


def prepare_image(image: Any, height: int, width: int) -> np.ndarray:
    """Return ``image`` as a C-contiguous ``(H, W, 3)`` array in 0–255 units.

    Gray ``(H, W)`` and ``(H, W, 1)`` images are repeated to three channels,
    the alpha channel of ``(H, W, 4)`` is dropped.  uint8 stays uint8; float
    images keep their values (a warning is given when they leave 0–255, since
    the bilateral kernel's ``srgb`` assumes 0–255 units).
    """
    check_array("image", image)
    img = _to_numpy(image)
    check_ndim("image", img, (2, 3), "(H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] not in (1, 3, 4):
        raise ValueError(
            "image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
            f"got shape {img.shape}; channels-first images must be transposed to (H, W, C)"
        )
    if img.shape[:2] != (height, width):
        raise ValueError(
            f"scores and image must have the same spatial size, got scores (H, W) = "
            f"{(height, width)} and image (H, W) = {img.shape[:2]}"
        )
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    if img.dtype == np.bool_ or not np.issubdtype(img.dtype, np.number):
        raise TypeError(f"image must be uint8 or a float array in 0-255 units, got {img.dtype}")
    img = img.astype(np.float32)
    check_finite("image", img)
    if img.min() < 0 or img.max() > 255:
        warnings.warn(
            f"image values span [{img.min():.3g}, {img.max():.3g}], outside 0-255; the "
            "bilateral kernel's srgb assumes 0-255 units",
            stacklevel=3,
        )
    elif img.max() <= 1.0:
        warnings.warn(
            "image values all lie in [0, 1]; the bilateral kernel's srgb assumes 0-255 units, "
            "multiply by 255 if this is a normalised image",
            stacklevel=3,
        )
    return np.ascontiguousarray(img)


def check_compat(name: str, compat: Any) -> float | np.ndarray:
    """Validate a label compatibility: a scalar, a ``(C,)`` vector or a ``(C, C)`` matrix."""
    if np.isscalar(compat):
        return check_number(name, compat)
    arr = _to_numpy(compat).astype(np.float64)
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
    colour levels (0–255 units).

    Parameters
    ----------
    n_iter : int, default 5
        Mean-field iterations.
    gaussian_sxy : float, default 3
        Spatial standard deviation of the smoothness kernel, in pixels.
    gaussian_compat : float, (C,) or (C, C) array, default 3
        Compatibility of the smoothness kernel: a scalar is a Potts weight
        (agreeing neighbours are rewarded by it), a vector holds one Potts
        weight per class, a matrix ``μ[l, l']`` is the energy paid when labels
        ``l`` and ``l'`` meet (symmetrised).
    bilateral_sxy : float, default 80
        Spatial standard deviation of the appearance kernel, in pixels.
    bilateral_srgb : float, default 13
        Colour standard deviation of the appearance kernel, in 0–255 units.
    bilateral_compat : float, (C,) or (C, C) array, default 10
        Compatibility of the appearance kernel (same forms as ``gaussian_compat``).
    backend : {"pydensecrf"}, default "pydensecrf"
        The inference engine.

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
    """

    def __init__(
        self,
        n_iter: int = 5,
        gaussian_sxy: float = 3.0,
        gaussian_compat: float | np.ndarray = 3.0,
        bilateral_sxy: float = 80.0,
        bilateral_srgb: float = 13.0,
        bilateral_compat: float | np.ndarray = 10.0,
        backend: str = "pydensecrf",
    ) -> None:
        self.n_iter = check_int("n_iter", n_iter, low=0)
        self.gaussian_sxy = check_number("gaussian_sxy", gaussian_sxy, low=0,
                                         low_inclusive=False)
        self.bilateral_sxy = check_number("bilateral_sxy", bilateral_sxy, low=0,
                                          low_inclusive=False)
        self.bilateral_srgb = check_number("bilateral_srgb", bilateral_srgb, low=0,
                                           low_inclusive=False)
        self.gaussian_compat = check_compat("gaussian_compat", gaussian_compat)
        self.bilateral_compat = check_compat("bilateral_compat", bilateral_compat)
        check_choice("backend", backend, BACKENDS)
        self.backend = backend

    def __repr__(self) -> str:
        return (
            f"DenseCRF(n_iter={self.n_iter}, gaussian_sxy={self.gaussian_sxy}, "
            f"bilateral_sxy={self.bilateral_sxy}, bilateral_srgb={self.bilateral_srgb}, "
            f"backend={self.backend!r})"
        )

    def _check_scores(self, scores: Any) -> np.ndarray:
        check_array("scores", scores)
        arr = _to_numpy(scores)
        check_ndim("scores", arr, 3, "(C, H, W) (channels first)")
        check_floating_dtype("scores", arr)
        if arr.shape[0] < 2:
            raise ValueError(f"scores must have at least 2 classes (C >= 2), got C={arr.shape[0]}")
        for name, compat in (("gaussian_compat", self.gaussian_compat),
                             ("bilateral_compat", self.bilateral_compat)):
            if not np.isscalar(compat) and compat.shape[0] != arr.shape[0]:
                raise ValueError(
                    f"{name} has shape {compat.shape} but the scores have C={arr.shape[0]} classes"
                )
        return arr

    def refine(self, scores: Any, image: Any, input_type: str = "auto") -> np.ndarray:
        """Refined class probabilities of one image.

        Parameters
        ----------
        scores : (C, H, W) float ndarray or Tensor
            Class scores, channels first, any float dtype and memory order.
        image : (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) ndarray or Tensor
            The RGB image (uint8, or float in 0–255 units); gray is repeated,
            alpha dropped.
        input_type : {"auto", "logits", "probs", "unary"}, default "auto"
            What ``scores`` holds (see :func:`scores_to_unary`).

        Returns
        -------
        probs : (C, H, W) float32 ndarray
            Mean-field marginals; they sum to 1 over C.

        Raises
        ------
        ValueError
            NaN/inf scores, C < 2, spatial sizes that differ, negative
            probabilities, or an image of an unsupported shape.
        """
        arr = self._check_scores(scores)
        check_choice("input_type", input_type, INPUT_TYPES)
        num_classes, height, width = arr.shape
        img = prepare_image(image, height, width)
        unary = scores_to_unary(arr, input_type, axis=0)
        return self._refine_pydensecrf(unary, img)

    def predict(self, scores: Any, image: Any, input_type: str = "auto") -> np.ndarray:
        """Refined labels of one image: ``refine(...).argmax(0)``.

        Parameters
        ----------
        scores : (C, H, W) float ndarray or Tensor
            Class scores, channels first.
        image : (H, W[, 1|3|4]) ndarray or Tensor
            The image, as for :meth:`refine`.
        input_type : {"auto", "logits", "probs", "unary"}, default "auto"
            What ``scores`` holds.

        Returns
        -------
        labels : (H, W) int64 ndarray
        """
        return self.refine(scores, image, input_type).argmax(axis=0)

    def _refine_pydensecrf(self, unary: np.ndarray, image: np.ndarray) -> np.ndarray:
        import pydensecrf.densecrf as dcrf

        num_classes, height, width = unary.shape
        crf = dcrf.DenseCRF2D(width, height, num_classes)
        crf.setUnaryEnergy(np.ascontiguousarray(unary.reshape(num_classes, -1), dtype=np.float32))
        crf.addPairwiseGaussian(sxy=self.gaussian_sxy,
                                compat=_pydensecrf_compat(self.gaussian_compat))
        bilateral_compat = _pydensecrf_compat(self.bilateral_compat)
        if image.dtype == np.uint8:
            crf.addPairwiseBilateral(sxy=self.bilateral_sxy, srgb=self.bilateral_srgb,
                                     rgbim=image, compat=bilateral_compat)
        else:
            # Same features, in the same (x, y, r, g, b) order, as addPairwiseBilateral:
            # the permutohedral lattice is not invariant to the order of the features.
            yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
            features = np.concatenate([
                np.stack([xx, yy]) / np.float32(self.bilateral_sxy),
                np.moveaxis(image, 2, 0) / np.float32(self.bilateral_srgb),
            ]).reshape(5, -1)
            crf.addPairwiseEnergy(np.ascontiguousarray(features, dtype=np.float32),
                                  compat=bilateral_compat)
        q = crf.inference(self.n_iter)
        return np.asarray(q, dtype=np.float32).reshape(num_classes, height, width)


def _pydensecrf_compat(compat: float | np.ndarray) -> float | np.ndarray:
    """pydensecrf's own form: Potts scalar, diagonal (energy sign) or matrix (float32)."""
    if np.isscalar(compat):
        return float(compat)
    arr = np.asarray(compat, dtype=np.float32)
    if arr.ndim == 1:
        return np.ascontiguousarray(-arr)
    return np.ascontiguousarray(arr)
