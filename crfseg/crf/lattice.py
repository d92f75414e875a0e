"""The permutohedral lattice of Adams, Baek & Davis (2010) in vectorised PyTorch.

A Gaussian filter over ``P`` points in a ``d``-dimensional feature space
costs ``O(P * d)`` on the lattice instead of ``O(P**2)``: every point is
*splatted* onto the ``d + 1`` vertices of the lattice simplex that encloses
it, the vertex values are *blurred* with a ``[1/2, 1, 1/2]`` kernel along each
of the ``d + 1`` lattice axes, and the result is *sliced* back at the points
with the same barycentric weights.

The lattice is built once with tensor operations only (one sort of the vertex
keys, no Python loop over points or vertices) and reused for every filtering:
across mean-field iterations and in backward.  Splat, blur and slice are
sparse matrices (the slice the transpose of the splat, each blur step
symmetric), so the adjoint filter needed by autograd is the same computation
with the blur axes in reverse order.  A deterministic mode replaces the
sparse products by gathers and ordered segment sums (no atomics anywhere).
The embedding, the blur weights, the scale ``1 / (1 + 2**-d)`` and the
normalisations are those of Krähenbühl's ``densecrf`` (what ``pydensecrf``
runs), so the two agree to float rounding.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from crfseg._validation import (
    check_choice,
    check_finite,
    check_floating_dtype,
    check_int,
    check_ndim,
    is_tensor,
    shape_of,
)

try:
    from crfseg import _lattice
except ImportError:  # not compiled (e.g. a bare checkout): the tensor builder serves the CPU too
    _lattice = None

__all__ = [
    "ENGINES",
    "NORMALIZATIONS",
    "LatticePattern",
    "PermutohedralLattice",
    "available_memory",
    "blur",
    "compiled_engine_available",
    "compiled_filter_diagonal",
    "estimate_mean_field_memory",
    "images_per_group",
    "kernel_row_sums",
    "normalized_weights",
    "slice_at_points",
    "splat",
    "stack_patterns",
]

NORMALIZATIONS = ("none", "symmetric", "before", "after")

# densecrf adds this to the filtered ones before taking the (square) root.
_NORM_EPS = 1e-20
_MAX_CODE = 2**62
_INT32_LIMIT = 2**31


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor,
         size: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():
        # torch flags sparse CSR as beta; only its long-standing matrix product is used
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


@dataclass(frozen=True)
class _BlurGroup:
    """The vertices ``start:stop`` of one lattice and their blur neighbours."""

    start: int
    stop: int
    neighbours: torch.Tensor  # (d + 1, 2, stop - start), missing = stop - start


@dataclass(frozen=True)
class LatticePattern:
    """Which vertices each point touches: the sparsity of splat, blur and slice.

    ``offset[p, r]`` is the vertex of the ``r``-th corner of point ``p``'s
    simplex.  The splat entries, grouped by vertex (in a fixed order, so sums
    always run the same way), are the corners ``(splat_point, splat_corner)``
    and ``splat_crow`` holds the group boundaries: the CSR structure of the
    ``(M, P)`` splat matrix, whose transpose (the slice) has ``R`` entries
    per row; it is derived from ``offset`` when first needed.  Several
    lattices over the same points can share one pattern
    (:func:`stack_patterns`); ``corner_groups[k]`` is the range of corners of
    lattice ``k``.  A ``native`` pattern (int32 ``offset`` and neighbours,
    on the CPU) is filtered by the compiled kernels of ``crfseg._lattice``
    and never needs the CSR structure.
    """

    offset: torch.Tensor  # (P, R) int32 or int64
    num_vertices: int
    groups: tuple[_BlurGroup, ...]
    corner_groups: tuple[tuple[int, int], ...]
    deterministic: bool
    native: bool = False
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def num_points(self) -> int:
        return self.offset.shape[0]

    @property
    def corners(self) -> int:
        return self.offset.shape[1]

    def _cached(self, key: str, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def _splat_structure(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Splat entries grouped by vertex: ``(point, corner, crow)``, int64."""
        def build():
            flat = self.offset.reshape(-1).long()
            order = torch.sort(flat, stable=True)[1]
            counts = torch.bincount(flat, minlength=self.num_vertices)
            crow = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
            return order // self.corners, order % self.corners, crow
        return self._cached("splat structure", build)

    @property
    def splat_point(self) -> torch.Tensor:
        return self._splat_structure()[0]

    @property
    def splat_corner(self) -> torch.Tensor:
        return self._splat_structure()[1]

    @property
    def splat_crow(self) -> torch.Tensor:
        return self._splat_structure()[2]

    def splat_source(self) -> torch.Tensor:
        """Flat index into ``(P, R)`` weights of every splat entry."""
        return self._cached("source", lambda: self.splat_point * self.corners + self.splat_corner)

    def _indices(self) -> tuple[torch.Tensor, ...]:
        """CSR indices of splat and slice, int32 where they fit (MKL's native type)."""
        def build():
            nnz = self.offset.numel()
            itype = torch.int32 if nnz < 2**31 else torch.long
            return (self.splat_crow.to(itype), self.splat_point.to(itype),
                    torch.arange(0, nnz + 1, self.corners, device=self.offset.device,
                                 dtype=itype),
                    self.offset.reshape(-1).to(itype))
        return self._cached("indices", build)

    def matrix(self, kind: str, weights: torch.Tensor) -> torch.Tensor:
        """The ``(M, P)`` splat (``kind="splat"``) or ``(P, M)`` slice CSR matrix.

        Entry ``(offset[p, r], p)`` of the splat matrix and ``(p, offset[p, r])``
        of the slice matrix is ``weights[p, r]``.  Built once per weights tensor
        and reused (mean-field iterations and backward filter with the same
        weights again and again).
        """
        key = (kind, id(weights))
        hit = self._cache.get(key)
        if hit is not None and hit[0] is weights and hit[1] == weights._version:
            return hit[2]
        splat_crow, splat_col, slice_crow, slice_col = self._indices()
        flat = weights.detach().reshape(-1)
        if kind == "splat":
            mat = _csr(splat_crow, splat_col, flat[self.splat_source()],
                       (self.num_vertices, self.num_points))
        else:
            mat = _csr(slice_crow, slice_col, flat.contiguous(),
                       (self.num_points, self.num_vertices))
        stale = [k for k in self._cache if isinstance(k, tuple)]
        if len(stale) >= 8:
            for k in stale:
                del self._cache[k]
        self._cache[key] = (weights, weights._version, mat)
        return mat

    def blur_matrices(self, dtype: torch.dtype) -> list[torch.Tensor]:
        """One ``(M, M)`` CSR matrix per lattice axis: ``I + (N1 + N2) / 2``.

        ``N1`` and ``N2`` pick each vertex's two neighbours along the axis
        (absent neighbours count as zero).  Lattices with fewer axes get
        identity rows for the axes they lack.  Each matrix is symmetric, so
        the adjoint blur applies the same matrices in reverse order.
        """
        return self._cached(f"blur {dtype}", lambda: self._build_blur_matrices(dtype))

    def _build_blur_matrices(self, dtype: torch.dtype) -> list[torch.Tensor]:
        device = self.offset.device
        axes = max(g.neighbours.shape[0] for g in self.groups)
        itype = torch.int32 if 3 * self.num_vertices < 2**31 else torch.long
        weights = torch.tensor([1.0, 0.5, 0.5], dtype=dtype, device=device)
        matrices = []
        for axis in range(axes):
            cols, vals, counts = [], [], []
            for g in self.groups:
                size = g.stop - g.start
                own = torch.arange(size, device=device)
                if axis < g.neighbours.shape[0]:
                    candidates = torch.stack([own, g.neighbours[axis, 0], g.neighbours[axis, 1]], 1)
                    # sort each row's columns, absent neighbours (= size) last
                    candidates, order = candidates.sort(1)
                    present = candidates < size
                    cols.append(candidates[present] + g.start)
                    vals.append(weights.expand(size, 3).gather(1, order)[present])
                    counts.append(present.sum(1))
                else:
                    cols.append(own + g.start)
                    vals.append(weights[:1].expand(size))
                    counts.append(torch.ones_like(own))
            crow = torch.cat([torch.zeros(1, dtype=torch.long, device=device),
                              torch.cat(counts).cumsum(0)])
            matrices.append(_csr(crow.to(itype), torch.cat(cols).to(itype), torch.cat(vals),
                                 (self.num_vertices, self.num_vertices)))
        return matrices


