// Python bindings for the embedding kernels (the exact-conformity epilogue).
// SPDX-License-Identifier: MIT
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings/dispatch.h"
#include "common/check.h"
#include "embedding/tile_sums.h"

namespace py = pybind11;

namespace deepscope {

namespace {

// tile: (H, W) contiguous float32/float64 on the CPU; row_sums (H,) and
// col_sums (W,) float64, added into; col_sums may be 0 to skip.
void tile_sums_binding(std::uintptr_t tile, const std::string& dtype,
                       std::int64_t H, std::int64_t W, std::uintptr_t row_sums,
                       std::uintptr_t col_sums, int device_index) {
  DS_CHECK_ARG(device_index < 0,
               "tile: expected a CPU tile (GPU tiles are reduced by torch), "
               "got device "
                   << device_index);
  DS_CHECK_ARG(H >= 0 && W >= 0, "tile: expected H, W >= 0, got " << H << ", "
                                                                  << W);
  DS_DISPATCH_FLOATING(dtype, [&] {
    tile_sums_cpu<scalar_t>(as_ptr<const scalar_t>(tile), H, W,
                            as_ptr<double>(row_sums), as_ptr<double>(col_sums));
  });
}

}  // namespace

void bind_embedding(py::module_& m) {
  m.def("tile_sums", &tile_sums_binding, py::arg("tile"), py::arg("dtype"),
        py::arg("H"), py::arg("W"), py::arg("row_sums"), py::arg("col_sums"),
        py::arg("device_index"), py::call_guard<py::gil_scoped_release>(),
        "Adds float64 row (and column) sums of a CPU tile into accumulators.");
}

}  // namespace deepscope
