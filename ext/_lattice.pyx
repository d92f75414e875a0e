"""The permutohedral lattice on the CPU: a hash-table builder and the filter's three steps.

No validation here: ``crfseg.crf.lattice`` checks shapes, dtypes, index
ranges and the feature range (every key coordinate fits in 30 bits), then
calls these kernels on C-contiguous arrays.  Every loop runs without the GIL
over a range of points or vertices, so the caller can split one call over
several threads: ``build`` and ``splat`` run on one range (``splat`` into a
buffer of its own per range), ``find_neighbours``, ``blur_axis`` and
``slice_points`` on disjoint output ranges.

The embedding, the rounding to the enclosing simplex, the barycentric
weights and the blur neighbours follow Adams, Baek & Davis (2010) as
Krähenbühl's ``densecrf`` implements them, so the lattices agree vertex for
vertex; the arithmetic runs in double whatever the feature dtype.

Built with OpenMP (``OPENMP`` is then true), every kernel's trailing
``threads`` splits its range into that many equal parts run on OpenMP's
threads: torch's own runtime (``libgomp.so.1``, loaded by torch before this
module), so the kernels and torch's operations share one pool of workers
instead of competing for the cores.  Without OpenMP the parts run one after
the other and the caller splits the work over threads of its own.
"""

cimport cython
from cython.parallel cimport prange
from libc.math cimport exp, sqrt
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

import numpy as np

ctypedef fused real:
    float
    double

# Room per key for the feature dimension d and, for batches, the image index.
cdef enum:
    MAX_KEY = 64

cdef extern from *:
    """
    #ifdef _OPENMP
    #define CRFSEG_OPENMP 1
    #else
    #define CRFSEG_OPENMP 0
    #endif
    """
    int CRFSEG_OPENMP

OPENMP = bool(CRFSEG_OPENMP)


cdef inline int64_t _bound(int64_t start, int64_t stop, int part, int parts) noexcept nogil:
    """Where part ``part`` of ``parts`` equal parts of ``start:stop`` begins."""
    return start + (stop - start) * part // parts


cdef int _check_threads(int threads) except -1:
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return 0


cdef inline uint64_t _hash(const int32_t *key, int size) noexcept nogil:
    cdef uint64_t h = 0
    cdef int i
    for i in range(size):
        h = (h + <uint64_t><uint32_t>key[i]) * 2531011ULL
    h ^= h >> 29
    h *= 0xbf58476d1ce4e5b9ULL
    h ^= h >> 32
    return h



cdef struct Table:
    # an open-addressing hash table of int32 keys of key_size coordinates, stored one after
    # the other in insertion order, so that a vertex's index is the order of its first insert
    int key_size
    int32_t *keys
    int32_t *slots
    int64_t capacity
    int64_t key_capacity
    int64_t size


cdef int _table_grow(Table *t) noexcept nogil:
    cdef int64_t capacity = t.capacity * 2
    cdef int32_t *slots = <int32_t *> malloc(capacity * sizeof(int32_t))
    cdef int64_t v, h
    if slots == NULL:
        return -1
    memset(slots, 0xFF, capacity * sizeof(int32_t))
    for v in range(t.size):
        h = <int64_t>(_hash(t.keys + v * t.key_size, t.key_size) & <uint64_t>(capacity - 1))
        while slots[h] != -1:
            h = (h + 1) & (capacity - 1)
        slots[h] = <int32_t>v
    free(t.slots)
    t.slots = slots
    t.capacity = capacity
    return 0


cdef int64_t _table_find(Table *t, const int32_t *key, bint create) noexcept nogil:
    """The vertex of ``key``; -1 when absent (and not created), -2 when out of memory."""
    cdef int64_t h = <int64_t>(_hash(key, t.key_size) & <uint64_t>(t.capacity - 1))
    cdef int32_t entry
    cdef int32_t *grown
    cdef const int32_t *stored
    cdef size_t key_bytes = t.key_size * sizeof(int32_t)
    cdef int i
    cdef bint equal
    while True:
        entry = t.slots[h]
        if entry == -1:
            break
        stored = t.keys + <int64_t>entry * t.key_size
        equal = True
        for i in range(t.key_size):
            equal = equal & (stored[i] == key[i])
        if equal:
            return entry
        h = (h + 1) & (t.capacity - 1)
    if not create:
        return -1
    if 2 * (t.size + 1) > t.capacity:
        if _table_grow(t) != 0:
            return -2
        return _table_find(t, key, True)
    if t.size == t.key_capacity:
        grown = <int32_t *> realloc(t.keys, 2 * t.key_capacity * key_bytes)
        if grown == NULL:
            return -2
        t.keys = grown
        t.key_capacity *= 2
    memcpy(t.keys + t.size * t.key_size, key, key_bytes)
    t.slots[h] = <int32_t>t.size
    t.size += 1
    return t.size - 1


