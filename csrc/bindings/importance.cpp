// Python bindings for the point-importance kernels (CP++ / FBI).
// SPDX-License-Identifier: MIT
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings/dispatch.h"
#include "importance/importance.h"

namespace py = pybind11;

namespace deepscope {

namespace {

// features: (B, C, N) or (B, N, C) contiguous float32/float64; every output
// pointer may be 0 to skip that output (see importance/importance.h).
void importance_stats_binding(std::uintptr_t features,
                              const std::string& dtype, std::int64_t B,
                              std::int64_t C, std::int64_t N,
                              bool channels_last, std::uintptr_t lengths,
                              int p, std::uintptr_t norms,
                              std::uintptr_t counts, std::uintptr_t entropy,
                              bool entropy_of_norms, double eps,
                              std::uintptr_t status, int device_index,
                              std::uintptr_t stream) {
  const Device device{device_index, stream};
  DS_DISPATCH_FLOATING(dtype, [&] {
    ImportanceProblem<scalar_t> problem;
    problem.features = as_ptr<const scalar_t>(features);
    problem.B = B;
    problem.C = C;
    problem.N = N;
    problem.channels_last = channels_last;
    problem.lengths = as_ptr<const std::int64_t>(lengths);
    problem.p = p;
    problem.norms = as_ptr<scalar_t>(norms);
    problem.counts = as_ptr<std::int64_t>(counts);
    problem.entropy = as_ptr<double>(entropy);
    problem.entropy_of_norms = entropy_of_norms;
    problem.eps = eps;
    problem.status = as_ptr<std::int32_t>(status);
    DS_DISPATCH_DEVICE(device, importance_stats_cpu<scalar_t>(problem),
                       importance_stats_cuda<scalar_t>(problem, device));
  });
}

template <typename I>
void entropy_dispatch(std::uintptr_t importance, std::int64_t B,
                      std::int64_t N, std::uintptr_t lengths, double eps,
                      std::uintptr_t entropy, std::uintptr_t status,
                      const Device& device) {
  const I* imp = as_ptr<const I>(importance);
  const std::int64_t* len = as_ptr<const std::int64_t>(lengths);
  double* out = as_ptr<double>(entropy);
  std::int32_t* st = as_ptr<std::int32_t>(status);
  DS_DISPATCH_DEVICE(
      device, normalized_entropy_cpu<I>(imp, B, N, len, eps, out, st),
      normalized_entropy_cuda<I>(imp, B, N, len, eps, out, st, device));
}

// importance: (B, N) contiguous float32, float64 or int64; entropy (B,)
// float64 out.
void normalized_entropy_binding(std::uintptr_t importance,
                                const std::string& dtype, std::int64_t B,
                                std::int64_t N, std::uintptr_t lengths,
                                double eps, std::uintptr_t entropy,
                                std::uintptr_t status, int device_index,
                                std::uintptr_t stream) {
  const Device device{device_index, stream};
  if (dtype == "int64") {
    entropy_dispatch<std::int64_t>(importance, B, N, lengths, eps, entropy,
                                   status, device);
    return;
  }
  DS_DISPATCH_FLOATING(dtype, [&] {
    entropy_dispatch<scalar_t>(importance, B, N, lengths, eps, entropy,
                               status, device);
  });
}

}  // namespace

void bind_importance(py::module_& m) {
  m.def("importance_stats", &importance_stats_binding, py::arg("features"),
        py::arg("dtype"), py::arg("B"), py::arg("C"), py::arg("N"),
        py::arg("channels_last"), py::arg("lengths"), py::arg("p"),
        py::arg("norms"), py::arg("counts"), py::arg("entropy"),
        py::arg("entropy_of_norms"), py::arg("eps"), py::arg("status"),
        py::arg("device_index"), py::arg("stream"),
        py::call_guard<py::gil_scoped_release>());
  m.def("normalized_entropy", &normalized_entropy_binding,
        py::arg("importance"), py::arg("dtype"), py::arg("B"), py::arg("N"),
        py::arg("lengths"), py::arg("eps"), py::arg("entropy"),
        py::arg("status"), py::arg("device_index"), py::arg("stream"),
        py::call_guard<py::gil_scoped_release>());
}

}  // namespace deepscope
