// The extension module deepscope._core: one bind_* function per area.
// SPDX-License-Identifier: MIT
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace deepscope {
void bind_info(py::module_& m);
void bind_partial(py::module_& m);
void bind_importance(py::module_& m);
void bind_knn(py::module_& m);
void bind_fps(py::module_& m);
void bind_embedding(py::module_& m);
void bind_cmd(py::module_& m);
void bind_graph(py::module_& m);
}  // namespace deepscope

PYBIND11_MODULE(_core, m) {
  m.doc() = "deepscope native kernels (CPU and optional CUDA)";
  deepscope::bind_info(m);
  deepscope::bind_partial(m);
  deepscope::bind_importance(m);
  deepscope::bind_knn(m);
  deepscope::bind_fps(m);
  deepscope::bind_embedding(m);
  deepscope::bind_cmd(m);
  deepscope::bind_graph(m);
}