cdef int _build_chunk(Table *t, const real[:, ::1] points, const int64_t[::1] batch,
                      real[:, ::1] weights, int32_t[:, ::1] offset, int64_t start,
                      int64_t stop) noexcept nogil:
    """Insert the simplex corners of points ``start:stop`` into ``t``: 0, or -2 out of memory."""
    cdef int d = points.shape[0]
    cdef int dp1 = d + 1
    cdef bint batched = batch.shape[0] > 0
    cdef double scale[MAX_KEY]
    cdef double elevated[MAX_KEY]
    cdef double bary[MAX_KEY + 1]
    cdef int32_t rem0[MAX_KEY]
    cdef int32_t rank[MAX_KEY]
    cdef int32_t key[MAX_KEY]
    cdef int32_t previous[MAX_KEY * MAX_KEY]
    cdef int64_t previous_vertex[MAX_KEY]
    cdef double down = 1.0 / dp1
    cdef double sm, cf, v, up, dn, di
    cdef int64_t p, vertex
    cdef int i, j, r, total
    cdef size_t key_bytes = t.key_size * sizeof(int32_t)
    cdef int less
    cdef bint same
    for i in range(d):
        scale[i] = sqrt(2.0 / 3.0) * dp1 / sqrt((i + 1.0) * (i + 2.0))
    for r in range(dp1):
        previous_vertex[r] = -1
    for p in range(start, stop):
        sm = 0.0
        for j in range(d, 0, -1):
            cf = points[j - 1, p] * scale[j - 1]
            elevated[j] = sm - j * cf
            sm = sm + cf
        elevated[0] = sm
        total = 0
        for i in range(dp1):
            # the nearest multiple of d + 1, ties down (floor without a libm call)
            v = down * elevated[i]
            dn = <double>(<int64_t>v)
            if dn > v:
                dn = dn - 1.0
            up = (dn + 1.0) * dp1 if dn != v else dn * dp1
            dn = dn * dp1
            rem0[i] = <int32_t>(up if up - elevated[i] < elevated[i] - dn else dn)
            total += rem0[i]
        total = total // dp1
        for i in range(dp1):
            rank[i] = 0
        for i in range(d):
            di = elevated[i] - rem0[i]
            for j in range(i + 1, dp1):
                # branch-free: the comparisons are a coin toss for the predictor
                less = di < elevated[j] - rem0[j]
                rank[i] += less
                rank[j] += 1 - less
        for i in range(dp1):
            rank[i] += total
            if rank[i] < 0:
                rank[i] += dp1
                rem0[i] += dp1
            elif rank[i] > d:
                rank[i] -= dp1
                rem0[i] -= dp1
        for i in range(dp1 + 1):
            bary[i] = 0.0
        for i in range(dp1):
            v = (elevated[i] - rem0[i]) * down
            bary[d - rank[i]] += v
            bary[d - rank[i] + 1] -= v
        bary[0] += 1.0 + bary[dp1]
        if batched:
            key[d] = <int32_t>batch[p]
        for r in range(dp1):
            same = previous_vertex[r] >= 0
            for i in range(d):
                key[i] = rem0[i] + r - dp1 * (rank[i] > d - r)
                same = same & (key[i] == previous[r * MAX_KEY + i])
            if batched:
                same = same & (key[d] == previous[r * MAX_KEY + d])
            # neighbouring points mostly share corners: skip the hash then
            if same:
                vertex = previous_vertex[r]
            else:
                vertex = _table_find(t, key, True)
                if vertex < 0:
                    return -2
                memcpy(previous + r * MAX_KEY, key, key_bytes)
                previous_vertex[r] = vertex
            offset[p, r] = <int32_t>vertex
            weights[p, r] = <real>bary[r]
    return 0


cdef void _neighbours_chunk(Table *t, int d, int32_t[:, :, ::1] out, int64_t start,
                            int64_t stop) noexcept nogil:
    cdef int32_t lower[MAX_KEY]
    cdef int32_t upper[MAX_KEY]
    cdef const int32_t *key
    cdef int64_t v, found
    cdef int axis, i
    cdef int32_t missing = <int32_t>t.size
    for v in range(start, stop):
        key = t.keys + v * t.key_size
        for axis in range(d + 1):
            for i in range(t.key_size):
                lower[i] = key[i]
                upper[i] = key[i]
            for i in range(d):
                lower[i] = key[i] - 1
                upper[i] = key[i] + 1
            if axis < d:
                lower[axis] = key[axis] + d
                upper[axis] = key[axis] - d
            found = _table_find(t, lower, False)
            out[axis, 0, v] = missing if found < 0 else <int32_t>found
            found = _table_find(t, upper, False)
            out[axis, 1, v] = missing if found < 0 else <int32_t>found


