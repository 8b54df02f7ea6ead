// Exact farthest point sampling on the CPU: kd-tree bucket pruning + OpenMP.
// SPDX-License-Identifier: MIT
//
// The tree follows the bucket idea of QuickFPS (Han et al., "QuickFPS:
// Architecture and Algorithm Co-Design for Farthest Point Sampling in
// Large-Scale Point Clouds", IEEE TCAD 2023): points live in kd-tree leaves,
// every node keeps the largest running minimum below it and a bounding box,
// and a new sample only visits nodes whose box can come closer to it than
// that largest minimum. Pruning is exact, so the result equals brute force.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "pointcloud/fps.h"

namespace deepscope {
namespace {

// Runs with at most this many distance evaluations (points x samples) use
// the plain loop; above it the tree wins even for 128 points (measured).
constexpr std::int64_t kBruteForceMaxWork = 8192;
// Below this many points in a whole batch, clouds run on one thread: waking
// a second one costs more than it saves.
constexpr std::int64_t kParallelMinPoints = 32768;
// Largest number of points in a kd-tree leaf.
constexpr std::int64_t kLeafSize = 64;

// Squared distance from point j of an SoA block (stride n) to q, summed
// left to right over dimensions in double.
template <int kD>
inline double squared_distance(const double* x, std::int64_t n,
                               std::int64_t j, const double* q,
                               std::int64_t D) {
  const std::int64_t dims = kD > 0 ? kD : D;
  double dx = x[j] - q[0];
  double s = dx * dx;
  for (std::int64_t d = 1; d < dims; ++d) {
    dx = x[d * n + j] - q[d];
    s = s + dx * dx;
  }
  return s;
}

// Output of one cloud: row pointers into indices / distances plus the count.
template <typename scalar_t>
struct CloudOut {
  std::int64_t* indices;
  scalar_t* distances;
  std::int64_t count = 0;

  void push(std::int64_t index, double distance) {
    indices[count] = index;
    distances[count] = static_cast<scalar_t>(distance);
    ++count;
  }
};

// Copies cloud points (n, D) into SoA doubles x[d * n + j] in `order`.
template <typename scalar_t>
void to_soa(const scalar_t* p, std::int64_t n, std::int64_t D,
            const std::int64_t* order, std::vector<double>& x) {
  x.resize(static_cast<size_t>(n * D));
  for (std::int64_t j = 0; j < n; ++j) {
    const scalar_t* row = p + order[j] * D;
    for (std::int64_t d = 0; d < D; ++d) {
      x[d * n + j] = static_cast<double>(row[d]);
    }
  }
}

// Plain loop: every step updates all minima and rescans for the argmax.
template <int kD, typename scalar_t>
void sample_brute_force(const scalar_t* p, std::int64_t n, std::int64_t D,
                        std::int64_t m, std::int64_t start,
                        CloudOut<scalar_t>& out) {
  std::vector<std::int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::vector<double> x;
  to_soa(p, n, D, order.data(), x);
  std::vector<double> mind(static_cast<size_t>(n),
                           std::numeric_limits<double>::infinity());
  std::vector<double> q(static_cast<size_t>(D));

  std::int64_t sel = start;
  double sel_distance = 0.0;
  while (true) {
    out.push(sel, sel_distance);
    if (out.count == m) return;
    for (std::int64_t d = 0; d < D; ++d) q[d] = x[d * n + sel];

    // Shrink the running minima and find the first largest one.
    double best = -1.0;
    std::int64_t best_j = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      const double dist = squared_distance<kD>(x.data(), n, j, q.data(), D);
      const double v = std::min(mind[j], dist);
      mind[j] = v;
      if (v > best) {
        best = v;
        best_j = j;
      }
    }
    // Only duplicates of selected points remain: stop.
    if (best <= 0.0) return;
    sel = best_j;
    sel_distance = best;
  }
}

// A kd-tree over one cloud of kD-dimensional points (1 <= kD <= 8) whose
// nodes track the largest running minimum below them.
template <int kD>
class BucketTree {
 public:
  // Builds the tree; `p` is the cloud (n, D) in the caller's dtype.
  template <typename scalar_t>
  BucketTree(const scalar_t* p, std::int64_t n) : n_(n) {
    std::vector<Record> recs(static_cast<size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      for (int d = 0; d < kD; ++d) {
        recs[i].c[d] = static_cast<double>(p[i * kD + d]);
      }
      recs[i].index = i;
    }
    begin_.reserve(static_cast<size_t>(n / 8 + 1));
    build(recs, 0, n);

    // Points in leaf order, stored by coordinate (SoA).
    order_.resize(static_cast<size_t>(n));
    x_.resize(static_cast<size_t>(n * kD));
    for (std::int64_t j = 0; j < n; ++j) {
      order_[j] = recs[j].index;
      for (int d = 0; d < kD; ++d) x_[d * n + j] = recs[j].c[d];
    }
    const size_t nodes = begin_.size();
    max_.assign(nodes, 0.0);
    arg_pos_.assign(nodes, 0);
    arg_index_.assign(nodes, 0);
    mind_.resize(static_cast<size_t>(n));
  }

