"""Mean-field inference of the fully connected CRF in PyTorch.

One engine serves both ``DenseCRF(backend="torch")`` (post-processing, no
gradients) and the trainable ``CRFasRNN`` layer.  Every kernel gets its own
permutohedral lattice, but the lattices share one splat and one slice (their
vertices are numbered one after the other), so a mean-field iteration costs
two sparse products however many kernels there are.  The label compatibility
is applied to the blurred vertex values, before slicing: it acts on classes
and the slice on points, so the order does not matter, and there are far
fewer vertices than pixels.

The update is densecrf's::

    Q = softmax(-U)
    repeat n_iter times:  Q = softmax(-U - sum_k (K_k Q) @ M_k.T)

with ``K_k`` the normalised Gaussian filter of kernel ``k`` (the pixel itself
included) and ``M_k`` its ``(C, C)`` compatibility in the energy convention
(a Potts weight ``w`` is ``-w * I``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from crfseg._validation import (
    check_choice,
    check_finite,
    check_floating_dtype,
    check_int,
    is_tensor,
    shape_of,
)
from crfseg.crf.lattice import (
    _KERNEL_SOFTMAX_MAX_CLASSES,
    NORMALIZATIONS,
    LatticePattern,
    PermutohedralLattice,
    _compiled_compatibility,
    _compiled_point_scales,
    _compiled_slice_subtract,
    _compiled_softmax,
    _native,
    _native_splat,
    blur,
    normalized_weights,
    slice_at_points,
    splat,
    stack_patterns,
)

__all__ = ["bilateral_features", "grid_features", "mean_field", "spatial_features"]

Scale = float | torch.Tensor


def spatial_features(num: int, height: int, width: int, sxy: Scale, *,
                     device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(N, 2, H, W)`` features ``(x / sxy, y / sxy)`` of the smoothness kernel."""
    y, x = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                          torch.arange(width, device=device, dtype=dtype), indexing="ij")
    return (torch.stack([x, y]) / sxy).expand(num, 2, height, width)


def bilateral_features(image: torch.Tensor, sxy: Scale, srgb: Scale) -> torch.Tensor:
    """``(N, 5, H, W)`` features ``(x / sxy, y / sxy, r / srgb, g / srgb, b / srgb)``.

    ``image`` is ``(N, 3, H, W)`` RGB in 0-255 units, in the features' dtype.
    """
    num, _, height, width = image.shape
    position = spatial_features(num, height, width, sxy, device=image.device, dtype=image.dtype)
    return torch.cat([position, image / srgb], 1)


