# distutils: language = c++
"""Split-and-merge kernels: quadtree split, leaf statistics, leaf adjacency,
region merging on a region adjacency graph and raster-order relabelling.

No validation here: ``crfseg.classical.split_merge`` checks the input, centres
the gray levels (``x = image - shift``) and chooses every parameter.

Homogeneity kinds: 0 range (max - min <= t), 1 std (population variance
<= t^2), 2 stat (split: sample variance consistent with sigma^2; merge:
|mean_a - mean_b| <= k sigma sqrt(1/n_a + 1/n_b)), 3 a Python callable on
(count, sum, sum of squares, min, max) of the original gray levels.
"""

from cpython.ref cimport PyObject
from libc.float cimport DBL_EPSILON
from libc.math cimport fabs, sqrt
from libc.stdint cimport int32_t, int64_t
from libcpp.unordered_set cimport unordered_set
from libcpp.vector cimport vector

import numpy as np

cdef extern from * nogil:
    """
    #include <vector>
    /* A 4-ary min-heap of (key, leaf edge) ordered by key, then edge index.  Four
       16-byte children share a cache line, which halves the cache misses of a
       binary heap once the heap outgrows the cache. */
    struct SMEntry { double key; int eid; };
    static inline bool sm_before(const SMEntry& x, const SMEntry& y) {
        return x.key < y.key || (x.key == y.key && x.eid < y.eid);
    }
    struct SMHeap {
        std::vector<SMEntry> v;
        bool empty() const { return v.empty(); }
        const SMEntry& top() const { return v[0]; }
        void push(const SMEntry& e) {
            v.push_back(e);
            size_t i = v.size() - 1;
            while (i > 0) {
                size_t up = (i - 1) / 4;
                if (!sm_before(e, v[up])) break;
                v[i] = v[up];
                i = up;
            }
            v[i] = e;
        }
        void sift_down(size_t i, const SMEntry& e) {
            size_t n = v.size();
            for (;;) {
                size_t c = 4 * i + 1;
                if (c >= n) break;
                size_t end = c + 4 < n ? c + 4 : n, best = c;
                for (size_t k = c + 1; k < end; ++k)
                    if (sm_before(v[k], v[best])) best = k;
                if (!sm_before(v[best], e)) break;
                v[i] = v[best];
                i = best;
            }
            v[i] = e;
        }
        /* replace the top by e: one sift instead of a pop and a push */
        void replace_top(const SMEntry& e) { sift_down(0, e); }
        void pop() {
            SMEntry last = v.back();
            v.pop_back();
            if (!v.empty()) sift_down(0, last);
        }
        /* push without order, then heapify() once */
        void append(const SMEntry& e) { v.push_back(e); }
        void heapify() {
            if (v.size() < 2) return;
            for (size_t i = (v.size() - 2) / 4 + 1; i-- > 0;) {
                SMEntry e = v[i];  /* a copy: sift_down overwrites v[i] */
                sift_down(i, e);
            }
        }
    };
    """
    ctypedef struct SMEntry:
        double key
        int eid
    cdef cppclass SMHeap:
        bint empty()
        const SMEntry& top()
        void push(const SMEntry&) except +
        void replace_top(const SMEntry&)
        void pop()
        void append(const SMEntry&) except +
        void heapify()


cdef enum:
    KIND_RANGE = 0
    KIND_STD = 1
    KIND_STAT = 2
    KIND_CALLABLE = 3


cdef struct Rule:
    int kind
    double threshold      # t for range and std, k for stat
    double sigma          # noise level for stat
    double shift          # added back before the callable sees the statistics
    double tol_mean       # rounding allowance per pixel on means (0 on the exact path)
    double tol_var        # rounding allowance per pixel on variances
    PyObject* func


# --------------------------------------------------------------------------- block statistics


def integral_images(const double[:, ::1] x):
    """Integral images of ``x`` and ``x**2``, each of shape ``(H + 1, W + 1)``."""
    cdef Py_ssize_t h = x.shape[0], w = x.shape[1], i, j
    s_np = np.zeros((h + 1, w + 1), dtype=np.float64)
    ss_np = np.zeros((h + 1, w + 1), dtype=np.float64)
    cdef double[:, ::1] s = s_np
    cdef double[:, ::1] ss = ss_np
    cdef double row_s, row_ss, v
    with nogil:
        for i in range(h):
            row_s = 0.0
            row_ss = 0.0
            for j in range(w):
                v = x[i, j]
                row_s = row_s + v
                row_ss = row_ss + v * v
                s[i + 1, j + 1] = s[i, j + 1] + row_s
                ss[i + 1, j + 1] = ss[i, j + 1] + row_ss
    return s_np, ss_np