cdef class VertexTable:
    """Lattice vertices by integer key: an open-addressing hash table.

    Keys are ``key_size`` int32 coordinates stored one after the other in
    insertion order, so a vertex's index is the order in which the points
    first touched it.
    """

    cdef Table t

    def __cinit__(self, int key_size, int64_t expected):
        self.t.key_size = key_size
        self.t.size = 0
        self.t.capacity = 1024
        while self.t.capacity < 2 * expected:
            self.t.capacity *= 2
        self.t.key_capacity = max(expected, 256)
        self.t.slots = <int32_t *> malloc(self.t.capacity * sizeof(int32_t))
        self.t.keys = <int32_t *> malloc(self.t.key_capacity * key_size * sizeof(int32_t))
        if self.t.slots == NULL or self.t.keys == NULL:
            raise MemoryError("the lattice's vertex table does not fit in memory")
        memset(self.t.slots, 0xFF, self.t.capacity * sizeof(int32_t))

    def __dealloc__(self):
        free(self.t.slots)
        free(self.t.keys)

    @property
    def size(self) -> int:
        """The number of vertices."""
        return self.t.size

    def build(self, const real[:, ::1] points, const int64_t[::1] batch,
              real[:, ::1] weights, int32_t[:, ::1] offset, int64_t start, int64_t stop):
        """Insert the simplex corners of points ``start:stop`` of ``(d, P)`` points.

        Fills their rows of the ``(P, d+1)`` weights and vertices (this
        table's numbering).  ``batch`` (length ``P``, or empty for one image)
        is the image of each point, stored as one more key coordinate so that
        images never share a vertex.  Returns 0, or -2 when the table runs out
        of memory.
        """
        cdef int status
        with nogil:
            status = _build_chunk(&self.t, points, batch, weights, offset, start, stop)
        return status

    def merge(self, VertexTable other, int32_t[::1] remap):
        """Insert ``other``'s vertices; ``remap[v]`` is the number here of its vertex ``v``.

        Returns 0, or -2 when the table runs out of memory.
        """
        cdef int64_t v, found
        cdef int status = 0
        with nogil:
            for v in range(other.t.size):
                found = _table_find(&self.t, other.t.keys + v * other.t.key_size, True)
                if found < 0:
                    status = -2
                    break
                remap[v] = <int32_t>found
        return status

    def find_neighbours(self, int d, int32_t[:, :, ::1] out, int64_t start, int64_t stop,
                        int threads=1):
        """``out[axis, 0 or 1, v]``: vertex ``v``'s two blur neighbours along each axis.

        Neighbour 0 adds ``d`` to coordinate ``axis`` and subtracts 1 from the
        others, neighbour 1 the opposite (the last axis changes only the
        others); an absent neighbour is written as ``size``.  Vertices
        ``start:stop`` only; the table is read, never changed.
        """
        cdef int part
        cdef Table *t = &self.t
        _check_threads(threads)
        for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                           num_threads=threads):
            _neighbours_chunk(t, d, out, _bound(start, stop, part, threads),
                              _bound(start, stop, part + 1, threads))


def build_tables(list tables, const real[:, ::1] points, const int64_t[::1] batch,
                 real[:, ::1] weights, int32_t[:, ::1] offset, const int64_t[::1] bounds):
    """:meth:`VertexTable.build` of points ``bounds[i]:bounds[i + 1]`` into ``tables[i]``.

    The tables fill at once, one thread each; the statuses (0, or -2 when a
    table ran out of memory), one per table.
    """
    cdef int count = len(tables)
    cdef int i
    if bounds.shape[0] != count + 1:
        raise ValueError(f"{count} tables need {count + 1} bounds, got {bounds.shape[0]}")
    cdef Table **each = <Table **> malloc(max(count, 1) * sizeof(Table *))
    if each == NULL:
        raise MemoryError("the lattice's vertex tables do not fit in memory")
    statuses = np.zeros(count, dtype=np.int32)
    cdef int32_t[::1] status = statuses
    for i in range(count):
        each[i] = &(<VertexTable?>tables[i]).t
    try:
        for i in prange(count, nogil=True, schedule="static", chunksize=1, num_threads=count):
            status[i] = _build_chunk(each[i], points, batch, weights, offset, bounds[i],
                                     bounds[i + 1])
    finally:
        free(each)
    return [int(s) for s in statuses]


