# Boykov-Kolmogorov max-flow on a graph stored as arcs grouped by tail node.
#
# Included by the kernels that solve graph cuts (``_grid.pyx``), so every
# routine here is a C function callable without the GIL.  Capacities are
# float64 residuals: no scaling to integers.
#
# Reference: Y. Boykov and V. Kolmogorov, "An Experimental Comparison of
# Min-Cut/Max-Flow Algorithms for Energy Minimization in Vision", IEEE TPAMI
# 26(9), 2004.  The search trees S and T grow from the terminals, an augmenting
# path is found where they touch, and nodes cut off by saturated arcs are
# re-attached ("adopted") or freed.  Tree membership uses the paper's
# distance/timestamp heuristic to prefer short paths to the terminal.
#
# Arc convention: ``parent[i]`` is the arc leaving ``i`` towards its parent.
# A source-tree node needs residual capacity on the sister of that arc (parent
# to child); a sink-tree node needs it on the arc itself (child to parent).
# ``tr[i] > 0`` is residual capacity from the source to ``i``; ``tr[i] < 0`` is
# capacity from ``i`` to the sink.

cdef enum:
    BK_FREE = -1       # in no tree
    BK_TERMINAL = -2   # child of the source or sink itself
    BK_ORPHAN = -3     # lost its parent during an augmentation
    BK_INF_DIST = 1000000000


cdef struct BKGraph:
    int n_nodes
    int n_arcs
    double sink_total    # sum of the sink capacities, set by bk_maxflow
    unsigned char grow_sink   # which tree bk_maxflow grew, see bk_in_sink
    int* first          # (n_nodes + 1,) arcs of node i are first[i] .. first[i+1]-1
    int* head           # (n_arcs,) node an arc points to
    int* sister         # (n_arcs,) the reverse arc
    double* rcap        # (n_arcs,) residual capacity
    double* tr          # (n_nodes,) signed terminal capacity, see above
    int* parent         # (n_nodes,)
    int* next_active    # (n_nodes,) -1 when not queued, i itself at the queue end
    int* ts             # (n_nodes,) time stamp of dist
    int* dist           # (n_nodes,) distance to the terminal, valid when ts is current
    unsigned char* is_sink
    int* orphans        # (n_nodes,) ring buffer
    int active_first
    int active_last
    int orphan_first
    int orphan_count
    int time


cdef inline void _bk_set_active(BKGraph* g, int i) noexcept nogil:
    if g.next_active[i] >= 0:
        return
    if g.active_last >= 0:
        g.next_active[g.active_last] = i
    else:
        g.active_first = i
    g.active_last = i
    g.next_active[i] = i


cdef inline int _bk_next_active(BKGraph* g) noexcept nogil:
    cdef int i, nxt
    while g.active_first >= 0:
        i = g.active_first
        nxt = g.next_active[i]
        if nxt == i:
            g.active_first = -1
            g.active_last = -1
        else:
            g.active_first = nxt
        g.next_active[i] = -1
        if g.parent[i] != BK_FREE:
            return i
    return -1


cdef inline void _bk_make_orphan(BKGraph* g, int i) noexcept nogil:
    g.parent[i] = BK_ORPHAN
    g.orphans[(g.orphan_first + g.orphan_count) % g.n_nodes] = i
    g.orphan_count += 1


cdef double _bk_augment(BKGraph* g, int s_node, int mid, int t_node) noexcept nogil:
    """Push the bottleneck along source -> s_node -mid-> t_node -> sink."""
    cdef double b = g.rcap[mid]
    cdef int x = s_node, a
    while True:
        a = g.parent[x]
        if a == BK_TERMINAL:
            break
        if g.rcap[g.sister[a]] < b:
            b = g.rcap[g.sister[a]]
        x = g.head[a]
    if g.tr[x] < b:
        b = g.tr[x]
    x = t_node
    while True:
        a = g.parent[x]
        if a == BK_TERMINAL:
            break
        if g.rcap[a] < b:
            b = g.rcap[a]
        x = g.head[a]
    if -g.tr[x] < b:
        b = -g.tr[x]

    g.rcap[g.sister[mid]] += b
    g.rcap[mid] -= b
    x = s_node
    while True:
        a = g.parent[x]
        if a == BK_TERMINAL:
            break
        g.rcap[a] += b
        g.rcap[g.sister[a]] -= b
        if g.rcap[g.sister[a]] <= 0.0:
            g.rcap[g.sister[a]] = 0.0
            _bk_make_orphan(g, x)
        x = g.head[a]
    g.tr[x] -= b
    if g.tr[x] <= 0.0:
        g.tr[x] = 0.0
        _bk_make_orphan(g, x)
    x = t_node
    while True:
        a = g.parent[x]
        if a == BK_TERMINAL:
            break
        g.rcap[g.sister[a]] += b
        g.rcap[a] -= b
        if g.rcap[a] <= 0.0:
            g.rcap[a] = 0.0
            _bk_make_orphan(g, x)
        x = g.head[a]
    g.tr[x] += b
    if g.tr[x] >= 0.0:
        g.tr[x] = 0.0
        _bk_make_orphan(g, x)
    return b


