// Python bindings for the kNN / ball-query neighbour search.
// SPDX-License-Identifier: MIT
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings/dispatch.h"
#include "pointcloud/knn.h"

namespace py = pybind11;

namespace deepscope {

namespace {

void neighbor_search(std::uintptr_t query, std::uintptr_t reference,
                     std::uintptr_t query_lengths,
                     std::uintptr_t reference_lengths, std::int64_t batch,
                     std::int64_t num_query, std::int64_t num_ref,
                     std::int64_t dim, std::int64_t k, double max_d2,
                     bool self_query, bool exclude_self, bool squared,
                     std::uintptr_t indices, std::uintptr_t distances,
                     std::uintptr_t counts, const std::string& dtype,
                     int device_index, std::uintptr_t stream) {
  NeighborSearch s;
  s.batch = batch;
  s.num_query = num_query;
  s.num_ref = num_ref;
  s.dim = dim;
  s.k = k;
  s.max_d2 = max_d2;
  s.self_query = self_query;
  s.exclude_self = exclude_self;
  s.squared = squared;
  DS_CHECK_ARG(!exclude_self || self_query,
               "exclude_self: only valid for a self-query (reference=None)");
  const Device device{device_index, stream};
  const auto* qlen = as_ptr<const std::int64_t>(query_lengths);
  const auto* rlen = as_ptr<const std::int64_t>(reference_lengths);
  auto* idx = as_ptr<std::int64_t>(indices);
  auto* cnt = as_ptr<std::int64_t>(counts);
  DS_DISPATCH_FLOATING(dtype, [&] {
    const auto* q = as_ptr<const scalar_t>(query);
    const auto* r = as_ptr<const scalar_t>(reference);
    auto* dist = as_ptr<scalar_t>(distances);
    DS_DISPATCH_DEVICE(
        device,
        neighbor_search_cpu<scalar_t>(s, q, r, qlen, rlen, idx, dist, cnt),
        neighbor_search_cuda<scalar_t>(s, q, r, qlen, rlen, idx, dist, cnt,
                                       device));
  });
}

}  // namespace

void bind_knn(py::module_& m) {
  m.def("neighbor_search", &neighbor_search, py::arg("query"),
        py::arg("reference"), py::arg("query_lengths"),
        py::arg("reference_lengths"), py::arg("batch"), py::arg("num_query"),
        py::arg("num_ref"), py::arg("dim"), py::arg("k"), py::arg("max_d2"),
        py::arg("self_query"), py::arg("exclude_self"), py::arg("squared"),
        py::arg("indices"), py::arg("distances"), py::arg("counts"),
        py::arg("dtype"), py::arg("device_index"), py::arg("stream"),
        py::call_guard<py::gil_scoped_release>(),
        "Exact kNN / ball-query search over padded batches (see knn.h).");
}

}  // namespace deepscope