cdef void _splat_chunk(const real[:, ::1] values, const real[:, ::1] weights,
                       const int32_t[:, ::1] offset, const real[::1] scale, real *out,
                       bint softmax, int64_t start, int64_t stop) noexcept nogil:
    cdef int64_t p
    cdef int r, c
    cdef int corners = offset.shape[1]
    cdef int channels = values.shape[1]
    cdef bint scaled = scale.shape[0] > 0
    cdef real probs[64]
    cdef real w, factor = 1, v0, v1, top
    cdef double total
    cdef real *row
    cdef const real *source
    if softmax:
        for p in range(start, stop):
            source = &values[p, 0]
            top = source[0]
            for c in range(1, channels):
                top = source[c] if source[c] > top else top
            total = 0.0
            for c in range(channels):
                probs[c] = <real>exp(source[c] - top)
                total += probs[c]
            total = (scale[p] if scaled else 1.0) / total
            for c in range(channels):
                probs[c] = <real>(probs[c] * total)
            for r in range(corners):
                w = weights[p, r]
                row = out + <int64_t>offset[p, r] * channels
                for c in range(channels):
                    row[c] += w * probs[c]
    elif channels == 2:  # a binary mask: the loop over the channels would cost more than it does
        for p in range(start, stop):
            factor = scale[p] if scaled else 1
            v0 = values[p, 0] * factor
            v1 = values[p, 1] * factor
            for r in range(corners):
                w = weights[p, r]
                row = out + <int64_t>offset[p, r] * 2
                row[0] += w * v0
                row[1] += w * v1
    else:
        for p in range(start, stop):
            source = &values[p, 0]
            if scaled:
                factor = scale[p]
            for r in range(corners):
                w = weights[p, r] * factor
                row = out + <int64_t>offset[p, r] * channels
                for c in range(channels):
                    row[c] += w * source[c]


cdef int _splat(const real[:, ::1] values, const real[:, ::1] weights,
                const int32_t[:, ::1] offset, const real[::1] scale, real[:, ::1] out,
                real[:, :, ::1] spare, bint softmax, int64_t start, int64_t stop,
                int threads) except -1:
    cdef int part, k
    cdef int64_t i, size = out.shape[0] * out.shape[1]
    cdef real *target
    cdef real *total
    cdef const real *extra
    _check_threads(threads)
    if threads > 1 and (spare.shape[0] < threads - 1 or spare.shape[1] != out.shape[0]
                        or spare.shape[2] != out.shape[1]):
        raise ValueError(f"{threads} threads need ({threads - 1}, {out.shape[0]}, "
                         f"{out.shape[1]}) spare buffers, got ({spare.shape[0]}, {spare.shape[1]}, "
                         f"{spare.shape[2]})")
    if softmax and values.shape[1] > 64:
        raise ValueError(f"the splat's softmax takes at most 64 classes, got {values.shape[1]}")
    # each part splats into a buffer of its own (the first into out): no write races
    for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                       num_threads=threads):
        target = &out[0, 0] if part == 0 else &spare[part - 1, 0, 0]
        memset(target, 0, size * sizeof(real))
        _splat_chunk(values, weights, offset, scale, target, softmax,
                     _bound(start, stop, part, threads), _bound(start, stop, part + 1, threads))
    if threads > 1:
        total = &out[0, 0]
        extra = &spare[0, 0, 0]
        for i in prange(size, nogil=True, schedule="static", num_threads=threads):
            for k in range(threads - 1):
                total[i] += extra[k * size + i]
    return 0


@cython.boundscheck(False)
@cython.wraparound(False)
def splat(const real[:, ::1] values, const real[:, ::1] weights, const int32_t[:, ::1] offset,
          const real[::1] scale, real[:, ::1] out, real[:, :, ::1] spare, int64_t start,
          int64_t stop, int threads=1):
    """``out[offset[p, r]] += scale[p] * weights[p, r] * values[p]`` for points ``start:stop``.

    Zeroes ``out`` first; an empty ``scale`` stands for ones.  With
    ``threads > 1`` each part after the first splats into its row of the
    ``(threads - 1, M, C)`` ``spare`` buffers, summed into ``out`` after.
    """
    _splat(values, weights, offset, scale, out, spare, False, start, stop, threads)


