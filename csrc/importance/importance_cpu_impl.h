// Per-block CPU loops of the importance kernel, compiled once per ISA.
// SPDX-License-Identifier: MIT
//
// Included by importance_cpu.cpp (baseline x86-64 / any CPU) and by
// importance_cpu_avx2.cpp (under `#pragma GCC target("avx2")`) with DS_ISA
// naming a namespace. It deliberately uses no standard-library templates:
// an instantiation compiled for AVX2 must never be merged by the linker with
// the baseline one. No include guard: each file includes it once.
#ifndef DS_ISA
#error "define DS_ISA before including importance/importance_cpu_impl.h"
#endif

#include <cstdint>

namespace deepscope {
namespace DS_ISA {

// kP: the norm order, 2, 1 or 0 (= inf); -1 when no norms are wanted.
template <int kP>
inline double term(double d) {
  if constexpr (kP == 2) {
    return d * d;
  } else {
    return __builtin_fabs(d);
  }
}

template <int kP>
inline double fold(double acc, double t) {
  if constexpr (kP == 0) {
    return t > acc ? t : acc;
  } else {
    return acc + t;
  }
}

// Index of the first element equal to m in row[0, len) (m is present).
template <typename T>
inline std::int64_t find_first(const T* row, std::int64_t len, T m) {
  std::int64_t i = 0;
  for (; i + 16 <= len; i += 16) {
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (std::int64_t j = 0; j < 16; ++j) hit |= (row[i + j] == m);
    if (hit) break;
  }
  for (; i < len; ++i) {
    if (row[i] == m) return i;
  }
  return len - 1;  // only for non-finite rows, which are rejected anyway
}

// Channels first: base = features + b*C*N + n0, rows of stride N. Rows are
// taken four at a time so each float64 accumulator is loaded and stored once
// per four channels; the sum still runs over c in order, exactly like a
// row-by-row loop. Returns false when a value is NaN or infinite.
template <typename T, int kP, bool kMax>
bool channels_first(const T* base, std::int64_t C, std::int64_t N,
                    std::int64_t len, std::int64_t n0, double* acc, T* pv,
                    std::int64_t* pi) {
  const T zero = T(0);
  T check = zero;
  for (std::int64_t i = 0; i < len; ++i) acc[i] = 0.0;

  std::int64_t c = 0;
  for (; c + 4 <= C; c += 4) {
    const T* r0 = base + c * N;
    const T* r1 = r0 + N;
    const T* r2 = r1 + N;
    const T* r3 = r2 + N;
    T m0 = r0[0], m1 = r1[0], m2 = r2[0], m3 = r3[0];
    // One sweep over four rows: norm terms, running maxima, finiteness.
#pragma omp simd reduction(max : m0, m1, m2, m3) reduction(+ : check)
    for (std::int64_t i = 0; i < len; ++i) {
      const T v0 = r0[i], v1 = r1[i], v2 = r2[i], v3 = r3[i];
      if constexpr (kP >= 0) {
        double a = fold<kP>(acc[i], term<kP>(static_cast<double>(v0)));
        a = fold<kP>(a, term<kP>(static_cast<double>(v1)));
        a = fold<kP>(a, term<kP>(static_cast<double>(v2)));
        acc[i] = fold<kP>(a, term<kP>(static_cast<double>(v3)));
      }
      if constexpr (kMax) {
        m0 = v0 > m0 ? v0 : m0;
        m1 = v1 > m1 ? v1 : m1;
        m2 = v2 > m2 ? v2 : m2;
        m3 = v3 > m3 ? v3 : m3;
      }
      check += ((v0 * zero + v1 * zero) + v2 * zero) + v3 * zero;
    }
    // The first point attaining each maximum wins (ties -> lowest index).
    if constexpr (kMax) {
      pv[c] = m0;
      pv[c + 1] = m1;
      pv[c + 2] = m2;
      pv[c + 3] = m3;
      pi[c] = n0 + find_first(r0, len, m0);
      pi[c + 1] = n0 + find_first(r1, len, m1);
      pi[c + 2] = n0 + find_first(r2, len, m2);
      pi[c + 3] = n0 + find_first(r3, len, m3);
    }
  }

  // Remaining rows one at a time.
  for (; c < C; ++c) {
    const T* r0 = base + c * N;
    T m0 = r0[0];
#pragma omp simd reduction(max : m0) reduction(+ : check)
    for (std::int64_t i = 0; i < len; ++i) {
      const T v0 = r0[i];
      if constexpr (kP >= 0) {
        acc[i] = fold<kP>(acc[i], term<kP>(static_cast<double>(v0)));
      }
      if constexpr (kMax) m0 = v0 > m0 ? v0 : m0;
      check += v0 * zero;
    }
    if constexpr (kMax) {
      pv[c] = m0;
      pi[c] = n0 + find_first(r0, len, m0);
    }
  }
  return check == zero;
}

// Channels last: base = features + (b*N + n0)*C, one contiguous row per
// point. The per-channel running maximum is a branch-free select with strict
// >, so the lowest index wins; local indices are block offsets (idx_t has
// the width of T, which keeps the select loop in one vector width).
template <typename T, typename idx_t, int kP, bool kMax>
bool channels_last(const T* base, std::int64_t C, std::int64_t len,
                   std::int64_t n0, double* acc, T* pv, std::int64_t* pi,
                   idx_t* best) {
  const T zero = T(0);
  T check = zero;
  for (std::int64_t j = 0; j < len; ++j) {
    const T* row = base + j * C;
    const idx_t jj = static_cast<idx_t>(j);
    if (kMax && j == 0) {
      for (std::int64_t c = 0; c < C; ++c) {
        pv[c] = row[c];
        best[c] = idx_t(0);
      }
    }

    // One sweep over the contiguous channel row: the point's norm, the
    // per-channel running maximum (strict >) and the finiteness probe.
    if constexpr (kP == 0) {
      double s = 0.0;
#pragma omp simd reduction(max : s) reduction(+ : check)
      for (std::int64_t c = 0; c < C; ++c) {
        const T v = row[c];
        const double a = __builtin_fabs(static_cast<double>(v));
        s = a > s ? a : s;
        if constexpr (kMax) {
          const bool better = v > pv[c];
          pv[c] = better ? v : pv[c];
          best[c] = better ? jj : best[c];
        }
        check += v * zero;
      }
      acc[j] = s;
    } else {
      double s = 0.0;
#pragma omp simd reduction(+ : s, check)
      for (std::int64_t c = 0; c < C; ++c) {
        const T v = row[c];
        if constexpr (kP > 0) s += term<kP>(static_cast<double>(v));
        if constexpr (kMax) {
          const bool better = v > pv[c];
          pv[c] = better ? v : pv[c];
          best[c] = better ? jj : best[c];
        }
        check += v * zero;
      }
      if constexpr (kP > 0) acc[j] = s;
    }
  }
  if constexpr (kMax) {
    for (std::int64_t c = 0; c < C; ++c) pi[c] = n0 + best[c];
  }
  return check == zero;
}

template <typename T, int kP>
bool channels_first_any(bool need_max, const T* base, std::int64_t C,
                        std::int64_t N, std::int64_t len, std::int64_t n0,
                        double* acc, T* pv, std::int64_t* pi) {
  return need_max
             ? channels_first<T, kP, true>(base, C, N, len, n0, acc, pv, pi)
             : channels_first<T, kP, false>(base, C, N, len, n0, acc, pv, pi);
}

template <typename T, int kP>
bool channels_last_any(bool need_max, const T* base, std::int64_t C,
                       std::int64_t len, std::int64_t n0, double* acc, T* pv,
                       std::int64_t* pi, void* scratch) {
  using idx_t = typename std::conditional<sizeof(T) == 4, std::int32_t,
                                          std::int64_t>::type;
  idx_t* best = static_cast<idx_t*>(scratch);
  return need_max ? channels_last<T, idx_t, kP, true>(base, C, len, n0, acc,
                                                      pv, pi, best)
                  : channels_last<T, idx_t, kP, false>(base, C, len, n0, acc,
                                                       pv, pi, best);
}

// One (cloud, point block) task: p is 1, 2, 0 (inf) or -1 (no norms);
// scratch holds C int64 (channels last). Returns false on NaN/inf.
template <typename T>
bool importance_block(const T* base, bool channels_last_layout,
                      std::int64_t C, std::int64_t N, std::int64_t len,
                      std::int64_t n0, int p, bool need_max, double* acc,
                      T* pv, std::int64_t* pi, void* scratch) {
  if (!channels_last_layout) {
    switch (p) {
      case 2:
        return channels_first_any<T, 2>(need_max, base, C, N, len, n0, acc,
                                        pv, pi);
      case 1:
        return channels_first_any<T, 1>(need_max, base, C, N, len, n0, acc,
                                        pv, pi);
      case 0:
        return channels_first_any<T, 0>(need_max, base, C, N, len, n0, acc,
                                        pv, pi);
      default:
        return channels_first_any<T, -1>(need_max, base, C, N, len, n0, acc,
                                         pv, pi);
    }
  }
  switch (p) {
    case 2:
      return channels_last_any<T, 2>(need_max, base, C, len, n0, acc, pv, pi,
                                     scratch);
    case 1:
      return channels_last_any<T, 1>(need_max, base, C, len, n0, acc, pv, pi,
                                     scratch);
    case 0:
      return channels_last_any<T, 0>(need_max, base, C, len, n0, acc, pv, pi,
                                     scratch);
    default:
      return channels_last_any<T, -1>(need_max, base, C, len, n0, acc, pv, pi,
                                      scratch);
  }
}

}  // namespace DS_ISA
}  // namespace deepscope
