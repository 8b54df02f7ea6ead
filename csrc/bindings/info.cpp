// Python bindings for build and runtime facts (deepscope.info()).
// SPDX-License-Identifier: MIT
#include <pybind11/pybind11.h>

#include "common/cuda_info.h"
#include "common/parallel.h"

namespace py = pybind11;

namespace deepscope {

void bind_info(py::module_& m) {
  m.def("build_info", [] {
    py::dict d;
#ifdef DEEPSCOPE_VERSION
    d["version"] = DEEPSCOPE_VERSION;
#endif
#ifdef DEEPSCOPE_WITH_OPENMP
    d["openmp"] = true;
#else
    d["openmp"] = false;
#endif
    d["omp_max_threads"] = max_threads();
    CudaStatus s = cuda_status();
    d["cuda_compiled"] = s.compiled;
    d["cuda_architectures"] = s.architectures;
    d["cuda_runtime_version"] = s.runtime_version;
    d["cuda_driver_version"] = s.driver_version;
    d["cuda_device_count"] = s.device_count;
    d["cuda_error"] = s.error;
    return d;
  });
  m.def("cuda_device_name", &cuda_device_name, py::arg("index"));
}

}  // namespace deepscope
