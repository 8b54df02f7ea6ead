# Float64 / pure-Python brute-force references for the kernel tests.
# SPDX-License-Identifier: MIT
"""Slow, obviously correct references that the kernels are checked against."""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------
# Partial-cloud samplers (csrc/pointcloud/partial*): counter-based RNG,
# random walks, random subsets, kNN tables and patches.

MASK64 = (1 << 64) - 1


def mix64(x: int) -> int:
    """SplitMix64 finaliser on Python ints, as in csrc/common/rng.h."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def random_u64(seed: int, stream: int, counter: int) -> int:
    return mix64((mix64((seed ^ mix64(stream & MASK64)) & MASK64) + counter) & MASK64)


def random_below(seed: int, stream: int, counter: int, n: int) -> int:
    """Uniform in [0, n): the high 64 bits of a 64 x 64-bit product."""
    return (random_u64(seed, stream, counter) * n) >> 64


def _walk_one(rows, n, start, target, allow_revisits, seed, stream):
    """One curve: rows[p] is the neighbour list of point p."""
    curve = [start]
    on_curve = {start}
    stack = [start]
    current = start
    while len(curve) < target:
        if allow_revisits:
            row = [int(j) for j in rows[current] if 0 <= j < n]
            if not row:
                break
            current = row[random_below(seed, stream, len(curve), len(row))]
            curve.append(current)
            continue
        if not stack:
            break
        row = [int(j) for j in rows[stack[-1]] if 0 <= j < n and j not in on_curve]
        if not row:
            stack.pop()  # backtrack; nothing is emitted
            continue
        nxt = row[random_below(seed, stream, len(curve), len(row))]
        curve.append(nxt)
        on_curve.add(nxt)
        stack.append(nxt)
    return curve


def random_walk(table, lengths, starts, length, allow_revisits, seed):
    """The walk of partial.h, step by step; returns (out, counts)."""
    table = np.asarray(table)
    starts = np.asarray(starts)
    B, A = starts.shape
    out = np.full((B, A, length), -1, dtype=np.int64)
    counts = np.zeros((B, A), dtype=np.int64)
    for b in range(B):
        n = int(lengths[b])
        target = min(length, n)
        for a in range(A):
            start = int(starts[b, a])
            if not 0 <= start < n or target == 0:
                continue
            curve = _walk_one(
                table[b], n, start, target, allow_revisits, seed, b * A + a
            )
            out[b, a, : len(curve)] = curve
            counts[b, a] = len(curve)
    return out, counts


def random_subset(lengths, n_subsets, size, seed):
    """Rejection sampling without replacement, in draw order."""
    B = len(lengths)
    out = np.full((B, n_subsets, size), -1, dtype=np.int64)
    counts = np.zeros((B, n_subsets), dtype=np.int64)
    for b in range(B):
        n = int(lengths[b])
        for s in range(n_subsets):
            drawn: list[int] = []
            counter = 0
            while len(drawn) < min(size, n):
                j = random_below(seed, b * n_subsets + s, counter, n)
                counter += 1
                if j not in drawn:
                    drawn.append(j)
            out[b, s, : len(drawn)] = drawn
            counts[b, s] = len(drawn)
    return out, counts


def knn_table(points, k, lengths=None, queries=None, exclude_self=False):
    """Brute-force float64 kNN by (squared distance, index), -1 padded.

    points (B, N, D); queries (B, M, D) or None for the points themselves
    (then ``exclude_self`` drops j == i).
    """
    points = np.asarray(points, dtype=np.float64)
    B, N, _ = points.shape
    lengths = np.full(B, N) if lengths is None else np.asarray(lengths)
    self_query = queries is None
    queries = points if self_query else np.asarray(queries, dtype=np.float64)
    M = queries.shape[1]
    out = np.full((B, M, k), -1, dtype=np.int64)
    for b in range(B):
        n = int(lengths[b])
        for i in range(M if not self_query else n):
            d = ((points[b, :n] - queries[b, i]) ** 2).sum(-1)
            order = [
                j
                for j in np.lexsort((np.arange(n), d))
                if not (exclude_self and self_query and j == i)
            ]
            out[b, i, : min(k, len(order))] = order[:k]
    return out


def patches(points, anchors, size, lengths=None):
    """Anchor, then its size - 1 nearest other points; -1 padded."""
    points = np.asarray(points, dtype=np.float64)
    B, N, _ = points.shape
    lengths = np.full(B, N) if lengths is None else np.asarray(lengths)
    anchors = np.asarray(anchors)
    A = anchors.shape[1]
    out = np.full((B, A, size), -1, dtype=np.int64)
    counts = np.zeros((B, A), dtype=np.int64)
    for b in range(B):
        n = int(lengths[b])
        for a in range(A):
            c = int(anchors[b, a])
            if not 0 <= c < n:
                continue
            d = ((points[b, :n] - points[b, c]) ** 2).sum(-1)
            order = [c] + [j for j in np.lexsort((np.arange(n), d)) if j != c]
            row = order[:size]
            out[b, a, : len(row)] = row
            counts[b, a] = len(row)
    return out, counts


# point importance (deepscope.importance: Critical Points++ / FBI measures)
# ---------------------------------------------------------------------------


def importance_reference(
    features: np.ndarray,
    *,
    p: float = 2,
    lengths: np.ndarray | None = None,
    entropy_of: str = "counts",
    eps: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(norms, counts, entropy) of (B, C, N) features, one cloud at a time.

    norms (B, N) float64, counts (B, N) int64 (argmax over the valid points
    per channel, first maximum on ties, then a bincount), entropy (B,) float64.
    """
    f = np.asarray(features, dtype=np.float64)
    B, C, N = f.shape
    lengths = np.full(B, N) if lengths is None else np.asarray(lengths)
    norms = np.zeros((B, N))
    counts = np.zeros((B, N), dtype=np.int64)
    entropy = np.zeros(B)
    for b in range(B):
        n = int(lengths[b])
        if n == 0:
            continue
        x = f[b, :, :n]
        norms[b, :n] = np.linalg.norm(x, ord=p, axis=0)
        counts[b, :n] = np.bincount(x.argmax(axis=1), minlength=n)
        imp = norms[b, :n] if entropy_of == "norms" else counts[b, :n]
        entropy[b] = entropy_reference(imp, eps=eps)
    return norms, counts, entropy


