"""Pairwise grid-CRF energy minimisation on 2-D pixel grids and 3-D voxel grids.

No validation here: ``crfseg.crf.grid`` checks shapes, dtypes and the
conditions each method needs, then calls these kernels with

* ``unary``  float32 or float64 (read as it is, summed in float64),
  C-contiguous, either label-major (L, N), the layout of
  the public API and the faster one for graph cuts, or node-major (N, L), the
  faster one for message passing and ICM (``labels_first`` says which);
* ``wt``     (N, K) float64 edge weights, ``wt[p, k]`` for the edge from pixel
  ``p`` to its forward neighbour in direction ``k`` (0 when it has none);
* ``V``      (L, L) float64 pairwise cost, ``V[label of p, label of q]`` for
  an edge whose first pixel ``p`` comes earlier in raster order;
* labels     (N,) C ``int``.

Pixels are numbered in raster order, N = H * W.  Forward directions: k = 0
right (0, +1), 1 down (+1, 0), 2 down-right (+1, +1), 3 down-left (+1, -1).
K is 2 for 4-connectivity and 4 for 8.  Volumes (every kernel's ``D > 1``
or ``K`` of 3, 9 or 13) number voxels in raster order too, N = D * H * W,
with the forward directions ``(dz, dy, dx)`` of ``_VZ, _VY, _VX``: the 3 of
6-connectivity (x, y, z), then the 6 face diagonals of 18-connectivity, then
the 4 space diagonals of 26-connectivity; each leads from a voxel to one
later in raster order.  Every energy is accumulated in float64.
"""

cimport cython
from libc.math cimport INFINITY, fabs
from libc.string cimport memcpy

import numpy as np

include "_maxflow.pxi"

cdef enum:
    PAIR_GENERAL = 0
    PAIR_POTTS = 1
    PAIR_LINEAR = 2
    PAIR_QUADRATIC = 3

# below this curvature the parabola crossings of a truncated quadratic message
# lose their meaning (division by ~0), so such messages take the general path
cdef double _QUADRATIC_MIN_CURVATURE = 1e-150