cdef inline int _bk_origin_dist(BKGraph* g, int j) noexcept nogil:
    """Distance from ``j`` to its terminal through valid parents, or BK_INF_DIST.

    Marks the nodes on the way with the current time stamp so later walks
    stop early.
    """
    cdef int d = 0, x = j, a
    while True:
        if g.ts[x] == g.time:
            d += g.dist[x]
            break
        a = g.parent[x]
        d += 1
        if a == BK_TERMINAL:
            g.ts[x] = g.time
            g.dist[x] = 1
            break
        if a == BK_ORPHAN:
            return BK_INF_DIST
        x = g.head[a]
    x = j
    while g.ts[x] != g.time:
        g.ts[x] = g.time
        g.dist[x] = d
        d -= 1
        x = g.head[g.parent[x]]
    return g.dist[j]


cdef void _bk_adopt(BKGraph* g, int i) noexcept nogil:
    """Find a new parent for orphan ``i`` in its own tree, or free it."""
    cdef unsigned char sink = g.is_sink[i]
    cdef int a0, j, d, best_arc = -1, best_dist = BK_INF_DIST, pa
    cdef double cap
    for a0 in range(g.first[i], g.first[i + 1]):
        cap = g.rcap[a0] if sink else g.rcap[g.sister[a0]]
        if cap <= 0.0:
            continue
        j = g.head[a0]
        if g.parent[j] == BK_FREE or g.is_sink[j] != sink:
            continue
        d = _bk_origin_dist(g, j)
        if d < best_dist:
            best_dist = d
            best_arc = a0
    if best_arc >= 0:
        g.parent[i] = best_arc
        g.ts[i] = g.time
        g.dist[i] = best_dist + 1
        return
    for a0 in range(g.first[i], g.first[i + 1]):
        j = g.head[a0]
        pa = g.parent[j]
        if pa == BK_FREE or g.is_sink[j] != sink:
            continue
        cap = g.rcap[a0] if sink else g.rcap[g.sister[a0]]
        if cap > 0.0:
            _bk_set_active(g, j)
        if pa >= 0 and g.head[pa] == i:
            _bk_make_orphan(g, j)
    g.parent[i] = BK_FREE


