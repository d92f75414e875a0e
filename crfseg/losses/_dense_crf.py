"""The dense CRF (regularised) loss of Tang et al. on the permutohedral lattice.

The loss is the relaxed Potts energy of a soft segmentation under the
bilateral Gaussian affinity ``W`` of a fully connected CRF: for every class
``k``, the affinity between the pixels that hold ``k`` and those that do not,
``sum_k S_kᵀ W (1 - S_k)``.  ``W`` is applied with one permutohedral lattice
for the whole batch (:class:`crfseg.crf.lattice.PermutohedralLattice`);
its diagonal, the lattice's own weight of each pixel with itself, is removed
exactly, so a pixel's labelling never rewards or penalises itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from crfseg._validation import check_finite, check_floating_dtype, is_tensor, shape_of
from crfseg.crf.lattice import PermutohedralLattice, compiled_filter_diagonal
from crfseg.crf.mean_field import grid_features
from crfseg.losses._common import check_tensor

# The lattice's un-normalised kernel (densecrf's scale included) over the exact
# Gaussian exp(-|f_i - f_j|**2 / 2), least squares over the pairs with a Gaussian
# above 1e-3, by feature dimension d (measured on 1600 random points per d, spread
# within +-2 % between draws; tests/test_dense_crf_loss.py checks it on images).
DENSE_CRF_SCALE = {3: 0.76, 4: 0.68, 5: 0.58, 6: 0.44}


def check_dense_crf_inputs(logits: Any, image: Any, roi: Any
                           ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate ``logits (N, C, *S)``, ``image (N, K, *S)`` and ``roi (N, *S)``.

    ``S`` is ``(H, W)`` or ``(D, H, W)``.  Returns the logits (float16 and
    bfloat16 promoted to float32), the image in their dtype, and the roi as a
    0/1 mask in their dtype (None when absent).
    """
    check_tensor("logits", logits)
    if logits.ndim not in (4, 5):
        raise ValueError(
            "logits must be (N, C, H, W) or (N, C, D, H, W), got an array of shape "
            f"{shape_of(logits)}")
    check_floating_dtype("logits", logits)
    n, c, *spatial = shape_of(logits)
    if c < 2:
        raise ValueError(
            f"logits must have at least 2 classes along dim 1, got C={c}; "
            "for a binary problem give two channels (background, foreground)")
    if min(n, *spatial) < 1:
        raise ValueError(f"logits must not be empty, got shape {shape_of(logits)}")
    check_tensor("image", image)
    layout = "(N, K, " + ", ".join("DHW"[3 - len(spatial):]) + ")"
    if image.ndim != logits.ndim or image.shape[0] != n or list(image.shape[2:]) != spatial:
        raise ValueError(
            f"image must be {layout} = ({n}, K, {', '.join(map(str, spatial))}) to match "
            f"logits of shape {shape_of(logits)}, got {shape_of(image)}")
    if image.shape[1] < 1:
        raise ValueError(f"image must have at least one channel, got shape {shape_of(image)}")
    if image.dtype == torch.bool or image.is_complex():
        raise TypeError(f"image must hold real intensities, got dtype {image.dtype}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    for name, x in (("image", image), ("roi", roi)):
        if x is not None and is_tensor(x) and x.device != logits.device:
            raise ValueError(
                f"{name} must be on the device of logits ({logits.device}), got {x.device}")
    check_finite("logits", logits.detach())
    check_finite("image", image)
    mask = None
    if roi is not None:
        check_tensor("roi", roi)
        if shape_of(roi) != (n, *spatial):
            raise ValueError(
                f"roi must have shape (N, {', '.join('DHW'[3 - len(spatial):])}) = "
                f"{(n, *spatial)} to match logits of shape {shape_of(logits)}, "
                f"got {shape_of(roi)}")
        if roi.is_complex():
            raise TypeError(f"roi must be a boolean or real mask, got dtype {roi.dtype}")
        check_finite("roi", roi)
        mask = (roi != 0).to(logits.dtype)
    return logits, image.to(logits.dtype), mask


def bilateral_features(image: Tensor, sxy: float, srgb: float) -> Tensor:
    """``(N, d, *S)`` features: grid positions ``/ sxy``, then ``intensity / srgb``.

    ``d = ndim(S) + K``; in the image's dtype and on its device.
    """
    n, _, *spatial = image.shape
    positions = grid_features(n, spatial, [sxy] * len(spatial), device=image.device,
                              dtype=image.dtype)
    return torch.cat([positions, image / srgb], 1)


def lattice_diagonal(lattice: PermutohedralLattice) -> Tensor:
    """``(P,)`` the exact diagonal of the lattice's un-normalised filter.

    Filtering ``x`` computes ``alpha * Sᵀ B S x``: splat ``S`` onto the
    ``R = d + 1`` corners of each point's simplex, blur ``B = B_d ... B_0``
    (one ``[1/2, 1, 1/2]`` step per lattice axis, absent vertices count as
    zero) and slice.  Entry ``B[u, v]`` is a sum over walks from ``v`` to
    ``u`` that move at most one step along each axis, in axis order, through
    vertices of the lattice.  Corner ``t + 1`` of a simplex is corner ``t``
    moved one step back along one axis (``perm[t]``), so two corners ``a``
    and ``b`` are joined by exactly two such walks: back along the axes
    ``perm[a], ..., perm[b - 1]`` (cyclically), or forward along all the
    others; a corner reaches itself by staying, or by one step along every
    axis, forwards or backwards.  Each step halves the weight, and a walk
    through an absent vertex counts zero.  Walking them on the lattice's
    neighbour table costs ``O(P d**3)`` index operations and no filtering.
    """
    pattern = lattice.pattern
    weights = lattice.weights.detach()
    if pattern.native and weights.device.type == "cpu" and weights.dtype in (torch.float32,
                                                                          torch.float64):
        # the same walks, compiled: about 30x faster on the CPU
        return (compiled_filter_diagonal(pattern, weights) * lattice.alpha).to(weights.dtype)
    m = pattern.num_vertices
    itype = torch.int32 if 2 * (m + 1) < 2**31 else torch.long
    # (R, P) layouts: each corner's (axis's) row is contiguous
    offset = pattern.offset.t().to(itype).contiguous()
    weights = lattice.weights.detach().t()
    corners, num = offset.shape
    device = offset.device
    # per axis, one table of M + 1 rows to stay put and M + 1 rows to step; row m stands
    # for every absent vertex and leads nowhere
    own = torch.arange(m + 1, device=device, dtype=itype)
    absent = torch.full((corners, 2, 1), m, dtype=itype, device=device)
    table = torch.cat([pattern.groups[0].neighbours.to(itype), absent], 2)  # (R, 2, M + 1)
    forward = torch.stack([torch.cat([own, table[j, 0]]) for j in range(corners)])
    backward = torch.stack([torch.cat([own, table[j, 1]]) for j in range(corners)])

    def walk(start: Tensor, steps: Tensor, tables: Tensor) -> Tensor:
        """Where walks from ``start`` that step along the axes where ``steps`` is set end."""
        shifts = steps.to(itype) * (m + 1)  # row offset into the stepping half of each table
        current = start.expand(steps.shape[1:]).contiguous()
        for axis in range(corners):
            current = tables[axis].index_select(0, (current + shifts[axis]).reshape(-1)
                                                ).view(current.shape)
        return current

    axis_ids = torch.arange(corners, device=device, dtype=itype)[:, None]
    # the backward walk from corner a to corner b takes (b - a) mod R steps, the forward
    # walk the other R - (b - a) mod R, each halving the weight
    lengths = torch.arange(corners, device=device)
    halves = torch.tensor(0.5, dtype=weights.dtype, device=device)

    def chunk_diagonal(offset: Tensor, weights: Tensor) -> Tensor:
        """The diagonal of the points whose ``(R, n)`` corners and weights are given."""
        num = offset.shape[1]
        # perm[t, p]: the axis whose backward step leads from corner t to corner t + 1
        following = offset.roll(-1, 0)
        perm = torch.zeros_like(offset)
        for axis in range(corners):
            step = table[axis, 1].index_select(0, offset.reshape(-1).long()).view(offset.shape)
            perm.masked_fill_(step == following, axis)
        diagonal = torch.zeros(num, dtype=weights.dtype, device=device)
        for a in range(corners):
            back_length = (lengths - a) % corners
            # back[j, b, p]: axis j lies on the backward walk from corner a to corner b;
            # for b = a it is empty (the walk that stays), its complement steps along
            # every axis
            back = torch.zeros((corners, corners, num), dtype=torch.bool, device=device)
            for t in range(1, corners):
                b = (a + t) % corners
                back[:, b] = back[:, b - 1] | (perm[b - 1] == axis_ids)
            for tables, steps, length in ((backward, back, back_length),
                                          (forward, ~back, corners - back_length)):
                reached = walk(offset[a], steps, tables) == offset
                walk_weight = reached.to(weights.dtype) * halves.pow(length)[:, None]
                diagonal += weights[a] * (walk_weight * weights).sum(0)
            # the third walk from corner a to itself: backward along every axis
            around = torch.ones((corners, num), dtype=torch.bool, device=device)
            reached = walk(offset[a], around, backward) == offset[a]
            diagonal += weights[a] ** 2 * reached.to(weights.dtype) * halves.pow(corners)
        return diagonal

    # a few thousand points at a time keep the (R, R, n) temporaries in cache
    chunk = 16384
    diagonal = torch.cat([chunk_diagonal(offset[:, i:i + chunk].contiguous(),
                                         weights[:, i:i + chunk].contiguous())
                          for i in range(0, num, chunk)])
    return diagonal * lattice.alpha


def dense_crf_energy(logits: Tensor, image: Tensor, mask: Tensor | None, sxy: float,
                     srgb: float) -> Tensor:
    """``(N,)`` the loss of each image, for validated inputs (see ``dense_crf_loss``)."""
    n, c, *spatial = logits.shape
    # the lattice takes (N, d, H, W): a volume's depth and height share one axis
    flat = (n, -1, max(1, torch.Size(spatial[:-1]).numel()), spatial[-1])
    features = bilateral_features(image.detach(), sxy, srgb).reshape(flat)
    lattice = PermutohedralLattice(features)
    probs = torch.softmax(logits, 1).reshape(n, c, *flat[2:])
    inside, outside = probs, 1.0 - probs
    if mask is not None:
        mask = mask.reshape(n, 1, *flat[2:])
        inside, outside = inside * mask, outside * mask
    cut = (inside * lattice.filter(outside)).sum((1, 2, 3))
    diagonal = lattice_diagonal(lattice).to(logits.dtype).reshape(n, 1, *flat[2:])
    return cut - (diagonal * inside * outside).sum((1, 2, 3))