  // Runs FPS from original index `start` for at most m samples.
  template <typename scalar_t>
  void sample(std::int64_t m, std::int64_t start, CloudOut<scalar_t>& out) {
    std::int64_t pos = 0;
    while (order_[pos] != start) ++pos;

    // First sample: minima are the distances to it.
    out.push(start, 0.0);
    if (out.count == m) return;
    load_query(pos);
    for (std::int64_t j = 0; j < n_; ++j) {
      mind_[j] = squared_distance<kD>(x_.data(), n_, j, q_, kD);
    }
    refresh(0);

    while (out.count < m) {
      // The root holds the global (largest, lowest index) minimum.
      const double best = max_[0];
      if (best <= 0.0) return;
      pos = arg_pos_[0];
      out.push(order_[pos], best);
      if (out.count == m) return;
      load_query(pos);
      update(0);
    }
  }

 private:
  void load_query(std::int64_t pos) {
    for (std::int64_t d = 0; d < kD; ++d) q_[d] = x_[d * n_ + pos];
  }

  // A point during the build: coordinates and original index.
  struct Record {
    double c[kD];
    std::int64_t index;
  };

  // Builds the subtree over recs[begin, end) and returns its node id.
  std::int32_t build(std::vector<Record>& recs, std::int64_t begin,
                     std::int64_t end) {
    const std::int32_t node = static_cast<std::int32_t>(begin_.size());
    begin_.push_back(begin);
    end_.push_back(end);
    left_.push_back(-1);
    right_.push_back(-1);
    lo_.resize(lo_.size() + kD);
    hi_.resize(hi_.size() + kD);

    // Tight bounding box of the node's points.
    double lo[kD], hi[kD];
    for (int d = 0; d < kD; ++d) lo[d] = hi[d] = recs[begin].c[d];
    for (std::int64_t j = begin + 1; j < end; ++j) {
      for (int d = 0; d < kD; ++d) {
        const double v = recs[j].c[d];
        lo[d] = v < lo[d] ? v : lo[d];
        hi[d] = v > hi[d] ? v : hi[d];
      }
    }
    int widest = 0;
    for (int d = 0; d < kD; ++d) {
      lo_[node * kD + d] = lo[d];
      hi_[node * kD + d] = hi[d];
      if (hi[d] - lo[d] > hi[widest] - lo[widest]) widest = d;
    }

    // Leaves: small ranges, or ranges of identical points. Sorting a leaf
    // by original index lets a strict '>' scan keep the lowest index.
    const auto first = recs.begin() + begin;
    const auto last = recs.begin() + end;
    if (end - begin <= kLeafSize || hi[widest] - lo[widest] <= 0.0) {
      std::sort(first, last, [](const Record& a, const Record& b) {
        return a.index < b.index;
      });
      return node;
    }

    // Split at the box midpoint (one pass); if that leaves one side with
    // under an eighth of the points, split at the median instead.
    const std::int64_t count = end - begin;
    const double cut = lo[widest] + 0.5 * (hi[widest] - lo[widest]);
    std::int64_t half =
        std::partition(first, last,
                       [widest, cut](const Record& r) {
                         return r.c[widest] < cut;
                       }) -
        first;
    if (std::min(half, count - half) < count / 8) {
      half = count / 2;
      std::nth_element(first, first + half, last,
                       [widest](const Record& a, const Record& b) {
                         return a.c[widest] < b.c[widest];
                       });
    }
    const std::int32_t l = build(recs, begin, begin + half);
    const std::int32_t r = build(recs, begin + half, end);
    left_[node] = l;
    right_[node] = r;
    return node;
  }

