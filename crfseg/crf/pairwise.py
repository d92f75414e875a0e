"""Pairwise costs and edge weights for grid CRFs.

A grid CRF pays ``w_pq * V[x_p, x_q]`` on every edge between neighbouring
pixels.  This module builds the label cost ``V`` (Potts, truncated linear,
truncated quadratic, or any ``(L, L)`` matrix) and the per-edge weights
``w_pq`` from an image (:func:`contrast_weights`).

Edges and their weight arrays, for an ``(H, W)`` grid:

=============  =========================  ==============  ==============
direction      edge                       weights         default weight
=============  =========================  ==============  ==============
right          (y, x) - (y, x + 1)        (H, W - 1)      1
down           (y, x) - (y + 1, x)        (H - 1, W)      1
diagonal       (y, x) - (y + 1, x + 1)    (H - 1, W - 1)  1 / sqrt(2)
anti-diagonal  (y, x + 1) - (y + 1, x)    (H - 1, W - 1)  1 / sqrt(2)
=============  =========================  ==============  ==============

The first pixel of every edge comes first in raster order, and ``V`` is
indexed ``V[label of the first pixel, label of the second]``.  4-connectivity
uses the first two directions, 8-connectivity all four.  Diagonal edges are
weighted by 1 / distance = 1 / sqrt(2) by default, the same factor
:func:`contrast_weights` applies.

A ``(D, H, W)`` volume has the 13 forward directions ``(dz, dy, dx)`` of
:data:`VOLUME_EDGE_OFFSETS`: 6-connectivity uses the first 3 (x, y, z),
18-connectivity adds the 6 face diagonals, 26-connectivity the 4 space
diagonals.  The weights of direction ``(dz, dy, dx)`` are an array of shape
``(D - |dz|, H - |dy|, W - |dx|)`` whose entry ``[z, y, x]`` weights the edge
between the voxels ``(z, y + [dy < 0], x + [dx < 0])`` and that voxel plus
``(dz, dy, dx)``: the array is indexed by the lowest corner of the edge,
as the 2-D anti-diagonal is.  Default weights are ``1 / distance`` in
physical units (:func:`default_volume_edge_weights`);
:func:`volume_contrast_weights` builds them from a volume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crfseg._validation import (
    check_array,
    check_choice,
    check_finite,
    check_int,
    check_memory,
    check_ndim,
    check_number,
)

__all__ = [
    "Pairwise",
    "potts",
    "truncated_linear",
    "truncated_quadratic",
    "pairwise_by_name",
    "PAIRWISE_NAMES",
    "as_pairwise",
    "expansion_violation",
    "swap_violation",
    "contrast_weights",
    "default_edge_weights",
    "EDGE_OFFSETS",
    "VOLUME_EDGE_OFFSETS",
    "VOLUME_CONNECTIVITIES",
    "default_volume_edge_weights",
    "volume_contrast_weights",
]

#: ``(dy, dx)`` from the first to the second pixel of each edge direction, in
#: the order of the weight arrays; the anti-diagonal's first pixel is (y, x + 1).
EDGE_OFFSETS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (1, -1))

#: ``(dz, dy, dx)`` from the first to the second voxel of each volume edge
#: direction, in the order of the weight arrays (the kernel's order).
VOLUME_EDGE_OFFSETS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 1), (0, 1, 0), (1, 0, 0),
    (0, 1, 1), (0, 1, -1), (1, 0, 1), (1, 0, -1), (1, 1, 0), (1, -1, 0),
    (1, 1, 1), (1, 1, -1), (1, -1, 1), (1, -1, -1))
#: Volume connectivities and how many forward directions each uses.
VOLUME_CONNECTIVITIES: dict[int, int] = {6: 3, 18: 9, 26: 13}

_KINDS = ("potts", "truncated_linear", "truncated_quadratic", "general")
#: The names :func:`pairwise_by_name` accepts.
PAIRWISE_NAMES = ("potts", "linear", "quadratic")


@dataclass(frozen=True)
class Pairwise:
    """A label cost ``V`` of shape ``(L, L)`` and the structure it has.

    Build one with :func:`potts`, :func:`truncated_linear`,
    :func:`truncated_quadratic` or :func:`as_pairwise`.  The structured kinds
    let TRW-S compute each message in O(L) with a distance transform instead
    of O(L^2).

    Attributes
    ----------
    kind : {"potts", "truncated_linear", "truncated_quadratic", "general"}
    num_labels : int
        L.
    weight : float
        The cost's scale (``nan`` for ``"general"``).
    truncation : float
        Label distance (linear) or squared distance (quadratic) at which the
        cost stops growing, ``inf`` when untruncated; 1 for Potts (whose
        distance is 0 or 1); ``nan`` for ``"general"``.
    matrix : (L, L) ndarray of float64
        ``V[a, b]``, read-only.

    Examples
    --------
    >>> from crfseg.crf import truncated_linear
    >>> truncated_linear(4, 2.0, 2).matrix
    array([[0., 2., 4., 4.],
           [2., 0., 2., 4.],
           [4., 2., 0., 2.],
           [4., 4., 2., 0.]])
    """

    kind: str
    num_labels: int
    weight: float
    truncation: float
    matrix: np.ndarray = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, _KINDS)
        check_int("num_labels", self.num_labels, low=2)
        check_array("matrix", self.matrix, allow_tensor=False)
        shape = (self.num_labels, self.num_labels)
        if self.matrix.shape != shape or self.matrix.dtype != np.float64:
            raise ValueError(
                f"matrix must be a float64 array of shape {shape} for num_labels="
                f"{self.num_labels}, got {self.matrix.dtype} of shape {self.matrix.shape}"
            )
        check_finite("matrix", self.matrix)
        if self.kind != "general":
            expected = _structured_matrix(self.kind, self.num_labels, self.weight,
                                          self.truncation)
            if not np.array_equal(expected, self.matrix):
                raise ValueError(
                    f"matrix is not the {self.kind} cost with weight={self.weight:g} and "
                    f"truncation={self.truncation:g}; build it with {self.kind}() or use "
                    "kind='general'"
                )

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.matrix if dtype is None else self.matrix.astype(dtype)


def _check_num_labels(num_labels: Any) -> int:
    num_labels = check_int("num_labels", num_labels, low=2)
    # the matrix and the temporaries that build it
    check_memory("num_labels", num_labels, 3 * 8 * num_labels**2, "an (L, L) float64 cost")
    return num_labels


def _check_truncation(truncation: Any) -> float:
    if isinstance(truncation, (int, float, np.integer, np.floating)) and not isinstance(
        truncation, bool
    ) and float(truncation) == math.inf:
        return math.inf
    return check_number("truncation", truncation, low=0.0, low_inclusive=False)


def _structured_matrix(kind: str, num_labels: int, weight: float, truncation: float
                       ) -> np.ndarray:
    labels = np.arange(num_labels, dtype=np.float64)
    distance = np.abs(labels[:, None] - labels[None, :])
    if kind == "potts":
        distance = (distance > 0).astype(np.float64)
    elif kind == "truncated_quadratic":
        distance = distance**2
    return weight * np.minimum(distance, truncation)


def _structured(kind: str, num_labels: int, weight: float, truncation: float) -> Pairwise:
    matrix = _structured_matrix(kind, num_labels, weight, truncation)
    matrix.setflags(write=False)
    return Pairwise(kind, num_labels, weight, truncation, matrix)


def potts(num_labels: int, weight: float) -> Pairwise:
    """Potts cost: ``V[a, b] = weight`` when ``a != b``, else 0.

    Parameters
    ----------
    num_labels : int
        Number of labels L, at least 2.
    weight : float
        Cost of a label change between neighbours, ``>= 0``.

    Returns
    -------
    Pairwise
        ``kind == "potts"``; ``matrix`` has shape ``(L, L)``.

    References
    ----------
    .. [1] Y. Boykov, O. Veksler and R. Zabih, "Fast Approximate Energy
       Minimization via Graph Cuts", IEEE TPAMI 23(11), 2001.

    Examples
    --------
    >>> from crfseg.crf import potts
    >>> potts(3, 0.5).matrix
    array([[0. , 0.5, 0.5],
           [0.5, 0. , 0.5],
           [0.5, 0.5, 0. ]])
    """
    num_labels = _check_num_labels(num_labels)
    weight = check_number("weight", weight, low=0.0)
    return _structured("potts", num_labels, weight, 1.0)


def truncated_linear(num_labels: int, weight: float, truncation: float = math.inf) -> Pairwise:
    """Truncated linear cost: ``V[a, b] = weight * min(|a - b|, truncation)``.

    A metric, so alpha-expansion applies.

    Parameters
    ----------
    num_labels : int
        Number of labels L, at least 2.
    weight : float
        Cost per unit of label distance, ``>= 0``.
    truncation : float, optional
        Label distance beyond which the cost stays constant, ``> 0``;
        ``inf`` (default) for an untruncated linear cost.

    Returns
    -------
    Pairwise
        ``kind == "truncated_linear"``; ``matrix`` has shape ``(L, L)``.

    References
    ----------
    .. [1] P. F. Felzenszwalb and D. P. Huttenlocher, "Efficient Belief
       Propagation for Early Vision", IJCV 70(1), 2006.

    Examples
    --------
    >>> from crfseg.crf import truncated_linear
    >>> truncated_linear(3, 1.0, 1).matrix[0]
    array([0., 1., 1.])
    """
    num_labels = _check_num_labels(num_labels)
    weight = check_number("weight", weight, low=0.0)
    truncation = _check_truncation(truncation)
    return _structured("truncated_linear", num_labels, weight, truncation)


def truncated_quadratic(
    num_labels: int, weight: float, truncation: float = math.inf
) -> Pairwise:
    """Truncated quadratic cost: ``V[a, b] = weight * min((a - b)**2, truncation)``.

    Not a metric (it breaks the triangle inequality), so alpha-expansion does
    not apply; use ``"swap"`` or ``"trws"``.

    Parameters
    ----------
    num_labels : int
        Number of labels L, at least 2.
    weight : float
        Cost per unit of squared label distance, ``>= 0``.
    truncation : float, optional
        Squared label distance beyond which the cost stays constant, ``> 0``;
        ``inf`` (default) for an untruncated quadratic.

    Returns
    -------
    Pairwise
        ``kind == "truncated_quadratic"``; ``matrix`` has shape ``(L, L)``.

    References
    ----------
    .. [1] P. F. Felzenszwalb and D. P. Huttenlocher, "Efficient Belief
       Propagation for Early Vision", IJCV 70(1), 2006.

    Examples
    --------
    >>> from crfseg.crf import truncated_quadratic
    >>> truncated_quadratic(4, 1.0, 4).matrix[0]
    array([0., 1., 4., 4.])
    """
    num_labels = _check_num_labels(num_labels)
    weight = check_number("weight", weight, low=0.0)
    truncation = _check_truncation(truncation)
    return _structured("truncated_quadratic", num_labels, weight, truncation)


def pairwise_by_name(name: str, num_labels: int, weight: float,
                     truncation: float | None = None) -> Pairwise:
    """Build a label cost from its short name, as a command line or a config file gives it.

    Parameters
    ----------
    name : {"potts", "linear", "quadratic"}
        :func:`potts`, :func:`truncated_linear` or :func:`truncated_quadratic`.
    num_labels : int
        Number of labels L, at least 2.
    weight : float
        Weight of the cost, ``>= 0``.
    truncation : float, optional
        Truncation of the linear or quadratic cost (``None``: untruncated);
        a Potts cost takes none.

    Returns
    -------
    Pairwise
        ``matrix`` has shape ``(L, L)``.

    Examples
    --------
    >>> from crfseg.crf.pairwise import pairwise_by_name
    >>> pairwise_by_name("linear", 4, 1.0, 2).matrix[0]
    array([0., 1., 2., 2.])
    """
    check_choice("name", name, PAIRWISE_NAMES)
    if name == "potts":
        if truncation is not None:
            raise ValueError(
                f"truncation applies to the linear and quadratic costs, not potts; got {truncation}"
            )
        return potts(num_labels, weight)
    build = truncated_linear if name == "linear" else truncated_quadratic
    return build(num_labels, weight, math.inf if truncation is None else truncation)


def _recognise(matrix: np.ndarray) -> Pairwise:
    """Find the structure of a cost matrix, so fast messages apply to it too."""
    num_labels = matrix.shape[0]
    weight = float(matrix[0, 1])
    if weight > 0.0 and np.all(np.diag(matrix) == 0.0):
        biggest = float(matrix.max())
        ratio = biggest / weight
        for kind, truncation, untruncated_above in (
            ("potts", 1.0, math.inf),
            ("truncated_linear", ratio, num_labels - 1.0),
            ("truncated_linear", float(round(ratio)), num_labels - 1.0),
            ("truncated_quadratic", ratio, (num_labels - 1.0) ** 2),
            ("truncated_quadratic", float(round(ratio)), (num_labels - 1.0) ** 2),
        ):
            if truncation >= untruncated_above:
                truncation = math.inf
            if truncation <= 0.0:
                continue
            candidate = _structured_matrix(kind, num_labels, weight, truncation)
            if np.array_equal(candidate, matrix):
                return _structured(kind, num_labels, weight, truncation)
    frozen = matrix.copy()
    frozen.setflags(write=False)
    return Pairwise("general", num_labels, math.nan, math.nan, frozen)


def as_pairwise(pairwise: Pairwise | np.ndarray, num_labels: int | None = None) -> Pairwise:
    """Turn a cost matrix (or a :class:`Pairwise`) into a :class:`Pairwise`.

    A matrix equal to a Potts, truncated linear or truncated quadratic cost is
    recognised as such.

    Parameters
    ----------
    pairwise : Pairwise or (L, L) array_like of float
        The cost ``V[a, b]``; finite, any sign.
    num_labels : int, optional
        When given, L must equal it (the number of labels of the unary).

    Returns
    -------
    Pairwise

    Examples
    --------
    >>> import numpy as np
    >>> from crfseg.crf.pairwise import as_pairwise
    >>> as_pairwise(np.array([[0.0, 2.0], [2.0, 0.0]])).kind
    'potts'
    """
    if isinstance(pairwise, Pairwise):
        result = pairwise
    else:
        check_array("pairwise", pairwise, allow_tensor=False)
        if not (np.issubdtype(pairwise.dtype, np.floating)
                or np.issubdtype(pairwise.dtype, np.integer)):
            raise TypeError(f"pairwise must be a real-valued matrix, got dtype {pairwise.dtype}")
        check_ndim("pairwise", pairwise, 2, "a square (L, L) matrix")
        if pairwise.shape[0] != pairwise.shape[1] or pairwise.shape[0] < 2:
            raise ValueError(
                "pairwise must be a square (L, L) matrix with L >= 2, "
                f"got shape {tuple(pairwise.shape)}"
            )
        check_finite("pairwise", pairwise)
        result = _recognise(np.ascontiguousarray(pairwise, dtype=np.float64))
    if num_labels is not None and result.num_labels != num_labels:
        raise ValueError(
            f"pairwise must have shape ({num_labels}, {num_labels}) to match the "
            f"{num_labels} labels of unary, got shape {result.matrix.shape}"
        )
    return result


def expansion_violation(matrix: np.ndarray) -> tuple[int, int, int] | None:
    """First ``(a, b, c)`` with ``V[a, a] + V[b, c] > V[a, c] + V[b, a]``, or None.

    ``V[a, a] + V[b, c] <= V[a, c] + V[b, a]`` for all labels is the condition
    under which every alpha-expansion move is a submodular binary problem.

    Parameters
    ----------
    matrix : (L, L) ndarray of float64
        The cost ``V``; entries within 1e-12 of its largest magnitude of the
        condition count as meeting it.

    Returns
    -------
    tuple of int or None

    References
    ----------
    .. [1] V. Kolmogorov and R. Zabih, "What Energy Functions Can Be Minimized
       via Graph Cuts?", IEEE TPAMI 26(2), 2004.

    Examples
    --------
    >>> from crfseg.crf import potts, truncated_quadratic
    >>> from crfseg.crf.pairwise import expansion_violation
    >>> expansion_violation(potts(3, 1.0).matrix) is None
    True
    >>> expansion_violation(truncated_quadratic(3, 1.0).matrix)
    (1, 0, 2)
    """
    # in units of the largest entry, so sums of entries near 1e308 do not overflow
    matrix = matrix / max(float(np.abs(matrix).max()), 1e-300)
    for a in range(matrix.shape[0]):
        excess = matrix[a, a] + matrix - matrix[a, :][None, :] - matrix[:, a][:, None]
        bad = np.argwhere(excess > 1e-12)
        if bad.size:
            return a, int(bad[0, 0]), int(bad[0, 1])
    return None


def swap_violation(matrix: np.ndarray) -> tuple[int, int] | None:
    """First pair ``(a, b)`` with ``V[a, a] + V[b, b] > V[a, b] + V[b, a]``, or None.

    The condition of alpha-beta swap moves (and, for two labels, of an exact
    graph cut): every pair of labels must be submodular.

    Parameters
    ----------
    matrix : (L, L) ndarray of float64

    Returns
    -------
    tuple of int or None

    Examples
    --------
    >>> import numpy as np
    >>> from crfseg.crf.pairwise import swap_violation
    >>> swap_violation(np.array([[1.0, 0.0], [0.0, 1.0]]))
    (0, 1)
    """
    matrix = matrix / max(float(np.abs(matrix).max()), 1e-300)
    diag = np.diag(matrix)
    excess = diag[:, None] + diag[None, :] - matrix - matrix.T
    bad = np.argwhere(excess > 1e-12)
    return None if bad.size == 0 else (int(bad[0, 0]), int(bad[0, 1]))


def default_edge_weights(height: int, width: int, connectivity: int = 4
                         ) -> tuple[np.ndarray, ...]:
    """Unit weights for straight edges and 1/sqrt(2) for diagonal ones.

    Parameters
    ----------
    height, width : int
        Grid size ``(H, W)``, each at least 1.
    connectivity : {4, 8}

    Returns
    -------
    tuple of ndarray of float64
        ``(right (H, W-1), down (H-1, W))`` and, for 8-connectivity,
        ``(diagonal (H-1, W-1), anti-diagonal (H-1, W-1))``.

    Examples
    --------
    >>> from crfseg.crf.pairwise import default_edge_weights
    >>> [w.shape for w in default_edge_weights(3, 4, 8)]
    [(3, 3), (2, 4), (2, 3), (2, 3)]
    """
    height = check_int("height", height, low=1)
    width = check_int("width", width, low=1)
    check_choice("connectivity", connectivity, (4, 8))
    check_memory("(height, width)", (height, width), 8 * height * width * connectivity // 2,
                 "edge weights in float64")
    shapes = _edge_shapes(height, width, connectivity)
    return tuple(
        np.full(shape, 1.0 / math.hypot(*offset))
        for shape, offset in zip(shapes, EDGE_OFFSETS[: len(shapes)], strict=True)
    )


def _edge_shapes(height: int, width: int, connectivity: int) -> list[tuple[int, int]]:
    shapes = [(height, width - 1), (height - 1, width)]
    if connectivity == 8:
        shapes += [(height - 1, width - 1), (height - 1, width - 1)]
    return shapes


def _edge_pairs(array: np.ndarray, direction: int) -> tuple[np.ndarray, np.ndarray]:
    """Values at the first and second pixel of every edge of one direction."""
    if direction == 0:
        return array[:, :-1], array[:, 1:]
    if direction == 1:
        return array[:-1, :], array[1:, :]
    if direction == 2:
        return array[:-1, :-1], array[1:, 1:]
    return array[:-1, 1:], array[1:, :-1]


def contrast_weights(
    image: np.ndarray, beta: float | None = None, connectivity: int = 4
) -> tuple[np.ndarray, ...]:
    """GrabCut-style edge weights ``exp(-beta * ||I_p - I_q||^2) / dist(p, q)``.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray
        Gray or colour image, any real dtype; differences are taken in float64.
    beta : float, optional
        Contrast sensitivity, ``>= 0``.  By default
        ``1 / (2 * mean ||I_p - I_q||^2)`` over all edges of the chosen
        connectivity (0 for a constant image, which gives weights 1 / dist).
    connectivity : {4, 8}

    Returns
    -------
    tuple of ndarray of float64
        ``(right (H, W-1), down (H-1, W))`` and, for 8-connectivity,
        ``(diagonal (H-1, W-1), anti-diagonal (H-1, W-1))``, ready for
        ``GridCRF(..., edge_weights=...)``.  ``dist`` is 1 for straight edges
        and sqrt(2) for diagonal ones.

    References
    ----------
    .. [1] C. Rother, V. Kolmogorov and A. Blake, "GrabCut: Interactive
       Foreground Extraction using Iterated Graph Cuts", SIGGRAPH 2004.
    .. [2] Y. Boykov and M.-P. Jolly, "Interactive Graph Cuts for Optimal
       Boundary & Region Segmentation of Objects in N-D Images", ICCV 2001.

    Examples
    --------
    >>> import numpy as np
    >>> from crfseg.crf import contrast_weights
    >>> image = np.zeros((2, 3), dtype=np.uint8)
    >>> image[:, 2] = 255
    >>> right, down = contrast_weights(image)
    >>> right.round(3)
    array([[1.   , 0.174],
           [1.   , 0.174]])
    """
    pixels = _channels_last_float64("image", image, 2, "(H, W) or (H, W, C)")
    check_choice("connectivity", connectivity, (4, 8))
    n_dirs = 2 if connectivity == 4 else 4
    squared = []
    for direction in range(n_dirs):
        first, second = _edge_pairs(pixels, direction)
        squared.append(((first - second) ** 2).sum(axis=-1))
    beta = _contrast_beta(squared, beta)
    return tuple(
        np.exp(-beta * s) / math.hypot(*EDGE_OFFSETS[d]) for d, s in enumerate(squared)
    )


def _channels_last_float64(name: str, array: Any, spatial: int, forms: str) -> np.ndarray:
    """A finite real ``(*S[, C])`` array as float64 ``(*S, C)``, ``S`` of ``spatial`` axes."""
    check_array(name, array, allow_tensor=False)
    check_ndim(name, array, (spatial, spatial + 1), forms)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
            or array.dtype == np.bool_):
        raise TypeError(f"{name} must have a real dtype, got {array.dtype}")
    check_finite(name, array)
    values = np.asarray(array, dtype=np.float64)
    return values[..., None] if values.ndim == spatial else values


def _contrast_beta(squared: Sequence[np.ndarray], beta: float | None) -> float:
    """``beta`` checked, or ``1 / (2 * mean squared difference)`` over every edge when None."""
    if beta is not None:
        return check_number("beta", beta, low=0.0)
    count = sum(sq.size for sq in squared)
    mean = sum(float(sq.sum()) for sq in squared) / count if count else 0.0
    return 0.5 / mean if mean > 0.0 else 0.0


def _check_spacing(spacing: Any) -> tuple[float, float, float]:
    """``(sz, sy, sx)``: three finite positive voxel sizes (default 1)."""
    if spacing is None:
        return (1.0, 1.0, 1.0)
    if isinstance(spacing, (str, bytes)) or not hasattr(spacing, "__len__") or len(spacing) != 3:
        raise ValueError(f"spacing must be 3 voxel sizes (sz, sy, sx), got {spacing!r}")
    return tuple(check_number(f"spacing[{i}]", v, low=0.0, low_inclusive=False)
                 for i, v in enumerate(spacing))  # type: ignore[return-value]


def volume_edge_shapes(depth: int, height: int, width: int, connectivity: int
                       ) -> list[tuple[int, int, int]]:
    """Shapes of the weight arrays of a ``(D, H, W)`` volume, one per direction."""
    return [(depth - abs(dz), height - abs(dy), width - abs(dx))
            for dz, dy, dx in VOLUME_EDGE_OFFSETS[:VOLUME_CONNECTIVITIES[connectivity]]]


def _distances(connectivity: int, spacing: tuple[float, float, float]) -> list[float]:
    sz, sy, sx = spacing
    return [math.sqrt((dz * sz) ** 2 + (dy * sy) ** 2 + (dx * sx) ** 2)
            for dz, dy, dx in VOLUME_EDGE_OFFSETS[:VOLUME_CONNECTIVITIES[connectivity]]]


def default_volume_edge_weights(depth: int, height: int, width: int, connectivity: int = 6,
                                spacing: Any = None) -> tuple[np.ndarray, ...]:
    """``1 / distance`` for every edge of a ``(D, H, W)`` voxel grid.

    Parameters
    ----------
    depth, height, width : int
        Volume size, each at least 1.
    connectivity : {6, 18, 26}
    spacing : (sz, sy, sx) sequence of float, optional
        Voxel size along each axis, in physical units; default 1.

    Returns
    -------
    tuple of ndarray of float64
        One array per direction of :data:`VOLUME_EDGE_OFFSETS` (3, 9 or 13),
        of shape ``(D - |dz|, H - |dy|, W - |dx|)``.

    Examples
    --------
    >>> from crfseg.crf.pairwise import default_volume_edge_weights
    >>> [(w.shape, float(w.max())) for w in default_volume_edge_weights(2, 3, 4,
    ...                                                                spacing=(2.0, 1, 1))]
    [((2, 3, 3), 1.0), ((2, 2, 4), 1.0), ((1, 3, 4), 0.5)]
    """
    sizes = [check_int(n, v, low=1) for n, v in
             (("depth", depth), ("height", height), ("width", width))]
    check_choice("connectivity", connectivity, tuple(VOLUME_CONNECTIVITIES))
    spacing = _check_spacing(spacing)
    return tuple(np.full(shape, 1.0 / dist) for shape, dist in
                 zip(volume_edge_shapes(*sizes, connectivity), _distances(connectivity, spacing),
                     strict=True))


def volume_edge_pairs(array: np.ndarray, direction: int) -> tuple[np.ndarray, np.ndarray]:
    """Values at the first and second voxel of every edge of one direction ``(D, H, W, ...)``."""
    first, second = [], []
    for step in VOLUME_EDGE_OFFSETS[direction]:
        size = array.shape[len(first)]
        low = slice(0, size - abs(step))
        high = slice(abs(step), size)
        # a negative step starts from the higher voxel of the pair
        first.append(low if step >= 0 else high)
        second.append(high if step >= 0 else low)
    return array[tuple(first)], array[tuple(second)]


def volume_contrast_weights(volume: np.ndarray, beta: float | None = None,
                            connectivity: int = 6, spacing: Any = None
                            ) -> tuple[np.ndarray, ...]:
    """Edge weights ``exp(-beta * ||I_p - I_q||^2) / dist(p, q)`` of a volume.

    The volume counterpart of :func:`contrast_weights` (Boykov & Jolly's
    boundary term, which they define on N-D grids), with distances in
    physical units.

    Parameters
    ----------
    volume : (D, H, W) or (D, H, W, C) ndarray
        Intensities (``C`` channels, e.g. several MR sequences), any real
        dtype; differences are taken in float64.
    beta : float, optional
        Contrast sensitivity, ``>= 0``.  By default ``1 / (2 * mean
        ||I_p - I_q||^2)`` over all edges of the chosen connectivity (0 for a
        constant volume, which gives weights ``1 / dist``).
    connectivity : {6, 18, 26}
    spacing : (sz, sy, sx) sequence of float, optional
        Voxel size along each axis (e.g. NIfTI's ``pixdim`` in the ``(D, H, W)``
        order); default 1.

    Returns
    -------
    tuple of ndarray of float64
        One array per direction of :data:`VOLUME_EDGE_OFFSETS`, ready for
        ``GridCRF(..., connectivity=connectivity, edge_weights=...)``.

    References
    ----------
    .. [1] Y. Boykov and M.-P. Jolly, "Interactive Graph Cuts for Optimal
       Boundary & Region Segmentation of Objects in N-D Images", ICCV 2001.

    Examples
    --------
    >>> import numpy as np
    >>> from crfseg.crf import volume_contrast_weights
    >>> volume = np.zeros((2, 2, 3))
    >>> volume[:, :, 2] = 100.0
    >>> x, y, z = volume_contrast_weights(volume, beta=1e-4, spacing=(3.0, 1.0, 1.0))
    >>> x[0].round(3), float(z.max()).__round__(3)
    (array([[1.   , 0.368],
           [1.   , 0.368]]), 0.333)
    """
    voxels = _channels_last_float64("volume", volume, 3, "(D, H, W) or (D, H, W, C)")
    check_choice("connectivity", connectivity, tuple(VOLUME_CONNECTIVITIES))
    spacing = _check_spacing(spacing)
    if beta is not None:
        beta = check_number("beta", beta, low=0.0)
    squared = []
    for direction in range(VOLUME_CONNECTIVITIES[connectivity]):
        first, second = volume_edge_pairs(voxels, direction)
        squared.append(((first - second) ** 2).sum(axis=-1))
    beta = _contrast_beta(squared, beta)
    return tuple(np.exp(-beta * sq) / dist
                 for sq, dist in zip(squared, _distances(connectivity, spacing), strict=True))