@cython.boundscheck(False)
@cython.wraparound(False)
def splat_softmax(const real[:, ::1] scores, const real[:, ::1] weights,
                  const int32_t[:, ::1] offset, const real[::1] scale, real[:, ::1] out,
                  real[:, :, ::1] spare, int64_t start, int64_t stop, int threads=1):
    """:func:`splat` of ``softmax(scores[p])``, each row's softmax taken on the fly.

    Spares the ``(P, C)`` marginals when there are few classes (``C <= 64``).
    """
    _splat(scores, weights, offset, scale, out, spare, True, start, stop, threads)


cdef void _slice_chunk(const real[:, ::1] vertex_values, const real[:, ::1] weights,
                       const int32_t[:, ::1] offset, const real[::1] scale,
                       const real[:, ::1] scores, real[:, ::1] out, int mode, int64_t start,
                       int64_t stop) noexcept nogil:
    # mode 0: out = slice; 1: out = scores - scale * slice; 2: out -= scale * slice
    cdef int64_t p
    cdef int r, c
    cdef int corners = offset.shape[1]
    cdef int channels = out.shape[1]
    cdef bint scaled = scale.shape[0] > 0
    cdef real w, factor = 1, v0, v1
    cdef real *row
    cdef const real *source
    if channels == 2 and mode != 0:  # a binary mask: a loop over the channels costs more
        for p in range(start, stop):
            v0 = 0
            v1 = 0
            for r in range(corners):
                w = weights[p, r]
                source = &vertex_values[offset[p, r], 0]
                v0 += w * source[0]
                v1 += w * source[1]
            factor = scale[p] if scaled else 1
            row = &out[p, 0]
            if mode == 1:
                row[0] = scores[p, 0] - factor * v0
                row[1] = scores[p, 1] - factor * v1
            else:
                row[0] -= factor * v0
                row[1] -= factor * v1
        return
    for p in range(start, stop):
        row = &out[p, 0]
        if mode == 1:
            source = &scores[p, 0]
            for c in range(channels):
                row[c] = source[c]
        elif mode == 0:
            for c in range(channels):
                row[c] = 0
        if scaled:
            factor = scale[p]
        for r in range(corners):
            w = weights[p, r] * factor
            source = &vertex_values[offset[p, r], 0]
            if mode == 0:
                for c in range(channels):
                    row[c] += w * source[c]
            else:
                for c in range(channels):
                    row[c] -= w * source[c]


@cython.boundscheck(False)
@cython.wraparound(False)
def slice_points(const real[:, ::1] vertex_values, const real[:, ::1] weights,
                 const int32_t[:, ::1] offset, real[:, ::1] out, int64_t start, int64_t stop,
                 int threads=1):
    """``out[p] = sum over r of weights[p, r] * vertex_values[offset[p, r]]`` for ``start:stop``."""
    cdef int part
    _check_threads(threads)
    for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                       num_threads=threads):
        _slice_chunk(vertex_values, weights, offset, vertex_values[0, :0], out, out, 0,
                     _bound(start, stop, part, threads), _bound(start, stop, part + 1, threads))


@cython.boundscheck(False)
@cython.wraparound(False)
def slice_subtract(const real[:, ::1] vertex_values, const real[:, ::1] weights,
                   const int32_t[:, ::1] offset, const real[::1] scale,
                   const real[:, ::1] scores, real[:, ::1] out, bint first, int64_t start,
                   int64_t stop, int threads=1):
    """``out[p] (= scores[p] when first) -= scale[p] * sum over r of weights[p, r] * vertex_values[offset[p, r]]``.

    Points ``start:stop``; one lattice's messages after another accumulate
    into ``out``.  An empty ``scale`` stands for ones.
    """
    cdef int part
    cdef int mode = 1 if first else 2
    _check_threads(threads)
    for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                       num_threads=threads):
        _slice_chunk(vertex_values, weights, offset, scale, scores, out, mode,
                     _bound(start, stop, part, threads), _bound(start, stop, part + 1, threads))


cdef void _blur_chunk(const real[:, ::1] source, real[:, ::1] out,
                      const int32_t[:, ::1] neighbours, int64_t base, int64_t start,
                      int64_t stop) noexcept nogil:
    cdef int64_t v, n
    cdef int side, c
    cdef int channels = source.shape[1]
    cdef int64_t size = neighbours.shape[1]
    cdef real *row
    cdef const real *other
    for v in range(start, stop):
        row = &out[base + v, 0]
        other = &source[base + v, 0]
        for c in range(channels):
            row[c] = other[c]
        for side in range(2):
            n = neighbours[side, v]
            if n < size:
                other = &source[base + n, 0]
                for c in range(channels):
                    row[c] += 0.5 * other[c]