  // Lower bound on d2(q, any point in the node's box). Per dimension the gap
  // is rounded no larger than any point's difference, and the sum runs in
  // the same order as squared_distance, so the bound never exceeds d2.
  double box_bound(std::int32_t node) const {
    const double* lo = lo_.data() + node * kD;
    const double* hi = hi_.data() + node * kD;
    constexpr int dims = kD;
    double s = 0.0;
    for (std::int64_t d = 0; d < dims; ++d) {
      double g = 0.0;
      if (q_[d] < lo[d]) {
        g = lo[d] - q_[d];
      } else if (q_[d] > hi[d]) {
        g = q_[d] - hi[d];
      }
      s = d == 0 ? g * g : s + g * g;
    }
    return s;
  }

  // Shrinks a leaf's minima by the new sample (if `shrink`) and finds the
  // leaf's largest minimum, first in leaf order (the lowest index).
  void scan_leaf(std::int32_t node, bool shrink) {
    const std::int64_t b = begin_[node];
    const std::int64_t e = end_[node];
    double* __restrict mind = mind_.data();
    if (shrink) {
      const double* __restrict x = x_.data();
      double q[kD];
      for (int d = 0; d < kD; ++d) q[d] = q_[d];
      for (std::int64_t j = b; j < e; ++j) {
        double dx = x[j] - q[0];
        double dist = dx * dx;
        for (int d = 1; d < kD; ++d) {
          dx = x[d * n_ + j] - q[d];
          dist = dist + dx * dx;
        }
        mind[j] = dist < mind[j] ? dist : mind[j];
      }
    }
    double best = mind[b];
    for (std::int64_t j = b + 1; j < e; ++j) {
      best = mind[j] > best ? mind[j] : best;
    }
    std::int64_t best_j = b;
    while (mind[best_j] != best) ++best_j;
    max_[node] = best;
    arg_pos_[node] = best_j;
    arg_index_[node] = order_[best_j];
  }

  // Node maximum = better child: larger value, then lower original index.
  void combine(std::int32_t node) {
    const std::int32_t l = left_[node];
    const std::int32_t r = right_[node];
    const bool take_right =
        max_[r] > max_[l] ||
        (max_[r] == max_[l] && arg_index_[r] < arg_index_[l]);
    const std::int32_t c = take_right ? r : l;
    max_[node] = max_[c];
    arg_pos_[node] = arg_pos_[c];
    arg_index_[node] = arg_index_[c];
  }

  // Recomputes every node's maximum from the current minima.
  void refresh(std::int32_t node) {
    if (left_[node] < 0) {
      scan_leaf(node, false);
      return;
    }
    refresh(left_[node]);
    refresh(right_[node]);
    combine(node);
  }

  // Applies the new sample q_ below `node`, skipping nodes it cannot reach.
  void update(std::int32_t node) {
    if (box_bound(node) >= max_[node]) return;
    if (left_[node] < 0) {
      scan_leaf(node, true);
      return;
    }
    update(left_[node]);
    update(right_[node]);
    combine(node);
  }

