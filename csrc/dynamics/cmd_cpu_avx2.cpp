// The CMD fit's per-block loops compiled for AVX2 (x86-64 only).
// SPDX-License-Identifier: MIT
//
// The build targets baseline x86-64 so the wheel runs anywhere; cmd_cpu.cpp
// calls these loops when the CPU reports AVX2. No FMA is enabled, so both
// versions round identically.
#include <cmath>
#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx2")
#define DS_ISA isa_avx2
#include "dynamics/cmd_cpu_impl.h"
#undef DS_ISA
#pragma GCC pop_options
#endif