def grid_features(num: int, shape: Sequence[int], scales: Sequence[Scale], *,
                  device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Positions on a pixel or voxel grid divided by their standard deviations.

    Parameters
    ----------
    num : int
        Batch size ``N``.
    shape : sequence of int
        The grid's spatial shape, e.g. ``(H, W)`` or ``(D, H, W)``.
    scales : sequence of float or 0-d Tensor
        One standard deviation per axis of ``shape``, in grid steps (divide a
        physical standard deviation by the axis' spacing).
    device, dtype
        Of the result.

    Returns
    -------
    features : (N, len(shape), *shape) Tensor
        The coordinate along the last axis first (``x, y`` for images,
        ``x, y, z`` for volumes, the order of densecrf's own features),
        each divided by its scale; an expanded view (no copy per image).

    Examples
    --------
    >>> f = grid_features(1, (2, 3), (1.0, 2.0))
    >>> f.shape
    torch.Size([1, 2, 2, 3])
    >>> f[0, 0].tolist()  # x / 2
    [[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]]
    """
    check_int("num", num, low=1)
    if len(scales) != len(shape):
        raise ValueError(f"scales must hold one value per axis of shape {tuple(shape)}, "
                         f"got {len(scales)}")
    axes = torch.meshgrid(*[torch.arange(int(n), device=device, dtype=dtype) for n in shape],
                          indexing="ij")
    coords = [axis / scale for axis, scale in zip(axes, scales)]
    return torch.stack(coords[::-1]).expand(num, len(shape), *shape)


def mean_field(
    scores: torch.Tensor,
    kernels: Sequence[tuple[torch.Tensor | PermutohedralLattice, Any]],
    n_iter: int = 5,
    *,
    normalization: str = "symmetric",
    deterministic: bool = False,
    log_probs: bool = False,
) -> torch.Tensor:
    """Mean field in a fully connected CRF with Gaussian kernels over any features.

    The generic form of the dense CRF, like pydensecrf's ``DenseCRF`` class
    with ``addPairwiseEnergy``: each kernel is a Gaussian over its own feature
    vectors (already divided by their standard deviations), with its own
    label compatibility.  Images, volumes and point sets of any dimension
    are refined alike.

    Parameters
    ----------
    scores : (N, C, *spatial) float Tensor
        ``-U``: logits or log-probabilities of ``C >= 2`` classes (the softmax
        ignores a constant per point); ``spatial`` is any shape, e.g.
        ``(H, W)`` or ``(D, H, W)``.
    kernels : sequence of (features or lattice, compat)
        ``features`` ``(N, d, *spatial)`` in the dtype and on the device of
        ``scores``, already divided by their standard deviations (e.g.
        :func:`grid_features`), or a :class:`PermutohedralLattice` built on
        them.  ``compat`` is the label compatibility in the energy
        convention: a number ``w`` (Potts: agreeing neighbours are rewarded
        by ``w``, pydensecrf's scalar ``compat``), a ``(C,)`` vector (one
        Potts weight per class) or a ``(C, C)`` matrix ``μ[l, l']``, the
        energy paid when labels ``l`` and ``l'`` meet, used as given
        (pydensecrf symmetrises it).
    n_iter : int, default 5
        Mean-field iterations; 0 returns ``scores`` itself.
    normalization : {"symmetric", "before", "after", "none"}, default "symmetric"
        Kernel normalisation (see :meth:`PermutohedralLattice.filter`);
        densecrf's ``NORMALIZE_SYMMETRIC``, ``NORMALIZE_BEFORE``,
        ``NORMALIZE_AFTER`` and ``NO_NORMALIZATION``.
    deterministic : bool, default False
        Gather-based splat and slice (bitwise repeatable on CUDA).
    log_probs : bool, default False
        ``scores`` are log-probabilities (every point's largest is at least
        ``-log C``), so inference without autograd needs no shift for a safe
        ``exp``.

    Returns
    -------
    refined : (N, C, *spatial) Tensor
        ``-U - sum_k (K_k Q) M_k^T`` with ``Q`` the marginals after
        ``n_iter - 1`` updates, so ``softmax(refined, 1)`` are the marginals
        after ``n_iter`` (pydensecrf's ``inference(n_iter)``); differentiable
        in ``scores``, the compatibilities and the features.

    Raises
    ------
    TypeError
        ``scores`` or a kernel's features are not floating-point tensors.
    ValueError
        Shapes that do not fit together, NaN or inf, ``C < 2``, an unknown
        normalisation, a negative ``n_iter``.

    References
    ----------
    P. Krähenbühl and V. Koltun, "Efficient Inference in Fully Connected CRFs
    with Gaussian Edge Potentials", NIPS 2011.

    Examples
    --------
    >>> import torch
    >>> scores = torch.randn(1, 3, 4, 5, 6)  # (N, C, D, H, W)
    >>> intensity = torch.rand(1, 1, 4, 5, 6) * 255
    >>> positions = grid_features(1, (4, 5, 6), (3.0, 3.0, 3.0))
    >>> kernels = [(positions, 3.0),
    ...            (torch.cat([positions, intensity / 13.0], 1), 10.0)]
    >>> probs = torch.softmax(mean_field(scores, kernels, n_iter=5), 1)
    >>> probs.shape
    torch.Size([1, 3, 4, 5, 6])
    """
    _check_mean_field_inputs(scores, kernels, n_iter, normalization)
    if n_iter == 0 or not kernels:
        return scores
    num, classes, *spatial = scores.shape
    lattices = [source if isinstance(source, PermutohedralLattice)
                else PermutohedralLattice(_image_layout(source), deterministic=deterministic)
                for source, _ in kernels]
    transposed = [_compat_matrix(compat, classes, scores).t() for _, compat in kernels]
    if _compiled_applies(scores, lattices, transposed):
        refined = _compiled_mean_field(scores.movedim(1, -1).reshape(-1, classes).contiguous(),
                                       lattices, transposed, n_iter, normalization)
        return refined.reshape(num, *spatial, classes).movedim(-1, 1)
    pattern = stack_patterns([lat.pattern for lat in lattices])
    splat_w, slice_w = normalized_weights(
        pattern, torch.cat([lat.weights.to(scores.dtype) for lat in lattices], 1),
        [lat.alpha for lat in lattices], normalization)
    bounds = [0]
    for lat in lattices:
        bounds.append(bounds[-1] + lat.num_vertices)

    # (P, C) with the classes contiguous: the layout every product and softmax below wants
    unary = scores.movedim(1, -1).reshape(-1, classes).contiguous()
    tracked = torch.is_grad_enabled() and (
        unary.requires_grad or splat_w.requires_grad
        or any(compat.requires_grad for compat in transposed))
    if tracked:
        refined = unary
        for _ in range(n_iter):
            vertex_values = blur(splat(torch.softmax(refined, 1), splat_w, pattern), pattern)
            refined = unary - slice_at_points(
                _compatibility(vertex_values, bounds, transposed), slice_w, pattern)
    else:
        refined = _mean_field_inference(unary, pattern, splat_w, slice_w, bounds, transposed,
                                        n_iter, log_probs)
    return refined.reshape(num, *spatial, classes).movedim(-1, 1)


def _image_layout(features: torch.Tensor) -> torch.Tensor:
    """``(N, d, *spatial)`` features as the lattice's ``(N, d, H, W)``, points in the same order."""
    if features.ndim == 4:
        return features
    return features.reshape(features.shape[0], features.shape[1], 1, -1)


def _compat_matrix(compat: Any, classes: int, scores: torch.Tensor) -> torch.Tensor:
    """The ``(C, C)`` energy-convention compatibility of a number, vector or matrix."""
    value = compat if is_tensor(compat) else torch.as_tensor(np.asarray(compat, np.float64))
    value = value.to(device=scores.device, dtype=scores.dtype)
    if value.ndim == 0:
        return -value * torch.eye(classes, device=scores.device, dtype=scores.dtype)
    if value.ndim == 1:
        return -torch.diag(value)
    return value


def _check_mean_field_inputs(scores: Any, kernels: Any, n_iter: Any, normalization: str) -> None:
    """Validate :func:`mean_field`'s arguments, cheaply: shapes, dtypes, finiteness."""
    if not is_tensor(scores):
        raise TypeError(f"scores must be a torch tensor, got {type(scores).__name__}")
    check_floating_dtype("scores", scores)
    if scores.ndim < 3:
        raise ValueError(f"scores must be (N, C, *spatial) with at least one spatial axis, got "
                         f"shape {shape_of(scores)}")
    num, classes, *spatial = shape_of(scores)
    if classes < 2:
        raise ValueError(f"scores must have at least 2 classes (C >= 2), got C={classes}")
    check_int("n_iter", n_iter, low=0, high=2**31 - 1)
    check_choice("normalization", normalization, NORMALIZATIONS)
    if isinstance(kernels, (str, bytes)) or not isinstance(kernels, Sequence):
        raise TypeError(f"kernels must be a list of (features, compat) pairs, "
                        f"got {type(kernels).__name__}")
    points = num * math.prod(spatial)
    for k, kernel in enumerate(kernels):
        if not isinstance(kernel, (tuple, list)) or len(kernel) != 2:
            raise TypeError(f"kernels[{k}] must be a (features, compat) pair, got {kernel!r:.60}")
        source, compat = kernel
        if isinstance(source, PermutohedralLattice):
            if source.num_points != points or source.device != scores.device:
                raise ValueError(
                    f"kernels[{k}] is a lattice of {source.num_points} points on "
                    f"{source.device}, but the scores have N * prod(spatial) = {points} points "
                    f"on {scores.device}")
        else:
            if not is_tensor(source):
                raise TypeError(f"kernels[{k}] features must be a torch tensor or a "
                                f"PermutohedralLattice, got {type(source).__name__}")
            check_floating_dtype(f"kernels[{k}] features", source)
            if (source.ndim != scores.ndim or source.shape[0] != num
                    or tuple(source.shape[2:]) != tuple(spatial) or source.shape[1] < 1):
                raise ValueError(
                    f"kernels[{k}] features must be (N, d, *spatial) = ({num}, d, "
                    f"{', '.join(map(str, spatial))}) like the scores, got shape "
                    f"{shape_of(source)}")
            if source.device != scores.device:
                raise ValueError(f"kernels[{k}] features are on {source.device} but the scores "
                                 f"are on {scores.device}")
        shape = tuple(compat.shape) if is_tensor(compat) else np.shape(compat)
        if shape not in ((), (classes,), (classes, classes)):
            raise ValueError(f"kernels[{k}] compat must be a number, a (C,) vector or a (C, C) "
                             f"matrix with C={classes}, got shape {shape}")
        if not is_tensor(compat):
            try:
                check_finite(f"kernels[{k}] compat", np.asarray(compat, dtype=np.float64))
            except (TypeError, ValueError) as exc:
                if "non-finite" in str(exc):
                    raise
                raise TypeError(f"kernels[{k}] compat must be numeric, got {compat!r:.60}") \
                    from None
    check_finite("scores", scores)


def _compatibility(vertex_values: torch.Tensor, bounds: list[int],
                   transposed: list[torch.Tensor]) -> torch.Tensor:
    """Each lattice's blurred values times its compatibility, still on the vertices."""
    return torch.cat([vertex_values[lo:hi] @ compat_t for lo, hi, compat_t
                      in zip(bounds[:-1], bounds[1:], transposed)])


def _mean_field_inference(unary: torch.Tensor, pattern: LatticePattern, splat_w: torch.Tensor,
                          slice_w: torch.Tensor, bounds: list[int],
                          transposed: list[torch.Tensor], n_iter: int,
                          log_probs: bool) -> torch.Tensor:
    """The iterations without autograd: reused buffers and a cheaper softmax.

    The softmax needs each pixel's scores shifted so that ``exp`` neither
    overflows nor underflows.  The shift is the pixel's largest ``-U``, found
    once (log-probabilities need none: their largest is between ``-log C``
    and 0): the pairwise term moves a score by at most ``bound`` (the largest
    compatibility-weighted vertex value times the largest row sum of the
    slice weights), and while that stays well inside the float's exponent
    range the shifted ``exp`` is safe; otherwise torch's softmax runs.
    """
    shift = None if log_probs else unary.amax(1, keepdim=True)
    shifted = unary if shift is None else unary - shift  # largest score near 0
    limit = (60.0 if unary.dtype == torch.float32 else 600.0) - math.log(unary.shape[1])
    # Reading the bound back is free on the CPU but would stall an accelerator
    # once per iteration, so there the plain softmax runs every time.
    on_host = _reads_back_cheaply(unary.device)
    slice_row_sum = float(slice_w.abs().sum(1).amax()) if on_host else math.inf
    vertex_buffer = unary.new_empty((pattern.num_vertices, unary.shape[1]))
    probs = torch.empty_like(unary)
    pairwise = torch.empty_like(unary)
    refined, bound = shifted, 0.0 if on_host else math.inf
    for _ in range(n_iter):
        if bound <= limit:
            torch.exp(refined, out=probs)
            probs.div_(probs.sum(1, keepdim=True))
        else:
            probs = torch.softmax(refined, 1)
        vertex_values = blur(splat(probs, splat_w, pattern, out=vertex_buffer), pattern)
        messages = _compatibility(vertex_values, bounds, transposed)
        if on_host:
            bound = float(messages.abs().amax()) * slice_row_sum
        refined = torch.sub(shifted, slice_at_points(messages, slice_w, pattern, out=pairwise),
                            out=pairwise)
    if shift is None:
        return refined.clone() if refined is unary else refined
    return refined.add_(shift)


def _compiled_applies(scores: torch.Tensor, lattices: Sequence[PermutohedralLattice],
                      transposed: Sequence[torch.Tensor]) -> bool:
    """Whether inference without autograd on the CPU's compiled kernels serves this call."""
    tracked = torch.is_grad_enabled() and (
        scores.requires_grad or any(compat.requires_grad for compat in transposed))
    return (not tracked and scores.dtype in (torch.float32, torch.float64)
            and all(_native(lat.pattern, scores) for lat in lattices))


def _compiled_mean_field(unary: torch.Tensor, lattices: Sequence[PermutohedralLattice],
                         transposed: Sequence[torch.Tensor], n_iter: int,
                         normalization: str) -> torch.Tensor:
    """Mean field on the CPU's compiled kernels, one lattice after another: ``(P, C)`` scores.

    Nothing is stacked or copied: each lattice keeps its own vertex indices
    and barycentric weights, its normalisation is one factor per point (see
    :func:`~crfseg.crf.lattice._compiled_point_scales`) and its scale
    ``alpha`` is folded into the compatibility.  The slice and the
    subtraction from the unary run as one pass per lattice.  With a few
    classes the splat takes each point's softmax on the fly (no ``(P, C)``
    marginals); with more, torch's vectorised softmax fills a buffer reused
    every iteration (see :func:`~crfseg.crf.lattice._compiled_softmax`).
    """
    scales = [_compiled_point_scales(lattice, unary.dtype, normalization)
              for lattice in lattices]
    weights = [lattice.weights.to(unary.dtype) for lattice in lattices]
    matrices = [compat_t * lattice.alpha for lattice, compat_t in zip(lattices, transposed)]
    diagonals = [torch.diagonal(m) if torch.equal(m, torch.diag(torch.diagonal(m))) else None
                 for m in matrices]
    # few classes: each splat takes the softmax of the scores on the fly, no (P, C) marginals
    on_the_fly = unary.shape[1] <= _KERNEL_SOFTMAX_MAX_CLASSES
    probs = None if on_the_fly else _compiled_softmax(unary, torch.empty_like(unary))
    refined = torch.empty_like(unary)
    buffers = [unary.new_empty((lattice.num_vertices, unary.shape[1])) for lattice in lattices]
    for step in range(n_iter):
        source = probs if probs is not None else unary if step == 0 else refined
        # every lattice's messages first: the slices then overwrite the scores they came from
        messages = [_compiled_compatibility(
            blur(_native_splat(source, weights[k], lattice.pattern, buffers[k], scales[k][0],
                               softmax=on_the_fly), lattice.pattern),
            matrices[k], diagonals[k]) for k, lattice in enumerate(lattices)]
        for k, lattice in enumerate(lattices):
            _compiled_slice_subtract(messages[k], weights[k], lattice.pattern, scales[k][1],
                                     unary, refined, first=k == 0)
        if probs is not None and step < n_iter - 1:
            _compiled_softmax(refined, probs)
    return refined


def _reads_back_cheaply(device: torch.device) -> bool:
    """Whether reading a number back to Python is free (the CPU) or stalls the device."""
    return device.type == "cpu"
