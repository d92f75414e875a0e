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

from collections.abc import Sequence

import torch

from crfseg.crf.lattice import (
    PermutohedralLattice,
    blur,
    slice_at_points,
    splat,
    stack_patterns,
)

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


def mean_field(
    scores: torch.Tensor,
    kernels: Sequence[tuple[torch.Tensor, torch.Tensor]],
    n_iter: int,
    *,
    normalization: str = "symmetric",
    deterministic: bool = False,
) -> torch.Tensor:
    """Run mean field; return the last iteration's scores before the softmax.

    Parameters
    ----------
    scores : (N, C, H, W) float Tensor
        ``-U``: logits or log-probabilities (the softmax ignores a constant
        per pixel).
    kernels : sequence of (features, compat)
        ``features`` ``(N, d, H, W)`` in the dtype of ``scores`` (positions
        divided by their standard deviations) and ``compat`` the ``(C, C)``
        compatibility in the energy convention.
    n_iter : int
        Mean-field iterations; 0 returns ``scores`` itself.
    normalization : {"symmetric", "before", "after", "none"}
        Kernel normalisation (see :meth:`PermutohedralLattice.filter`).
    deterministic : bool
        Gather-based splat and slice (bitwise repeatable on CUDA).

    Returns
    -------
    refined : (N, C, H, W) Tensor
        ``-U - sum_k (K_k Q) M_k^T`` with ``Q`` the marginals after
        ``n_iter - 1`` updates, so ``softmax(refined, 1)`` are the marginals
        after ``n_iter``; differentiable in ``scores``, the compatibilities and
        the features.
    """
    if n_iter == 0 or not kernels:
        return scores
    num, classes, height, width = scores.shape
    lattices = [PermutohedralLattice(features, deterministic=deterministic)
                for features, _ in kernels]
    pattern = stack_patterns([lat.pattern for lat in lattices])
    weights = [lat.filter_weights(normalization, scores.dtype) for lat in lattices]
    splat_w = torch.cat([w[0] for w in weights], 1)
    slice_w = torch.cat([w[1] for w in weights], 1)
    bounds = [0]
    for lat in lattices:
        bounds.append(bounds[-1] + lat.num_vertices)
    transposed = [compat.to(scores.dtype).t() for _, compat in kernels]

    unary = scores.permute(0, 2, 3, 1).reshape(num * height * width, classes).contiguous()
    tracked = torch.is_grad_enabled() and (
        unary.requires_grad or splat_w.requires_grad
        or any(compat.requires_grad for compat in transposed))
    # Without autograd the vertex and pixel buffers are allocated once and reused.
    vertex_buffer = None if tracked else unary.new_empty((pattern.num_vertices, classes))
    point_buffer = None if tracked else torch.empty_like(unary)
    refined = unary
    for _ in range(n_iter):
        probs = torch.softmax(refined, 1)
        vertex_values = blur(splat(probs, splat_w, pattern, out=vertex_buffer), pattern)
        messages = torch.cat([vertex_values[lo:hi] @ compat_t for lo, hi, compat_t
                              in zip(bounds[:-1], bounds[1:], transposed)])
        pairwise = slice_at_points(messages, slice_w, pattern, out=point_buffer)
        refined = unary - pairwise if tracked else torch.sub(unary, pairwise, out=pairwise)
    return refined.reshape(num, height, width, classes).permute(0, 3, 1, 2)