@cython.boundscheck(False)
@cython.wraparound(False)
def blur_axis(const real[:, ::1] source, real[:, ::1] out, const int32_t[:, ::1] neighbours,
              int64_t base, int64_t start, int64_t stop, int threads=1):
    """One blur step over vertices ``base + start : base + stop``: ``x + (x[n0] + x[n1]) / 2``.

    ``neighbours`` is ``(2, size)`` in the group's own numbering (``size`` =
    absent), the group starting at row ``base`` of ``source`` and ``out``.
    """
    cdef int part
    _check_threads(threads)
    for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                       num_threads=threads):
        _blur_chunk(source, out, neighbours, base, _bound(start, stop, part, threads),
                    _bound(start, stop, part + 1, threads))


cdef void _renumber_chunk(int32_t[:, ::1] offset, const int32_t[::1] remap, int64_t start,
                          int64_t stop) noexcept nogil:
    cdef int64_t p
    cdef int r
    for p in range(start, stop):
        for r in range(offset.shape[1]):
            offset[p, r] = remap[offset[p, r]]


@cython.boundscheck(False)
@cython.wraparound(False)
def renumber(int32_t[:, ::1] offset, const int32_t[::1] remap, int64_t start, int64_t stop,
             int threads=1):
    """``offset[p, r] = remap[offset[p, r]]`` for points ``start:stop``."""
    cdef int part
    _check_threads(threads)
    for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                       num_threads=threads):
        _renumber_chunk(offset, remap, _bound(start, stop, part, threads),
                        _bound(start, stop, part + 1, threads))


cdef void _normalize_chunk(const real[:, ::1] vertex_sums, const real[:, ::1] weights,
                           const int32_t[:, ::1] offset, const int32_t[::1] lattice_of_corner,
                           const double[::1] alphas, int mode, real[:, ::1] splat_out,
                           real[:, ::1] slice_out, bint scale_slice, int64_t start,
                           int64_t stop) noexcept nogil:
    cdef int64_t p
    cdef int r, k
    cdef int corners = offset.shape[1]
    cdef int lattices = alphas.shape[0]
    cdef double sums[MAX_KEY]
    cdef double w, n, a
    for p in range(start, stop):
        for k in range(lattices):
            sums[k] = 0.0
        for r in range(corners):
            sums[lattice_of_corner[r]] += weights[p, r] * vertex_sums[offset[p, r], 0]
        for k in range(lattices):
            sums[k] = sums[k] * alphas[k] + 1e-20
        for r in range(corners):
            k = lattice_of_corner[r]
            w = weights[p, r]
            n = sums[k]
            a = alphas[k] if scale_slice else 1.0
            if mode == 1:
                w = w / sqrt(n)
                splat_out[p, r] = <real>w
                slice_out[p, r] = <real>(w * a)
            elif mode == 2:
                slice_out[p, r] = <real>(w * a)
                splat_out[p, r] = <real>(w / n)
            else:
                slice_out[p, r] = <real>(w * a / n)
                splat_out[p, r] = <real>w


@cython.boundscheck(False)
@cython.wraparound(False)
def normalize(const real[:, ::1] vertex_sums, const real[:, ::1] weights,
              const int32_t[:, ::1] offset, const int32_t[::1] lattice_of_corner,
              const double[::1] alphas, int mode, real[:, ::1] splat_out,
              real[:, ::1] slice_out, bint scale_slice, int64_t start, int64_t stop,
              int threads=1):
    """Normalised splat and slice weights of points ``start:stop``.

    ``vertex_sums`` is the ``(M, 1)`` blurred splat of ones; corner ``r``
    belongs to lattice ``lattice_of_corner[r]`` of scale ``alphas[k]``, whose
    row sum ``n_k = alpha_k * sum over its corners of w * vertex_sums + 1e-20``
    is densecrf's normalisation.  ``mode`` 1: splat and slice ``w / sqrt(n)``;
    2: splat ``w / n``; 3: slice ``w / n``; the slice is multiplied by
    ``alpha`` when ``scale_slice``.  Each row's weights are read before its
    outputs are written, so ``splat_out`` may be ``weights`` itself, and with
    ``scale_slice`` false in mode 1 ``slice_out`` may be ``splat_out``.
    """
    cdef int part
    _check_threads(threads)
    if alphas.shape[0] > MAX_KEY:
        raise ValueError(f"at most {MAX_KEY} lattices, got {alphas.shape[0]}")
    for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                       num_threads=threads):
        _normalize_chunk(vertex_sums, weights, offset, lattice_of_corner, alphas, mode,
                         splat_out, slice_out, scale_slice, _bound(start, stop, part, threads),
                         _bound(start, stop, part + 1, threads))


