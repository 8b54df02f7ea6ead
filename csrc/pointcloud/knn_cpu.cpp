// Exact kNN and ball query on the CPU: a kd-tree per cloud, OpenMP queries.
// SPDX-License-Identifier: MIT
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "common/parallel.h"
#include "pointcloud/knn.h"

namespace deepscope {
namespace {

using Candidate = std::pair<double, std::int64_t>;  // (squared distance, j)

// Points per leaf bucket; leaves hold between kLeafSize / 2 and kLeafSize.
constexpr std::int64_t kLeafSize = 32;
// Subtrees larger than this are built as separate OpenMP tasks.
constexpr std::int64_t kTaskGrain = 16384;
// Up to this K the best list is kept sorted by insertion; above it, a heap.
constexpr std::int64_t kSortedListMax = 64;

// One kd-tree node in preorder: the left child follows its parent, the right
// child is at `right`. Leaves have dim = -1.
struct Node {
  std::int32_t dim;
  std::int32_t right;
  std::int64_t begin;      // first point (tree order)
  std::int64_t end;        // one past the last point
  double lo_max;           // largest coordinate along dim in the left child
  double hi_min;           // smallest coordinate along dim in the right child
  std::int64_t min_index;  // smallest original index in the subtree
};

// A kd-tree over one cloud: coordinates reordered so every leaf is a
// contiguous, structure-of-arrays run of exact float64 values.
struct KdTree {
  std::int64_t n = 0;
  std::vector<double> coords;  // (D, n): coords[d * n + i]
  std::vector<std::int64_t> ids;
  std::vector<Node> nodes;
};

// Number of nodes of a subtree over n points (median splits are fixed by n).
std::int64_t subtree_nodes(std::int64_t n) {
  if (n <= kLeafSize) return 1;
  return 1 + subtree_nodes(n / 2) + subtree_nodes(n - n / 2);
}

// Point storage while building. For fixed small D the points are records
// (coordinates plus original index) that nth_element moves contiguously;
// otherwise an index permutation over a row-major copy.
template <int kDim>
struct BuildPoints {
  struct Record {
    double c[kDim];
    std::int64_t id;
  };
  std::vector<Record> items;

  template <typename T>
  void load(const T* cloud, std::int64_t n, std::int64_t) {
    items.resize(n);
    for (std::int64_t i = 0; i < n; ++i) {
      for (int d = 0; d < kDim; ++d) items[i].c[d] = cloud[i * kDim + d];
      items[i].id = i;
    }
  }
  double coord(std::int64_t i, std::int64_t d) const { return items[i].c[d]; }
  std::int64_t id(std::int64_t i) const { return items[i].id; }
  void select(std::int64_t begin, std::int64_t mid, std::int64_t end,
              std::int32_t dim) {
    std::nth_element(items.begin() + begin, items.begin() + mid,
                     items.begin() + end,
                     [dim](const Record& a, const Record& b) {
                       return a.c[dim] < b.c[dim];
                     });
  }
};

template <>
struct BuildPoints<0> {
  std::vector<double> points;
  std::vector<std::int64_t> perm;
  std::int64_t dim = 0;

  template <typename T>
  void load(const T* cloud, std::int64_t n, std::int64_t D) {
    dim = D;
    points.assign(cloud, cloud + n * D);
    perm.resize(n);
    for (std::int64_t i = 0; i < n; ++i) perm[i] = i;
  }
  double coord(std::int64_t i, std::int64_t d) const {
    return points[perm[i] * dim + d];
  }
  std::int64_t id(std::int64_t i) const { return perm[i]; }
  void select(std::int64_t begin, std::int64_t mid, std::int64_t end,
              std::int32_t split) {
    const double* p = points.data();
    const std::int64_t D = dim;
    std::nth_element(perm.begin() + begin, perm.begin() + mid,
                     perm.begin() + end,
                     [p, D, split](std::int64_t a, std::int64_t b) {
                       return p[a * D + split] < p[b * D + split];
                     });
  }
};

template <int kDim>
class TreeBuilder {
 public:
  TreeBuilder(BuildPoints<kDim>& pts, std::int64_t dim, Node* nodes)
      : pts_(pts), dim_(kDim > 0 ? kDim : dim), nodes_(nodes) {}

