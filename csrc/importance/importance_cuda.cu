// CUDA point importance: fused partial norms/maxima, ordered merges, entropy.
// SPDX-License-Identifier: MIT
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "common/cuda_utils.cuh"
#include "importance/importance.h"

namespace deepscope {
namespace {

using std::int64_t;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Channels first: a block covers 256 points x kChunkCF channels.
constexpr int kChunkCF = 32;
// Channels last: a block covers kTileCL points x 256 channels.
constexpr int kTileCL = 32;
constexpr int64_t kNoIndex = std::numeric_limits<int64_t>::max();
constexpr unsigned kFullMask = 0xffffffffu;

__device__ inline int64_t valid_points_dev(const int64_t* lengths, int64_t b,
                                           int64_t N) {
  if (lengths == nullptr) return N;
  const int64_t n = lengths[b];
  return n < 0 ? 0 : (n > N ? N : n);
}

template <typename T>
__device__ inline double norm_term_dev(T v, int p) {
  const double d = static_cast<double>(v);
  return p == 2 ? d * d : fabs(d);
}

// Sum for p = 1, 2; maximum for p = inf.
__device__ inline double norm_combine(double a, double b, int p) {
  return p == kNormInf ? fmax(a, b) : a + b;
}

// (value desc, index asc): the argmax order with ties to the lowest index.
template <typename T>
__device__ inline bool better(T v, int64_t i, T bv, int64_t bi) {
  return v > bv || (v == bv && i < bi);
}

template <typename T>
__device__ inline void warp_argmax(T& v, int64_t& i) {
  for (int off = 16; off > 0; off >>= 1) {
    const T ov = __shfl_down_sync(kFullMask, v, off);
    const int64_t oi = static_cast<int64_t>(
        __shfl_down_sync(kFullMask, static_cast<long long>(i), off));
    if (better(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
}

__device__ inline double warp_combine(double v, int p) {
  for (int off = 16; off > 0; off >>= 1) {
    v = norm_combine(v, __shfl_down_sync(kFullMask, v, off), p);
  }
  return v;
}

// Fixed-order block sum, returned to every thread (red: kWarps + 1 slots).
__device__ inline double block_sum(double v, double* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_combine(v, 1);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0.0;
    for (int w = 0; w < kWarps; ++w) s += red[w];
    red[kWarps] = s;
  }
  __syncthreads();
  const double r = red[kWarps];
  __syncthreads();
  return r;
}

// Block maximum, returned to every thread (red: kWarps + 1 slots).
__device__ inline double block_max(double v, double* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_combine(v, kNormInf);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    double m = red[0];
    for (int w = 1; w < kWarps; ++w) m = fmax(m, red[w]);
    red[kWarps] = m;
  }
  __syncthreads();
  const double r = red[kWarps];
  __syncthreads();
  return r;
}

// Channels first (B, C, N): thread = point, coalesced along N; the block
// walks kChunkCF channel rows, keeping the point's partial norm and writing
// one (max, argmax) per channel for its 256-point tile.
template <typename T>
__global__ void partial_channels_first_kernel(
    const T* __restrict__ x, int64_t B, int64_t C, int64_t N,
    const int64_t* __restrict__ lengths, int p, bool need_norms,
    bool need_max, int64_t ntiles, int64_t nchunks, double* pnorm, T* pval,
    int64_t* pidx, std::int32_t* status) {
  __shared__ T s_val[kChunkCF][kWarps];
  __shared__ int64_t s_idx[kChunkCF][kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t tile = blockIdx.x % ntiles;
  const int64_t chunk = blockIdx.x / ntiles;
  const int64_t n = tile * kThreads + threadIdx.x;
  const int64_t c0 = chunk * kChunkCF;
  const int cc = static_cast<int>(min(static_cast<int64_t>(kChunkCF), C - c0));
  const T lowest = -std::numeric_limits<T>::infinity();

  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const bool valid = n < valid_points_dev(lengths, b, N);
    double acc = 0.0;
    bool bad = false;
    for (int j = 0; j < cc; ++j) {
      // Coalesced read of row (b, c0 + j); norm term and finiteness.
      T v = lowest;
      if (valid) {
        v = x[(b * C + c0 + j) * N + n];
        bad |= !isfinite(static_cast<double>(v));
        if (need_norms) acc = norm_combine(acc, norm_term_dev(v, p), p);
      }
      // Warp-level argmax of this channel; one candidate per warp.
      if (need_max) {
        T wv = v;
        int64_t wi = valid ? n : kNoIndex;
        warp_argmax(wv, wi);
        if (lane == 0) {
          s_val[j][warp] = wv;
          s_idx[j][warp] = wi;
        }
      }
    }
    if (bad) atomicOr(status, kStatusNonFinite);
    if (need_norms && n < N) pnorm[(b * nchunks + chunk) * N + n] = acc;

    // Merge the warps' candidates in warp (= point) order per channel.
    if (need_max) {
      __syncthreads();
      if (threadIdx.x < cc) {
        const int j = threadIdx.x;
        T bv = s_val[j][0];
        int64_t bi = s_idx[j][0];
        for (int w = 1; w < kWarps; ++w) {
          if (better(s_val[j][w], s_idx[j][w], bv, bi)) {
            bv = s_val[j][w];
            bi = s_idx[j][w];
          }
        }
        const int64_t k = (b * C + c0 + j) * ntiles + tile;
        pval[k] = bv;
        pidx[k] = bi == kNoIndex ? -1 : bi;
      }
      __syncthreads();
    }
  }
}

// Channels last (B, N, C): thread = channel, coalesced along C; the block
// walks kTileCL points, keeping each channel's running max (strict >, so the
// lowest index wins) and reducing each point's norm term across the block.
template <typename T>
__global__ void partial_channels_last_kernel(
    const T* __restrict__ x, int64_t B, int64_t C, int64_t N,
    const int64_t* __restrict__ lengths, int p, bool need_norms,
    bool need_max, int64_t ntiles, int64_t nchunks, double* pnorm, T* pval,
    int64_t* pidx, std::int32_t* status) {
  __shared__ double s_acc[kWarps][kTileCL];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t tile = blockIdx.x % ntiles;
  const int64_t chunk = blockIdx.x / ntiles;
  const int64_t c = chunk * kThreads + threadIdx.x;
  const bool cvalid = c < C;
  const int64_t n0 = tile * kTileCL;

  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const int64_t n_end = min(n0 + kTileCL, valid_points_dev(lengths, b, N));
    T bv = T(0);
    int64_t bi = kNoIndex;
    bool bad = false;
    for (int j = 0; j < kTileCL && n0 + j < n_end; ++j) {
      // Coalesced read of point (b, n0 + j); running max and norm term.
      const int64_t n = n0 + j;
      double t = 0.0;
      if (cvalid) {
        const T v = x[(b * N + n) * C + c];
        bad |= !isfinite(static_cast<double>(v));
        if (bi == kNoIndex || v > bv) {
          bv = v;
          bi = n;
        }
        if (need_norms) t = norm_term_dev(v, p);
      }
      // The point's norm term over the block's channels, warp by warp.
      if (need_norms) {
        t = warp_combine(t, p);
        if (lane == 0) s_acc[warp][j] = t;
      }
    }
    if (bad) atomicOr(status, kStatusNonFinite);

    // Combine the warps in channel order for each point of the tile.
    if (need_norms) {
      __syncthreads();
      if (threadIdx.x < kTileCL) {
        const int j = threadIdx.x;
        const int64_t n = n0 + j;
        if (n < N) {
          double s = 0.0;
          if (n < n_end) {
            s = s_acc[0][j];
            for (int w = 1; w < kWarps; ++w) {
              s = norm_combine(s, s_acc[w][j], p);
            }
          }
          pnorm[(b * nchunks + chunk) * N + n] = s;
        }
      }
      __syncthreads();
    }
    if (need_max && cvalid) {
      const int64_t k = (b * C + c) * ntiles + tile;
      pval[k] = bv;
      pidx[k] = bi == kNoIndex ? -1 : bi;
    }
  }
}

// Norms: chunk partials combined in channel order, then finished.
template <typename T>
__global__ void finish_norms_kernel(const double* __restrict__ pnorm,
                                    int64_t B, int64_t N, int64_t nchunks,
                                    int p, T* norms) {
  const int64_t total = B * N;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / N, n = i % N;
    double s = pnorm[b * nchunks * N + n];
    for (int64_t ch = 1; ch < nchunks; ++ch) {
      s = norm_combine(s, pnorm[(b * nchunks + ch) * N + n], p);
    }
    norms[i] = static_cast<T>(p == 2 ? sqrt(s) : s);
  }
}

// Counts: tile candidates merged in point order (strict > keeps the lowest
// index), then one integer increment for the winner.
template <typename T>
__global__ void finish_counts_kernel(const T* __restrict__ pval,
                                     const int64_t* __restrict__ pidx,
                                     int64_t B, int64_t C, int64_t N,
                                     int64_t ntiles, int64_t* counts) {
  const int64_t total = B * C;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / C;
    int64_t win = -1;
    T best = T(0);
    for (int64_t t = 0; t < ntiles; ++t) {
      const int64_t k = i * ntiles + t;
      if (pidx[k] < 0) continue;
      if (win < 0 || pval[k] > best) {
        best = pval[k];
        win = pidx[k];
      }
    }
    if (win >= 0) {
      atomicAdd(reinterpret_cast<unsigned long long*>(counts + b * N + win),
                1ull);
    }
  }
}