cdef void _matmul_chunk(const real[:, ::1] x, const real[:, ::1] matrix, real[:, ::1] out,
                        int64_t start, int64_t stop) noexcept nogil:
    cdef int64_t i
    cdef int a, b
    cdef int inner = matrix.shape[0]
    cdef int outer = matrix.shape[1]
    cdef real v
    cdef real *row
    cdef const real *m
    for i in range(start, stop):
        row = &out[i, 0]
        for b in range(outer):
            row[b] = 0
        for a in range(inner):
            v = x[i, a]
            m = &matrix[a, 0]
            for b in range(outer):
                row[b] += v * m[b]


@cython.boundscheck(False)
@cython.wraparound(False)
def matmul_rows(const real[:, ::1] x, const real[:, ::1] matrix, real[:, ::1] out,
                int64_t start, int64_t stop, int threads=1):
    """``out[i] = x[i] @ matrix`` for rows ``start:stop`` (``matrix`` is ``(C, C')``)."""
    cdef int part
    _check_threads(threads)
    for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                       num_threads=threads):
        _matmul_chunk(x, matrix, out, _bound(start, stop, part, threads),
                      _bound(start, stop, part + 1, threads))


cdef void _add_chunk(real[:, ::1] out, const real[:, ::1] other, int64_t start,
                     int64_t stop) noexcept nogil:
    cdef int64_t i
    cdef int c
    for i in range(start, stop):
        for c in range(out.shape[1]):
            out[i, c] += other[i, c]


@cython.boundscheck(False)
@cython.wraparound(False)
def add_rows(real[:, ::1] out, const real[:, ::1] other, int64_t start, int64_t stop,
             int threads=1):
    """``out[i] += other[i]`` for rows ``start:stop``."""
    cdef int part
    _check_threads(threads)
    for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                       num_threads=threads):
        _add_chunk(out, other, _bound(start, stop, part, threads),
                   _bound(start, stop, part + 1, threads))


cdef void _point_scales_chunk(const real[:, ::1] vertex_sums, const real[:, ::1] weights,
                              const int32_t[:, ::1] offset, double alpha, bint square_root,
                              real[::1] out, int64_t start, int64_t stop) noexcept nogil:
    cdef int64_t p
    cdef int r
    cdef double n
    for p in range(start, stop):
        n = 0.0
        for r in range(offset.shape[1]):
            n = n + weights[p, r] * vertex_sums[offset[p, r], 0]
        n = n * alpha + 1e-20
        out[p] = <real>(1.0 / sqrt(n) if square_root else 1.0 / n)


@cython.boundscheck(False)
@cython.wraparound(False)
def point_scales(const real[:, ::1] vertex_sums, const real[:, ::1] weights,
                 const int32_t[:, ::1] offset, double alpha, bint square_root,
                 real[::1] out, int64_t start, int64_t stop, int threads=1):
    """densecrf's normalisation of one lattice as one factor per point, ``start:stop``.

    ``n = alpha * sum over r of weights[p, r] * vertex_sums[offset[p, r]] + 1e-20``
    (the lattice's filter of ones at the point); ``out[p] = 1 / sqrt(n)``
    when ``square_root`` (symmetric), else ``1 / n``.
    """
    cdef int part
    _check_threads(threads)
    for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                       num_threads=threads):
        _point_scales_chunk(vertex_sums, weights, offset, alpha, square_root, out,
                            _bound(start, stop, part, threads),
                            _bound(start, stop, part + 1, threads))


cdef void _softmax_chunk(const real[:, ::1] scores, real[:, ::1] out, int64_t start,
                         int64_t stop) noexcept nogil:
    cdef int64_t i
    cdef int c
    cdef int channels = scores.shape[1]
    cdef real top
    cdef double total
    cdef const real *row
    cdef real *target
    for i in range(start, stop):
        row = &scores[i, 0]
        target = &out[i, 0]
        top = row[0]
        for c in range(1, channels):
            top = row[c] if row[c] > top else top
        total = 0.0
        for c in range(channels):
            target[c] = <real>exp(row[c] - top)
            total += target[c]
        total = 1.0 / total
        for c in range(channels):
            target[c] = <real>(target[c] * total)