def stack_patterns(patterns: Sequence[LatticePattern]) -> LatticePattern:
    """One pattern for several lattices over the same points.

    Vertices are numbered lattice after lattice, so one splat and one slice
    serve every kernel of a CRF at once; the blur stays per lattice.
    """
    if len(patterns) == 1:
        return patterns[0]
    offsets, groups, corner_groups = [], [], []
    vertex_base = corner_base = 0
    native = (all(p.native for p in patterns)
              and sum(p.num_vertices for p in patterns) < _INT32_LIMIT)
    for pat in patterns:
        offsets.append(pat.offset.to(torch.int32 if native else torch.long) + vertex_base)
        groups += [_BlurGroup(g.start + vertex_base, g.stop + vertex_base, g.neighbours)
                   for g in pat.groups]
        corner_groups += [(a + corner_base, b + corner_base) for a, b in pat.corner_groups]
        vertex_base += pat.num_vertices
        corner_base += pat.corners
    return LatticePattern(torch.cat(offsets, 1), vertex_base, tuple(groups), tuple(corner_groups),
                          any(p.deterministic for p in patterns), native)


def _spmm(matrix: torch.Tensor, dense: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """``matrix @ dense`` written into ``out`` (fresh when None); ``beta=0`` skips zeroing it."""
    if out is None:
        out = dense.new_empty((matrix.shape[0], dense.shape[1]))
    return torch.addmm(out, matrix, dense.contiguous(), beta=0.0, out=out)


# The compiled kernels split their work over torch's threads: on OpenMP's workers when
# built with it (torch's own runtime, so one pool serves both), else on a pool of Python
# threads.  Below this many rows per thread they run on one thread: handing work to
# another costs more than it saves (a Python thread more than an OpenMP one).
_OPENMP = _lattice is not None and _lattice.OPENMP
_ROWS_PER_THREAD = 4096 if _OPENMP else 16384
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _ranges(rows: int) -> list[tuple[int, int]]:
    """Split ``range(rows)`` into one contiguous range per torch thread worth using."""
    parts = max(1, min(torch.get_num_threads(), rows // _ROWS_PER_THREAD))
    bounds = [rows * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _pool(threads: int) -> ThreadPoolExecutor:
    # keyed by process too: a forked worker inherits the parent's executors without their threads
    key = (os.getpid(), threads)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="crfseg-lattice")
    return _POOLS[key]


def _run_each(calls: list[tuple]) -> list:
    """Run ``function(*args)`` for every ``(function, *args)``, in parallel; their results."""
    if len(calls) <= 1:
        return [call[0](*call[1:]) for call in calls]
    pool = _pool(len(calls))
    return [future.result() for future in [pool.submit(*call) for call in calls]]


def _run_ranges(kernel, ranges: list[tuple[int, int]], *args) -> None:
    """Call ``kernel(*args, start, stop, threads)`` over the ranges, in parallel.

    With OpenMP one call covers them all, ``threads`` parts on OpenMP's
    workers; otherwise one call per range on a thread of its own (the
    kernels release the GIL, so the threads run at once).
    """
    if _OPENMP or len(ranges) == 1:
        kernel(*args, ranges[0][0], ranges[-1][1], len(ranges))
        return
    pool = _pool(len(ranges))
    for future in [pool.submit(kernel, *args, a, b) for a, b in ranges]:
        future.result()


def _native(pattern: LatticePattern, *tensors: torch.Tensor) -> bool:
    """Whether the compiled CPU kernels can filter these tensors with this pattern."""
    dtype = tensors[0].dtype
    return pattern.native and dtype in (torch.float32, torch.float64) and all(
        t.device.type == "cpu" and t.dtype == dtype for t in tensors)


def _array(tensor: torch.Tensor):
    return tensor.detach().contiguous().numpy()


def _native_splat(values: torch.Tensor, weights: torch.Tensor, pattern: LatticePattern,
                  out: torch.Tensor | None, scale: torch.Tensor | None = None,
                  softmax: bool = False) -> torch.Tensor:
    shape = (pattern.num_vertices, values.shape[1])
    if out is None:
        out = values.new_empty(shape)
    ranges = _ranges(pattern.num_points)
    # each range splats into a buffer of its own, summed after: no write races
    spare = values.new_empty((len(ranges) - 1, *shape))
    args = (_array(values), _array(weights), _array(pattern.offset),
            _array(values.new_empty(0) if scale is None else scale))
    kernel = _lattice.splat_softmax if softmax else _lattice.splat
    if _OPENMP or len(ranges) == 1:
        kernel(*args, out.numpy(), spare.numpy(), 0, pattern.num_points, len(ranges))
        return out
    pool = _pool(len(ranges))
    alone = spare[:0].numpy()
    buffers = [out.numpy()] + list(spare.numpy())
    for future in [pool.submit(kernel, *args, buf, alone, a, b)
                   for buf, (a, b) in zip(buffers, ranges)]:
        future.result()
    for buf in buffers[1:]:
        _run_ranges(_lattice.add_rows, _ranges(pattern.num_vertices), buffers[0], buf)
    return out


def _native_slice(vertex_values: torch.Tensor, weights: torch.Tensor, pattern: LatticePattern,
                  out: torch.Tensor | None) -> torch.Tensor:
    if out is None:
        out = vertex_values.new_empty((pattern.num_points, vertex_values.shape[1]))
    _run_ranges(_lattice.slice_points, _ranges(pattern.num_points), _array(vertex_values),
                _array(weights), _array(pattern.offset), out.numpy())
    return out


def _compiled_compatibility(vertex_values: torch.Tensor, matrix: torch.Tensor,
                            diagonal: torch.Tensor | None) -> torch.Tensor:
    """``(M, C)`` vertex values times a ``(C, C)`` matrix (``diagonal``: its diagonal, when
    nothing else is nonzero, as for Potts models), by the kernels."""
    out = torch.empty_like(vertex_values)
    if diagonal is None:
        _run_ranges(_lattice.matmul_rows, _ranges(vertex_values.shape[0]),
                    _array(vertex_values), _array(matrix.to(vertex_values.dtype)), out.numpy())
    else:
        _run_ranges(_lattice.scale_columns, _ranges(vertex_values.shape[0]),
                    _array(vertex_values), _array(diagonal.to(vertex_values.dtype)), out.numpy())
    return out


def _native_blur(vertex_values: torch.Tensor, pattern: LatticePattern, reverse: bool
                 ) -> torch.Tensor:
    source = _array(vertex_values)
    out = torch.empty_like(vertex_values)
    scratch = torch.empty_like(vertex_values)
    for g in pattern.groups:
        axes = list(range(g.neighbours.shape[0]))
        if reverse:
            axes.reverse()
        # alternate between the buffers so that the last step writes into out
        targets = [out, scratch] if len(axes) % 2 else [scratch, out]
        current = source
        for step, axis in enumerate(axes):
            target = targets[step % 2].numpy()
            _run_ranges(_lattice.blur_axis, _ranges(g.stop - g.start), current, target,
                        g.neighbours[axis].numpy(), g.start)
            current = target
    return out


def _splat(values: torch.Tensor, weights: torch.Tensor, pattern: LatticePattern,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """``Y[m] = sum of weights[p, r] * values[p]`` over the corners at vertex ``m``."""
    if _native(pattern, values, weights):
        return _native_splat(values, weights, pattern, out)
    if pattern.deterministic:
        # Gather, then reduce each vertex's contiguous run in order: no atomics.
        gathered = values.index_select(0, pattern.splat_point)
        gathered *= weights.reshape(-1)[pattern.splat_source()].unsqueeze(1)
        return torch.segment_reduce(gathered, "sum", offsets=pattern.splat_crow, axis=0,
                                    unsafe=True)
    return _spmm(pattern.matrix("splat", weights), values, out)


def _slice(vertex_values: torch.Tensor, weights: torch.Tensor, pattern: LatticePattern,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """``out[p] = sum over r of weights[p, r] * vertex_values[offset[p, r]]``."""
    if _native(pattern, vertex_values, weights):
        return _native_slice(vertex_values, weights, pattern, out)
    if pattern.deterministic:
        out = vertex_values.index_select(0, pattern.offset[:, 0]) * weights[:, :1]
        for r in range(1, pattern.corners):
            out.addcmul_(vertex_values.index_select(0, pattern.offset[:, r]), weights[:, r:r + 1])
        return out
    return _spmm(pattern.matrix("slice", weights), vertex_values, out)


def _corner_products(points: torch.Tensor, vertex_values: torch.Tensor,
                     pattern: LatticePattern) -> torch.Tensor:
    """``g[p, r] = <points[p], vertex_values[offset[p, r]]>``: the gradient of a weight."""
    out = torch.empty(pattern.offset.shape, dtype=points.dtype, device=points.device)
    for r in range(pattern.corners):
        out[:, r] = (vertex_values.index_select(0, pattern.offset[:, r]) * points).sum(1)
    return out


def _blur(vertex_values: torch.Tensor, pattern: LatticePattern, reverse: bool) -> torch.Tensor:
    """Blur every lattice along its axes 0..d (``reverse``: d..0, the adjoint)."""
    if _native(pattern, vertex_values):
        return _native_blur(vertex_values, pattern, reverse)
    if pattern.deterministic:
        return _blur_by_gathers(vertex_values, pattern, reverse)
    matrices = pattern.blur_matrices(vertex_values.dtype)
    buffers = [torch.empty_like(vertex_values), torch.empty_like(vertex_values)]
    current = vertex_values
    for step, matrix in enumerate(reversed(matrices) if reverse else matrices):
        current = _spmm(matrix, current, buffers[step % 2])
    return current


def _blur_by_gathers(vertex_values: torch.Tensor, pattern: LatticePattern, reverse: bool
                     ) -> torch.Tensor:
    """:func:`_blur` with index gathers only: the same sums in a fixed order."""
    out = torch.empty_like(vertex_values)
    channels = vertex_values.shape[1]
    for g in pattern.groups:
        size = g.stop - g.start
        # one zero row past the end stands for every missing neighbour
        current = vertex_values.new_empty((size + 1, channels))
        current[:size] = vertex_values[g.start:g.stop]
        current[size] = 0
        following = torch.empty_like(current)
        following[size] = 0
        axes = range(g.neighbours.shape[0])
        for axis in (reversed(axes) if reverse else axes):
            n1, n2 = g.neighbours[axis]
            blurred = following[:size]
            torch.index_select(current, 0, n1, out=blurred)
            blurred.add_(current.index_select(0, n2)).mul_(0.5).add_(current[:size])
            current, following = following, current
        out[g.start:g.stop] = current[:size]
    return out


class _Transfer(torch.autograd.Function):
    """Splat or slice (``kind``) with autograd: the adjoint of each is the other."""

    @staticmethod
    def forward(ctx, values, weights, pattern, kind):
        ctx.pattern, ctx.kind = pattern, kind
        ctx.save_for_backward(values, weights)
        return _TRANSFERS[kind][0](values, weights, pattern)

    @staticmethod
    def backward(ctx, grad):
        values, weights = ctx.saved_tensors
        grad_values = grad_weights = None
        if ctx.needs_input_grad[0]:
            grad_values = _TRANSFERS[ctx.kind][1](grad, weights, ctx.pattern)
        if ctx.needs_input_grad[1]:
            points, vertices = (values, grad) if ctx.kind == "splat" else (grad, values)
            grad_weights = _corner_products(points, vertices, ctx.pattern)
        return grad_values, grad_weights, None, None


_TRANSFERS = {"splat": (_splat, _slice), "slice": (_slice, _splat)}


class _Blur(torch.autograd.Function):
    @staticmethod
    def forward(ctx, vertex_values, pattern):
        ctx.pattern = pattern
        return _blur(vertex_values, pattern, reverse=False)

    @staticmethod
    def backward(ctx, grad):
        return _blur(grad, ctx.pattern, reverse=True), None


def _tracked(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def splat(values: torch.Tensor, weights: torch.Tensor, pattern: LatticePattern,
          out: torch.Tensor | None = None) -> torch.Tensor:
    """Splat ``(P, C)`` values to ``(M, C)`` vertex values; differentiable.

    ``out`` is a buffer reused when no gradient is tracked.
    """
    if _tracked(values, weights):
        return _Transfer.apply(values, weights, pattern, "splat")
    return _splat(values, weights, pattern, out)


def blur(vertex_values: torch.Tensor, pattern: LatticePattern) -> torch.Tensor:
    """Blur ``(M, C)`` vertex values along every lattice axis; differentiable."""
    if _tracked(vertex_values):
        return _Blur.apply(vertex_values, pattern)
    return _blur(vertex_values, pattern, reverse=False)


def slice_at_points(vertex_values: torch.Tensor, weights: torch.Tensor,
                    pattern: LatticePattern, out: torch.Tensor | None = None) -> torch.Tensor:
    """Slice ``(M, C)`` vertex values back to ``(P, C)`` points; differentiable.

    ``out`` is a buffer reused when no gradient is tracked.
    """
    if _tracked(vertex_values, weights):
        return _Transfer.apply(vertex_values, weights, pattern, "slice")
    return _slice(vertex_values, weights, pattern, out)


def kernel_row_sums(pattern: LatticePattern, weights: torch.Tensor,
                    alphas: Sequence[float]) -> torch.Tensor:
    """``(P, K)``: each lattice's unnormalised filter of ones (densecrf's ``norm``).

    ``weights`` are the ``(P, R)`` barycentric weights of the stacked
    lattices and ``alphas`` their scales; differentiable in ``weights``.
    """
    if _tracked(weights) or pattern.deterministic or _native(pattern, weights):
        ones = weights.new_ones((pattern.num_points, 1))
        vertex_sums = splat(ones, weights, pattern)
    else:
        vertex_sums = weights.new_zeros((pattern.num_vertices, 1)).index_add_(
            0, pattern.offset.reshape(-1), weights.reshape(-1, 1))
    vertex_sums = blur(vertex_sums, pattern)
    # column k keeps lattice k's vertices, so one slice gives every lattice's sums
    membership = vertex_sums.new_zeros((pattern.num_vertices, len(pattern.groups)))
    for k, g in enumerate(pattern.groups):
        membership[g.start:g.stop, k] = 1.0
    sums = slice_at_points(vertex_sums * membership, weights, pattern)
    return sums * torch.tensor(alphas, dtype=sums.dtype, device=sums.device)


def compiled_engine_available() -> bool:
    """Whether the compiled CPU kernel ``crfseg._lattice`` is built (``engine="compiled"`` runs).

    Examples
    --------
    >>> isinstance(compiled_engine_available(), bool)
    True
    """
    return _lattice is not None


def compiled_filter_diagonal(pattern: LatticePattern, weights: torch.Tensor) -> torch.Tensor:
    """``(P,)`` float64: each point's weight with itself in the un-normalised blur, compiled.

    The diagonal of ``Sᵀ B S`` (splat, blur, slice; the lattice's ``alpha``
    not applied) of a one-lattice pattern that the compiled CPU engine built
    (``pattern.native``), with ``weights`` its ``(P, R)`` barycentric weights.

    Raises
    ------
    ValueError
        A pattern the compiled engine did not build, or of several lattices.

    Examples
    --------
    >>> lattice = PermutohedralLattice(torch.zeros(1, 2, 3, 4))
    >>> compiled_filter_diagonal(lattice.pattern, lattice.weights).shape
    torch.Size([12])
    """
    if not pattern.native or len(pattern.groups) != 1 or pattern.offset.shape[1] > 64:
        raise ValueError("compiled_filter_diagonal needs a one-lattice pattern built by the "
                         "compiled CPU engine with at most 63 feature dimensions")
    out = torch.zeros(pattern.offset.shape[0], dtype=torch.float64)
    _run_ranges(_lattice.diagonal, _ranges(pattern.num_points), _array(pattern.offset),
                _array(weights), _array(pattern.groups[0].neighbours), out.numpy())
    return out


def _compiled_normalization(pattern: LatticePattern, weights: torch.Tensor,
                            alphas: Sequence[float], normalization: str
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`normalized_weights` in one pass of the compiled kernel over the points."""
    vertex_sums = blur(splat(weights.new_ones((pattern.num_points, 1)), weights, pattern),
                       pattern)
    lattice_of_corner = np.empty(pattern.corners, dtype=np.int32)
    for k, (lo, hi) in enumerate(pattern.corner_groups):
        lattice_of_corner[lo:hi] = k
    splat_w, slice_w = torch.empty_like(weights), torch.empty_like(weights)
    mode = {"symmetric": 1, "before": 2, "after": 3}[normalization]
    _run_ranges(_lattice.normalize, _ranges(pattern.num_points), _array(vertex_sums),
                _array(weights), _array(pattern.offset), lattice_of_corner,
                np.asarray(alphas, dtype=np.float64), mode, splat_w.numpy(), slice_w.numpy(),
                True)
    return splat_w, slice_w


def _compiled_point_scales(lattice: PermutohedralLattice, dtype: torch.dtype,
                           normalization: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One compiled lattice's normalisation as per-point factors: ``(splat, slice)``.

    densecrf's normalisations scale each point's splat and slice weights by
    one factor per point (``1 / sqrt(K 1)`` on both sides for ``symmetric``,
    ``1 / K 1`` on one side for ``before`` and ``after``; None stands for
    ones), so ``(P,)`` factors replace normalised ``(P, d+1)`` weights.
    Cached on the lattice, for the next refine of an image of the same size.
    """
    key = ("point scales", normalization, dtype)
    if key not in lattice._weights_cache:
        scale = None
        if normalization != "none":
            weights, pattern = lattice.weights.to(dtype), lattice.pattern
            vertex_sums = blur(splat(weights.new_ones((pattern.num_points, 1)), weights,
                                     pattern), pattern)
            scale = weights.new_empty(pattern.num_points)
            _run_ranges(_lattice.point_scales, _ranges(pattern.num_points),
                        _array(vertex_sums), _array(weights), _array(pattern.offset),
                        float(lattice.alpha), normalization == "symmetric", scale.numpy())
        lattice._weights_cache[key] = {
            "none": (None, None), "symmetric": (scale, scale), "before": (scale, None),
            "after": (None, scale)}[normalization]
    return lattice._weights_cache[key]


# torch's softmax over a short class axis spends most of its time per row; up to this many
# classes the kernel's plain loop is faster (2 classes: 3x), beyond it torch's vectorised one.
_KERNEL_SOFTMAX_MAX_CLASSES = 12


def _compiled_softmax(scores: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = softmax(scores, 1)`` for ``(P, C)`` CPU scores, whichever way is faster for ``C``."""
    if scores.shape[1] > _KERNEL_SOFTMAX_MAX_CLASSES:
        return torch.ops.aten._softmax.out(scores, 1, False, out=out)
    _run_ranges(_lattice.softmax_rows, _ranges(scores.shape[0]), _array(scores), out.numpy())
    return out


def _compiled_slice_subtract(messages: torch.Tensor, weights: torch.Tensor,
                             pattern: LatticePattern, scale: torch.Tensor | None,
                             scores: torch.Tensor, out: torch.Tensor, first: bool) -> torch.Tensor:
    """``out = scores - scale * slice(messages)`` (``first``), or ``out -= ...``."""
    _run_ranges(_lattice.slice_subtract, _ranges(pattern.num_points), _array(messages),
                _array(weights), _array(pattern.offset),
                _array(scores.new_empty(0) if scale is None else scale), _array(scores),
                out.numpy(), bool(first))
    return out


def normalized_weights(pattern: LatticePattern, weights: torch.Tensor, alphas: Sequence[float],
                       normalization: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Splat and slice weights ``(P, R)`` with each lattice's scale and normalisation.

    ``symmetric`` filters ``n * K(n * x)`` with ``n = 1 / sqrt(K 1)``,
    ``before`` filters ``K(x / K 1)``, ``after`` filters ``K(x) / K 1`` and
    ``none`` applies the lattice kernel ``K`` as it is, exactly as densecrf's
    ``NORMALIZE_SYMMETRIC``, ``NORMALIZE_BEFORE``, ``NORMALIZE_AFTER`` and
    ``NO_NORMALIZATION`` do.
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    widths = [hi - lo for lo, hi in pattern.corner_groups]
    column_alpha = torch.tensor([a for a, n in zip(alphas, widths) for _ in range(n)],
                                dtype=weights.dtype, device=weights.device)
    if normalization == "none":
        return weights, weights * column_alpha
    if _native(pattern, weights) and not _tracked(weights) and len(alphas) <= _COMPILED_MAX_DIM:
        return _compiled_normalization(pattern, weights, alphas, normalization)
    sums = kernel_row_sums(pattern, weights, alphas) + _NORM_EPS
    # each lattice's corners are scaled by that lattice's row sums
    norm = torch.cat([sums[:, k:k + 1].expand(-1, n) for k, n in enumerate(widths)], 1)
    if normalization == "symmetric":
        scaled = weights * norm.rsqrt_()
        return scaled, scaled * column_alpha
    if normalization == "before":
        return weights / norm, weights * column_alpha
    return weights, weights * column_alpha / norm


def _elevate(points: torch.Tensor) -> torch.Tensor:
    """Embed ``(d, P)`` points in the hyperplane ``sum = 0`` of R^(d+1): ``(d+1, P)``.

    Scaled so that the lattice blur approximates a unit-variance Gaussian
    (Adams et al., p. 5-6).
    """
    d = points.shape[0]
    i = torch.arange(d, device=points.device, dtype=points.dtype)
    scaled = points * (math.sqrt(2.0 / 3.0) * (d + 1) / torch.sqrt((i + 1) * (i + 2)))[:, None]
    rows = [scaled[0]] * (d + 1)
    tail = torch.zeros_like(scaled[0])
    for j in range(d, 0, -1):
        rows[j] = tail - j * scaled[j - 1]
        tail = tail + scaled[j - 1]
    rows[0] = tail
    return torch.stack(rows)


def _enclosing_simplex(elevated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Remainder-0 vertex ``k * (d+1)`` and rank of each coordinate (Adams et al., p. 10)."""
    dp1 = elevated.shape[0]
    d = dp1 - 1
    k = torch.round(elevated / dp1)
    diff = elevated - k * dp1
    # rank[i] = #{j: diff_j > diff_i} + #{j < i: diff_j == diff_i}, a permutation of 0..d
    # counted as floats (exact for these small integers): no dtype conversions
    count = torch.zeros_like(diff)
    for i in range(d):
        for j in range(i + 1, dp1):
            less = (diff[i] < diff[j]).to(diff.dtype)
            count[i] += less
            count[j] -= less
    # the j-side counted -1 where it should have counted +1 for each pair it lost
    count += torch.arange(dp1, device=diff.device, dtype=diff.dtype)[:, None]
    k = k.long()
    rank = count.long() + k.sum(0)
    shift = (rank < 0).long() - (rank > d).long()
    rank += dp1 * shift
    k += shift
    return k, rank


class _PermuteRows(torch.autograd.Function):
    """``x.gather(0, order)`` for a per-column permutation ``order``.

    Its gradient gathers with the inverse permutation instead of scattering
    with atomics, so it stays deterministic on CUDA.
    """

    @staticmethod
    def forward(ctx, x, order, inverse):
        ctx.save_for_backward(inverse)
        return x.gather(0, order)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return grad.gather(0, inverse), None, None


def _barycentric(elevated: torch.Tensor, k: torch.Tensor, rank: torch.Tensor,
                 by_rank: torch.Tensor) -> torch.Tensor:
    """``(d+1, P)`` weights of the simplex corners; differentiable in ``elevated``.

    ``by_rank[t]`` is the coordinate of rank ``d - t``.  Adams et al. add
    ``v_i = (elevated_i - k_i (d+1)) / (d+1)`` at slot ``d - rank_i`` and
    subtract it at the next slot; reading the ``v`` in rank order ``u`` turns
    that into differences of neighbours.
    """
    dp1 = elevated.shape[0]
    v = (elevated - (k * dp1).to(elevated.dtype)) / dp1
    u = _PermuteRows.apply(v, by_rank, dp1 - 1 - rank)
    return torch.cat([1.0 + u[:1] - u[dp1 - 1:], u[1:] - u[:-1]])


ENGINES = ("auto", "compiled", "tensor")
# The compiled builder's keys are int32 coordinates, with room for the blur's steps.
_KEY_LIMIT = 2.0**30
# Largest feature dimension the compiled builder's fixed-size key buffers hold.
_COMPILED_MAX_DIM = 62


def _embedding_extent(points: torch.Tensor) -> float:
    """An upper bound on ``|coordinate|`` of the elevated ``(d, P)`` points, in float64."""
    d = points.shape[0]
    low, high = torch.aminmax(points.detach(), dim=1)
    largest = torch.maximum(low.abs(), high.abs()).double().cpu()
    i = torch.arange(d, dtype=torch.float64)
    scaled = largest * (math.sqrt(2.0 / 3.0) * (d + 1) / torch.sqrt((i + 1) * (i + 2)))
    return float(scaled.sum() + d * scaled.max())


def _check_extent(points: torch.Tensor, engine: str, extent: float | None = None) -> None:
    """Refuse features whose lattice keys would overflow or lose their integer precision."""
    extent = _embedding_extent(points) if extent is None else extent
    if engine == "compiled":
        limit, why = _KEY_LIMIT, "the lattice's 32-bit integer keys"
    else:
        # the tensor builder rounds in the features' dtype: the rounding error must stay
        # far below one lattice step
        eps = torch.finfo(points.dtype).eps
        limit = min(0.25 / eps, 2.0**52)
        why = f"rounding to the lattice in {str(points.dtype).replace('torch.', '')}"
    if not extent < limit:
        raise ValueError(
            f"features span too wide a range for the permutohedral lattice: their embedding "
            f"reaches |coordinate| = {extent:.3g}, beyond the limit of {limit:.3g} set by "
            f"{why}; features must be positions and colours divided by their standard "
            f"deviations (is a standard deviation such as sxy or srgb near zero?)")


def _build_compiled(points: torch.Tensor, batch: torch.Tensor | None, deterministic: bool
                    ) -> tuple[torch.Tensor, LatticePattern]:
    """:func:`_build` by the hash-table kernel of ``crfseg._lattice`` (CPU, no gradients)."""
    d, num = points.shape
    dtype = points.dtype if points.dtype in (torch.float32, torch.float64) else torch.float32
    coords = points.detach().to(dtype).contiguous()
    weights = torch.empty((num, d + 1), dtype=dtype)
    offset = torch.empty((num, d + 1), dtype=torch.int32)
    ids = (np.empty(0, dtype=np.int64) if batch is None
           else batch.to(torch.int64).contiguous().numpy())
    ranges = _ranges(num)
    # one table per range of points, built in parallel, then merged into the first
    tables = [_lattice.VertexTable(d + (batch is not None), min(stop - start, 1 << 20))
              for start, stop in ranges]
    if _OPENMP:
        bounds = np.array([start for start, _ in ranges] + [num], dtype=np.int64)
        statuses = _lattice.build_tables(tables, coords.numpy(), ids, weights.numpy(),
                                         offset.numpy(), bounds)
    else:
        statuses = _run_each([(table.build, coords.numpy(), ids, weights.numpy(),
                               offset.numpy(), start, stop)
                              for table, (start, stop) in zip(tables, ranges)])
    remaps = []
    for other in tables[1:]:
        remaps.append(np.empty(other.size, dtype=np.int32))
        statuses.append(tables[0].merge(other, remaps[-1]))
    if any(statuses):
        raise MemoryError(f"the lattice of {num} points in {d} dimensions ran out of memory")
    for remap, (start, stop) in zip(remaps, ranges[1:]):
        _run_ranges(_lattice.renumber, _ranges(stop - start), offset.numpy()[start:stop], remap)
    table = tables[0]
    del tables
    size = int(table.size)
    neighbours = torch.empty((d + 1, 2, size), dtype=torch.int32)
    _run_ranges(table.find_neighbours, _ranges(size), d, neighbours.numpy())
    pattern = LatticePattern(offset, size, (_BlurGroup(0, size, neighbours),), ((0, d + 1),),
                             deterministic, native=True)
    return weights, pattern


def _build(points: torch.Tensor, batch: torch.Tensor | None, deterministic: bool,
           engine: str = "auto", extent: float | None = None
           ) -> tuple[torch.Tensor, LatticePattern]:
    """Barycentric weights ``(P, d+1)`` and the sparsity pattern of ``(d, P)`` points.

    ``engine="auto"`` builds with the compiled kernel on the CPU when no
    gradient flows to the points, and with tensor operations otherwise.
    """
    if engine == "auto":
        engine = ("compiled" if _lattice is not None and points.device.type == "cpu"
                  and not _tracked(points) and points.shape[0] <= _COMPILED_MAX_DIM
                  else "tensor")
    _check_extent(points, engine, extent)
    if engine == "compiled" and (points.shape[0] > _COMPILED_MAX_DIM
                                 or points.shape[1] * (points.shape[0] + 1) >= _INT32_LIMIT):
        engine = "tensor"  # beyond the compiled kernel's fixed key size or int32 indices
    if engine == "compiled":
        return _build_compiled(points, batch, deterministic)
    d, num = points.shape
    dp1 = d + 1
    device = points.device
    elevated = _elevate(points)
    with torch.no_grad():
        k, rank = _enclosing_simplex(elevated.detach())
        # by_rank[t] = the coordinate of rank d - t
        by_rank = torch.empty_like(rank).scatter_(
            0, d - rank, torch.arange(dp1, device=device)[:, None].expand(dp1, num).contiguous())
    weights = _barycentric(elevated, k, rank, by_rank).t().contiguous()
    with torch.no_grad():
        # Corner r has coordinates k*(d+1) + r - (d+1)*[rank > d - r], all congruent
        # to r; it is coded as r plus (d+1) times a mixed-radix number of the
        # quotients q = k - [rank > d - r], with a margin of 1 for the blur steps.
        k_lo, k_hi = k[:d].amin(1), k[:d].amax(1)
        span = (k_hi - k_lo + 4).tolist()
        batches = 1 if batch is None else int(batch.max()) + 1
        radix = [math.prod(span[:i]) for i in range(d)]
        space = dp1 * math.prod(span) * batches
        if space >= _MAX_CODE:
            raise ValueError(
                f"features span too wide a range for the lattice's 63-bit vertex keys "
                f"(lattice extent {span} along its {d} axes); the features must be "
                "positions divided by their standard deviations")
        base = torch.zeros(num, dtype=torch.long, device=device)
        for i in range(d):
            base += (k[i] - (int(k_lo[i]) - 2)) * radix[i]
        if batch is not None:
            base += math.prod(span) * batch
        # corner r lowers q by one for the r coordinates of highest rank
        lowering = torch.take(torch.tensor(radix + [0], device=device), by_rank[:d])
        codes = torch.empty((dp1, num), dtype=torch.long, device=device)
        codes[0] = base
        for r in range(1, dp1):
            torch.sub(codes[r - 1], lowering[r - 1], out=codes[r])
        codes *= dp1
        codes += torch.arange(dp1, device=device)[:, None]
        code_dtype = torch.int32 if space < 2**31 else torch.long
        # entries are corner-major: flat index r * P + p
        sorted_codes, order = torch.sort(codes.reshape(-1).to(code_dtype), stable=True)
        first = torch.ones_like(sorted_codes, dtype=torch.bool)
        first[1:] = sorted_codes[1:] != sorted_codes[:-1]
        vertex_of_sorted = torch.cumsum(first, 0) - 1
        offset = torch.empty_like(vertex_of_sorted).scatter_(0, order, vertex_of_sorted)
        starts = torch.nonzero(first).reshape(-1)
        crow = torch.cat([starts, starts.new_tensor([order.numel()])])
        splat_corner = (sorted_codes % dp1).long()
        splat_point = torch.sub(order, splat_corner, alpha=num)
        uniq = sorted_codes[starts].long()
        num_vertices = uniq.numel()
        rem = uniq % dp1
        total = int(sum(radix))
        targets = torch.empty((dp1, 2, num_vertices), dtype=torch.long, device=device)
        for axis in range(dp1):
            own = radix[axis] if axis < d else 0
            torch.add(uniq, torch.where(rem >= 1, -1 + dp1 * own, d + dp1 * (own - total)),
                      out=targets[axis, 0])
            torch.add(uniq, torch.where(rem <= d - 1, 1 - dp1 * own, -d + dp1 * (total - own)),
                      out=targets[axis, 1])
        # one search for all 2(d+1) neighbours, in the narrow key type when it fits
        keys = sorted_codes[starts]
        idx = torch.searchsorted(keys, targets.to(code_dtype)).clamp_(max=num_vertices - 1)
        neighbours = torch.where(uniq[idx] == targets, idx, num_vertices)
    pattern = LatticePattern(offset.view(dp1, num).t().contiguous(), num_vertices,
                             (_BlurGroup(0, num_vertices, neighbours),), ((0, dp1),),
                             deterministic)
    pattern._cache["splat structure"] = (splat_point, splat_corner, crow)
    return weights, pattern


class PermutohedralLattice:
    """A permutohedral lattice over fixed features, for fast Gaussian filtering.

    Filtering ``values`` with the lattice approximates the Gaussian filter
    ``out[i] = sum_j exp(-|f_i - f_j|**2 / 2) * values[j]`` (the point itself
    included) in ``O(P * d)`` per channel: the unnormalised lattice kernel is
    that Gaussian times a constant below 1 (about 0.85 for ``d = 2`` and 0.6
    for ``d = 5``, as in densecrf), which the normalisations divide out.  The
    lattice is built once from the features and reused by every call of
    :meth:`filter`.

    Parameters
    ----------
    features : (N, d, H, W) or (P, d) float Tensor
        Feature vectors already divided by their standard deviations
        (e.g. ``(x / sxy, y / sxy, r / srgb, g / srgb, b / srgb)``).  A batch
        of ``N`` images gives one lattice whose images never mix.  Gradients
        flow from :meth:`filter`'s output back to ``features`` (through the
        barycentric weights) when ``features`` requires them; the filter is
        piecewise smooth in the features (it jumps where a point changes
        simplex), and the gradient is that of the current piece.
    deterministic : bool, default False
        Use gather and ordered segment reductions instead of sparse matrix
        products: bitwise repeatable on CUDA, where sparse products may use
        float atomics.  CPU results are repeatable either way.
    engine : {"auto", "compiled", "tensor"}, default "auto"
        ``compiled``: build the lattice with the hash table of the compiled
        kernel ``crfseg._lattice`` and filter with its splat, blur and slice
        loops (CPU only, features without gradients, ``d <= 62`` and
        ``P * (d + 1) < 2**31``, else the tensor engine serves); ``tensor``:
        sort-based construction and sparse products in PyTorch, on any
        device and differentiable in the features; ``auto``: ``compiled``
        wherever it can run.  Both build the same lattice (vertex numbering
        aside) and filter alike to float rounding.

    Attributes
    ----------
    dim : int
        Feature dimension ``d``.
    num_points : int
        ``P`` (``N * H * W`` for image features).
    num_vertices : int
        Number of lattice vertices ``M`` touched by the points.
    alpha : float
        densecrf's scale ``1 / (1 + 2**-d)`` of the sliced values.

    Raises
    ------
    TypeError
        ``features`` is not a floating-point tensor.
    ValueError
        Wrong number of dimensions, no points, ``d < 1``, non-finite values, an
        unknown ``engine``, or a feature range too wide for the lattice's
        integer keys (``|embedded coordinate| < 2**30``; in float32 the tensor
        engine allows about ``2e6``).

    References
    ----------
    A. Adams, J. Baek and M. A. Davis, "Fast High-Dimensional Filtering Using
    the Permutohedral Lattice", Computer Graphics Forum 29(2), 2010.

    Examples
    --------
    >>> import torch
    >>> features = torch.rand(100, 3) * 4
    >>> lattice = PermutohedralLattice(features)
    >>> ones = torch.ones(100, 1)
    >>> smoothed = lattice.filter(torch.rand(100, 2), normalization="after")
    >>> smoothed.shape
    torch.Size([100, 2])
    >>> bool(torch.allclose(lattice.filter(ones, normalization="after"), ones))
    True
    """

    def __init__(self, features: torch.Tensor, *, deterministic: bool = False,
                 engine: str = "auto") -> None:
        if not is_tensor(features):
            raise TypeError(f"features must be a torch tensor, got {type(features).__name__}")
        check_choice("engine", engine, ENGINES)
        if engine == "compiled":
            if _lattice is None:
                raise ValueError("engine='compiled' needs the compiled kernel crfseg._lattice, "
                                 "which is not built; run `python setup.py build_ext --inplace` "
                                 "or use engine='tensor'")
            if features.device.type != "cpu" or _tracked(features):
                raise ValueError(
                    f"engine='compiled' builds on the CPU without gradients, got features on "
                    f"{features.device} (requires_grad={features.requires_grad}); use "
                    "engine='tensor' or 'auto'")
        check_ndim("features", features, (2, 4), "(N, d, H, W) or (P, d)")
        check_floating_dtype("features", features)
        if features.ndim == 4:
            n, d, h, w = features.shape
            self._image_shape: tuple[int, int, int] | None = (n, h, w)
            points = features.transpose(0, 1).reshape(d, n * h * w)
            batch = (torch.arange(n, device=features.device).repeat_interleave(h * w)
                     if n > 1 else None)
        else:
            self._image_shape = None
            points, batch = features.t(), None
        if points.shape[0] < 1 or points.shape[1] < 1:
            raise ValueError(
                f"features must hold at least one point of dimension d >= 1, got shape "
                f"{shape_of(features)}")
        # the range check's one pass (min and max) also finds NaN and infinity
        extent = _embedding_extent(points)
        if not math.isfinite(extent):
            check_finite("features", features)
        self.dim = int(points.shape[0])
        self.num_points = int(points.shape[1])
        self.alpha = 1.0 / (1.0 + 2.0 ** -self.dim)
        self.weights, self.pattern = _build(points.contiguous(), batch, bool(deterministic),
                                            engine, extent)
        self.num_vertices = self.pattern.num_vertices
        self.device = features.device
        self._weights_cache: dict[tuple[str, torch.dtype], tuple[torch.Tensor, ...]] = {}

    def __repr__(self) -> str:
        return (f"PermutohedralLattice(dim={self.dim}, num_points={self.num_points}, "
                f"num_vertices={self.num_vertices}, device={self.device})")

    def _points(self, values: torch.Tensor) -> torch.Tensor:
        if not is_tensor(values):
            raise TypeError(f"values must be a torch tensor, got {type(values).__name__}")
        check_floating_dtype("values", values)
        if self._image_shape is not None:
            n, h, w = self._image_shape
            if values.ndim != 4 or (values.shape[0], values.shape[2], values.shape[3]) != (n, h, w):
                raise ValueError(
                    f"values must be (N, C, H, W) = ({n}, C, {h}, {w}) like the lattice's "
                    f"features, got shape {shape_of(values)}")
            points = values.permute(0, 2, 3, 1).reshape(n * h * w, values.shape[1])
        else:
            if values.ndim != 2 or values.shape[0] != self.num_points:
                raise ValueError(
                    f"values must be (P, C) with P = {self.num_points} like the lattice's "
                    f"features, got shape {shape_of(values)}")
            points = values
        if values.device != self.device:
            raise ValueError(f"values are on {values.device} but the lattice is on {self.device}")
        return points

    def filter_weights(self, normalization: str, dtype: torch.dtype
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Splat and slice weights ``(P, d+1)`` with the normalisation folded in.

        See :func:`normalized_weights`; cached per normalisation and dtype
        unless the features require gradients.
        """
        weights = self.weights.to(dtype)
        if _tracked(weights):
            return normalized_weights(self.pattern, weights, [self.alpha], normalization)
        key = (normalization, dtype)
        if key not in self._weights_cache:
            self._weights_cache[key] = normalized_weights(self.pattern, weights, [self.alpha],
                                                          normalization)
        return self._weights_cache[key]

    def filter(self, values: torch.Tensor, normalization: str = "none") -> torch.Tensor:
        """Gaussian-filter ``values`` over the lattice: splat, blur, slice.

        Parameters
        ----------
        values : (N, C, H, W) or (P, C) float Tensor
            Values at the points, in the layout of the lattice's features and
            on the same device.
        normalization : {"none", "symmetric", "before", "after"}, default "none"
            ``none``: the kernel as it is; ``after``: divide the output by the
            filtered ones (a weighted mean, ones map to ones); ``before``:
            divide the input by them; ``symmetric``: divide both by their
            square root (the kernel stays symmetric, densecrf's default).

        Returns
        -------
        filtered : Tensor, the shape and dtype of ``values``
            Differentiable in ``values`` (the adjoint filter runs in backward)
            and in the lattice's features.
        """
        check_choice("normalization", normalization, NORMALIZATIONS)
        points = self._points(values)
        splat_w, slice_w = self.filter_weights(normalization, values.dtype)
        vertex_values = blur(splat(points, splat_w, self.pattern), self.pattern)
        out = slice_at_points(vertex_values, slice_w, self.pattern)
        if self._image_shape is None:
            return out
        n, h, w = self._image_shape
        return out.reshape(n, h, w, -1).permute(0, 3, 1, 2)


MEMORY_LIMIT_ENV = "CRFSEG_MEMORY_LIMIT"
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def _format_bytes(size: float) -> str:
    if size >= 2**28:
        return f"{size / 2**30:.2f} GiB"
    return f"{size / 2**20:.0f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def available_memory(device: str | torch.device = "cpu") -> int:
    """Bytes a refine may use on ``device``: free RAM on the CPU, free memory on CUDA.

    The CPU figure is ``MemAvailable`` of ``/proc/meminfo`` (else the free
    physical pages), the CUDA figure ``torch.cuda.mem_get_info``.  The
    environment variable ``CRFSEG_MEMORY_LIMIT`` (bytes, or with a ``k``,
    ``M``, ``G`` or ``T`` suffix: ``"4G"``) caps both, e.g. to leave room for
    other processes.

    Parameters
    ----------
    device : str or torch.device, default "cpu"
        The device that would compute.

    Returns
    -------
    free : int
        Bytes.

    Raises
    ------
    ValueError
        ``CRFSEG_MEMORY_LIMIT`` is not a size.

    Examples
    --------
    >>> available_memory("cpu") > 0
    True
    """
    device = torch.device(device)
    if device.type == "cuda":
        free = int(torch.cuda.mem_get_info(device)[0])
    else:
        free = _free_ram()
    limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if limit:
        number, unit = limit.rstrip("kKmMgGtTbB"), limit[len(limit.rstrip("kKmMgGtTbB")):]
        unit = unit.lower().rstrip("b")
        try:
            cap = float(number) * _UNITS[unit]
        except (KeyError, ValueError):
            raise ValueError(f"{MEMORY_LIMIT_ENV} must be a size in bytes such as 4000000000 or "
                             f"'4G', got {limit!r}") from None
        free = min(free, int(cap))
    return free


def _free_ram() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**62  # unknown: do not refuse


def estimate_mean_field_memory(num_images: int, num_classes: int, pixels: int, *,
                               feature_dims: Sequence[int] = (2, 5),
                               dtype: torch.dtype = torch.float32,
                               device: str | torch.device = "cpu") -> int:
    """Peak bytes of a torch-backend refine (``DenseCRF`` or :func:`mean_field`) beyond its input.

    Counts what a refine allocates: the scores in the engine's layout and the
    marginals, every kernel's features, lattice (weights, vertex indices and
    blur neighbours, with one vertex per point, which real images stay
    below), the normalised weights of the stacked lattices and the vertex
    buffers; on CUDA (the tensor engine) also the sort temporaries of the
    largest lattice's construction and the sparse matrices.  The result is an
    upper estimate for sizing a batch: the images of a batch cost the sum of
    their estimates.

    Parameters
    ----------
    num_images : int
        ``N``, images (or volumes) refined at once.
    num_classes : int
        ``C``.
    pixels : int
        Pixels (voxels) per image: ``H * W`` or ``D * H * W``.
    feature_dims : sequence of int, default (2, 5)
        The feature dimension ``d`` of every kernel: DenseCRF's smoothness
        kernel has 2 (3 for volumes), its appearance kernel 2 + 3 colours.
    dtype : torch.dtype, default torch.float32
        The float type the refine computes in.
    device : str or torch.device, default "cpu"
        ``cpu`` (the compiled engine) or ``cuda`` (the tensor engine).

    Returns
    -------
    bytes : int

    Raises
    ------
    ValueError
        A count below 1 or an empty ``feature_dims``.

    Examples
    --------
    >>> size = estimate_mean_field_memory(1, 21, 480 * 360)
    >>> 50 * 2**20 < size < 1024 * 2**20
    True
    """
    for name, value in (("num_images", num_images), ("num_classes", num_classes),
                        ("pixels", pixels)):
        check_int(name, value, low=1)
    dims = [check_int("feature_dims", int(d), low=1) for d in feature_dims]
    if not dims:
        raise ValueError("feature_dims must name at least one kernel's dimension, got []")
    item = torch.empty((), dtype=dtype).element_size()
    points = num_images * pixels
    corners = sum(d + 1 for d in dims)
    lattices = sum(points * ((d + 1) * (4 + item) + (d + 1) * 2 * 4) for d in dims)
    stacked = points * corners * (4 + 3 * item)  # offsets, raw and normalised weights
    features = points * (sum(dims) + 3) * item
    scores = 5 * points * num_classes * item  # scores twice, unary, marginals, output
    vertex_buffers = 4 * points * len(dims) * num_classes * item
    total = lattices + stacked + features + scores + vertex_buffers
    if torch.device(device).type != "cpu":
        largest = max(dims) + 1
        total += points * largest * 8 * 6 + 2 * points * corners * (8 + item)
    return int(total)


def images_per_group(num_images: int, num_classes: int, pixels: int, *,
                     feature_dims: Sequence[int] = (2, 5), dtype: torch.dtype = torch.float32,
                     device: str | torch.device = "cpu", what: str = "image") -> int:
    """How many images to refine at once so that each group fits in free memory.

    All ``num_images`` when their estimate (:func:`estimate_mean_field_memory`)
    fits in :func:`available_memory`, else as many as fit; refuses when not
    even one image fits.

    Returns
    -------
    group : int
        Between 1 and ``num_images``.

    Raises
    ------
    ValueError
        One image alone needs more than the free memory: the message names the
        image size, the estimate, the free memory and the remedies.

    Examples
    --------
    >>> images_per_group(4, 21, 64 * 64)
    4
    """
    one = estimate_mean_field_memory(1, num_classes, pixels, feature_dims=feature_dims,
                                     dtype=dtype, device=device)
    free = available_memory(device)
    if one * num_images <= free:
        return num_images
    if one > free:
        raise ValueError(
            f"refining one {what} of {pixels} pixels with {num_classes} classes needs about "
            f"{_format_bytes(one)} but {torch.device(device)} has {_format_bytes(free)} free; "
            f"downscale the {what}, use fewer classes, free memory, or raise "
            f"{MEMORY_LIMIT_ENV} if it is set too low")
    return max(1, free // one)