  // Splits [begin, end) at the median of its widest dimension, recursively.
  void build(std::int64_t node, std::int64_t begin, std::int64_t end) {
    Node& nd = nodes_[node];
    nd.begin = begin;
    nd.end = end;
    if (end - begin <= kLeafSize) {
      nd.dim = -1;
      nd.right = -1;
      nd.lo_max = nd.hi_min = 0.0;
      std::int64_t lowest = pts_.id(begin);
      for (std::int64_t i = begin + 1; i < end; ++i) {
        lowest = std::min(lowest, pts_.id(i));
      }
      nd.min_index = lowest;
      return;
    }

    // Widest extent of the node's points picks the split dimension.
    const std::int32_t dim = widest_dimension(begin, end);
    const std::int64_t mid = begin + (end - begin) / 2;
    pts_.select(begin, mid, end, dim);
    double lo_max = -std::numeric_limits<double>::infinity();
    for (std::int64_t i = begin; i < mid; ++i) {
      lo_max = std::max(lo_max, pts_.coord(i, dim));
    }
    nd.dim = dim;
    nd.lo_max = lo_max;
    nd.hi_min = pts_.coord(mid, dim);
    const std::int64_t left = node + 1;
    const std::int64_t right = left + subtree_nodes(mid - begin);
    nd.right = static_cast<std::int32_t>(right);

    // Children; large ones become tasks so one big cloud builds in parallel.
    if (end - begin > kTaskGrain) {
#pragma omp task default(shared) firstprivate(left, begin, mid)
      build(left, begin, mid);
      build(right, mid, end);
#pragma omp taskwait
    } else {
      build(left, begin, mid);
      build(right, mid, end);
    }
    nodes_[node].min_index =
        std::min(nodes_[left].min_index, nodes_[right].min_index);
  }

 private:
  std::int32_t widest_dimension(std::int64_t begin, std::int64_t end) const {
    double lo[kDim > 0 ? kDim : 64], hi[kDim > 0 ? kDim : 64];
    std::int32_t best = 0;
    double best_extent = -1.0;
    // Blocks of up to 64 dimensions keep the bounds on the stack.
    for (std::int64_t d0 = 0; d0 < dim_; d0 += 64) {
      const std::int64_t nd = std::min<std::int64_t>(64, dim_ - d0);
      for (std::int64_t d = 0; d < nd; ++d) {
        lo[d] = std::numeric_limits<double>::infinity();
        hi[d] = -lo[d];
      }
      for (std::int64_t i = begin; i < end; ++i) {
        for (std::int64_t d = 0; d < nd; ++d) {
          const double v = pts_.coord(i, d0 + d);
          lo[d] = std::min(lo[d], v);
          hi[d] = std::max(hi[d], v);
        }
      }
      for (std::int64_t d = 0; d < nd; ++d) {
        if (hi[d] - lo[d] > best_extent) {
          best_extent = hi[d] - lo[d];
          best = static_cast<std::int32_t>(d0 + d);
        }
      }
    }
    return best;
  }