@cython.boundscheck(False)
@cython.wraparound(False)
def softmax_rows(const real[:, ::1] scores, real[:, ::1] out, int64_t start, int64_t stop,
                 int threads=1):
    """``out[i] = softmax(scores[i])`` for rows ``start:stop``, each shifted by its maximum."""
    cdef int part
    _check_threads(threads)
    for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                       num_threads=threads):
        _softmax_chunk(scores, out, _bound(start, stop, part, threads),
                       _bound(start, stop, part + 1, threads))


cdef void _scale_chunk(const real[:, ::1] x, const real[::1] factors, real[:, ::1] out,
                       int64_t start, int64_t stop) noexcept nogil:
    cdef int64_t i
    cdef int c
    for i in range(start, stop):
        for c in range(x.shape[1]):
            out[i, c] = x[i, c] * factors[c]


@cython.boundscheck(False)
@cython.wraparound(False)
def scale_columns(const real[:, ::1] x, const real[::1] factors, real[:, ::1] out,
                  int64_t start, int64_t stop, int threads=1):
    """``out[i, c] = x[i, c] * factors[c]`` for rows ``start:stop``."""
    cdef int part
    _check_threads(threads)
    for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                       num_threads=threads):
        _scale_chunk(x, factors, out, _bound(start, stop, part, threads),
                     _bound(start, stop, part + 1, threads))


cdef void _diagonal_chunk(const int32_t[:, ::1] offset, const real[:, ::1] weights,
                          const int32_t[:, :, ::1] neighbours, double[::1] out, int64_t start,
                          int64_t stop) noexcept nogil:
    cdef int64_t p, vertex_count = neighbours.shape[2]
    cdef int corners = offset.shape[1]
    cdef int a, t, b, j, axis
    cdef int32_t current, target
    cdef int perm[64]
    cdef bint mask[64]
    cdef double total, half_t, half_r
    half_r = 1.0
    for j in range(corners):
        half_r *= 0.5
    for p in range(start, stop):
        for t in range(corners):
            perm[t] = -1
            target = offset[p, (t + 1) % corners]
            for axis in range(corners):
                if neighbours[axis, 1, offset[p, t]] == target:
                    perm[t] = axis
                    break
        total = 0.0
        for a in range(corners):
            for j in range(corners):
                mask[j] = False
            half_t = 1.0
            for t in range(corners):
                b = (a + t) % corners
                if t > 0:
                    if perm[(b - 1 + corners) % corners] >= 0:
                        mask[perm[(b - 1 + corners) % corners]] = True
                    half_t *= 0.5
                # backward along the masked axes
                current = offset[p, a]
                for j in range(corners):
                    if mask[j]:
                        current = neighbours[j, 1, current]
                        if current == vertex_count:
                            break
                if current == offset[p, b]:
                    total += weights[p, a] * weights[p, b] * half_t
                # forward along the others
                current = offset[p, a]
                for j in range(corners):
                    if not mask[j]:
                        current = neighbours[j, 0, current]
                        if current == vertex_count:
                            break
                if current == offset[p, b]:
                    total += weights[p, a] * weights[p, b] * (half_r / half_t)
            # backward along every axis, back to the same corner
            current = offset[p, a]
            for j in range(corners):
                current = neighbours[j, 1, current]
                if current == vertex_count:
                    break
            if current == offset[p, a]:
                total += weights[p, a] * weights[p, a] * half_r
        out[p] = total


@cython.boundscheck(False)
@cython.wraparound(False)
def diagonal(const int32_t[:, ::1] offset, const real[:, ::1] weights,
             const int32_t[:, :, ::1] neighbours, double[::1] out, int64_t start, int64_t stop,
             int threads=1):
    """``out[p]`` = the un-normalised filter's weight of point ``p`` with itself, ``p`` in ``start:stop``.

    ``offset`` and ``weights`` are the ``(P, R)`` corners and barycentric
    weights, ``neighbours`` the ``(R, 2, M)`` forward / backward neighbour of
    every vertex along every axis (``M`` where absent).  The blur's entry
    between corners ``a`` and ``b`` of a simplex sums the walks that take at
    most one step per axis, in axis order, each step halving the weight:
    backward along the axes that lead from ``a`` to ``b``, forward along all
    the others, and from a corner to itself also backward along every axis.
    The lattice's scale ``alpha`` is left to the caller.
    """
    cdef int part
    _check_threads(threads)
    if offset.shape[1] > 64:
        raise ValueError(f"at most 64 corners, got {offset.shape[1]}")
    for part in prange(threads, nogil=True, schedule="static", chunksize=1,
                       num_threads=threads):
        _diagonal_chunk(offset, weights, neighbours, out, _bound(start, stop, part, threads),
                        _bound(start, stop, part + 1, threads))
