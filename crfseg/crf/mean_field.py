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

import torch

from crfseg.crf.lattice import (
    PermutohedralLattice,
    LatticePattern,
    blur,
    normalized_weights,
    slice_at_points,
    splat,
    stack_patterns,
)

__all__ = ["bilateral_features", "mean_field", "spatial_features"]

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
    kernels: Sequence[tuple[torch.Tensor | PermutohedralLattice, torch.Tensor]],
    n_iter: int,
    *,
    normalization: str = "symmetric",
    deterministic: bool = False,
    log_probs: bool = False,
) -> torch.Tensor:
    """Run mean field; return the last iteration's scores before the softmax.

    Parameters
    ----------
    scores : (N, C, H, W) float Tensor
        ``-U``: logits or log-probabilities (the softmax ignores a constant
        per pixel).
    kernels : sequence of (features or lattice, compat)
        ``features`` ``(N, d, H, W)`` in the dtype of ``scores`` (positions
        divided by their standard deviations), or a lattice already built on
        them, and ``compat`` the ``(C, C)`` compatibility in the energy
        convention.
    n_iter : int
        Mean-field iterations; 0 returns ``scores`` itself.
    normalization : {"symmetric", "before", "after", "none"}
        Kernel normalisation (see :meth:`PermutohedralLattice.filter`).
    deterministic : bool
        Gather-based splat and slice (bitwise repeatable on CUDA).
    log_probs : bool
        ``scores`` are log-probabilities (every pixel's largest is at least
        ``-log C``), so inference without autograd needs no shift for a safe
        ``exp``.

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
    lattices = [source if isinstance(source, PermutohedralLattice)
                else PermutohedralLattice(source, deterministic=deterministic)
                for source, _ in kernels]
    pattern = stack_patterns([lat.pattern for lat in lattices])
    splat_w, slice_w = normalized_weights(
        pattern, torch.cat([lat.weights.to(scores.dtype) for lat in lattices], 1),
        [lat.alpha for lat in lattices], normalization)
    bounds = [0]
    for lat in lattices:
        bounds.append(bounds[-1] + lat.num_vertices)
    transposed = [compat.to(scores.dtype).t() for _, compat in kernels]

    # (P, C) with the classes contiguous: the layout every product and softmax below wants
    unary = scores.permute(0, 2, 3, 1).reshape(num * height * width, classes).contiguous()
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
    return refined.reshape(num, height, width, classes).permute(0, 3, 1, 2)


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
    on_host = unary.device.type == "cpu"
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
