"""Brute-force Gaussian filtering, the oracle the permutohedral lattice is tested against.

``O(P**2)`` time and memory: for small point sets only (a few thousand).
"""

from __future__ import annotations

import torch

from crfseg._validation import check_choice
from crfseg.crf.lattice import NORMALIZATIONS


def gaussian_kernel_matrix(features: torch.Tensor) -> torch.Tensor:
    """``(P, P)`` matrix ``exp(-|f_i - f_j|**2 / 2)`` of ``(P, d)`` features."""
    return torch.exp(-0.5 * torch.cdist(features, features).square())


def gaussian_filter_reference(features: torch.Tensor, values: torch.Tensor,
                              normalization: str = "none") -> torch.Tensor:
    """Exact Gaussian filter of ``(P, C)`` values over ``(P, d)`` features.

    ``out[i] = sum_j exp(-|f_i - f_j|**2 / 2) * values[j]`` (the point itself
    included), with the normalisations of
    :meth:`crfseg.crf.PermutohedralLattice.filter`: ``after`` divides the
    output by the filtered ones, ``before`` the input, ``symmetric`` both by
    their square root.

    Examples
    --------
    >>> f = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    >>> gaussian_filter_reference(f, torch.ones(2, 1, dtype=torch.float64), "after")
    tensor([[1.],
            [1.]], dtype=torch.float64)
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    kernel = gaussian_kernel_matrix(features)
    norm = kernel.sum(1, keepdim=True)
    if normalization == "none":
        return kernel @ values
    if normalization == "symmetric":
        scale = norm.rsqrt()
        return scale * (kernel @ (scale * values))
    if normalization == "before":
        return kernel @ (values / norm)
    return (kernel @ values) / norm