cdef inline double _box(const double[:, ::1] a, Py_ssize_t t, Py_ssize_t l, Py_ssize_t h,
                        Py_ssize_t w) noexcept nogil:
    return a[t + h, l + w] - a[t, l + w] - a[t + h, l] + a[t, l]


cdef void _scan(const double[:, ::1] x, Py_ssize_t t, Py_ssize_t l, Py_ssize_t h, Py_ssize_t w,
                double* s, double* ss, double* mn, double* mx) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef double v, acc = 0.0, acc2 = 0.0, lo = x[t, l], hi = x[t, l]
    for i in range(t, t + h):
        for j in range(l, l + w):
            v = x[i, j]
            acc = acc + v
            acc2 = acc2 + v * v
            if v < lo:
                lo = v
            if v > hi:
                hi = v
    s[0] = acc
    ss[0] = acc2
    mn[0] = lo
    mx[0] = hi


cdef bint _range_within(const double[:, ::1] x, Py_ssize_t t, Py_ssize_t l, Py_ssize_t h,
                        Py_ssize_t w, double limit) noexcept nogil:
    """max - min <= limit, stopping at the first row that breaks it."""
    cdef Py_ssize_t i, j
    cdef double v, lo = x[t, l], hi = x[t, l]
    for i in range(t, t + h):
        for j in range(l, l + w):
            v = x[i, j]
            if v < lo:
                lo = v
            elif v > hi:
                hi = v
        if hi - lo > limit:
            return False
    return True


cdef double _direct_sum_sq_dev(const double[:, ::1] x, Py_ssize_t t, Py_ssize_t l, Py_ssize_t h,
                               Py_ssize_t w) noexcept nogil:
    """Sum of squared deviations from the block mean, in two passes."""
    cdef Py_ssize_t i, j
    cdef double acc = 0.0, mean, d
    for i in range(t, t + h):
        for j in range(l, l + w):
            acc = acc + x[i, j]
    mean = acc / <double>(h * w)
    acc = 0.0
    for i in range(t, t + h):
        for j in range(l, l + w):
            d = x[i, j] - mean
            acc = acc + d * d
    return acc


cdef int _call(const Rule* rule, double n, double s, double ss, double mn,
               double mx) except -1 nogil:
    """Ask the user's predicate about a region given in centred units."""
    cdef double c = rule.shift
    cdef int result
    with gil:
        func = <object>rule.func
        answer = func(int(n), s + n * c, ss + 2.0 * c * s + n * c * c, mn + c, mx + c)
        # a truthy None, NaN or string is a bug in the predicate, not an answer
        if not isinstance(answer, (bool, np.bool_)):
            raise TypeError(
                "predicate must return a bool (True when the region is homogeneous), got "
                f"{type(answer).__name__} {answer!r}"
            )
        result = 1 if answer else 0
    return result


cdef int _block_passes(const double[:, ::1] x, const double[:, ::1] s_int,
                       const double[:, ::1] ss_int, const Rule* rule, double err_s, double err_ss,
                       double scale, Py_ssize_t t, Py_ssize_t l, Py_ssize_t h,
                       Py_ssize_t w) except -1 nogil:
    cdef double n = <double>(h * w), s, ss, mn, mx, dev, limit, err, dof, allow
    if rule.kind == KIND_RANGE:
        return _range_within(x, t, l, h, w, rule.threshold)
    if rule.kind == KIND_CALLABLE:
        _scan(x, t, l, h, w, &s, &ss, &mn, &mx)
        return _call(rule, n, s, ss, mn, mx)
    if rule.kind == KIND_STAT and n == 1.0:
        return 1
    # std compares the population variance, stat the sample variance (n - 1 dof)
    dof = n if rule.kind == KIND_STD else n - 1.0
    if rule.kind == KIND_STD:
        limit = rule.threshold * rule.threshold
    else:
        limit = rule.sigma * rule.sigma * (1.0 + rule.threshold * sqrt(2.0 / dof))
    s = _box(s_int, t, l, h, w)
    ss = _box(ss_int, t, l, h, w)
    dev = ss - s * s / n
    if dev < 0.0:
        dev = 0.0
    # float images: integral-image sums carry rounding of up to err_s / err_ss; a decision
    # that rounding could flip is taken again from the pixels themselves
    err = (err_ss + 2.0 * fabs(s) * err_s / n + err_s * err_s / n) / dof
    if err > 0.0 and fabs(dev / dof - limit) <= err:
        dev = _direct_sum_sq_dev(x, t, l, h, w)
        allow = 4.0 * (n * DBL_EPSILON * scale) * (n * DBL_EPSILON * scale) \
            + 2.0 * n * DBL_EPSILON * limit
        return dev / dof <= limit + allow
    return dev / dof <= limit


