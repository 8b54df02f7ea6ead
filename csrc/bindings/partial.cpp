// Python bindings for the partial-cloud samplers (walks, subsets, patches).
// SPDX-License-Identifier: MIT
#include <pybind11/pybind11.h>

#include <cstdint>

#include "bindings/dispatch.h"
#include "common/check.h"
#include "pointcloud/partial.h"

namespace py = pybind11;

namespace deepscope {
namespace {

using i64 = std::int64_t;
using u64 = std::uint64_t;
using ptr = std::uintptr_t;

void random_walk(ptr neighbors, ptr lengths, ptr starts, i64 B, i64 N, i64 K,
                 i64 A, i64 L, bool allow_revisits, u64 seed, ptr out,
                 ptr counts, ptr visited, ptr stack, int device_index,
                 ptr stream) {
  DS_CHECK_ARG(B >= 0 && N >= 0 && K >= 0 && A >= 0 && L >= 1,
               "random_walk: bad sizes B=" << B << " N=" << N << " K=" << K
                                           << " A=" << A << " L=" << L);
  const Device device{device_index, stream};
  DS_DISPATCH_DEVICE(
      device,
      random_walk_cpu(as_ptr<const i64>(neighbors), as_ptr<const i64>(lengths),
                      as_ptr<const i64>(starts), B, N, K, A, L,
                      allow_revisits, seed, as_ptr<i64>(out),
                      as_ptr<i64>(counts)),
      random_walk_cuda(as_ptr<const i64>(neighbors),
                       as_ptr<const i64>(lengths), as_ptr<const i64>(starts),
                       B, N, K, A, L, allow_revisits, seed, as_ptr<i64>(out),
                       as_ptr<i64>(counts), as_ptr<u64>(visited),
                       as_ptr<i64>(stack), device));
}

void random_subset(ptr lengths, i64 B, i64 N, i64 S, i64 size, u64 seed,
                   ptr out, ptr counts, ptr visited, int device_index,
                   ptr stream) {
  DS_CHECK_ARG(B >= 0 && N >= 0 && S >= 0 && size >= 1,
               "random_subset: bad sizes B=" << B << " N=" << N << " S=" << S
                                             << " size=" << size);
  const Device device{device_index, stream};
  DS_DISPATCH_DEVICE(
      device,
      random_subset_cpu(as_ptr<const i64>(lengths), B, N, S, size, seed,
                        as_ptr<i64>(out), as_ptr<i64>(counts)),
      random_subset_cuda(as_ptr<const i64>(lengths), B, N, S, size, seed,
                         as_ptr<i64>(out), as_ptr<i64>(counts),
                         as_ptr<u64>(visited), device));
}

void assemble_patches(ptr neighbors, ptr anchors, ptr lengths, i64 B, i64 A,
                      i64 K, i64 size, ptr out, ptr counts, int device_index,
                      ptr stream) {
  DS_CHECK_ARG(B >= 0 && A >= 0 && K >= 0 && size >= 1,
               "assemble_patches: bad sizes B=" << B << " A=" << A << " K="
                                                << K << " size=" << size);
  const Device device{device_index, stream};
  DS_DISPATCH_DEVICE(
      device,
      assemble_patches_cpu(as_ptr<const i64>(neighbors),
                           as_ptr<const i64>(anchors),
                           as_ptr<const i64>(lengths), B, A, K, size,
                           as_ptr<i64>(out), as_ptr<i64>(counts)),
      assemble_patches_cuda(as_ptr<const i64>(neighbors),
                            as_ptr<const i64>(anchors),
                            as_ptr<const i64>(lengths), B, A, K, size,
                            as_ptr<i64>(out), as_ptr<i64>(counts), device));
}

}  // namespace

void bind_partial(py::module_& m) {
  m.def("random_walk", &random_walk, py::arg("neighbors"), py::arg("lengths"),
        py::arg("starts"), py::arg("B"), py::arg("N"), py::arg("K"),
        py::arg("A"), py::arg("L"), py::arg("allow_revisits"), py::arg("seed"),
        py::arg("out"), py::arg("counts"), py::arg("visited"),
        py::arg("stack"), py::arg("device_index"), py::arg("stream"),
        py::call_guard<py::gil_scoped_release>(),
        "Random-walk curves on a (B, N, K) neighbour table (see partial.h).");
  m.def("random_subset", &random_subset, py::arg("lengths"), py::arg("B"),
        py::arg("N"), py::arg("S"), py::arg("size"), py::arg("seed"),
        py::arg("out"), py::arg("counts"), py::arg("visited"),
        py::arg("device_index"), py::arg("stream"),
        py::call_guard<py::gil_scoped_release>(),
        "Random subsets without replacement (see partial.h).");
  m.def("assemble_patches", &assemble_patches, py::arg("neighbors"),
        py::arg("anchors"), py::arg("lengths"), py::arg("B"), py::arg("A"),
        py::arg("K"), py::arg("size"), py::arg("out"), py::arg("counts"),
        py::arg("device_index"), py::arg("stream"),
        py::call_guard<py::gil_scoped_release>(),
        "Anchor-first patches from kNN rows (see partial.h).");
}

}  // namespace deepscope
