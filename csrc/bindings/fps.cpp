// Python bindings for farthest point sampling (deepscope.pointcloud).
// SPDX-License-Identifier: MIT
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings/dispatch.h"
#include "pointcloud/fps.h"

namespace py = pybind11;

namespace deepscope {

namespace {

// Pointers are raw addresses; every array is contiguous. lengths, n_samples
// and starts live on the same device as points; scratch is B * N +
// kFpsCudaScratchExtra float64 device memory for CUDA, unused (0) on the CPU.
void farthest_point_sample(std::uintptr_t points, const std::string& dtype,
                           std::int64_t B, std::int64_t N, std::int64_t D,
                           std::uintptr_t lengths, std::uintptr_t n_samples,
                           std::uintptr_t starts, std::int64_t K,
                           std::uintptr_t indices, std::uintptr_t distances,
                           std::uintptr_t counts, std::uintptr_t scratch,
                           int device_index, std::uintptr_t stream) {
  const Device device{device_index, stream};
  DS_DISPATCH_FLOATING(dtype, [&] {
    DS_DISPATCH_DEVICE(
        device,
        farthest_point_sample_cpu<scalar_t>(
            as_ptr<const scalar_t>(points), B, N, D,
            as_ptr<const std::int64_t>(lengths),
            as_ptr<const std::int64_t>(n_samples),
            as_ptr<const std::int64_t>(starts), K,
            as_ptr<std::int64_t>(indices), as_ptr<scalar_t>(distances),
            as_ptr<std::int64_t>(counts)),
        farthest_point_sample_cuda<scalar_t>(
            as_ptr<const scalar_t>(points), B, N, D,
            as_ptr<const std::int64_t>(lengths),
            as_ptr<const std::int64_t>(n_samples),
            as_ptr<const std::int64_t>(starts), K,
            as_ptr<std::int64_t>(indices), as_ptr<scalar_t>(distances),
            as_ptr<std::int64_t>(counts), as_ptr<double>(scratch), device));
  });
}

}  // namespace

void bind_fps(py::module_& m) {
  m.def("farthest_point_sample", &farthest_point_sample, py::arg("points"),
        py::arg("dtype"), py::arg("B"), py::arg("N"), py::arg("D"),
        py::arg("lengths"), py::arg("n_samples"), py::arg("starts"),
        py::arg("K"), py::arg("indices"), py::arg("distances"),
        py::arg("counts"), py::arg("scratch"), py::arg("device_index"),
        py::arg("stream"), py::call_guard<py::gil_scoped_release>(),
        "Exact farthest point sampling over a padded batch (see fps.h).");
  m.attr("FPS_CUDA_SCRATCH_EXTRA") = kFpsCudaScratchExtra;
}

}  // namespace deepscope
