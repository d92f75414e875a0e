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

import warnings
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
    check_ndim,
    check_number,
    is_tensor,
    to_numpy,
)

__all__ = ["DenseCRF", "scores_to_unary", "scores_to_labels", "INPUT_TYPES"]

INPUT_TYPES = ("auto", "logits", "probs", "unary")
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
    if input_type == "auto":
        if is_tensor(scores):
            sums = scores.sum(dim=axis)
            is_probs = bool(scores.min() >= 0) and torch.allclose(
                sums, torch.ones_like(sums), atol=_PROB_SUM_TOLERANCE)
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


def prepare_image(image: Any, height: int, width: int) -> np.ndarray:
    """Return ``image`` as a C-contiguous ``(H, W, 3)`` array in 0–255 units.

    Gray ``(H, W)`` and ``(H, W, 1)`` images are repeated to three channels,
    the alpha channel of ``(H, W, 4)`` is dropped.  uint8 stays uint8; float
    images keep their values (a warning is given when they leave 0–255, since
    the bilateral kernel's ``srgb`` assumes 0–255 units).
    """
    check_array("image", image)
    img = to_numpy(image)
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
    _warn_outside_0_255(float(img.min()), float(img.max()))
    return np.ascontiguousarray(img)


def _warn_outside_0_255(low: float, high: float) -> None:
    """Warn when a float image does not look like 0-255 units."""
    if low < 0 or high > 255:
        warnings.warn(
            f"image values span [{low:.3g}, {high:.3g}], outside 0-255; the "
            "bilateral kernel's srgb assumes 0-255 units",
            stacklevel=4,
        )
    elif high <= 1.0:
        warnings.warn(
            "image values all lie in [0, 1]; the bilateral kernel's srgb assumes 0-255 units, "
            "multiply by 255 if this is a normalised image",
            stacklevel=4,
        )