  BuildPoints<kDim>& pts_;
  const std::int64_t dim_;
  Node* nodes_;
};

// Builds the tree over the first n points of one (n, D) cloud. Runs inside
// an OpenMP parallel region (it may spawn tasks).
template <int kDim, typename T>
void build_tree(const T* cloud, std::int64_t n, std::int64_t D,
                KdTree& tree) {
  tree.n = n;
  if (n == 0) return;
  BuildPoints<kDim> pts;
  pts.load(cloud, n, D);
  tree.nodes.resize(subtree_nodes(n));
  TreeBuilder<kDim>(pts, D, tree.nodes.data()).build(0, 0, n);

  // Leaf-contiguous structure-of-arrays copy in tree order.
  tree.ids.resize(n);
  tree.coords.resize(n * D);
  for (std::int64_t i = 0; i < n; ++i) {
    tree.ids[i] = pts.id(i);
    for (std::int64_t d = 0; d < D; ++d) {
      tree.coords[d * n + i] = pts.coord(i, d);
    }
  }
}

template <typename T>
void build_tree_any(const T* cloud, std::int64_t n, std::int64_t D,
                    KdTree& tree) {
  if (D == 3) {
    build_tree<3>(cloud, n, D, tree);
  } else if (D == 2) {
    build_tree<2>(cloud, n, D, tree);
  } else {
    build_tree<0>(cloud, n, D, tree);
  }
}

// The K best candidates so far, sorted ascending by (distance, index).
class SortedList {
 public:
  explicit SortedList(std::int64_t k) : k_(k), items_(k) {}
  void reset() { count_ = 0; }
  bool full() const { return count_ == k_; }
  const Candidate& worst() const { return items_[k_ - 1]; }
  std::int64_t size() const { return count_; }

  // Inserts c, which the caller checked beats worst() when full.
  void push(const Candidate& c) {
    std::int64_t pos = count_ < k_ ? count_++ : k_ - 1;
    while (pos > 0 && c < items_[pos - 1]) {
      items_[pos] = items_[pos - 1];
      --pos;
    }
    items_[pos] = c;
  }
  const Candidate* finish() { return items_.data(); }

 private:
  std::int64_t k_;
  std::int64_t count_ = 0;
  std::vector<Candidate> items_;
};

// The K best candidates in a max-heap (for large K), sorted by finish().
class HeapList {
 public:
  explicit HeapList(std::int64_t k) : k_(k) { items_.reserve(k); }
  void reset() { items_.clear(); }
  bool full() const { return static_cast<std::int64_t>(items_.size()) == k_; }
  const Candidate& worst() const { return items_.front(); }
  std::int64_t size() const { return static_cast<std::int64_t>(items_.size()); }

  void push(const Candidate& c) {
    if (full()) {
      std::pop_heap(items_.begin(), items_.end());
      items_.back() = c;
    } else {
      items_.push_back(c);
    }
    std::push_heap(items_.begin(), items_.end());
  }
  const Candidate* finish() {
    std::sort_heap(items_.begin(), items_.end());
    return items_.data();
  }

 private:
  std::int64_t k_;
  std::vector<Candidate> items_;
};

// Depth-first, nearest-child-first search of one query through one tree.
// `off[d]` holds a lower bound on the squared offset along d from the query
// to the current cell; `bound` is their left-to-right sum, which never
// exceeds the float64 squared distance of any point in the cell (every step
// is monotone under rounding), so pruning with a strict `>` is exact.
template <int kDim, class List>
class Searcher {
 public:
  Searcher(const KdTree& tree, std::int64_t dim, double max_d2,
           List& list)
      : tree_(tree), dim_(kDim > 0 ? kDim : dim), max_d2_(max_d2),
        list_(list) {}

  void run(const double* q, double* off, std::int64_t exclude) {
    q_ = q;
    off_ = off;
    exclude_ = exclude;
    for (std::int64_t d = 0; d < dim_; ++d) off_[d] = 0.0;
    if (tree_.n > 0) visit(0, 0.0);
  }

 private:
  // True when no point of cell `node` (lower bound `bound`) can enter the
  // list. On an exact tie with the worst distance only a lower index can,
  // so the subtree's smallest index decides.
  bool prune(double bound, std::int32_t node) const {
    if (bound > max_d2_) return true;
    if (!list_.full()) return false;
    const Candidate& w = list_.worst();
    if (bound != w.first) return bound > w.first;
    return tree_.nodes[node].min_index > w.second;
  }