cdef double bk_maxflow(BKGraph* g) noexcept nogil:
    """Run max-flow from scratch on ``g``; return the flow pushed through arcs.

    ``rcap`` and ``tr`` must hold the capacities; ``first``, ``head`` and
    ``sister`` the arcs; ``next_active`` must be -1 everywhere (as every run
    leaves it).  The other arrays are work space.
    Afterwards ``bk_in_sink(g, i)`` tells the side of a minimum cut.
    """
    cdef int n = g.n_nodes, i, j, a, sa, mid, s_node, t_node, current = -1
    cdef double flow = 0.0
    g.active_first = -1
    g.active_last = -1
    g.orphan_first = 0
    g.orphan_count = 0
    g.time = 0
    g.sink_total = 0.0
    cdef int n_source = 0, n_sink = 0
    # ts, dist and is_sink matter only for nodes in a tree, which set them when
    # they join; next_active is -1 everywhere after every run.
    for i in range(n):
        if g.tr[i] == 0.0:
            g.parent[i] = BK_FREE
            continue
        g.parent[i] = BK_TERMINAL
        g.ts[i] = 0
        g.dist[i] = 1
        if g.tr[i] < 0.0:
            g.is_sink[i] = 1
            g.sink_total -= g.tr[i]
            n_sink += 1
        else:
            g.is_sink[i] = 0
            n_source += 1
    # Only the roots of the smaller tree start active.  Every node linked to a
    # terminal is already a root, so growing one tree is enough to find every
    # augmenting path, and in a move of alpha-expansion the pixels drawn to
    # the new label are usually few: the search stays where the cut can move.
    g.grow_sink = n_sink <= n_source
    for i in range(n):
        if g.parent[i] == BK_TERMINAL and g.is_sink[i] == g.grow_sink:
            _bk_set_active(g, i)

    while True:
        i = current
        if i < 0 or g.parent[i] == BK_FREE:
            i = _bk_next_active(g)
            if i < 0:
                break
        current = -1
        mid = -1
        if not g.is_sink[i]:
            for a in range(g.first[i], g.first[i + 1]):
                if g.rcap[a] <= 0.0:
                    continue
                j = g.head[a]
                if g.parent[j] == BK_FREE:
                    g.is_sink[j] = 0
                    g.parent[j] = g.sister[a]
                    g.ts[j] = g.ts[i]
                    g.dist[j] = g.dist[i] + 1
                    _bk_set_active(g, j)
                elif g.is_sink[j]:
                    mid = a
                    s_node = i
                    t_node = j
                    break
                elif g.ts[j] <= g.ts[i] and g.dist[j] > g.dist[i]:
                    g.parent[j] = g.sister[a]
                    g.ts[j] = g.ts[i]
                    g.dist[j] = g.dist[i] + 1
        else:
            for a in range(g.first[i], g.first[i + 1]):
                sa = g.sister[a]
                if g.rcap[sa] <= 0.0:
                    continue
                j = g.head[a]
                if g.parent[j] == BK_FREE:
                    g.is_sink[j] = 1
                    g.parent[j] = sa
                    g.ts[j] = g.ts[i]
                    g.dist[j] = g.dist[i] + 1
                    _bk_set_active(g, j)
                elif not g.is_sink[j]:
                    mid = sa
                    s_node = j
                    t_node = i
                    break
                elif g.ts[j] <= g.ts[i] and g.dist[j] > g.dist[i]:
                    g.parent[j] = sa
                    g.ts[j] = g.ts[i]
                    g.dist[j] = g.dist[i] + 1
        if mid < 0:
            continue
        # A path was found: the node may have unexplored arcs, so keep it.
        current = i
        g.time += 1
        flow += _bk_augment(g, s_node, mid, t_node)
        while g.orphan_count > 0:
            j = g.orphans[g.orphan_first]
            g.orphan_first = (g.orphan_first + 1) % n
            g.orphan_count -= 1
            _bk_adopt(g, j)
    return flow


cdef inline bint bk_in_sink(BKGraph* g, int i) noexcept nogil:
    """Side of ``i`` in a minimum cut after ``bk_maxflow``.

    The grown tree holds exactly the nodes joined to its terminal by residual
    paths, so the cut separates it from everything else.
    """
    if g.grow_sink:
        return g.parent[i] != BK_FREE and g.is_sink[i]
    return g.parent[i] == BK_FREE or g.is_sink[i]


cdef void csr_from_edges(
    int n_nodes, int n_edges, const int* tails, const int* heads,
    int* first, int* head, int* sister, int* arc_of_edge, int* fill,
) noexcept nogil:
    """Group the two arcs of every undirected edge by their tail node.

    ``arc_of_edge[e]`` is the arc tails[e] -> heads[e]; its sister is the
    reverse arc.  ``first`` has room for n_nodes + 1 entries; ``fill`` is
    work space for n_nodes entries.
    """
    cdef int e, i, a, b
    for i in range(n_nodes + 1):
        first[i] = 0
    for e in range(n_edges):
        first[tails[e] + 1] += 1
        first[heads[e] + 1] += 1
    for i in range(n_nodes):
        first[i + 1] += first[i]
        fill[i] = first[i]
    for e in range(n_edges):
        a = fill[tails[e]]
        fill[tails[e]] += 1
        b = fill[heads[e]]
        fill[heads[e]] += 1
        head[a] = heads[e]
        head[b] = tails[e]
        sister[a] = b
        sister[b] = a
        arc_of_edge[e] = a