def prepare_image_batch(image: Any, num: int, height: int, width: int) -> torch.Tensor:
    """Return a batch of RGB images as an ``(N, 3, H, W)`` float Tensor in 0–255 units.

    Accepts ``(N, 3, H, W)`` and ``(N, H, W, 3)`` arrays or tensors, uint8 or
    float (floats keep their values, with the warning of
    :func:`prepare_image` when they leave 0–255).  The result stays on the
    image's device.
    """
    check_array("image", image)
    if is_tensor(image):
        img = image.detach()
    elif image.dtype != np.bool_ and not np.issubdtype(image.dtype, np.number):
        raise TypeError(f"image must be uint8 or a float array in 0-255 units, got {image.dtype}")
    else:
        img = torch.from_numpy(np.ascontiguousarray(image))
    check_ndim("image", img, 4, "(N, 3, H, W) or (N, H, W, 3) for batched scores")
    if tuple(img.shape[1:]) == (3, height, width):
        pass
    elif tuple(img.shape[1:]) == (height, width, 3):
        img = img.permute(0, 3, 1, 2)
    else:
        raise ValueError(
            f"image must be (N, 3, H, W) or (N, H, W, 3) with (H, W) = {(height, width)} "
            f"like the scores, got shape {tuple(img.shape)}")
    if img.shape[0] != num:
        raise ValueError(
            f"scores and image must hold the same number of images, got scores N={num} "
            f"and image N={img.shape[0]}")
    if img.dtype == torch.uint8:
        return img.float()
    if img.dtype == torch.bool or img.is_complex():
        raise TypeError(f"image must be uint8 or a float array in 0-255 units, got {img.dtype}")
    img = img if img.is_floating_point() else img.float()
    check_finite("image", img)
    _warn_outside_0_255(float(img.min()), float(img.max()))
    return img


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
    backend : {"pydensecrf", "torch", "auto"}, default "pydensecrf"
        The inference engine.  ``torch`` runs the same mean field (same
        kernels, normalisation and compatibilities) on a permutohedral
        lattice in PyTorch, on any device and on batches; ``auto`` picks
        ``torch`` when CUDA is available and ``pydensecrf`` otherwise.
    device : str or torch.device, optional
        Where the torch backend computes.  By default: the device of Tensor
        scores, else CUDA when available, else the CPU.  The pydensecrf
        backend runs on the CPU only.
    deterministic : bool, default False
        Torch backend: gather-based splat and slice, bitwise repeatable on
        CUDA (CPU results are repeatable either way).

    Notes
    -----
    What :meth:`refine` returns depends on the input: a single ``(C, H, W)``
    ndarray gives a float32 ``(C, H, W)`` ndarray with either backend; with
    the torch backend a ``(C, H, W)`` Tensor gives a Tensor and batched
    ``(N, C, H, W)`` scores (ndarray or Tensor) give an ``(N, C, H, W)``
    Tensor on the device, float32 (float64 for float64 scores).

    The torch backend keeps the lattice of the smoothness kernel, which
    depends only on the image size, for the last size it saw: repeated calls
    on images of one size build only the bilateral lattice.

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
    >>> import torch
    >>> crf = DenseCRF(n_iter=2, backend="torch", device="cpu")
    >>> batch = crf.refine(torch.randn(2, 4, 20, 30), torch.rand(2, 3, 20, 30) * 255)
    >>> batch.shape
    torch.Size([2, 4, 20, 30])
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
        device: str | torch.device | None = None,
        deterministic: bool = False,
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
        if backend == "auto":
            backend = "torch" if torch.cuda.is_available() else "pydensecrf"
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

    def _check_scores(self, scores: Any) -> Any:
        check_array("scores", scores)
        if self.backend == "torch":
            arr = scores
            check_ndim("scores", arr, (3, 4), "(C, H, W) or (N, C, H, W) (channels first)")
        else:
            arr = to_numpy(scores)
            check_ndim("scores", arr, 3,
                       "(C, H, W) (channels first); batches (N, C, H, W) need backend='torch'")
        check_floating_dtype("scores", arr)
        classes = arr.shape[-3]
        if classes < 2:
            raise ValueError(f"scores must have at least 2 classes (C >= 2), got C={classes}")
        for name, compat in (("gaussian_compat", self.gaussian_compat),
                             ("bilateral_compat", self.bilateral_compat)):
            if not np.isscalar(compat) and compat.shape[0] != classes:
                raise ValueError(
                    f"{name} has shape {compat.shape} but the scores have C={classes} classes"
                )
        return arr

    def refine(self, scores: Any, image: Any, input_type: str = "auto") -> Any:
        """Refined class probabilities of one image or (torch backend) a batch.

        Parameters
        ----------
        scores : (C, H, W) or (N, C, H, W) float ndarray or Tensor
            Class scores, channels first, any float dtype and memory order;
            batches need the torch backend.
        image : ndarray or Tensor
            The RGB image (uint8, or float in 0–255 units): ``(H, W)``,
            ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` for one image (gray
            is repeated, alpha dropped), ``(N, 3, H, W)`` or ``(N, H, W, 3)``
            for a batch.
        input_type : {"auto", "logits", "probs", "unary"}, default "auto"
            What ``scores`` holds (see :func:`scores_to_unary`).

        Returns
        -------
        probs : (C, H, W) float32 ndarray, or (C, H, W) / (N, C, H, W) Tensor
            Mean-field marginals; they sum to 1 over C.  See the class Notes
            for which kind comes back.

        Raises
        ------
        ValueError
            NaN/inf scores, C < 2, spatial sizes or batch sizes that differ,
            negative probabilities, or an image of an unsupported shape.
        """
        arr = self._check_scores(scores)
        check_choice("input_type", input_type, INPUT_TYPES)
        if self.backend == "torch":
            return self._refine_torch(arr, image, input_type)
        num_classes, height, width = arr.shape
        img = prepare_image(image, height, width)
        unary = scores_to_unary(arr, input_type, axis=0)
        return self._refine_pydensecrf(unary, img)

    def predict(self, scores: Any, image: Any, input_type: str = "auto") -> Any:
        """Refined labels: the argmax over the classes of :meth:`refine`.

        Parameters
        ----------
        scores : (C, H, W) or (N, C, H, W) float ndarray or Tensor
            Class scores, channels first.
        image : ndarray or Tensor
            The image(s), as for :meth:`refine`.
        input_type : {"auto", "logits", "probs", "unary"}, default "auto"
            What ``scores`` holds.

        Returns
        -------
        labels : (H, W) int64 ndarray, or (H, W) / (N, H, W) int64 Tensor
            The same kind as :meth:`refine` returns.
        """
        probs = self.refine(scores, image, input_type)
        return probs.argmax(dim=-3) if is_tensor(probs) else probs.argmax(axis=0)

    def _refine_torch(self, scores: Any, image: Any, input_type: str) -> Any:
        from crfseg.crf.mean_field import bilateral_features, mean_field

        numpy_in = not is_tensor(scores)
        if self.device is not None:
            device = self.device
        elif numpy_in:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            device = scores.device
        batch = torch.from_numpy(np.ascontiguousarray(scores)) if numpy_in else scores.detach()
        single = batch.ndim == 3
        batch = batch[None] if single else batch
        num, classes, height, width = batch.shape
        if single:
            img = torch.from_numpy(prepare_image(image, height, width)).permute(2, 0, 1)[None]
        else:
            img = prepare_image_batch(image, num, height, width)
        kind = resolve_input_type(batch, input_type, axis=1)
        # classes last and contiguous: the engine's layout, and a fast log-softmax
        channels_last = batch.to(device).permute(0, 2, 3, 1).contiguous()
        unary = scores_to_unary(channels_last, kind, axis=-1).permute(0, 3, 1, 2)
        dtype = unary.dtype
        img = img.to(device=device, dtype=dtype)

        def compat(value: float | np.ndarray) -> torch.Tensor:
            return torch.as_tensor(compat_matrix(value, classes), dtype=dtype, device=device)

        kernels = [
            (self._spatial_lattice(num, height, width, device, dtype),
             compat(self.gaussian_compat)),
            (bilateral_features(img, self.bilateral_sxy, self.bilateral_srgb),
             compat(self.bilateral_compat)),
        ]
        with torch.no_grad():
            refined = mean_field(unary.neg_(), kernels, self.n_iter, normalization="symmetric",
                                 deterministic=self.deterministic, log_probs=kind == "logits")
            # the softmax over the classes where they are contiguous in memory
            channels_last = refined.permute(0, 2, 3, 1)
            probs = torch.softmax(channels_last, -1).permute(0, 3, 1, 2).contiguous()
        if not single:
            return probs
        if numpy_in:
            return probs[0].to(torch.float32).cpu().numpy()
        return probs[0]

    def _spatial_lattice(self, num: int, height: int, width: int, device: torch.device,
                         dtype: torch.dtype) -> Any:
        """The smoothness kernel's lattice, rebuilt only when the image size changes."""
        from crfseg.crf.mean_field import spatial_features
        from crfseg.crf.lattice import PermutohedralLattice

        key = (num, height, width, str(device), dtype, self.gaussian_sxy, self.deterministic)
        if self._spatial_cache is None or self._spatial_cache[0] != key:
            features = spatial_features(num, height, width, self.gaussian_sxy, device=device,
                                        dtype=dtype)
            self._spatial_cache = (key, PermutohedralLattice(features,
                                                             deterministic=self.deterministic))
        return self._spatial_cache[1]

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
