"""Scores of a partition against a ground-truth partition, and synthetic test images.

Used by ``benchmarks/bench_split_merge.py`` and the tests: the adjusted Rand
index (Hubert & Arabie), the two halves of the variation of information
(Meila) and a boundary F1 score with a distance tolerance; piecewise-constant
Voronoi images whose ground truth is known exactly.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

LEVELS = (40, 90, 140, 190)


def _pair_counts(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    return float(np.sum(x * (x - 1.0) / 2.0))


def adjusted_rand_index(target: np.ndarray, labels: np.ndarray) -> float:
    """Adjusted Rand index of two partitions of the same pixels (1 = identical).

    Computed from the contingency table; label values only name the parts.
    """
    a = np.unique(np.asarray(target).ravel(), return_inverse=True)[1].astype(np.int64)
    b = np.unique(np.asarray(labels).ravel(), return_inverse=True)[1].astype(np.int64)
    if a.size != b.size:
        raise ValueError(f"target and labels must have the same size, got {a.size} and {b.size}")
    joint = np.unique(a * (b.max() + 1) + b, return_counts=True)[1]
    index = _pair_counts(joint)
    sum_a = _pair_counts(np.bincount(a))
    sum_b = _pair_counts(np.bincount(b))
    total = a.size * (a.size - 1) / 2.0
    if total == 0:
        return 1.0
    expected = sum_a * sum_b / total
    best = (sum_a + sum_b) / 2.0
    if best == expected:  # both partitions trivial (one part, or all singletons)
        return 1.0
    return float((index - expected) / (best - expected))


def variation_of_information(target: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The two conditional entropies of the variation of information, in bits.

    Returns ``(split, merge)``: ``H(labels | target)`` grows when ``labels``
    cuts a true region apart, ``H(target | labels)`` when it joins true
    regions (``skimage.metrics.variation_of_information`` with the ground
    truth first).
    """
    from skimage.metrics import variation_of_information as vi

    split, merge = vi(np.asarray(target), np.asarray(labels))
    return float(split), float(merge)


def region_boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label, ``(H, W)`` bool."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def boundary_f1(target: np.ndarray, labels: np.ndarray, tolerance: float = 2.0) -> float:
    """F1 of boundary pixels matched within ``tolerance`` pixels (Euclidean).

    Precision: fraction of the boundary pixels of ``labels`` within
    ``tolerance`` of a boundary pixel of ``target``; recall the other way
    round.  Two partitions without boundaries score 1, one without 0.
    """
    true_edge = region_boundaries(target)
    found_edge = region_boundaries(labels)
    if not true_edge.any() and not found_edge.any():
        return 1.0
    if not true_edge.any() or not found_edge.any():
        return 0.0
    to_true = ndimage.distance_transform_edt(~true_edge)
    to_found = ndimage.distance_transform_edt(~found_edge)
    precision = float(np.mean(to_true[found_edge] <= tolerance))
    recall = float(np.mean(to_found[true_edge] <= tolerance))
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def voronoi_levels(
    shape: tuple[int, int], n_cells: int, rng: np.random.Generator, levels=LEVELS
) -> tuple[np.ndarray, np.ndarray]:
    """A piecewise-constant image of Voronoi cells and its ground-truth regions.

    Every cell takes one of ``levels`` at random; the ground truth is the
    4-connected components of the level map (adjacent cells of one level form
    one region).  Returns ``(image uint8 (H, W), regions int32 (H, W))``.
    """
    from skimage.measure import label

    h, w = shape
    seeds = rng.uniform((0, 0), (h, w), size=(n_cells, 2))
    rows = np.arange(h, dtype=np.float64)[:, None]
    cols = np.arange(w, dtype=np.float64)[None, :]
    best = np.full(shape, np.inf)
    cell = np.zeros(shape, dtype=np.int32)
    for k, (r, c) in enumerate(seeds):
        d = (rows - r) ** 2 + (cols - c) ** 2
        closer = d < best
        best[closer] = d[closer]
        cell[closer] = k
    image = np.asarray(levels, dtype=np.uint8)[rng.integers(0, len(levels), n_cells)][cell]
    regions = label(image, background=-1, connectivity=1).astype(np.int32)
    return image, regions


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian noise of standard deviation ``sigma``, round and clip to uint8."""
    noisy = image.astype(np.float64) + sigma * rng.standard_normal(image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