  std::int64_t n_;
  std::vector<std::int64_t> order_;  // leaf position -> original index
  std::vector<double> x_;            // SoA coordinates in leaf order
  std::vector<double> mind_;         // running minimum per leaf position
  double q_[kD] = {};                // the newest sample
  // Per node: point range, children (-1 for leaves), box, best minimum.
  std::vector<std::int64_t> begin_, end_;
  std::vector<std::int32_t> left_, right_;
  std::vector<double> lo_, hi_;
  std::vector<double> max_;
  std::vector<std::int64_t> arg_pos_, arg_index_;
};

// One cloud of n points, m samples, starting at `start`.
template <int kD, typename scalar_t>
void sample_cloud(const scalar_t* p, std::int64_t n, std::int64_t D,
                  std::int64_t m, std::int64_t start,
                  CloudOut<scalar_t>& out) {
  if (m <= 0) return;
  if constexpr (kD == 0) {
    sample_brute_force<kD>(p, n, D, m, start, out);
  } else {
    if (n * m <= kBruteForceMaxWork || m == 1) {
      sample_brute_force<kD>(p, n, D, m, start, out);
      return;
    }
    BucketTree<kD> tree(p, n);
    tree.sample(m, start, out);
  }
}

}  // namespace

template <typename scalar_t>
void farthest_point_sample_cpu(const scalar_t* points, std::int64_t B,
                               std::int64_t N, std::int64_t D,
                               const std::int64_t* lengths,
                               const std::int64_t* n_samples,
                               const std::int64_t* starts, std::int64_t K,
                               std::int64_t* indices, scalar_t* distances,
                               std::int64_t* counts) {
  DS_CHECK_ARG(D >= 1, "points: expected at least 1 coordinate, got " << D);
  for (std::int64_t b = 0; b < B; ++b) {
    DS_CHECK_ARG(lengths[b] >= 0 && lengths[b] <= N,
                 "lengths: expected 0 <= lengths[b] <= " << N << ", got "
                                                          << lengths[b]);
    DS_CHECK_ARG(n_samples[b] >= 0 && n_samples[b] <= lengths[b] &&
                     n_samples[b] <= K,
                 "n_samples: expected 0 <= n_samples[b] <= lengths[b], got "
                     << n_samples[b]);
    const bool start_ok = starts[b] >= 0 && starts[b] < lengths[b];
    DS_CHECK_ARG(n_samples[b] == 0 || start_ok,
                 "start_index: expected 0 <= start < " << lengths[b] << ", got "
                                                        << starts[b]);
  }

  std::int64_t total_points = 0;
  for (std::int64_t b = 0; b < B; ++b) total_points += lengths[b];
  const bool parallel = B > 1 && total_points >= kParallelMinPoints;

#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (std::int64_t b = 0; b < B; ++b) {
    // Empty slots read -1 with distance 0.
    CloudOut<scalar_t> out{indices + b * K, distances + b * K};
    std::fill(out.indices, out.indices + K, std::int64_t{-1});
    std::fill(out.distances, out.distances + K, scalar_t(0));

    const scalar_t* p = points + b * N * D;
    const std::int64_t n = lengths[b];
    const std::int64_t m = n_samples[b];
    // Fixed dimensions up to 8 use the tree; wider points the plain loop.
    switch (D) {
      case 1:
        sample_cloud<1>(p, n, D, m, starts[b], out);
        break;
      case 2:
        sample_cloud<2>(p, n, D, m, starts[b], out);
        break;
      case 3:
        sample_cloud<3>(p, n, D, m, starts[b], out);
        break;
      case 4:
        sample_cloud<4>(p, n, D, m, starts[b], out);
        break;
      case 5:
        sample_cloud<5>(p, n, D, m, starts[b], out);
        break;
      case 6:
        sample_cloud<6>(p, n, D, m, starts[b], out);
        break;
      case 7:
        sample_cloud<7>(p, n, D, m, starts[b], out);
        break;
      case 8:
        sample_cloud<8>(p, n, D, m, starts[b], out);
        break;
      default:
        sample_cloud<0>(p, n, D, m, starts[b], out);
    }
    counts[b] = out.count;
  }
}

template void farthest_point_sample_cpu<float>(
    const float*, std::int64_t, std::int64_t, std::int64_t,
    const std::int64_t*, const std::int64_t*, const std::int64_t*,
    std::int64_t, std::int64_t*, float*, std::int64_t*);
template void farthest_point_sample_cpu<double>(
    const double*, std::int64_t, std::int64_t, std::int64_t,
    const std::int64_t*, const std::int64_t*, const std::int64_t*,
    std::int64_t, std::int64_t*, double*, std::int64_t*);

}  // namespace deepscope