// One block per cloud: scale, normalizer, then -sum q log2 q / log2(n_b).
// Terms are divided by max(eps, largest importance) first, so the float64
// normalizer cannot overflow and tiny values are not subnormal.
template <typename I>
__global__ void entropy_kernel(const I* __restrict__ imp, int64_t B,
                               int64_t N, const int64_t* __restrict__ lengths,
                               double eps, bool check, double* entropy,
                               std::int32_t* status) {
  __shared__ double red[kWarps + 1];
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const int64_t n = valid_points_dev(lengths, b, N);
    const I* row = imp + b * N;
    double top = eps;
    int flags = 0;
    for (int64_t i = threadIdx.x; i < n; i += kThreads) {
      const double v = static_cast<double>(row[i]);
      if (check && !isfinite(v)) flags |= kStatusNonFinite;
      if (check && v < 0.0) flags |= kStatusNegative;
      top = fmax(top, v);
    }
    if (flags) atomicOr(status, flags);
    top = block_max(top, red);

    const bool spread = n > 1 && top > 0.0;
    const double scaled_eps = spread ? eps / top : 0.0;
    double s = 0.0;
    if (spread) {
      for (int64_t i = threadIdx.x; i < n; i += kThreads) {
        s += static_cast<double>(row[i]) / top + scaled_eps;
      }
    }
    s = block_sum(s, red);

    double h = 0.0;
    if (spread) {
      for (int64_t i = threadIdx.x; i < n; i += kThreads) {
        const double q = (static_cast<double>(row[i]) / top + scaled_eps) / s;
        if (q > 0.0) h -= q * log2(q);
      }
    }
    h = block_sum(h, red);
    if (threadIdx.x == 0) {
      entropy[b] = n <= 1 ? 0.0 : (!spread ? 1.0 : h / log2(double(n)));
    }
  }
}