def split_blocks(const double[:, ::1] x, s_int, ss_int, int kind, double threshold, double sigma,
                 double shift, Py_ssize_t min_size, double err_s, double err_ss, double scale,
                 object predicate):
    """Quadtree leaves ``(L, 4)`` int32 rows ``(top, left, height, width)`` in Z order.

    A block is split at ``(h // 2, w // 2)`` along every side of length at
    least ``2 * min_size`` unless it passes the homogeneity test.  ``s_int``
    and ``ss_int`` are the integral images (needed by std and stat only).
    """
    cdef Py_ssize_t height = x.shape[0], width = x.shape[1]
    cdef Py_ssize_t t, l, h, w, h1, w1, k
    cdef bint cut_h, cut_w
    cdef int ok
    cdef Rule rule
    cdef const double[:, ::1] s_view
    cdef const double[:, ::1] ss_view
    cdef vector[int32_t] stack
    cdef vector[int32_t] out
    if kind == KIND_STD or kind == KIND_STAT:
        s_view = s_int
        ss_view = ss_int
    else:
        s_view = x
        ss_view = x
    rule.kind = kind
    rule.threshold = threshold
    rule.sigma = sigma
    rule.shift = shift
    rule.func = <PyObject*>predicate
    stack.push_back(0)
    stack.push_back(0)
    stack.push_back(<int32_t>height)
    stack.push_back(<int32_t>width)
    with nogil:
        while stack.size():
            k = stack.size() - 4
            t = stack[k]
            l = stack[k + 1]
            h = stack[k + 2]
            w = stack[k + 3]
            stack.resize(k)
            cut_h = h >= 2 * min_size
            cut_w = w >= 2 * min_size
            ok = 1
            if cut_h or cut_w:
                ok = _block_passes(x, s_view, ss_view, &rule, err_s, err_ss, scale, t, l, h, w)
            if ok:
                out.push_back(<int32_t>t)
                out.push_back(<int32_t>l)
                out.push_back(<int32_t>h)
                out.push_back(<int32_t>w)
                continue
            h1 = h // 2 if cut_h else h
            w1 = w // 2 if cut_w else w
            # pushed in reverse so that the children leave the stack in Z order
            if cut_h and cut_w:
                _push_block(stack, t + h1, l + w1, h - h1, w - w1)
            if cut_h:
                _push_block(stack, t + h1, l, h - h1, w1)
            if cut_w:
                _push_block(stack, t, l + w1, h1, w - w1)
            _push_block(stack, t, l, h1, w1)
    leaves = np.empty((out.size() // 4, 4), dtype=np.int32)
    cdef int32_t[:, ::1] view = leaves
    for k in range(<Py_ssize_t>out.size() // 4):
        view[k, 0] = out[4 * k]
        view[k, 1] = out[4 * k + 1]
        view[k, 2] = out[4 * k + 2]
        view[k, 3] = out[4 * k + 3]
    return leaves


cdef inline void _push_block(vector[int32_t]& stack, Py_ssize_t t, Py_ssize_t l, Py_ssize_t h,
                             Py_ssize_t w) noexcept nogil:
    stack.push_back(<int32_t>t)
    stack.push_back(<int32_t>l)
    stack.push_back(<int32_t>h)
    stack.push_back(<int32_t>w)


def leaf_statistics(const double[:, ::1] x, const int32_t[:, ::1] leaves):
    """Count, sum, sum of squares, min and max of every leaf, read from the pixels."""
    cdef Py_ssize_t n_leaves = leaves.shape[0], k
    count_np = np.empty(n_leaves, dtype=np.int64)
    arrays = [np.empty(n_leaves, dtype=np.float64) for _ in range(4)]
    cdef int64_t[::1] count = count_np
    cdef double[::1] s = arrays[0]
    cdef double[::1] ss = arrays[1]
    cdef double[::1] mn = arrays[2]
    cdef double[::1] mx = arrays[3]
    with nogil:
        for k in range(n_leaves):
            count[k] = <int64_t>leaves[k, 2] * leaves[k, 3]
            _scan(x, leaves[k, 0], leaves[k, 1], leaves[k, 2], leaves[k, 3],
                  &s[k], &ss[k], &mn[k], &mx[k])
    return count_np, arrays[0], arrays[1], arrays[2], arrays[3]


# --------------------------------------------------------------------------- leaf adjacency


def paint_leaves(const int32_t[:, ::1] leaves, int32_t[:, ::1] leaf_map):
    """Write the index of every leaf over its pixels."""
    cdef Py_ssize_t k, i, j
    with nogil:
        for k in range(leaves.shape[0]):
            for i in range(leaves[k, 0], leaves[k, 0] + leaves[k, 2]):
                for j in range(leaves[k, 1], leaves[k, 1] + leaves[k, 3]):
                    leaf_map[i, j] = <int32_t>k


def leaf_adjacency(const int32_t[:, ::1] leaves, const int32_t[:, ::1] leaf_map, bint diagonal):
    """Pairs ``(E, 2)`` int32 (smaller index first) of leaves that touch.

    Each leaf walks its right and bottom sides, jumping from neighbour to
    neighbour, so the cost is the number of pairs, not the perimeter.  With
    ``diagonal``, leaves that meet only at a corner are added too (for
    rectangles that happens at corners only).  Every pair appears once.
    """
    cdef Py_ssize_t height = leaf_map.shape[0], width = leaf_map.shape[1]
    cdef Py_ssize_t k, i, j, t, l, b, r
    cdef int32_t q
    cdef vector[int32_t] out
    with nogil:
        for k in range(leaves.shape[0]):
            t = leaves[k, 0]
            l = leaves[k, 1]
            b = t + leaves[k, 2]
            r = l + leaves[k, 3]
            if r < width:
                i = t
                while i < b:
                    q = leaf_map[i, r]
                    _push_pair(out, <int32_t>k, q)
                    i = leaves[q, 0] + leaves[q, 2]
            if b < height:
                j = l
                while j < r:
                    q = leaf_map[b, j]
                    _push_pair(out, <int32_t>k, q)
                    j = leaves[q, 1] + leaves[q, 3]
                if diagonal and l > 0:
                    q = leaf_map[b, l - 1]
                    if q != leaf_map[b, l] and q != leaf_map[b - 1, l - 1]:
                        _push_pair(out, <int32_t>k, q)
                if diagonal and r < width:
                    q = leaf_map[b, r]
                    if q != leaf_map[b, r - 1] and q != leaf_map[b - 1, r]:
                        _push_pair(out, <int32_t>k, q)
    edges = np.empty((out.size() // 2, 2), dtype=np.int32)
    cdef int32_t[:, ::1] view = edges
    for k in range(<Py_ssize_t>out.size() // 2):
        view[k, 0] = out[2 * k]
        view[k, 1] = out[2 * k + 1]
    return edges


cdef inline void _push_pair(vector[int32_t]& out, int32_t a, int32_t b) noexcept nogil:
    if a < b:
        out.push_back(a)
        out.push_back(b)
    else:
        out.push_back(b)
        out.push_back(a)


# --------------------------------------------------------------------------- merging


cdef struct Regions:
    int32_t* parent
    int64_t* count
    double* s
    double* ss
    double* mn
    double* mx


cdef inline int32_t _find(int32_t* parent, int32_t v) noexcept nogil:
    while parent[v] != v:
        parent[v] = parent[parent[v]]
        v = parent[v]
    return v


cdef double _pair_key(const Regions* g, int kind, int32_t a, int32_t b) noexcept nogil:
    """Dissimilarity of two regions: the smaller pair is merged first.

    range: range of the union; std: variance of the union; stat and callable:
    the increase of the sum of squared errors (Ward), n_a n_b / n (mean_a - mean_b)^2.
    """
    cdef double na = <double>g.count[a], nb = <double>g.count[b], n, mean, v, d
    if kind == KIND_RANGE:
        return max(g.mx[a], g.mx[b]) - min(g.mn[a], g.mn[b])
    n = na + nb
    if kind == KIND_STD:
        mean = (g.s[a] + g.s[b]) / n
        v = (g.ss[a] + g.ss[b]) / n - mean * mean
        return v if v > 0.0 else 0.0
    d = g.s[a] / na - g.s[b] / nb
    return d * d * (na * nb / n)


cdef int _union_passes(const Regions* g, const Rule* rule, int32_t a, int32_t b,
                       double key) except -1 nogil:
    cdef double na = <double>g.count[a], nb = <double>g.count[b], n = na + nb
    if rule.kind == KIND_RANGE:
        return key <= rule.threshold
    if rule.kind == KIND_STD:
        return key <= rule.threshold * rule.threshold + rule.tol_var * n
    if rule.kind == KIND_STAT:
        return fabs(g.s[a] / na - g.s[b] / nb) <= (
            rule.threshold * rule.sigma * sqrt(1.0 / na + 1.0 / nb) + rule.tol_mean * n)
    return _call(rule, n, g.s[a] + g.s[b], g.ss[a] + g.ss[b], min(g.mn[a], g.mn[b]),
                 max(g.mx[a], g.mx[b]))


cdef inline void _absorb(Regions* g, int32_t a, int32_t b) noexcept nogil:
    """Merge two regions; the larger one (on a tie, the smaller index) stays the root.

    Union by size keeps the union-find trees shallow.  Which index is the root
    changes nothing else: keys are symmetric and ties go to edge indices.
    """
    if g.count[b] > g.count[a] or (g.count[b] == g.count[a] and b < a):
        a, b = b, a
    g.parent[b] = a
    g.count[a] += g.count[b]
    g.s[a] += g.s[b]
    g.ss[a] += g.ss[b]
    if g.mn[b] < g.mn[a]:
        g.mn[a] = g.mn[b]
    if g.mx[b] > g.mx[a]:
        g.mx[a] = g.mx[b]


cdef inline bint _edge_entry(const Regions* g, int kind, const int32_t[:, ::1] edges, int eid,
                             SMEntry* e) noexcept nogil:
    """Fill ``e`` with the current key of a leaf edge; False when the edge is inside a region."""
    cdef int32_t ra = _find(g.parent, edges[eid, 0]), rb = _find(g.parent, edges[eid, 1])
    if ra == rb:
        return False
    e.key = _pair_key(g, kind, ra, rb) if ra < rb else _pair_key(g, kind, rb, ra)
    e.eid = eid
    return True


def merge_regions(int32_t[::1] parent, int64_t[::1] count, double[::1] s, double[::1] ss,
                  double[::1] mn, double[::1] mx, const int32_t[:, ::1] edges, int kind,
                  double threshold, double sigma, double shift, double tol_mean, double tol_var,
                  object predicate, int64_t min_area):
    """Greedy merging of adjacent regions, most similar pair first.

    ``parent`` (union-find) and the statistics of the roots are updated in
    place.  Heap entries are leaf edges ``(key, eid)``; an entry is current when
    the key recomputed for the roots of its two leaves equals the stored key,
    and is otherwise pushed again with the new key, so that a merge costs
    O(log E) instead of a pass over the neighbours of the merged region.  Ties
    go to the smaller edge index.

    With ``min_area == 0`` a pair merges when its union passes the rule; a
    rejected pair is remembered (one record per pair of roots) and offered
    again as soon as either region grows (for range, whose keys only grow, the
    first pair that fails ends the merging).  With ``min_area > 0`` (clean-up)
    only pairs with a region of fewer than ``min_area`` pixels are considered,
    and they merge whatever the rule says.

    Returns the counts ``(popped, re-keyed, rejected, merged)`` of heap work.
    """
    cdef Py_ssize_t n_edges = edges.shape[0], k
    cdef Py_ssize_t n_leaves = parent.shape[0]
    cdef Regions g
    cdef Rule rule
    cdef SMHeap heap
    cdef SMEntry e
    cdef int32_t ra, rb, r, cur, nxt
    cdef int side
    cdef int64_t pair
    cdef int ok
    cdef bint cleanup = min_area > 0
    cdef double key
    cdef unordered_set[int64_t] rejected
    # rejection records: leaf edge, the two roots at rejection time, a link in each root's list
    cdef vector[int32_t] rec_eid, rec_r0, rec_r1, rec_next0, rec_next1
    cdef vector[char] rec_alive
    cdef vector[int32_t] head
    cdef int64_t n_pops = 0, n_rekeyed = 0, n_rejected = 0, n_merged = 0
    g.parent = &parent[0]
    g.count = &count[0]
    g.s = &s[0]
    g.ss = &ss[0]
    g.mn = &mn[0]
    g.mx = &mx[0]
    rule.kind = kind
    rule.threshold = threshold
    rule.sigma = sigma
    rule.shift = shift
    rule.tol_mean = tol_mean
    rule.tol_var = tol_var
    rule.func = <PyObject*>predicate
    if not cleanup:
        head.assign(n_leaves, -1)
    with nogil:
        for k in range(n_edges):
            if cleanup:
                ra = _find(g.parent, edges[k, 0])
                rb = _find(g.parent, edges[k, 1])
                if count[ra] >= min_area and count[rb] >= min_area:
                    continue
            if _edge_entry(&g, kind, edges, <int>k, &e):
                heap.append(e)
        heap.heapify()
        while not heap.empty():
            e = heap.top()
            n_pops += 1
            ra = _find(g.parent, edges[e.eid, 0])
            rb = _find(g.parent, edges[e.eid, 1])
            if ra == rb:
                heap.pop()
                continue
            if ra > rb:
                ra, rb = rb, ra
            pair = <int64_t>ra * n_leaves + rb
            if not cleanup and not rejected.empty() and rejected.count(pair):
                heap.pop()
                continue  # neither region has changed since this pair failed
            key = _pair_key(&g, kind, ra, rb)
            if key != e.key:
                e.key = key
                heap.replace_top(e)
                n_rekeyed += 1
                continue
            heap.pop()
            if cleanup:
                if count[ra] < min_area or count[rb] < min_area:
                    _absorb(&g, ra, rb)
                continue
            if kind == KIND_RANGE and key > threshold:
                # range keys only grow and every stored key is a lower bound of the true
                # one, so this pair and all that remain fail now and after any merge
                break
            ok = _union_passes(&g, &rule, ra, rb, key)
            if not ok:
                n_rejected += 1
                rejected.insert(pair)
                rec_eid.push_back(e.eid)
                rec_r0.push_back(ra)
                rec_r1.push_back(rb)
                rec_next0.push_back(head[ra])
                rec_next1.push_back(head[rb])
                rec_alive.push_back(1)
                head[ra] = <int32_t>(rec_eid.size() - 1)
                head[rb] = head[ra]
                continue
            _absorb(&g, ra, rb)
            n_merged += 1
            # every pair rejected with either region may pass now
            for side in range(2):
                r = ra if side == 0 else rb
                cur = head[r]
                while cur != -1:
                    nxt = rec_next0[cur] if rec_r0[cur] == r else rec_next1[cur]
                    if rec_alive[cur]:
                        rec_alive[cur] = 0
                        rejected.erase(<int64_t>rec_r0[cur] * n_leaves + rec_r1[cur])
                        if _edge_entry(&g, kind, edges, rec_eid[cur], &e):
                            heap.push(e)
                    cur = nxt
                head[r] = -1
    return n_pops, n_rekeyed, n_rejected, n_merged


def resolve_roots(int32_t[::1] parent):
    """Point every leaf straight at its root."""
    cdef Py_ssize_t k
    with nogil:
        for k in range(parent.shape[0]):
            parent[k] = _find(&parent[0], <int32_t>k)


def relabel(int32_t[:, ::1] leaf_map, const int32_t[::1] root):
    """Overwrite the leaf map with region labels 1..K in raster order of first pixels.

    Returns ``(K, label_of_leaf)``.
    """
    cdef Py_ssize_t n_leaves = root.shape[0], i, j, k
    label_np = np.zeros(n_leaves, dtype=np.int32)
    cdef int32_t[::1] label = label_np
    cdef int32_t next_label = 0, r
    with nogil:
        for i in range(leaf_map.shape[0]):
            for j in range(leaf_map.shape[1]):
                r = root[leaf_map[i, j]]
                if label[r] == 0:
                    next_label += 1
                    label[r] = next_label
                leaf_map[i, j] = label[r]
        for k in range(n_leaves):
            label[k] = label[root[k]]
    return next_label, label_np