  void visit(std::int32_t node, double bound) {
    const Node& nd = tree_.nodes[node];
    if (nd.dim < 0) {
      scan_leaf(nd.begin, nd.end);
      return;
    }

    // Nearer child first; the farther one only if its bound can still win.
    const std::int32_t dim = nd.dim;
    const double qd = q_[dim];
    const double to_left = qd - nd.lo_max;   // > 0: query right of left
    const double to_right = nd.hi_min - qd;  // > 0: query left of right
    std::int32_t near_child, far_child;
    double gap;
    if (to_left < to_right) {
      near_child = node + 1;
      far_child = nd.right;
      gap = to_right;
    } else {
      near_child = nd.right;
      far_child = node + 1;
      gap = to_left;
    }
    visit(near_child, bound);

    const double old = off_[dim];
    const double gap2 = gap > 0.0 ? gap * gap : 0.0;
    if (gap2 > old) {
      off_[dim] = gap2;
      double far_bound = 0.0;
      for (std::int64_t d = 0; d < dim_; ++d) far_bound += off_[d];
      if (!prune(far_bound, far_child)) {
        visit(far_child, far_bound);
      }
      off_[dim] = old;
    } else if (!prune(bound, far_child)) {
      visit(far_child, bound);
    }
  }

  void scan_leaf(std::int64_t begin, std::int64_t end) {
    const std::int64_t n = tree_.n;
    const std::int64_t count = end - begin;
    const double* base = tree_.coords.data() + begin;

    // Squared distances of the whole bucket (vectorisable).
    double d2[kLeafSize];
    for (std::int64_t i = 0; i < count; ++i) d2[i] = 0.0;
    for (std::int64_t d = 0; d < dim_; ++d) {
      const double qd = q_[d];
      const double* col = base + d * n;
      for (std::int64_t i = 0; i < count; ++i) {
        const double diff = qd - col[i];
        d2[i] += diff * diff;
      }
    }

    // Candidates that beat the current worst, by (distance, index).
    const std::int64_t* ids = tree_.ids.data() + begin;
    double limit = max_d2_;
    if (list_.full()) limit = std::min(limit, list_.worst().first);
    for (std::int64_t i = 0; i < count; ++i) {
      if (d2[i] > limit) continue;
      const Candidate c(d2[i], ids[i]);
      if (c.second == exclude_) continue;
      if (list_.full()) {
        if (!(c < list_.worst())) continue;
      }
      list_.push(c);
      if (list_.full()) limit = std::min(max_d2_, list_.worst().first);
    }
  }

