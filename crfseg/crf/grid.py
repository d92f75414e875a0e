"""Pairwise grid CRFs: exact binary cuts, alpha-expansion, alpha-beta swap, TRW-S and ICM.

:class:`GridCRF` minimises

    E(x) = sum_p U[x_p, p] + sum_(p,q) w_pq * V[x_p, x_q]

over the labellings ``x`` of an ``(H, W)`` pixel grid, each undirected edge of
the 4- or 8-neighbourhood counted once, or of a ``(D, H, W)`` voxel grid with
its 6-, 18- or 26-neighbourhood (see :mod:`crfseg.crf.pairwise` for the edge
layout).  The computation is in the compiled kernel ``crfseg._grid``: our
own Boykov-Kolmogorov max-flow for the graph-cut methods and sequential
tree-reweighted message passing with O(L) distance-transform messages.
Energies are accumulated in float64; float32 and float64 unaries are used as
they are, never scaled to integers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crfseg import _grid
from crfseg._validation import (
    check_array,
    check_choice,
    check_finite,
    check_floating_dtype,
    check_int,
    check_integer_dtype,
    check_memory,
    check_ndim,
    check_number,
    shape_of,
)
from crfseg.crf.pairwise import (
    VOLUME_CONNECTIVITIES,
    VOLUME_EDGE_OFFSETS,
    Pairwise,
    _edge_shapes,
    as_pairwise,
    default_edge_weights,
    default_volume_edge_weights,
    expansion_violation,
    swap_violation,
    volume_edge_shapes,
)

__all__ = ["GridCRF", "GridCRFResult", "maxflow", "METHODS"]

#: Names accepted by :meth:`GridCRF.minimize`.
METHODS: tuple[str, ...] = ("auto", "graphcut", "expansion", "swap", "trws", "icm")

_DEFAULT_MAX_ITER = {"graphcut": 1, "expansion": 20, "swap": 20, "icm": 50, "trws": 200}
_KIND_CODES = {"general": 0, "potts": 1, "truncated_linear": 2, "truncated_quadratic": 3}
_EDGE_NAMES = ("right", "down", "diagonal", "anti-diagonal")
_CONNECTIVITIES = (4, 8, *VOLUME_CONNECTIVITIES)
_INT32_MAX = 2**31 - 1
_FLOAT32_SAFE = 1e30  # messages are bounded by edge weight x the range of V
# energies, and every partial sum the kernels form, stay below this: far from float64's
# overflow, so no method can return inf for finite inputs
_ENERGY_LIMIT = 1e300


@dataclass(frozen=True)
class GridCRFResult:
    """What :meth:`GridCRF.minimize` found.

    Attributes
    ----------
    labels : (H, W) or (D, H, W) ndarray of int32
        The labelling.
    energy : float
        Its energy, computed in float64.
    lower_bound : float or None
        A lower bound on the minimum energy: TRW-S's bound for ``"trws"``, the
        energy itself for ``"graphcut"`` (exact), otherwise None.
    n_iter : int
        Cycles over the labels (expansion), label pairs (swap), raster sweeps
        (ICM) or forward-backward passes (TRW-S); 1 for graphcut.
    converged : bool
        True when the stopping rule was met before ``max_iter``.
    method : str
        The method that ran (``"auto"`` resolved to a concrete one).
    energy_history : ndarray of float64
        Move-making and ICM: the energy at the start and after each iteration,
        shape ``(n_iter + 1,)``.  TRW-S: the best energy after each iteration,
        shape ``(n_iter,)``.  Graphcut: ``(1,)``.
    bound_history : ndarray of float64 or None
        TRW-S: the best lower bound after each iteration, shape ``(n_iter,)``.
    """

    labels: np.ndarray
    energy: float
    lower_bound: float | None
    n_iter: int
    converged: bool
    method: str
    energy_history: np.ndarray
    bound_history: np.ndarray | None = None

    @property
    def gap(self) -> float | None:
        """``energy - lower_bound`` (None without a bound); 0 means optimal."""
        return None if self.lower_bound is None else self.energy - self.lower_bound

    @property
    def relative_gap(self) -> float | None:
        """:attr:`gap` divided by ``|energy|`` (0 when both are 0)."""
        gap = self.gap
        if gap is None:
            return None
        return gap / abs(self.energy) if self.energy != 0 else (0.0 if gap == 0 else math.inf)


class GridCRF:
    """A pairwise CRF on a 4- or 8-connected pixel grid or a 6-, 18- or 26-connected volume.

    Parameters
    ----------
    pairwise : Pairwise or (L, L) array_like of float
        Label cost ``V[a, b]`` paid on an edge whose first pixel has label
        ``a`` (see :mod:`crfseg.crf.pairwise`).  Build it with
        :func:`~crfseg.crf.potts`, :func:`~crfseg.crf.truncated_linear` or
        :func:`~crfseg.crf.truncated_quadratic`, or pass any finite matrix
        (a matrix equal to one of those is recognised).
    connectivity : {4, 8, 6, 18, 26}, optional
        Neighbourhood: 4 or 8 for ``(L, H, W)`` images, 6, 18 or 26 for
        ``(L, D, H, W)`` volumes.  Default 4.
    edge_weights : sequence of ndarray, optional
        Non-negative per-edge multipliers ``w_pq``.  4-connectivity:
        ``(right, down)`` of shapes ``(H, W-1)`` and ``(H-1, W)``, where
        ``right[y, x]`` weights the edge (y, x)-(y, x+1) and ``down[y, x]`` the
        edge (y, x)-(y+1, x).  8-connectivity adds ``(diagonal,
        anti_diagonal)``, both ``(H-1, W-1)``: ``diagonal[y, x]`` weights
        (y, x)-(y+1, x+1) and ``anti_diagonal[y, x]`` weights (y, x+1)-(y+1, x).
        :func:`~crfseg.crf.contrast_weights` builds them from an image.
        Volumes: one array per direction of
        :data:`~crfseg.crf.pairwise.VOLUME_EDGE_OFFSETS` (3, 9 or 13), of
        shape ``(D - |dz|, H - |dy|, W - |dx|)``;
        :func:`~crfseg.crf.volume_contrast_weights` builds them from a volume
        with its voxel spacing.
        Default: 1 / distance in pixels (voxels): 1 for straight edges,
        1/sqrt(2) and 1/sqrt(3) for diagonal ones.

    Attributes
    ----------
    pairwise : Pairwise
    num_labels : int
    connectivity : int

    Notes
    -----
    Methods of :meth:`minimize`:

    ``"graphcut"``
        Exact minimum by one s-t minimum cut [1]_ [3]_; two labels and
        ``V[0,0] + V[1,1] <= V[0,1] + V[1,0]`` (submodular) only.
    ``"expansion"``
        Alpha-expansion [2]_; needs ``V[a,a] + V[b,c] <= V[a,c] + V[b,a]`` for all
        labels (true of metrics such as Potts and truncated linear).  Within a
        factor 2 of the optimum for Potts.
    ``"swap"``
        Alpha-beta swap [2]_; needs ``V[a,a] + V[b,b] <= V[a,b] + V[b,a]``.
    ``"trws"``
        Sequential tree-reweighted message passing [4]_ with the lower bound
        of its chain decomposition (rows, columns and, for 8-connectivity,
        both diagonals; in a volume, the lines along every edge direction).
        Messages of Potts and truncated linear / quadratic costs take O(L)
        time [5]_.  Any ``V``.
    ``"icm"``
        Iterated conditional modes [6]_ in raster order; any ``V``.
    ``"auto"``
        ``"graphcut"`` where it is exact, else ``"expansion"`` where it
        applies, else ``"trws"``.

    Graph cuts, expansion, swap and ICM never raise the energy from one
    iteration to the next (a move is kept only when it lowers the energy).

    References
    ----------
    .. [1] Y. Boykov and V. Kolmogorov, "An Experimental Comparison of
       Min-Cut/Max-Flow Algorithms for Energy Minimization in Vision",
       IEEE TPAMI 26(9), 2004.
    .. [2] Y. Boykov, O. Veksler and R. Zabih, "Fast Approximate Energy
       Minimization via Graph Cuts", IEEE TPAMI 23(11), 2001.
    .. [3] V. Kolmogorov and R. Zabih, "What Energy Functions Can Be Minimized
       via Graph Cuts?", IEEE TPAMI 26(2), 2004.
    .. [4] V. Kolmogorov, "Convergent Tree-Reweighted Message Passing for
       Energy Minimization", IEEE TPAMI 28(10), 2006.
    .. [5] P. F. Felzenszwalb and D. P. Huttenlocher, "Efficient Belief
       Propagation for Early Vision", IJCV 70(1), 2006.
    .. [6] J. Besag, "On the Statistical Analysis of Dirty Pictures",
       J. Royal Statistical Society B 48(3), 1986.

    Examples
    --------
    >>> import numpy as np
    >>> from crfseg.crf import GridCRF, potts
    >>> rng = np.random.default_rng(0)
    >>> truth = np.zeros((8, 8), dtype=int)
    >>> truth[:, 4:] = 1
    >>> unary = np.stack([truth, 1 - truth]).astype(np.float32)
    >>> unary += rng.normal(0.0, 0.6, unary.shape).astype(np.float32)
    >>> result = GridCRF(potts(2, 1.0)).minimize(unary)
    >>> result.method, bool((result.labels == truth).all()), result.gap
    ('graphcut', True, 0.0)
    """

    def __init__(
        self,
        pairwise: Pairwise | np.ndarray,
        *,
        connectivity: int = 4,
        edge_weights: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.pairwise = as_pairwise(pairwise)
        check_choice("connectivity", connectivity, _CONNECTIVITIES)
        self.connectivity = int(connectivity)
        self.volume = self.connectivity in VOLUME_CONNECTIVITIES
        if edge_weights is None:
            self._edge_weights = None
        elif self.volume:
            self._edge_weights = _check_volume_edge_weights(edge_weights, self.connectivity)
        else:
            self._edge_weights = _check_edge_weights(edge_weights, self.connectivity)
        matrix = self.pairwise.matrix
        self._expansion_violation = expansion_violation(matrix)
        self._swap_violation = swap_violation(matrix)

    @property
    def num_labels(self) -> int:
        """Number of labels L."""
        return self.pairwise.num_labels

    @property
    def grid_shape(self) -> tuple[int, ...] | None:
        """``(H, W)`` or ``(D, H, W)`` fixed by ``edge_weights``, or None when any size fits."""
        if self._edge_weights is None:
            return None
        if self.volume:
            along_x, along_y, along_z = self._edge_weights[:3]
            return along_z.shape[0] + 1, along_y.shape[1] + 1, along_x.shape[2] + 1
        right, down = self._edge_weights[:2]
        return down.shape[0] + 1, right.shape[1] + 1

    def _auto_method(self) -> str:
        if self.num_labels == 2 and self._swap_violation is None:
            return "graphcut"
        if self._expansion_violation is None:
            return "expansion"
        return "trws"

    def _check_method(self, method: str) -> str:
        check_choice("method", method, METHODS)
        if method == "auto":
            return self._auto_method()
        if method == "graphcut":
            if self.num_labels != 2:
                raise ValueError(
                    f"method 'graphcut' is exact for 2 labels only, got {self.num_labels} "
                    "labels; use 'expansion', 'swap' or 'trws'"
                )
            if self._swap_violation is not None:
                m = self.pairwise.matrix
                raise ValueError(
                    "method 'graphcut' needs a submodular pairwise cost "
                    "V[0,0] + V[1,1] <= V[0,1] + V[1,0], got "
                    f"{m[0, 0]:g} + {m[1, 1]:g} > {m[0, 1]:g} + {m[1, 0]:g}; use 'trws'"
                )
        if method == "expansion" and self._expansion_violation is not None:
            a, b, c = self._expansion_violation
            m = self.pairwise.matrix
            raise ValueError(
                "method 'expansion' needs V[a,a] + V[b,c] <= V[a,c] + V[b,a] for all labels "
                f"(a metric such as Potts or truncated linear), but (a, b, c) = ({a}, {b}, {c}) "
                f"gives {m[a, a]:g} + {m[b, c]:g} > {m[a, c]:g} + {m[b, a]:g}; "
                "use method 'swap' or 'trws'"
            )
        if method == "swap" and self._swap_violation is not None:
            a, b = self._swap_violation
            m = self.pairwise.matrix
            raise ValueError(
                "method 'swap' needs V[a,a] + V[b,b] <= V[a,b] + V[b,a] for all labels, "
                f"but (a, b) = ({a}, {b}) gives {m[a, a]:g} + {m[b, b]:g} > "
                f"{m[a, b]:g} + {m[b, a]:g}; use method 'trws'"
            )
        return method

    def _prepare(self, unary: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """Validate ``unary``; return it as (L, N), the (N, K) weights and (H, W) or (D, H, W)."""
        check_array("unary", unary, allow_tensor=False)
        check_floating_dtype("unary", unary)
        if unary.ndim != (4 if self.volume else 3):
            if unary.ndim in (3, 4):
                kind = "a volume (L, D, H, W)" if unary.ndim == 4 else "an image (L, H, W)"
                wanted = "6, 18 or 26" if unary.ndim == 4 else "4 or 8"
                raise ValueError(
                    f"unary of shape {shape_of(unary)} is {kind}, which needs connectivity "
                    f"{wanted}, but this GridCRF has connectivity={self.connectivity}")
            check_ndim("unary", unary, 4 if self.volume else 3,
                       "(L, D, H, W) with labels first" if self.volume
                       else "(L, H, W) with labels first")
        num_labels, *spatial = shape_of(unary)
        if num_labels != self.num_labels:
            raise ValueError(
                f"unary has {num_labels} labels (shape {shape_of(unary)}) but pairwise is "
                f"{self.pairwise.matrix.shape}; they must agree on L"
            )
        if min(spatial) < 1:
            axes = "D, H, W" if self.volume else "H, W"
            raise ValueError(f"unary must have {axes} >= 1, got shape {shape_of(unary)}")
        k = VOLUME_CONNECTIVITIES.get(self.connectivity, self.connectivity // 2)
        if math.prod(spatial) * k * 2 > _INT32_MAX:
            raise ValueError(f"unary of shape {shape_of(unary)} has too many pixels for the grid")
        expected = self.grid_shape
        if expected is not None and expected != tuple(spatial):
            axes = "(D, H, W)" if self.volume else "(H, W)"
            raise ValueError(
                f"edge_weights are for a {'x'.join(map(str, expected))} grid but unary has "
                f"shape {shape_of(unary)} {axes} = {tuple(spatial)}"
            )
        check_finite("unary", unary)
        # float32 stays float32 (the kernels sum it in float64); other floats become float64
        dtype = np.float32 if unary.dtype == np.float32 else np.float64
        label_major = np.ascontiguousarray(
            unary.reshape(num_labels, math.prod(spatial)), dtype=dtype
        )
        weights = self._weights(tuple(spatial))
        with np.errstate(over="ignore"):
            reach = (float(np.abs(label_major).max(axis=0).sum(dtype=np.float64))
                     + float(weights.sum()) * float(np.abs(self.pairwise.matrix).max()))
        if not reach <= _ENERGY_LIMIT:
            raise ValueError(
                f"unary and pairwise reach energies up to {reach:g}, beyond the "
                f"{_ENERGY_LIMIT:g} that float64 sums hold safely; rescale unary and the "
                "pairwise weight"
            )
        return label_major, weights, tuple(spatial)

    def _weights(self, spatial: tuple[int, ...]) -> np.ndarray:
        """Edge weights as the kernel wants them: (N, K), K per forward direction."""
        if self.volume:
            return self._volume_weights(*spatial)
        height, width = spatial
        arrays = self._edge_weights or default_edge_weights(height, width, self.connectivity)
        k = len(arrays)
        wt = np.zeros((height, width, k), dtype=np.float64)
        wt[:, : width - 1, 0] = arrays[0]
        wt[: height - 1, :, 1] = arrays[1]
        if k == 4:
            wt[: height - 1, : width - 1, 2] = arrays[2]
            # the anti-diagonal edge (y, x+1)-(y+1, x) leaves its first pixel at column x+1
            wt[: height - 1, 1:, 3] = arrays[3]
        return wt.reshape(height * width, k)

    def _volume_weights(self, depth: int, height: int, width: int) -> np.ndarray:
        """(N, K) weights of a volume: each direction's array at its edges' first voxels."""
        arrays = self._edge_weights or default_volume_edge_weights(depth, height, width,
                                                                   self.connectivity)
        wt = np.zeros((depth, height, width, len(arrays)), dtype=np.float64)
        for k, (array, offset) in enumerate(zip(arrays, VOLUME_EDGE_OFFSETS, strict=False)):
            # the array is indexed by the edge's lowest corner; a negative step starts higher
            first = tuple(slice(1, None) if step < 0 else slice(0, size - step)
                          for step, size in zip(offset, (depth, height, width), strict=True))
            wt[first + (k,)] = array
        return wt.reshape(depth * height * width, len(arrays))

    def _check_labels(self, name: str, labels: Any, spatial: tuple[int, ...]) -> np.ndarray:
        check_array(name, labels, allow_tensor=False)
        check_integer_dtype(name, labels)
        if shape_of(labels) != spatial:
            axes = "(D, H, W)" if len(spatial) == 3 else "(H, W)"
            raise ValueError(
                f"{name} must have shape {axes} = {spatial} to match unary, "
                f"got shape {shape_of(labels)}"
            )
        if labels.size:
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= self.num_labels:
                raise ValueError(
                    f"{name} must hold labels in [0, {self.num_labels - 1}], "
                    f"got values in [{low}, {high}]"
                )
        return np.ascontiguousarray(labels, dtype=np.intc).reshape(-1)

    def minimize(
        self,
        unary: np.ndarray,
        method: str = "auto",
        max_iter: int | None = None,
        init: np.ndarray | None = None,
        tol: float = 1e-5,
    ) -> GridCRFResult:
        """Find a low-energy labelling.

        Parameters
        ----------
        unary : (L, H, W) or (L, D, H, W) ndarray of float32 or float64
            ``U[l, y, x]``, the cost of label ``l`` at pixel (y, x) (or
            ``U[l, z, y, x]`` at a voxel), e.g. ``-log p``.  Finite.
        method : {"auto", "graphcut", "expansion", "swap", "trws", "icm"}
            See the class notes.
        max_iter : int, optional
            Most iterations, ``1 <= max_iter <= 2**31 - 2``; ignored by
            ``"graphcut"``.  Defaults: expansion and swap 20 cycles, ICM 50
            sweeps, TRW-S 200 passes.
        init : (H, W) or (D, H, W) ndarray of int, optional
            Starting labelling for expansion, swap and ICM (default: the
            per-pixel argmin of ``unary``); for TRW-S the labelling to beat.
            Ignored by ``"graphcut"``.
        tol : float, optional
            Stop when an iteration lowers the energy (move making, ICM) or
            raises the bound (TRW-S) by at most ``tol`` times its magnitude;
            TRW-S also stops once ``energy - lower_bound <= tol * |energy|``.
            Default 1e-5.

        Returns
        -------
        GridCRFResult

        Raises
        ------
        ValueError
            Shapes that disagree, NaN or inf, labels of ``init`` out of range,
            energies beyond 1e300 (sum over pixels of the largest ``|U|`` plus
            the edge weights times the largest ``|V|``), or a method whose
            condition on ``V`` does not hold.
        TypeError
            Non-array inputs, or integer ``unary`` / float ``init``.
        """
        method = self._check_method(method)
        if max_iter is None:
            max_iter = _DEFAULT_MAX_ITER[method]
        max_iter = check_int("max_iter", max_iter, low=1, high=_INT32_MAX - 1)
        tol = check_number("tol", tol, low=0.0)
        unary_ln, wt, spatial = self._prepare(unary)
        depth, height, width = (1, *spatial) if len(spatial) == 2 else spatial
        if init is not None:
            labels = self._check_labels("init", init, spatial).copy()
        else:
            labels = np.ascontiguousarray(unary_ln.argmin(axis=0), dtype=np.intc)
        _check_work_space(method, unary_ln.shape[0], wt.shape, (unary_ln.shape[0], *spatial))
        matrix = np.ascontiguousarray(self.pairwise.matrix, dtype=np.float64)
        bound_history = None
        if method == "graphcut":
            labels, energy = _grid.graphcut(unary_ln, wt, matrix, height, width, depth)
            history = np.array([energy])
            lower_bound, n_iter, converged = energy, 1, True
        elif method in ("expansion", "swap", "icm"):
            if method == "icm":
                history, n_iter, converged = _grid.icm(
                    np.ascontiguousarray(unary_ln.T), wt, matrix, height, width, labels,
                    max_iter, tol, depth)
            else:
                history, n_iter, converged = _grid.move_making(
                    unary_ln, wt, matrix, height, width, labels, method == "swap", max_iter, tol,
                    depth)
            energy, lower_bound = float(history[-1]), None
        else:
            span = float(np.ptp(matrix)) * float(wt.max(initial=0.0))
            if span > _FLOAT32_SAFE:
                raise ValueError(
                    "method 'trws' keeps its messages in float32, which needs edge weight x "
                    f"(max V - min V) <= {_FLOAT32_SAFE:g}, got {span:g}; rescale the energy"
                )
            kind = self.pairwise.kind
            weight = 0.0 if kind == "general" else self.pairwise.weight
            # the cost's value where it stops growing (a zero cost has none to add)
            cap = weight * self.pairwise.truncation if weight > 0 else 0.0
            energy, lower_bound, history, bound_history, n_iter, converged = _grid.trws(
                np.ascontiguousarray(unary_ln.T), wt, matrix, np.ascontiguousarray(matrix.T),
                height, width,
                _KIND_CODES[kind], weight, cap, labels, init is not None, max_iter, tol, depth)
        return GridCRFResult(
            labels=np.asarray(labels, dtype=np.int32).reshape(spatial),
            energy=float(energy),
            lower_bound=None if lower_bound is None else float(lower_bound),
            n_iter=int(n_iter),
            converged=bool(converged),
            method=method,
            energy_history=np.asarray(history, dtype=np.float64).copy(),
            bound_history=None if bound_history is None else np.asarray(bound_history).copy(),
        )

    def energy(self, labels: np.ndarray, unary: np.ndarray) -> float:
        """Energy of a labelling, accumulated in float64.

        Parameters
        ----------
        labels : (H, W) or (D, H, W) ndarray of int
            Values in ``[0, L)``.
        unary : (L, H, W) or (L, D, H, W) ndarray of float32 or float64

        Returns
        -------
        float
            ``sum_p U[x_p, p] + sum_(p,q) w_pq * V[x_p, x_q]``.

        Examples
        --------
        >>> import numpy as np
        >>> from crfseg.crf import GridCRF, potts
        >>> unary = np.zeros((2, 1, 3))
        >>> GridCRF(potts(2, 1.5)).energy(np.array([[0, 1, 1]]), unary)
        1.5
        """
        unary_ln, wt, spatial = self._prepare(unary)
        depth, height, width = (1, *spatial) if len(spatial) == 2 else spatial
        flat = self._check_labels("labels", labels, spatial)
        matrix = np.ascontiguousarray(self.pairwise.matrix, dtype=np.float64)
        return float(_grid.energy(unary_ln, wt, matrix, height, width, flat, depth))


def _weight_arrays(edge_weights: Any, connectivity: int, labels: Sequence[str], which: str,
                   ndim: int, layout: str | None) -> list[np.ndarray]:
    """The checks every edge-weight array passes, in 2-D and 3-D; float64 copies."""
    expected = len(labels)
    if isinstance(edge_weights, np.ndarray) or not isinstance(edge_weights, Sequence):
        raise TypeError(
            f"edge_weights must be a sequence of {expected} arrays for connectivity="
            f"{connectivity}, got {type(edge_weights).__name__}"
        )
    if len(edge_weights) != expected:
        raise ValueError(
            f"edge_weights must hold {expected} arrays ({which}) "
            f"for connectivity={connectivity}, got {len(edge_weights)}"
        )
    arrays = []
    for label, weights in zip(labels, edge_weights, strict=True):
        check_array(label, weights, allow_tensor=False)
        if not (np.issubdtype(weights.dtype, np.floating)
                or np.issubdtype(weights.dtype, np.integer)):
            raise TypeError(f"{label} must hold real numbers, got dtype {weights.dtype}")
        check_ndim(label, weights, ndim, layout)
        check_finite(label, weights)
        if weights.size and weights.min() < 0:
            raise ValueError(f"{label} must be >= 0, got a minimum of {weights.min():g}")
        arrays.append(np.ascontiguousarray(weights, dtype=np.float64))
    return arrays


def _check_work_space(method: str, num_labels: int, weights_shape: tuple[int, int],
                      unary_shape: tuple[int, ...]) -> None:
    """Refuse a problem whose work space cannot fit in memory, before the kernel allocates it.

    TRW-S keeps a float32 message per label on both ends of every edge; the graph cuts
    keep two arcs per edge (head, sister, capacity) and a few arrays per pixel.
    """
    pixels, directions = weights_shape
    per_pixel = {
        "trws": 4 * 2 * directions * num_labels + 8 * num_labels + 64,
        "icm": 8 * num_labels + 16,
    }.get(method, 2 * directions * 16 + 48)
    check_memory("unary", unary_shape, pixels * per_pixel, f"the work space of method {method!r}")


def _check_edge_weights(edge_weights: Any, connectivity: int) -> tuple[np.ndarray, ...]:
    expected = 2 if connectivity == 4 else 4
    names = _EDGE_NAMES[:expected]
    arrays = _weight_arrays(edge_weights, connectivity, [f"edge_weights[{n}]" for n in names],
                            ", ".join(names), 2, None)
    height, width = arrays[1].shape[0] + 1, arrays[0].shape[1] + 1
    shapes = _edge_shapes(height, width, connectivity)
    actual = [a.shape for a in arrays]
    if actual != shapes:
        raise ValueError(
            f"edge_weights have shapes {actual}, which do not fit one grid; an (H, W) grid "
            f"needs {' '.join(_EDGE_NAMES[:expected])} of shapes (H, W-1), (H-1, W)"
            + (", (H-1, W-1), (H-1, W-1)" if expected == 4 else "")
            + f", here (H, W) = ({height}, {width}) gives {shapes}"
        )
    return tuple(arrays)


def _check_volume_edge_weights(edge_weights: Any, connectivity: int) -> tuple[np.ndarray, ...]:
    expected = VOLUME_CONNECTIVITIES[connectivity]
    labels = [f"edge_weights[{k}] (direction {offset})"
              for k, offset in enumerate(VOLUME_EDGE_OFFSETS[:expected])]
    arrays = _weight_arrays(
        edge_weights, connectivity, labels,
        f"one per direction (dz, dy, dx) of VOLUME_EDGE_OFFSETS[:{expected}]", 3,
        "a 3-D array (D - |dz|, H - |dy|, W - |dx|)")
    shape = (arrays[2].shape[0] + 1, arrays[1].shape[1] + 1, arrays[0].shape[2] + 1)
    shapes = volume_edge_shapes(*shape, connectivity)
    actual = [a.shape for a in arrays]
    if actual != shapes:
        raise ValueError(
            f"edge_weights have shapes {actual}, which do not fit one volume; a (D, H, W) "
            "volume needs, per direction (dz, dy, dx), an array of shape (D - |dz|, H - |dy|, "
            f"W - |dx|): here (D, H, W) = {shape} gives {shapes}"
        )
    return tuple(arrays)


def maxflow(
    edges: np.ndarray,
    capacities: np.ndarray,
    source_capacities: np.ndarray,
    sink_capacities: np.ndarray,
    reverse_capacities: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Maximum s-t flow and minimum cut of a general graph (Boykov-Kolmogorov).

    The solver behind ``"graphcut"``, ``"expansion"`` and ``"swap"``, for any
    graph; float capacities are used as they are.

    Parameters
    ----------
    edges : (E, 2) ndarray of int
        Node pairs ``(i, j)``, nodes numbered ``0 .. n-1``.
    capacities : (E,) ndarray of float
        Capacity of ``i -> j``, ``>= 0``.
    source_capacities, sink_capacities : (n,) ndarray of float
        Capacity from the source to each node and from each node to the sink,
        ``>= 0``; their length is the number of nodes ``n``.
    reverse_capacities : (E,) ndarray of float, optional
        Capacity of ``j -> i``, ``>= 0``.  Default 0 (directed edges).

    Returns
    -------
    flow : float
        The maximum flow, which equals the minimum cut's capacity.
    sink_side : (n,) ndarray of bool
        True for the nodes on the sink side of a minimum cut.

    References
    ----------
    .. [1] Y. Boykov and V. Kolmogorov, "An Experimental Comparison of
       Min-Cut/Max-Flow Algorithms for Energy Minimization in Vision",
       IEEE TPAMI 26(9), 2004.

    Examples
    --------
    >>> import numpy as np
    >>> from crfseg.crf import maxflow
    >>> flow, sink_side = maxflow(np.array([[0, 1]]), np.array([2.0]),
    ...                           np.array([3.0, 0.0]), np.array([0.0, 5.0]))
    >>> flow, sink_side.tolist()
    (2.0, [False, True])
    """
    source = _check_capacities("source_capacities", source_capacities, 1)
    n_nodes = source.shape[0]
    sink = _check_capacities("sink_capacities", sink_capacities, 1)
    if sink.shape != source.shape:
        raise ValueError(
            "source_capacities and sink_capacities must have the same shape (n,), "
            f"got {source.shape} and {sink.shape}"
        )
    check_array("edges", edges, allow_tensor=False)
    check_integer_dtype("edges", edges)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"edges must have shape (E, 2), got {shape_of(edges)}")
    if edges.size and (edges.min() < 0 or edges.max() >= n_nodes):
        raise ValueError(
            f"edges must hold node indices in [0, {n_nodes - 1}] (n = {n_nodes} from "
            f"source_capacities), got values in [{edges.min()}, {edges.max()}]"
        )
    n_edges = edges.shape[0]
    caps = _check_capacities("capacities", capacities, 1)
    rev = (np.zeros(n_edges) if reverse_capacities is None
           else _check_capacities("reverse_capacities", reverse_capacities, 1))
    for name, values in (("capacities", caps), ("reverse_capacities", rev)):
        if values.shape != (n_edges,):
            raise ValueError(
                f"{name} must have shape (E,) = ({n_edges},) to match edges, "
                f"got {values.shape}"
            )
    if n_nodes + 1 > _INT32_MAX or 2 * n_edges > _INT32_MAX:
        raise ValueError(f"the graph is too large: {n_nodes} nodes and {n_edges} edges")
    tails = np.ascontiguousarray(edges[:, 0], dtype=np.intc)
    heads = np.ascontiguousarray(edges[:, 1], dtype=np.intc)
    flow, side = _grid.maxflow(n_nodes, tails, heads, caps, rev, source, sink)
    return float(flow), side.astype(bool)


def _check_capacities(name: str, values: Any, ndim: int) -> np.ndarray:
    check_array(name, values, allow_tensor=False)
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers, got dtype {values.dtype}")
    check_ndim(name, values, ndim)
    check_finite(name, values)
    if values.size and values.min() < 0:
        raise ValueError(f"{name} must be >= 0, got a minimum of {values.min():g}")
    return np.ascontiguousarray(values, dtype=np.float64)