def entropy_reference(importance: np.ndarray, *, eps: float = 1e-6) -> float:
    """Normalized entropy of one cloud's importance (N,), as in CP++."""
    i = np.asarray(importance, dtype=np.float64)
    n = i.shape[0]
    if n <= 1:
        return 0.0
    # Divided by the largest term first, so sums near 1e308 stay finite.
    top = max(float(i.max()), eps)
    if top == 0:
        return 1.0
    w = i / top + eps / top
    q = w / w.sum()
    terms = np.where(q > 0, q * np.log2(np.where(q > 0, q, 1.0)), 0.0)
    return float(-terms.sum() / np.log2(n))


def least_important_reference(
    importance: np.ndarray, k: int, tiebreak: np.ndarray | None = None
) -> np.ndarray:
    """The k least important of one cloud by (importance, tiebreak, index)."""
    n = importance.shape[0]
    tb = np.zeros(n) if tiebreak is None else np.asarray(tiebreak, np.float64)
    order = sorted(range(n), key=lambda j: (float(importance[j]), tb[j], j))
    return np.asarray(order[:k], dtype=np.int64)


# kNN and ball query (deepscope.pointcloud.knn / ball_query)
# ---------------------------------------------------------------------------


def squared_distances(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(M, N) float64 squared distances, summed left to right over D."""
    diff = query[:, None, :].astype(np.float64) - reference[None, :, :].astype(
        np.float64
    )
    d2 = diff[..., 0] * diff[..., 0]
    for d in range(1, diff.shape[-1]):
        d2 = d2 + diff[..., d] * diff[..., d]
    return d2


def neighbor_reference(
    query: np.ndarray,
    reference: np.ndarray | None,
    k: int,
    *,
    max_d2: float = np.inf,
    query_lengths=None,
    reference_lengths=None,
    exclude_self: bool = False,
):
    """Brute-force (indices, squared distances, counts) for kNN / ball query.

    Inputs are (B, M, D) / (B, N, D) or unbatched; outputs follow the same
    rank. Neighbours are sorted by (distance, index) via lexsort, -1 / +inf
    padded.
    """
    query = np.asarray(query, dtype=np.float64)
    unbatched = query.ndim == 2
    self_query = reference is None
    reference = query if self_query else np.asarray(reference, dtype=np.float64)
    if unbatched:
        query, reference = query[None], reference[None]
    B, M, _ = query.shape
    N = reference.shape[1]
    ql = np.full(B, M) if query_lengths is None else np.asarray(query_lengths)
    if self_query:
        rl = ql
    else:
        rl = (
            np.full(B, N)
            if reference_lengths is None
            else np.asarray(reference_lengths)
        )
    indices = np.full((B, M, k), -1, dtype=np.int64)
    distances = np.full((B, M, k), np.inf, dtype=np.float64)
    counts = np.zeros((B, M), dtype=np.int64)
    for b in range(B):
        n = int(rl[b])
        d2_all = squared_distances(query[b, : int(ql[b])], reference[b, :n])
        for m in range(int(ql[b])):
            d2 = d2_all[m]
            j = np.arange(n)
            keep = d2 <= max_d2
            if exclude_self:
                keep &= j != m
            d2, j = d2[keep], j[keep]
            order = np.lexsort((j, d2))[:k]
            c = len(order)
            indices[b, m, :c] = j[order]
            distances[b, m, :c] = d2[order]
            counts[b, m] = c
    if unbatched:
        return indices[0], distances[0], counts[0]
    return indices, distances, counts


def knn_reference(query, reference=None, *, k, **kwargs):
    """Float64 brute-force kNN: (indices, squared distances, counts)."""
    return neighbor_reference(query, reference, k, **kwargs)


def ball_query_reference(query, reference=None, *, radius, max_neighbors, **kwargs):
    """Float64 brute-force ball query (inclusive: d2 <= radius * radius)."""
    return neighbor_reference(
        query, reference, max_neighbors, max_d2=float(radius) * float(radius), **kwargs
    )


# Farthest point sampling (deepscope.pointcloud.farthest_point_sample)
# ---------------------------------------------------------------------------


def squared_distances_to(points: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(N,) float64 squared distances, summed left to right over dimensions."""
    points = np.asarray(points, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    total = (points[:, 0] - q[0]) * (points[:, 0] - q[0])
    for d in range(1, points.shape[1]):
        diff = points[:, d] - q[d]
        total = total + diff * diff
    return total


def farthest_point_sample_reference(
    points: np.ndarray, n_samples: int, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Exact FPS of one cloud ``(n, D)``: (indices, distances) as float64.

    Stops early (shorter outputs) when every remaining point duplicates a
    selected one. Ties go to the lowest index (``np.argmax`` takes the first).
    """
    points = np.asarray(points, dtype=np.float64)
    indices: list[int] = []
    distances: list[float] = []
    if n_samples == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    sel, sel_distance = int(start), 0.0
    mind = np.full(points.shape[0], np.inf)
    while True:
        indices.append(sel)
        distances.append(sel_distance)
        if len(indices) == n_samples:
            break
        mind = np.minimum(mind, squared_distances_to(points, points[sel]))
        nxt = int(np.argmax(mind))
        if mind[nxt] <= 0.0:
            break
        sel, sel_distance = nxt, float(mind[nxt])
    return np.asarray(indices, np.int64), np.asarray(distances)


# ----------------------------------------------------------------------------
# Embedding conformity (deepscope.embedding): float64 brute force.


def conformity_reference(
    embeddings: np.ndarray, reference: np.ndarray | None = None, loo: bool = True
) -> np.ndarray:
    """Average cosine similarity of each row to the reference rows (float64).

    With ``reference`` None the set is its own reference; ``loo`` drops the
    self pair and divides by N - 1. The full cosine matrix is formed.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    if reference is None:
        cos = x @ x.T
        if loo:
            return (cos.sum(1) - np.diag(cos)) / (x.shape[0] - 1)
        return cos.mean(1)
    r = np.asarray(reference, dtype=np.float64)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    return (x @ r.T).mean(1)


# Explanations (deepscope.importance.explain: post-bottleneck norms; outliers)
# ---------------------------------------------------------------------------


def post_bottleneck_reference(features: np.ndarray, *, p: float = 2) -> np.ndarray:
    """(B, N) norm of each point's share of the max-pooled vector, one loop.

    Channel c's pooled value g goes to its first arg-max point; a point's
    importance is the p-norm of the values it receives (0 if none).
    """
    f = np.asarray(features, dtype=np.float64)
    B, C, N = f.shape
    out = np.zeros((B, N))
    for b in range(B):
        shares: list[list[float]] = [[] for _ in range(N)]
        for c in range(C):
            n = int(np.argmax(f[b, c]))
            shares[n].append(float(f[b, c, n]))
        for n in range(N):
            if shares[n]:
                out[b, n] = np.linalg.norm(np.asarray(shares[n]), ord=p)
    return out


def outliers_reference(
    importance: np.ndarray, *, fraction: float | None = None, eps: float = 1e-6
) -> np.ndarray:
    """(N,) removed mask of one cloud: top ceil(fraction N) points (at most
    N - 1), or with ``fraction=None`` the N - max(1, floor(H N)) top points;
    ties: the lower index is the more important."""
    i = np.asarray(importance, dtype=np.float64)
    n = i.shape[0]
    if fraction is None:
        keep = max(1, int(np.floor(entropy_reference(np.maximum(i, 0), eps=eps) * n)))
        r = n - min(keep, n)
    else:
        r = min(int(np.ceil(fraction * n)), n - 1)
    order = sorted(range(n), key=lambda j: (-float(i[j]), j))
    mask = np.zeros(n, dtype=bool)
    mask[order[:r]] = True
    return mask


# ---------------------------------------------------------------------------
# CMD (Correlation Mode Decomposition): mode assignment and affine fit of
# deepscope.dynamics.assign_and_fit, in float64 with two-pass (centred)
# statistics, one reference at a time as the official code loops over modes.


def cmd_assign_fit_reference(
    window: np.ndarray, references: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(modes, a, b, rho) of a (T, N) window against (M, T) references.

    rho is the Pearson correlation (0 for a constant trajectory or a constant
    reference); the mode maximises |rho| (first on ties); a, b are the least
    squares fit w ~ a r + b (a = 0, b = mean for a constant reference).
    """
    w = np.asarray(window, dtype=np.float64).T  # (N, T)
    refs = np.asarray(references, dtype=np.float64)
    wc = w - w.mean(axis=1, keepdims=True)
    w_norm = np.sqrt((wc * wc).sum(axis=1))
    N, M = w.shape[0], refs.shape[0]
    rho = np.zeros((N, M))
    slope = np.zeros((N, M))
    for m in range(M):
        rc = refs[m] - refs[m].mean()
        ss = float((rc * rc).sum())
        if ss <= 0.0:
            continue
        cov = wc @ rc
        slope[:, m] = cov / ss
        with np.errstate(invalid="ignore", divide="ignore"):
            rho[:, m] = np.where(w_norm > 0, cov / (w_norm * np.sqrt(ss)), 0.0)
    modes = np.argmax(np.abs(rho), axis=1)
    rows = np.arange(N)
    a = slope[rows, modes]
    b = w.mean(axis=1) - a * refs.mean(axis=1)[modes]
    return modes.astype(np.int64), a, b, rho[rows, modes]


def cmd_full_numpy(window_nt: np.ndarray, references: np.ndarray):
    """The straightforward NumPy CMD pass (benchmark baseline), (N, T) input.

    Full-array float64 from raw sums: Sx, Sxx, Sxy = W @ R^T, rho, argmax
    |rho|, a, b, as in the official code's vectorised assignment.
    """
    W = np.asarray(window_nt, dtype=np.float64)
    R = np.asarray(references, dtype=np.float64)
    T = W.shape[1]
    sx = W.sum(axis=1)
    sxx = (W * W).sum(axis=1)
    sxy = W @ R.T
    sr = R.sum(axis=1)
    srr = (R * R).sum(axis=1)
    num = T * sxy - sx[:, None] * sr[None, :]
    den = np.sqrt(np.abs((T * sxx - sx * sx)[:, None] * (T * srr - sr * sr)[None, :]))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.nan_to_num(num / den)
    modes = np.argmax(np.abs(rho), axis=1)
    rows = np.arange(W.shape[0])
    a = num[rows, modes] / (T * srr - sr * sr)[modes]
    b = (sx - a * sr[modes]) / T
    return modes, a, b


# deepscope.robust: ModelNet-C corruptions (rotation and dropout_local).


def modelnet_c_rotation_reference(angles: np.ndarray) -> np.ndarray:
    """``Rz @ Ry @ Rx`` of ModelNet-C's corrupt_rotate for angles (3,), float64."""
    a, b, c = (float(t) for t in angles)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def dropout_local_reference(
    points: np.ndarray, sizes: np.ndarray, ranks: list[int]
) -> np.ndarray:
    """One cloud (N, 3) after dropping clusters, one at a time, in input order.

    Cluster ``i`` is centred on the ``ranks[i]``-th remaining point (in index
    order) and removes its ``sizes[i]`` nearest remaining points (float64
    squared distances, ties to the lowest index), the centre included.
    """
    points = np.asarray(points, dtype=np.float64)
    alive = np.ones(len(points), bool)
    for size, rank in zip(sizes, ranks, strict=True):
        if size == 0:
            continue
        remaining = np.flatnonzero(alive)
        centre = points[remaining[rank]]
        dist = squared_distances_to(points[remaining], centre)
        order = np.argsort(dist, kind="stable")
        alive[remaining[order[:size]]] = False
    return np.flatnonzero(alive)


# ---------------------------------------------------------------------------
# Graphs (csrc/graph/knn_select*, csrc/graph/assemble*): brute-force feature
# kNN, dense weighted / symmetrised affinities, dense Laplacians, dense W_SSL.


def graph_knn_reference(
    query: np.ndarray, reference: np.ndarray, k: int, exclude_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN by (float64 squared distance, index); self skipped by index."""
    q = np.asarray(query, np.float64)
    r = np.asarray(reference, np.float64)
    d2 = np.zeros((q.shape[0], r.shape[0]))
    for c in range(q.shape[1]):  # left-to-right sum over dimensions
        diff = q[:, None, c] - r[None, :, c]
        d2 = d2 + diff * diff
    if exclude_self:
        np.fill_diagonal(d2, np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(r.shape[0]), d2.shape), d2), axis=1)
    idx = order[:, :k]
    return idx.astype(np.int64), np.take_along_axis(d2, idx, 1)


def graph_affinity_reference(
    idx: np.ndarray,
    d2: np.ndarray,
    weight: str,
    sigma_col: int,
    symmetrize: str,
    global_sigma: float = 0.0,
) -> np.ndarray:
    """Dense affinity from kNN lists, following the documented formulas."""
    n, k = idx.shape
    d = np.sqrt(d2)
    positive = d[:, sigma_col][d[:, sigma_col] > 0]
    floor = float(np.median(positive)) if positive.size else 1.0
    sig = np.empty(n)
    for i in range(n):
        if global_sigma > 0:
            sig[i] = global_sigma
        elif d[i, sigma_col] > 0:
            sig[i] = d[i, sigma_col]
        elif (d[i] > 0).any():
            sig[i] = d[i][d[i] > 0][0]
        else:
            sig[i] = floor
    A = np.zeros((n, n))
    has = np.zeros((n, n), bool)
    for i in range(n):
        for c in range(k):
            j = idx[i, c]
            if weight == "connectivity":
                w = 1.0
            elif weight == "distance":
                w = d[i, c]
            elif weight == "self_tuning_symmetric":
                w = np.exp(-d2[i, c] / (sig[i] * sig[j]))
            elif weight == "kth_neighbor":
                w = np.exp(-4.0 * d2[i, c] / sig[i] ** 2)
            else:
                w = np.exp(-d2[i, c] / sig[i] ** 2)
            A[i, j] = w
            has[i, j] = True
    if symmetrize == "mean":
        W = 0.5 * (A + A.T)
    elif symmetrize == "max":
        W = np.maximum(np.where(has, A, -np.inf), np.where(has.T, A.T, -np.inf))
        W[~(has | has.T)] = 0.0
    elif symmetrize == "min":
        W = np.where(has & has.T, np.minimum(A, A.T), 0.0)
    else:
        W = A
    return W


def graph_laplacian_reference(W: np.ndarray, kind: str) -> np.ndarray:
    """Dense Laplacian with self loops ignored (zero rows for isolated points)."""
    W = np.array(W, np.float64)
    np.fill_diagonal(W, 0.0)
    d = W.sum(1)
    if kind == "combinatorial":
        return np.diag(d) - W
    nz = d > 0
    if kind == "symmetric":
        s = np.where(nz, 1.0 / np.sqrt(np.where(nz, d, 1.0)), 0.0)
        return np.diag(nz.astype(float)) - s[:, None] * W * s[None, :]
    inv = np.where(nz, 1.0 / np.where(nz, d, 1.0), 0.0)
    return np.diag(nz.astype(float)) - inv[:, None] * W


def ssl_affinity_reference(
    W: np.ndarray, y: np.ndarray, mu1: float = 2.0
) -> np.ndarray:
    """Dense W_SSL step by step as in the reference code (self loops included)."""
    n = W.shape[0]
    Wd = np.array(W, np.float64)
    np.fill_diagonal(Wd, 1.0)  # each point is its own neighbour at distance 0
    lab = y >= 0
    m = lab.sum()
    mu2 = n / m - 1.0 if m else 0.0
    P = np.where((~lab)[:, None] & lab[None, :], Wd, 0.0)
    dens = 0.5 * (P + P.T)
    same = lab[:, None] & lab[None, :] & (y[:, None] == y[None, :])
    dens[same] = Wd.max()
    out = mu1 * Wd + mu2 * dens
    diff = lab[:, None] & lab[None, :] & (y[:, None] != y[None, :])
    out[diff] = 0.0
    out = 0.5 * (out + out.T)
    np.fill_diagonal(out, 0.0)
    return out


# ---------------------------------------------------------------------------
# Embedding metrics (deepscope.graph.metrics): brute-force matched accuracy
# over all permutations, NMI from its entropy definition, Grassmann distance
# from principal angles, column-cosine orthogonality error by loops.


def matched_accuracy_reference(t: np.ndarray, p: np.ndarray) -> float:
    import itertools

    classes = list(np.unique(t))
    clusters = list(np.unique(p))
    m = max(len(classes), len(clusters))
    best = 0
    for perm in itertools.permutations(range(m), len(clusters)):
        hits = 0
        for ci, c in enumerate(clusters):
            if perm[ci] < len(classes):
                hits += int(np.sum((p == c) & (t == classes[perm[ci]])))
        best = max(best, hits)
    return best / len(t)


def nmi_reference(t: np.ndarray, p: np.ndarray) -> float:
    n = len(t)

    def entropy(a):
        _, c = np.unique(a, return_counts=True)
        q = c / n
        return -float(np.sum(q * np.log(q)))

    mi = 0.0
    for a in np.unique(t):
        for b in np.unique(p):
            nab = np.sum((t == a) & (p == b))
            if nab:
                na, nb = np.sum(t == a), np.sum(p == b)
                mi += nab / n * np.log(n * nab / (na * nb))
    ht, hp = entropy(t), entropy(p)
    if ht == 0 and hp == 0:
        return 1.0
    return mi / ((ht + hp) / 2)


def grassmann_reference(A: np.ndarray, B: np.ndarray) -> float:
    from scipy.linalg import subspace_angles

    theta = subspace_angles(A, B)
    return float(np.sum(np.sin(theta) ** 2))


def orthogonality_reference(U: np.ndarray) -> float:
    k = U.shape[1]
    total = 0.0
    for i in range(k):
        for j in range(k):
            c = U[:, i] @ U[:, j] / (np.linalg.norm(U[:, i]) * np.linalg.norm(U[:, j]))
            total += (c - (1.0 if i == j else 0.0)) ** 2
    return float(np.sqrt(total))


# ---------------------------------------------------------------------------
# BASiS (deepscope.graph._basis): dense self-tuning kNN Laplacian eigenvectors
# and anchor alignment (affine least squares, orthogonal Procrustes) in NumPy.


def batch_eigenvectors_reference(
    X: np.ndarray,
    K: int,
    k: int,
    sig: int,
    gaussian: bool = False,
    kind: str = "symmetric",
    first: int = 0,
):
    idx, d2 = graph_knn_reference(X, X, k, True)
    # Global Gaussian scale: the median sig-th neighbour distance.
    g = float(np.median(np.sqrt(d2[:, sig - 1]))) if gaussian else 0.0
    W = graph_affinity_reference(
        idx, d2, "gaussian" if gaussian else "self_tuning", sig - 1, "mean", g
    )
    L = graph_laplacian_reference(W, kind)
    _, V = np.linalg.eigh(L)
    return V[:, first : first + K]


def affine_lstsq_reference(S: np.ndarray, T: np.ndarray) -> np.ndarray:
    A = np.hstack([S, np.ones((S.shape[0], 1))])
    return np.linalg.lstsq(A, T, rcond=None)[0]