unsigned int grid_for(int64_t work, int64_t cap) {
  return static_cast<unsigned int>(
      std::max<int64_t>(1, std::min<int64_t>((work + kThreads - 1) / kThreads,
                                             cap)));
}

// Stream-ordered scratch memory, released on the same stream.
class Workspace {
 public:
  Workspace(size_t bytes, cudaStream_t stream) : stream_(stream) {
    if (bytes > 0) DS_CUDA_CHECK(cudaMallocAsync(&ptr_, bytes, stream));
  }
  ~Workspace() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  char* get() const { return static_cast<char*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
};

size_t align_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace

template <typename T>
void importance_stats_cuda(const ImportanceProblem<T>& P,
                           const Device& device) {
  const int64_t B = P.B, C = P.C, N = P.N;
  if (B == 0) return;
  DS_CHECK_ARG(C > 0 && N > 0, "features: expected C > 0 and N > 0, got C="
                                   << C << ", N=" << N);
  DS_CHECK_ARG(P.p == 1 || P.p == 2 || P.p == kNormInf,
               "p: expected 1, 2 or inf, got " << P.p);
  DS_CHECK_ARG(P.entropy == nullptr ||
                   (P.entropy_of_norms ? P.norms != nullptr
                                       : P.counts != nullptr),
               "entropy needs the importance it is computed from");
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  const bool need_norms = P.norms != nullptr;
  const bool need_max = P.counts != nullptr;

  // Tiling: points x channels per block, by layout.
  const int64_t ntiles = P.channels_last ? (N + kTileCL - 1) / kTileCL
                                         : (N + kThreads - 1) / kThreads;
  const int64_t nchunks = P.channels_last ? (C + kThreads - 1) / kThreads
                                          : (C + kChunkCF - 1) / kChunkCF;
  DS_CHECK_ARG(ntiles * nchunks <= std::numeric_limits<int>::max(),
               "features: too many points x channels for one launch (N="
                   << N << ", C=" << C << ")");

  // Scratch: per-chunk partial norms and per-tile channel maxima.
  const size_t norm_bytes =
      need_norms ? align_up(sizeof(double) * B * nchunks * N) : 0;
  const size_t val_bytes = need_max ? align_up(sizeof(T) * B * C * ntiles) : 0;
  const size_t idx_bytes =
      need_max ? align_up(sizeof(int64_t) * B * C * ntiles) : 0;
  Workspace ws(norm_bytes + val_bytes + idx_bytes, stream);
  double* pnorm = need_norms ? reinterpret_cast<double*>(ws.get()) : nullptr;
  T* pval = need_max ? reinterpret_cast<T*>(ws.get() + norm_bytes) : nullptr;
  int64_t* pidx =
      need_max ? reinterpret_cast<int64_t*>(ws.get() + norm_bytes + val_bytes)
               : nullptr;

  // One pass over the features.
  const dim3 grid(static_cast<unsigned int>(ntiles * nchunks),
                  static_cast<unsigned int>(std::min<int64_t>(B, 65535)));
  if (P.channels_last) {
    partial_channels_last_kernel<T><<<grid, kThreads, 0, stream>>>(
        P.features, B, C, N, P.lengths, P.p, need_norms, need_max, ntiles,
        nchunks, pnorm, pval, pidx, P.status);
  } else {
    partial_channels_first_kernel<T><<<grid, kThreads, 0, stream>>>(
        P.features, B, C, N, P.lengths, P.p, need_norms, need_max, ntiles,
        nchunks, pnorm, pval, pidx, P.status);
  }
  DS_CUDA_CHECK_LAUNCH(stream);

  // Ordered merges of the partials.
  if (need_norms) {
    finish_norms_kernel<T><<<grid_for(B * N, 65535), kThreads, 0, stream>>>(
        pnorm, B, N, nchunks, P.p, P.norms);
    DS_CUDA_CHECK_LAUNCH(stream);
  }
  if (need_max) {
    DS_CUDA_CHECK(cudaMemsetAsync(P.counts, 0, sizeof(int64_t) * B * N,
                                  stream));
    finish_counts_kernel<T><<<grid_for(B * C, 65535), kThreads, 0, stream>>>(
        pval, pidx, B, C, N, ntiles, P.counts);
    DS_CUDA_CHECK_LAUNCH(stream);
  }

  // Entropy of the finished importance.
  if (P.entropy != nullptr) {
    const unsigned int blocks =
        static_cast<unsigned int>(std::min<int64_t>(B, 65535));
    if (P.entropy_of_norms) {
      entropy_kernel<T><<<blocks, kThreads, 0, stream>>>(
          P.norms, B, N, P.lengths, P.eps, false, P.entropy, P.status);
    } else {
      entropy_kernel<int64_t><<<blocks, kThreads, 0, stream>>>(
          P.counts, B, N, P.lengths, P.eps, false, P.entropy, P.status);
    }
    DS_CUDA_CHECK_LAUNCH(stream);
  }
}

template <typename I>
void normalized_entropy_cuda(const I* importance, int64_t B, int64_t N,
                             const int64_t* lengths, double eps,
                             double* entropy, std::int32_t* status,
                             const Device& device) {
  if (B == 0) return;
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  const unsigned int blocks =
      static_cast<unsigned int>(std::min<int64_t>(B, 65535));
  entropy_kernel<I><<<blocks, kThreads, 0, stream>>>(
      importance, B, N, lengths, eps, true, entropy, status);
  DS_CUDA_CHECK_LAUNCH(stream);
}

template void importance_stats_cuda<float>(const ImportanceProblem<float>&,
                                           const Device&);
template void importance_stats_cuda<double>(const ImportanceProblem<double>&,
                                            const Device&);
template void normalized_entropy_cuda<float>(const float*, int64_t, int64_t,
                                             const int64_t*, double, double*,
                                             std::int32_t*, const Device&);
template void normalized_entropy_cuda<double>(const double*, int64_t, int64_t,
                                              const int64_t*, double, double*,
                                              std::int32_t*, const Device&);
template void normalized_entropy_cuda<int64_t>(const int64_t*, int64_t,
                                               int64_t, const int64_t*, double,
                                               double*, std::int32_t*,
                                               const Device&);

}  // namespace deepscope
