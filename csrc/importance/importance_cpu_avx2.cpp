// The importance kernel's per-block loops compiled for AVX2 (x86-64 only).
// SPDX-License-Identifier: MIT
//
// The build targets baseline x86-64 (SSE2) so the wheel runs anywhere;
// importance_cpu.cpp calls these loops when the CPU reports AVX2.
#include <cstdint>
#include <type_traits>

#include "importance/importance.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx2")
#define DS_ISA isa_avx2
#include "importance/importance_cpu_impl.h"
#undef DS_ISA

namespace deepscope {
namespace isa_avx2 {
template bool importance_block<float>(const float*, bool, std::int64_t,
                                      std::int64_t, std::int64_t,
                                      std::int64_t, int, bool, double*,
                                      float*, std::int64_t*, void*);
template bool importance_block<double>(const double*, bool, std::int64_t,
                                       std::int64_t, std::int64_t,
                                       std::int64_t, int, bool, double*,
                                       double*, std::int64_t*, void*);
}  // namespace isa_avx2
}  // namespace deepscope
#pragma GCC pop_options
#endif