  const KdTree& tree_;
  const std::int64_t dim_;
  const double max_d2_;
  List& list_;
  const double* q_ = nullptr;
  double* off_ = nullptr;
  std::int64_t exclude_ = -1;
};

// Writes one output row from a finished list; the rest is -1 / +inf.
template <typename T>
void write_row(const Candidate* best, std::int64_t count, std::int64_t k,
               bool squared, std::int64_t* indices, T* distances,
               std::int64_t* counts) {
  for (std::int64_t i = 0; i < count; ++i) {
    indices[i] = best[i].second;
    const double d = squared ? best[i].first : std::sqrt(best[i].first);
    distances[i] = static_cast<T>(d);
  }
  for (std::int64_t i = count; i < k; ++i) {
    indices[i] = -1;
    distances[i] = std::numeric_limits<T>::infinity();
  }
  *counts = count;
}

template <typename T, int kDim, class List>
void search_all(const NeighborSearch& s, const T* query,
                const std::vector<KdTree>& trees,
                const std::int64_t* query_lengths, std::int64_t* indices,
                T* distances, std::int64_t* counts) {
  const std::int64_t B = s.batch, M = s.num_query, D = s.dim, K = s.k;
  const std::int64_t rows = B * M;

#pragma omp parallel if (rows > 64 && parallel_worth(rows * K * D))
  {
    List list(K);
    std::vector<double> q(D), off(D);

#pragma omp for schedule(dynamic, 64)
    for (std::int64_t w = 0; w < rows; ++w) {
      const std::int64_t b = w / M;
      const std::int64_t pos = w % M;
      const KdTree& tree = trees[b];

      // Self-queries run in tree order (neighbouring queries share leaves);
      // other queries in input order. Rows past the length stay missing.
      std::int64_t row = pos;
      bool valid;
      std::int64_t exclude = -1;
      if (s.self_query) {
        valid = pos < tree.n;
        if (valid) {
          row = tree.ids[pos];
          for (std::int64_t d = 0; d < D; ++d) {
            q[d] = tree.coords[d * tree.n + pos];
          }
          if (s.exclude_self) exclude = row;
        }
      } else {
        std::int64_t m_len = query_lengths ? query_lengths[b] : M;
        m_len = std::min(std::max<std::int64_t>(m_len, 0), M);
        valid = pos < m_len;
        if (valid) {
          const T* src = query + (b * M + pos) * D;
          for (std::int64_t d = 0; d < D; ++d) q[d] = src[d];
        }
      }

      list.reset();
      if (valid) {
        Searcher<kDim, List> searcher(tree, D, s.max_d2, list);
        searcher.run(q.data(), off.data(), exclude);
      }
      const std::int64_t out = b * M + row;
      write_row(list.finish(), list.size(), K, s.squared, indices + out * K,
                distances + out * K, counts + out);
    }
  }
}

template <typename T, int kDim>
void search_dispatch_list(const NeighborSearch& s, const T* query,
                          const std::vector<KdTree>& trees,
                          const std::int64_t* query_lengths,
                          std::int64_t* indices, T* distances,
                          std::int64_t* counts) {
  if (s.k <= kSortedListMax) {
    search_all<T, kDim, SortedList>(s, query, trees, query_lengths, indices,
                                    distances, counts);
  } else {
    search_all<T, kDim, HeapList>(s, query, trees, query_lengths, indices,
                                  distances, counts);
  }
}

}  // namespace

template <typename T>
void neighbor_search_cpu(const NeighborSearch& s, const T* query,
                         const T* reference, const std::int64_t* query_lengths,
                         const std::int64_t* reference_lengths,
                         std::int64_t* indices, T* distances,
                         std::int64_t* counts) {
  DS_CHECK_ARG(s.dim >= 1, "dim: expected >= 1, got " << s.dim);
  DS_CHECK_ARG(s.k >= 1, "k: expected >= 1, got " << s.k);
  const std::int64_t B = s.batch, N = s.num_ref, D = s.dim;

  // One kd-tree per cloud, built in parallel (clouds and large subtrees).
  std::vector<KdTree> trees(B);
  const bool parallel_build =
      (B > 1 || N > kTaskGrain) && parallel_worth(B * N * D);
#pragma omp parallel if (parallel_build)
#pragma omp single
  for (std::int64_t b = 0; b < B; ++b) {
#pragma omp task default(shared) firstprivate(b)
    {
      std::int64_t n = reference_lengths ? reference_lengths[b] : N;
      n = std::min(std::max<std::int64_t>(n, 0), N);
      build_tree_any(reference + b * N * D, n, D, trees[b]);
    }
  }

  // Queries, specialised for the common dimensions.
  if (D == 3) {
    search_dispatch_list<T, 3>(s, query, trees, query_lengths, indices,
                               distances, counts);
  } else if (D == 2) {
    search_dispatch_list<T, 2>(s, query, trees, query_lengths, indices,
                               distances, counts);
  } else {
    search_dispatch_list<T, 0>(s, query, trees, query_lengths, indices,
                               distances, counts);
  }
}

template void neighbor_search_cpu<float>(const NeighborSearch&, const float*,
                                         const float*, const std::int64_t*,
                                         const std::int64_t*, std::int64_t*,
                                         float*, std::int64_t*);
template void neighbor_search_cpu<double>(const NeighborSearch&,
                                          const double*, const double*,
                                          const std::int64_t*,
                                          const std::int64_t*, std::int64_t*,
                                          double*, std::int64_t*);

}  // namespace deepscope