cdef int[4] _DY = [0, 1, 1, 1]
cdef int[4] _DX = [1, 0, 1, -1]
cdef int[13] _VZ = [0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
cdef int[13] _VY = [0, 1, 0, 1, 1, 0, 0, 1, -1, 1, 1, -1, -1]
cdef int[13] _VX = [1, 0, 0, 1, -1, 1, -1, 0, 0, 1, -1, 1, -1]


cdef struct Grid:
    int H, W, K, L, N
    const double* unary64    # one of the two is set
    const float* unary32
    Py_ssize_t usp, usl      # unary[p, l] is unary[p * usp + l * usl]
    const double* wt
    const double* V
    const int* nb            # (N, K) forward neighbour or -1
    const int* nbb           # (N, K) backward neighbour (p - offset_k) or -1


cdef inline double _u(const Grid* g, int p, int l) noexcept nogil:
    cdef Py_ssize_t i = p * g.usp + l * g.usl
    return g.unary32[i] if g.unary32 != NULL else g.unary64[i]


cdef class _GridData:
    """A :c:type:`Grid` and the arrays it points into."""
    cdef Grid g
    cdef object keep

    def __cinit__(self, unary, bint labels_first,
                  const double[:, ::1] wt, const double[:, ::1] V, int H, int W, int D=1):
        cdef int K = wt.shape[1]
        cdef bint volume = K == 3 or K == 9 or K == 13
        nb_arr = np.full(D * H * W * K, -1, dtype=np.intc)
        nbb_arr = np.full(D * H * W * K, -1, dtype=np.intc)
        cdef int[::1] nb = nb_arr, nbb = nbb_arr
        cdef int z, y, x, k, p, q, zz, yy, xx
        with nogil:
            for z in range(D):
                for y in range(H):
                    for x in range(W):
                        p = (z * H + y) * W + x
                        for k in range(K):
                            if volume:
                                zz = z + _VZ[k]
                                yy = y + _VY[k]
                                xx = x + _VX[k]
                            else:
                                zz = z
                                yy = y + _DY[k]
                                xx = x + _DX[k]
                            if zz < D and 0 <= yy < H and 0 <= xx < W:
                                q = (zz * H + yy) * W + xx
                                nb[p * K + k] = q
                                nbb[q * K + k] = p
        self.keep = (unary, wt, V, nb_arr, nbb_arr)
        self.g.H = H
        self.g.W = W
        self.g.N = D * H * W
        self.g.K = K
        self.g.L = int(unary.shape[0] if labels_first else unary.shape[1])
        cdef const float[:, ::1] u32
        cdef const double[:, ::1] u64
        self.g.unary32 = NULL
        self.g.unary64 = NULL
        if unary.dtype == np.float32:
            u32 = unary
            self.g.unary32 = &u32[0, 0]
        else:
            u64 = unary
            self.g.unary64 = &u64[0, 0]
        self.g.usp = 1 if labels_first else self.g.L
        self.g.usl = self.g.N if labels_first else 1
        self.g.wt = &wt[0, 0]
        self.g.V = &V[0, 0]
        self.g.nb = &nb[0]
        self.g.nbb = &nbb[0]


cdef double _energy(const Grid* g, const int* lab) noexcept nogil:
    cdef int p, k, q, l, K = g.K, L = g.L
    cdef double e = 0.0
    for p in range(g.N):
        l = lab[p]
        e += _u(g, p, l)
        for k in range(K):
            q = g.nb[p * K + k]
            if q >= 0:
                e += g.wt[p * K + k] * g.V[l * L + lab[q]]
    return e


cdef double _change_energy(
    const Grid* g, const int* changed, int n_changed, const int* prev, const int* lab,
) noexcept nogil:
    """Energy of ``lab`` minus that of ``prev``, which differ only at ``changed``.

    An edge between two changed pixels is counted once, from its first pixel.
    """
    cdef int i, p, q, k, a, b, K = g.K, L = g.L
    cdef double d = 0.0
    cdef const double* V = g.V
    for i in range(n_changed):
        p = changed[i]
        a = prev[p]
        b = lab[p]
        d += _u(g, p, b) - _u(g, p, a)
        for k in range(K):
            q = g.nb[p * K + k]
            if q >= 0:
                d += g.wt[p * K + k] * (V[b * L + lab[q]] - V[a * L + prev[q]])
            q = g.nbb[p * K + k]
            if q >= 0 and lab[q] == prev[q]:
                d += g.wt[q * K + k] * (V[lab[q] * L + b] - V[lab[q] * L + a])
    return d


def energy(unary, const double[:, ::1] wt, const double[:, ::1] V,
           int H, int W, const int[::1] labels, int D=1):
    """Energy of a labelling; ``unary`` is label-major (L, N)."""
    cdef _GridData data = _GridData(unary, True, wt, V, H, W, D)
    cdef double e
    with nogil:
        e = _energy(&data.g, &labels[0])
    return e


# ------------------------------------------------------- iteration histories

cdef Py_ssize_t _first_history_size(int max_iter):
    """Room for the start and the first iterations; more is added as they happen,
    so a large ``max_iter`` costs nothing until it is used."""
    return min(<Py_ssize_t>max_iter, 15) + 1


cdef object _grown(object history):
    """``history`` with twice the room, its values kept."""
    bigger = np.zeros(2 * history.shape[0], dtype=np.float64)
    bigger[: history.shape[0]] = history
    return bigger


# ---------------------------------------------------------------- graph cuts

cdef class _CutWorkspace:
    """The arrays of one Boykov-Kolmogorov graph; arcs are filled by the caller."""
    cdef BKGraph g
    cdef object keep

    def __cinit__(self, int n_nodes, int n_arcs):
        first = np.zeros(n_nodes + 1, dtype=np.intc)
        arc_ints = [np.zeros(max(n_arcs, 1), dtype=np.intc) for _ in range(2)]
        node_ints = [np.zeros(max(n_nodes, 1), dtype=np.intc) for _ in range(5)]
        rcap = np.zeros(max(n_arcs, 1), dtype=np.float64)
        tr = np.zeros(max(n_nodes, 1), dtype=np.float64)
        is_sink = np.zeros(max(n_nodes, 1), dtype=np.uint8)
        self.keep = (first, arc_ints, node_ints, rcap, tr, is_sink)
        cdef int[::1] v_first = first, v_head = arc_ints[0], v_sister = arc_ints[1]
        cdef double[::1] v_rcap = rcap, v_tr = tr
        cdef unsigned char[::1] v_sink = is_sink
        cdef int[::1] v_parent = node_ints[0], v_next = node_ints[1], v_ts = node_ints[2]
        cdef int[::1] v_dist = node_ints[3], v_orphans = node_ints[4]
        self.g.n_nodes = n_nodes
        self.g.n_arcs = n_arcs
        self.g.first = &v_first[0]
        self.g.head = &v_head[0]
        self.g.sister = &v_sister[0]
        self.g.rcap = &v_rcap[0]
        self.g.tr = &v_tr[0]
        self.g.parent = &v_parent[0]
        self.g.next_active = &v_next[0]
        self.g.ts = &v_ts[0]
        self.g.dist = &v_dist[0]
        self.g.is_sink = &v_sink[0]
        self.g.orphans = &v_orphans[0]
        node_ints[1].fill(-1)  # no node is queued


cdef _CutWorkspace _grid_workspace(const Grid* g):
    """Graph over the pixels of a grid with 2K arc slots per pixel.

    Slot k < K of pixel p is the arc to its forward neighbour in direction k,
    slot K + k the arc to its backward neighbour; so the arc of edge (p, k) is
    p * 2K + k and its sister q * 2K + K + k.  A slot without a neighbour is a
    self-loop that keeps zero capacity, which the search never follows.
    """
    cdef int K = g.K, S = 2 * g.K, N = g.N, p, k, q
    cdef _CutWorkspace ws = _CutWorkspace(N, N * S)
    cdef BKGraph* bk = &ws.g
    with nogil:
        for p in range(N + 1):
            bk.first[p] = p * S
        for p in range(N):
            for k in range(K):
                q = g.nb[p * K + k]
                bk.head[p * S + k] = q if q >= 0 else p
                bk.sister[p * S + k] = q * S + K + k if q >= 0 else p * S + k
                q = g.nbb[p * K + k]
                bk.head[p * S + K + k] = q if q >= 0 else p
                bk.sister[p * S + K + k] = q * S + k if q >= 0 else p * S + K + k
    return ws


cdef inline bint _is_free(int label, int alpha, int beta, bint swap) noexcept nogil:
    """Whether a pixel takes part in the move (see _build_move)."""
    if swap:
        return label == alpha or label == beta
    return label != beta


cdef void _build_move(
    const Grid* g, const int* labels, int alpha, int beta, bint swap, BKGraph* bk,
) noexcept nogil:
    """Graph of one move on a grid workspace (see _grid_workspace).

    Expansion (``swap`` false): every pixel not labelled ``beta`` is free to
    keep its label (source side) or take ``beta`` (sink side); ``alpha`` is
    unused.  Swap: pixels labelled ``alpha`` or ``beta`` are free to take
    ``alpha`` (source) or ``beta`` (sink).  Other pixels keep their labels.
    Each pairwise table (A, B, C, D) over two free pixels' choices is split as
    in Kolmogorov & Zabih (2004), its non-submodular part shared equally
    between the two arcs; an edge to a fixed pixel becomes a unary term.
    """
    cdef int p, q, k, K = g.K, S = 2 * g.K, L = g.L, l0p, l0q
    cdef bint free_p, free_q
    cdef double w, A, B, C, D, half
    cdef const double* V = g.V
    cdef double* rcap = bk.rcap
    for p in range(g.N):
        l0p = labels[p]
        free_p = _is_free(l0p, alpha, beta, swap)
        if free_p and swap:
            l0p = alpha
        bk.tr[p] = _u(g, p, beta) - _u(g, p, l0p) if free_p else 0.0
    for p in range(g.N):
        l0p = labels[p]
        free_p = _is_free(l0p, alpha, beta, swap)
        if free_p and swap:
            l0p = alpha
        for k in range(K):
            q = g.nb[p * K + k]
            if q < 0:
                continue
            rcap[p * S + k] = 0.0
            rcap[q * S + K + k] = 0.0
            l0q = labels[q]
            free_q = _is_free(l0q, alpha, beta, swap)
            w = g.wt[p * K + k]
            if not (free_p or free_q) or w == 0.0:
                continue
            if free_q and swap:
                l0q = alpha
            A = V[l0p * L + l0q]
            if not free_q:
                bk.tr[p] += w * (V[beta * L + l0q] - A)
                continue
            if not free_p:
                bk.tr[q] += w * (V[l0p * L + beta] - A)
                continue
            B = V[l0p * L + beta]
            C = V[beta * L + l0q]
            D = V[beta * L + beta]
            half = 0.5 * (B + C - A - D)
            if half < 0.0:
                half = 0.0
            bk.tr[p] += w * (C - A - half)
            bk.tr[q] += w * (B - A - half)
            rcap[p * S + k] = w * half
            rcap[q * S + K + k] = w * half


cdef inline int _move_label(int label, int alpha, int beta, bint swap, bint in_sink
                            ) noexcept nogil:
    """Label of a pixel after a move whose cut put it on the given side."""
    if not _is_free(label, alpha, beta, swap):
        return label
    if in_sink:
        return beta
    return alpha if swap else label


def graphcut(unary, const double[:, ::1] wt, const double[:, ::1] V,
             int H, int W, int D=1):
    """Exact minimum of a two-label submodular energy; returns (labels, energy).

    ``unary`` is label-major (2, N).  It is one expansion move to label 1
    from the all-0 labelling, which covers every labelling.
    """
    cdef _GridData data = _GridData(unary, True, wt, V, H, W, D)
    cdef Grid* g = &data.g
    cdef _CutWorkspace ws = _grid_workspace(g)
    out_arr = np.zeros(g.N, dtype=np.intc)
    cdef int[::1] out = out_arr
    cdef double e
    cdef int p
    with nogil:
        _build_move(g, &out[0], 0, 1, False, &ws.g)
        bk_maxflow(&ws.g)
        for p in range(g.N):
            out[p] = bk_in_sink(&ws.g, p)
        e = _energy(g, &out[0])
    return out_arr, e


def move_making(unary, const double[:, ::1] wt, const double[:, ::1] V,
                int H, int W, int[::1] labels, bint swap, int max_iter, double tol,
                int D=1):
    """Alpha-expansion (``swap`` False) or alpha-beta swap (True) in place.

    ``unary`` is label-major (L, N).  One cycle tries every label (expansion)
    or every pair of labels (swap).  A move is kept only when the energy
    change, summed over the pixels it relabels, is negative, so the energy
    never rises.  A move is not tried again while the labelling is the one
    it already failed to improve (moves are deterministic), and an expansion's
    labels are not read back when its cut promises no gain.
    Returns (energies per cycle with the start first, n_iter, converged).
    """
    cdef _GridData data = _GridData(unary, True, wt, V, H, W, D)
    cdef Grid* g = &data.g
    cdef _CutWorkspace ws = _grid_workspace(g)
    cdef int N = g.N, L = g.L
    if swap:
        firsts, seconds = np.triu_indices(L, 1)
    else:
        firsts, seconds = np.arange(L), np.arange(L)
    first_arr = firsts.astype(np.intc)
    second_arr = seconds.astype(np.intc)
    prev_arr = np.array(labels, dtype=np.intc)
    changed_arr = np.empty(N, dtype=np.intc)
    failed_at_arr = np.full(first_arr.shape[0], -1, dtype=np.int64)
    history_arr = np.zeros(_first_history_size(max_iter), dtype=np.float64)
    cdef int[::1] prev = prev_arr, changed = changed_arr
    cdef int[::1] move_first = first_arr, move_second = second_arr
    cdef long long[::1] failed_at = failed_at_arr
    cdef double[::1] history = history_arr
    cdef int it, m, i, alpha, beta, p, new, n_changed, n_iter = 0
    cdef int n_moves = first_arr.shape[0]
    cdef long long n_kept = 0
    cdef bint converged = False
    cdef double energy, start, delta, flow
    with nogil:
        energy = _energy(g, &labels[0])
        history[0] = energy
        for it in range(max_iter):
            start = energy
            for m in range(n_moves):
                if failed_at[m] == n_kept:
                    continue
                alpha = move_first[m]
                beta = move_second[m]
                _build_move(g, &labels[0], alpha, beta, swap, &ws.g)
                flow = bk_maxflow(&ws.g)
                # an expansion's all-source cut is the current labelling, so the cut's energy
                # is the current one plus flow - sink_total.  A swap's all-source cut gives
                # every free pixel alpha, which is not the current labelling: its gain is
                # known only from the labels (a swap that "promised" none could still lower
                # the energy of a labelling that holds beta)
                if not swap and ws.g.sink_total - flow <= 1e-12 * fabs(energy):
                    failed_at[m] = n_kept
                    continue
                n_changed = 0
                for p in range(N):
                    new = _move_label(labels[p], alpha, beta, swap, bk_in_sink(&ws.g, p))
                    if new != labels[p]:
                        labels[p] = new
                        changed[n_changed] = p
                        n_changed += 1
                delta = _change_energy(g, &changed[0], n_changed, &prev[0], &labels[0])
                for i in range(n_changed):
                    p = changed[i]
                    if delta < 0.0:
                        prev[p] = labels[p]
                    else:
                        labels[p] = prev[p]
                if delta < 0.0:
                    energy += delta
                    n_kept += 1
                else:
                    failed_at[m] = n_kept
            # re-sum, so rounding in the per-move changes does not accumulate
            energy = _energy(g, &labels[0])
            n_iter = it + 1
            if n_iter == history.shape[0]:
                with gil:
                    history_arr = _grown(history_arr)
                    history = history_arr
            history[n_iter] = energy
            if start - energy <= tol * fabs(start):
                converged = True
                break
    return history_arr[: n_iter + 1], n_iter, converged


def maxflow(int n_nodes, const int[::1] tails, const int[::1] heads, const double[::1] caps,
            const double[::1] rev_caps, const double[::1] source_caps,
            const double[::1] sink_caps):
    """Max-flow of a general graph; returns (flow value, 1 for sink-side nodes)."""
    cdef int n_edges = tails.shape[0], e, i, a
    cdef _CutWorkspace ws = _CutWorkspace(n_nodes, 2 * n_edges)
    arc_of_edge_arr = np.zeros(max(n_edges, 1), dtype=np.intc)
    fill_arr = np.zeros(max(n_nodes, 1), dtype=np.intc)
    cdef int[::1] arc_of_edge = arc_of_edge_arr, fill = fill_arr
    cdef double flow = 0.0
    side_arr = np.zeros(n_nodes, dtype=np.uint8)
    cdef unsigned char[::1] side = side_arr
    with nogil:
        csr_from_edges(n_nodes, n_edges, &tails[0] if n_edges else <int*>0,
                       &heads[0] if n_edges else <int*>0, ws.g.first, ws.g.head,
                       ws.g.sister, &arc_of_edge[0], &fill[0])
        for e in range(n_edges):
            a = arc_of_edge[e]
            ws.g.rcap[a] += caps[e]
            ws.g.rcap[ws.g.sister[a]] += rev_caps[e]
        for i in range(n_nodes):
            ws.g.tr[i] = source_caps[i] - sink_caps[i]
            flow += source_caps[i] if source_caps[i] < sink_caps[i] else sink_caps[i]
        flow += bk_maxflow(&ws.g)
        for i in range(n_nodes):
            side[i] = bk_in_sink(&ws.g, i)
    return flow, side_arr


# ------------------------------------------------------------------------ ICM

def icm(unary, const double[:, ::1] wt, const double[:, ::1] V,
        int H, int W, int[::1] labels, int max_iter, double tol, int D=1):
    """Iterated conditional modes in raster order, in place.

    ``unary`` is node-major (N, L).  A pixel changes only to a strictly cheaper
    label given its neighbours.  Returns (energies per sweep with the start
    first, n_iter, converged).
    """
    cdef _GridData data = _GridData(unary, False, wt, V, H, W, D)
    cdef Grid* g = &data.g
    history_arr = np.zeros(_first_history_size(max_iter), dtype=np.float64)
    cdef double[::1] history = history_arr
    cdef int N = g.N, K = g.K, L = g.L, it, p, k, q, x, best, changes, n_iter = 0
    cdef double cost, best_cost, energy, start
    cdef bint converged = False
    with nogil:
        energy = _energy(g, &labels[0])
        history[0] = energy
        for it in range(max_iter):
            start = energy
            changes = 0
            for p in range(N):
                best = labels[p]
                best_cost = INFINITY
                for x in range(L):
                    cost = _u(g, p, x)
                    for k in range(K):
                        q = g.nb[p * K + k]
                        if q >= 0:
                            cost += g.wt[p * K + k] * g.V[x * L + labels[q]]
                        q = g.nbb[p * K + k]
                        if q >= 0:
                            cost += g.wt[q * K + k] * g.V[labels[q] * L + x]
                    # ties keep the current label
                    if cost < best_cost or (cost == best_cost and x == labels[p]):
                        best_cost = cost
                        best = x
                if best != labels[p]:
                    labels[p] = best
                    changes += 1
            energy = _energy(g, &labels[0])
            n_iter = it + 1
            if n_iter == history.shape[0]:
                with gil:
                    history_arr = _grown(history_arr)
                    history = history_arr
            history[n_iter] = energy
            if changes == 0 or start - energy <= tol * fabs(start):
                converged = True
                break
    return history_arr[: n_iter + 1], n_iter, converged


# ------------------------------------------------------------------------ TRW-S

cdef inline double _parabola_cross(const double* h, double a, int x, int u) noexcept nogil:
    """Abscissa where a (y - x)^2 + h[x] meets a (y - u)^2 + h[u]."""
    return ((h[x] + a * x * x) - (h[u] + a * u * u)) / (2.0 * a * (x - u))


cdef double _message(
    int kind, double w, double c0, double cap, const double* Vm, int L,
    const double* h, double* out, int* env_v, double* env_z,
) noexcept nogil:
    """out[y] = min_x h[x] + w * Vm[x, y], shifted so its minimum is 0.

    Returns the shift.  Potts and truncated linear / quadratic costs use the
    O(L) distance transforms of Felzenszwalb & Huttenlocher (2006); ``c0`` is
    the cost's weight and ``cap`` its value at truncation (w * cap caps it).
    """
    cdef int x, y, k
    cdef double hmin = INFINITY, v, s, a, limit
    for x in range(L):
        if h[x] < hmin:
            hmin = h[x]
    if w == 0.0 or (kind != PAIR_GENERAL and w * c0 == 0.0):
        # a zero cost: every y is reached from the cheapest x
        for y in range(L):
            out[y] = 0.0
        return hmin
    if kind == PAIR_QUADRATIC and w * c0 < _QUADRATIC_MIN_CURVATURE:
        # crossings of nearly flat parabolas overflow; the O(L^2) minimum is exact
        kind = PAIR_GENERAL
    if kind == PAIR_GENERAL:
        for y in range(L):
            v = INFINITY
            for x in range(L):
                s = h[x] + w * Vm[x * L + y]
                if s < v:
                    v = s
            out[y] = v
    else:
        limit = hmin + w * cap
        if kind == PAIR_POTTS:
            for y in range(L):
                out[y] = h[y] if h[y] < limit else limit
        elif kind == PAIR_LINEAR:
            s = w * c0
            out[0] = h[0]
            for y in range(1, L):
                v = out[y - 1] + s
                out[y] = h[y] if h[y] < v else v
            for y in range(L - 2, -1, -1):
                v = out[y + 1] + s
                if v < out[y]:
                    out[y] = v
            for y in range(L):
                if limit < out[y]:
                    out[y] = limit
        else:
            # lower envelope of the parabolas a (y - x)^2 + h[x]
            a = w * c0
            k = 0
            env_v[0] = 0
            env_z[0] = -INFINITY
            env_z[1] = INFINITY
            for x in range(1, L):
                s = _parabola_cross(h, a, x, env_v[k])
                while k > 0 and s <= env_z[k]:
                    k -= 1
                    s = _parabola_cross(h, a, x, env_v[k])
                if s <= env_z[0]:
                    # below every parabola kept so far (a crossing at -inf): replace them
                    env_v[0] = x
                    env_z[1] = INFINITY
                    continue
                k += 1
                env_v[k] = x
                env_z[k] = s
                env_z[k + 1] = INFINITY
            k = 0
            for y in range(L):
                while env_z[k + 1] < y:
                    k += 1
                v = a * (y - env_v[k]) * (y - env_v[k]) + h[env_v[k]]
                out[y] = v if v < limit else limit
    if kind == PAIR_GENERAL:
        v = INFINITY
        for y in range(L):
            if out[y] < v:
                v = out[y]
    else:
        # V[x, x] = 0 <= V[x, y], so the smallest entry is h's own minimum
        v = hmin
    for y in range(L):
        out[y] -= v
    return v


cdef inline double _store_message(const double* out, float* stored, int L) noexcept nogil:
    """Store a message in float32; return min_y (out[y] - stored[y]).

    Messages are kept in float32 to halve the memory traffic of a pass.  The
    returned rounding is added to the bound, which keeps it a bound of the
    energy reparametrised by the stored messages.
    """
    cdef int y
    cdef double low = INFINITY, d
    for y in range(L):
        stored[y] = <float>out[y]
        d = out[y] - <double>stored[y]
        if d < low:
            low = d
    return low


cdef inline void _belief(const Grid* g, const float* Mp, int p, int S, double* theta
                         ) noexcept nogil:
    """theta = unary of p plus the S messages into p (node-major unary)."""
    cdef int s, x, L = g.L
    for x in range(L):
        theta[x] = _u(g, p, x)
    for s in range(S):
        for x in range(L):
            theta[x] += Mp[s * L + x]


def trws(unary, const double[:, ::1] wt, const double[:, ::1] V,
         const double[:, ::1] Vt, int H, int W, int kind, double c0, double cap,
         int[::1] labels, bint have_init, int max_iter, double tol, int D=1):
    """Sequential tree-reweighted message passing (Kolmogorov 2006).

    ``unary`` is node-major (N, L); ``Vt`` is ``V`` transposed, for messages
    sent backwards along an edge.  The grid is covered by K families of
    monotonic chains (rows, columns and, for 8-connectivity, both diagonals;
    in a volume, the lines along each of the K forward directions), each
    pixel lying on one chain of each family, so every pixel weight is 1/K.  The lower bound is the sum of the chain minima, read off the forward
    pass: with fresh forward messages the min-sum dynamic programme along a
    chain equals the shifts that normalised its messages plus the minimum of
    its last pixel's belief / K.  The forward pass also labels each pixel
    given its labelled predecessors and the messages from its successors.

    Messages are stored in float32 (see _store_message); beliefs, messages
    in the making and the bound are computed in float64.

    ``labels`` receives the best labelling seen (the initial one counts when
    ``have_init``).  Returns (energy, bound, energy history, bound history,
    n_iter, converged).
    """
    cdef _GridData data = _GridData(unary, False, wt, V, H, W, D)
    cdef Grid* g = &data.g
    cdef int N = g.N, K = g.K, L = g.L, S = 2 * g.K
    messages_arr = np.zeros((N, S, L), dtype=np.float32)
    buffers = np.zeros((5, L + 1), dtype=np.float64)
    env_v_arr = np.zeros(L + 1, dtype=np.intc)
    current_arr = np.empty(N, dtype=np.intc)
    e_hist_arr = np.zeros(_first_history_size(max_iter), dtype=np.float64)
    b_hist_arr = np.zeros(_first_history_size(max_iter), dtype=np.float64)
    cdef float[:, :, ::1] M = messages_arr
    cdef double[:, ::1] buf = buffers
    cdef int[::1] env_v = env_v_arr, current = current_arr
    cdef double[::1] e_hist = e_hist_arr, b_hist = b_hist_arr
    cdef double* theta = &buf[0, 0]
    cdef double* h = &buf[1, 0]
    cdef double* cost = &buf[2, 0]
    cdef double* env_z = &buf[3, 0]
    cdef double* out = &buf[4, 0]
    cdef double gamma = 1.0 / K
    cdef double best_energy = INFINITY, best_bound = -INFINITY, bound, e, tmin, scale
    cdef double prev_bound = -INFINITY
    cdef int it, p, q, k, x, best, n_iter = 0
    cdef bint converged = False
    cdef const float* Mp
    cdef const double* Vrow
    with nogil:
        if have_init:
            best_energy = _energy(g, &labels[0])
        for it in range(max_iter):
            bound = 0.0
            for p in range(N):
                Mp = &M[p, 0, 0]
                _belief(g, Mp, p, S, theta)
                # label p given its labelled predecessors and its successors' messages
                for x in range(L):
                    cost[x] = theta[x]
                for k in range(K):
                    q = g.nbb[p * K + k]
                    if q >= 0:
                        Vrow = &g.V[current[q] * L]
                        for x in range(L):
                            cost[x] += g.wt[q * K + k] * Vrow[x] - Mp[(K + k) * L + x]
                best = 0
                for x in range(1, L):
                    if cost[x] < cost[best]:
                        best = x
                current[p] = best
                for k in range(K):
                    q = g.nb[p * K + k]
                    if q < 0:
                        tmin = INFINITY
                        for x in range(L):
                            if theta[x] < tmin:
                                tmin = theta[x]
                        bound += tmin * gamma
                        continue
                    for x in range(L):
                        h[x] = gamma * theta[x] - Mp[k * L + x]
                    bound += _message(kind, g.wt[p * K + k], c0, cap, &V[0, 0], L, h,
                                      out, &env_v[0], env_z)
                    bound += _store_message(out, &M[q, K + k, 0], L)
            e = _energy(g, &current[0])
            if e < best_energy:
                best_energy = e
                memcpy(&labels[0], &current[0], N * sizeof(int))
            if bound > best_bound:
                best_bound = bound
            if it == e_hist.shape[0]:
                with gil:
                    e_hist_arr = _grown(e_hist_arr)
                    b_hist_arr = _grown(b_hist_arr)
                    e_hist = e_hist_arr
                    b_hist = b_hist_arr
            e_hist[it] = best_energy
            b_hist[it] = best_bound
            n_iter = it + 1
            scale = fabs(best_energy) if fabs(best_energy) > fabs(best_bound) else fabs(best_bound)
            if best_energy - best_bound <= tol * scale or (
                    it > 0 and best_bound - prev_bound <= tol * scale):
                converged = True
                break
            prev_bound = best_bound
            for p in range(N - 1, -1, -1):
                Mp = &M[p, 0, 0]
                _belief(g, Mp, p, S, theta)
                for k in range(K):
                    q = g.nbb[p * K + k]
                    if q < 0:
                        continue
                    for x in range(L):
                        h[x] = gamma * theta[x] - Mp[(K + k) * L + x]
                    _message(kind, g.wt[q * K + k], c0, cap, &Vt[0, 0], L, h,
                             out, &env_v[0], env_z)
                    _store_message(out, &M[q, k, 0], L)
    return (best_energy, best_bound, e_hist_arr[:n_iter], b_hist_arr[:n_iter], n_iter,
            converged)
