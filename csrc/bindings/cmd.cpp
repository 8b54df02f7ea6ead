// Python bindings for the CMD (training dynamics) kernels.
// SPDX-License-Identifier: MIT
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings/dispatch.h"
#include "dynamics/cmd.h"

namespace py = pybind11;

namespace deepscope {

namespace {

using std::int64_t;
using std::uintptr_t;

// w: (T, N) when time_major else (N, T), contiguous float32/float64; outputs
// rho, sxx, sse may be 0 (see dynamics/cmd.h).
void cmd_fit_binding(uintptr_t w, const std::string& dtype, int64_t N,
                     int64_t T, int64_t M, bool time_major,
                     uintptr_t ref_centered, uintptr_t ref_mean,
                     uintptr_t ref_inv_norm, uintptr_t ref_inv_ss,
                     uintptr_t mode, uintptr_t a, uintptr_t b, uintptr_t rho,
                     uintptr_t sxx, uintptr_t sse, int device_index,
                     uintptr_t stream) {
  const Device device{device_index, stream};
  DS_DISPATCH_FLOATING(dtype, [&] {
    CmdFitProblem<scalar_t> p;
    p.w = as_ptr<const scalar_t>(w);
    p.N = N;
    p.T_len = T;
    p.M = M;
    p.time_major = time_major;
    p.ref_centered = as_ptr<const double>(ref_centered);
    p.ref_mean = as_ptr<const double>(ref_mean);
    p.ref_inv_norm = as_ptr<const double>(ref_inv_norm);
    p.ref_inv_ss = as_ptr<const double>(ref_inv_ss);
    p.mode = as_ptr<int64_t>(mode);
    p.a = as_ptr<scalar_t>(a);
    p.b = as_ptr<scalar_t>(b);
    p.rho = as_ptr<scalar_t>(rho);
    p.sxx = as_ptr<double>(sxx);
    p.sse = as_ptr<double>(sse);
    DS_DISPATCH_DEVICE(device, cmd_fit_cpu<scalar_t>(p),
                       cmd_fit_cuda<scalar_t>(p, device));
  });
}

void cmd_update_binding(uintptr_t w, const std::string& dtype, int64_t N,
                        uintptr_t mode, uintptr_t shift, uintptr_t ref_delta,
                        uintptr_t s1, uintptr_t c, uintptr_t s2,
                        int device_index, uintptr_t stream) {
  const Device device{device_index, stream};
  DS_DISPATCH_FLOATING(dtype, [&] {
    CmdUpdateProblem<scalar_t> p;
    p.w = as_ptr<const scalar_t>(w);
    p.N = N;
    p.mode = as_ptr<const int64_t>(mode);
    p.shift = as_ptr<const scalar_t>(shift);
    p.ref_delta = as_ptr<const double>(ref_delta);
    p.s1 = as_ptr<double>(s1);
    p.c = as_ptr<double>(c);
    p.s2 = as_ptr<double>(s2);
    DS_DISPATCH_DEVICE(device, cmd_update_cpu<scalar_t>(p),
                       cmd_update_cuda<scalar_t>(p, device));
  });
}

void cmd_coefficients_binding(const std::string& dtype, int64_t N, double n,
                              uintptr_t mode, uintptr_t shift, uintptr_t s1,
                              uintptr_t c, uintptr_t r1, uintptr_t inv_den,
                              uintptr_t r0, uintptr_t a, uintptr_t b,
                              int device_index, uintptr_t stream) {
  const Device device{device_index, stream};
  DS_DISPATCH_FLOATING(dtype, [&] {
    CmdCoefProblem<scalar_t> p;
    p.N = N;
    p.n = n;
    p.mode = as_ptr<const int64_t>(mode);
    p.shift = as_ptr<const scalar_t>(shift);
    p.s1 = as_ptr<const double>(s1);
    p.c = as_ptr<const double>(c);
    p.r1 = as_ptr<const double>(r1);
    p.inv_den = as_ptr<const double>(inv_den);
    p.r0 = as_ptr<const double>(r0);
    p.a = as_ptr<scalar_t>(a);
    p.b = as_ptr<scalar_t>(b);
    DS_DISPATCH_DEVICE(device, cmd_coefficients_cpu<scalar_t>(p),
                       cmd_coefficients_cuda<scalar_t>(p, device));
  });
}

void cmd_reconstruct_binding(const std::string& dtype, int64_t N,
                             uintptr_t mode, uintptr_t a, uintptr_t b,
                             uintptr_t ref_value, uintptr_t mask,
                             uintptr_t out, int device_index,
                             uintptr_t stream) {
  const Device device{device_index, stream};
  DS_DISPATCH_FLOATING(dtype, [&] {
    CmdReconstructProblem<scalar_t> p;
    p.N = N;
    p.mode = as_ptr<const int64_t>(mode);
    p.a = as_ptr<const scalar_t>(a);
    p.b = as_ptr<const scalar_t>(b);
    p.ref_value = as_ptr<const double>(ref_value);
    p.mask = as_ptr<const std::uint8_t>(mask);
    p.out = as_ptr<scalar_t>(out);
    DS_DISPATCH_DEVICE(device, cmd_reconstruct_cpu<scalar_t>(p),
                       cmd_reconstruct_cuda<scalar_t>(p, device));
  });
}

}  // namespace

void bind_cmd(py::module_& m) {
  m.def("cmd_fit", &cmd_fit_binding, py::arg("w"), py::arg("dtype"),
        py::arg("N"), py::arg("T"), py::arg("M"), py::arg("time_major"),
        py::arg("ref_centered"), py::arg("ref_mean"), py::arg("ref_inv_norm"),
        py::arg("ref_inv_ss"), py::arg("mode"), py::arg("a"), py::arg("b"),
        py::arg("rho"), py::arg("sxx"), py::arg("sse"),
        py::arg("device_index"), py::arg("stream"),
        py::call_guard<py::gil_scoped_release>());
  m.def("cmd_update", &cmd_update_binding, py::arg("w"), py::arg("dtype"),
        py::arg("N"), py::arg("mode"), py::arg("shift"), py::arg("ref_delta"),
        py::arg("s1"), py::arg("c"), py::arg("s2"), py::arg("device_index"),
        py::arg("stream"), py::call_guard<py::gil_scoped_release>());
  m.def("cmd_coefficients", &cmd_coefficients_binding, py::arg("dtype"),
        py::arg("N"), py::arg("n"), py::arg("mode"), py::arg("shift"),
        py::arg("s1"), py::arg("c"), py::arg("r1"), py::arg("inv_den"),
        py::arg("r0"), py::arg("a"), py::arg("b"), py::arg("device_index"),
        py::arg("stream"), py::call_guard<py::gil_scoped_release>());
  m.def("cmd_reconstruct", &cmd_reconstruct_binding, py::arg("dtype"),
        py::arg("N"), py::arg("mode"), py::arg("a"), py::arg("b"),
        py::arg("ref_value"), py::arg("mask"), py::arg("out"),
        py::arg("device_index"), py::arg("stream"),
        py::call_guard<py::gil_scoped_release>());
}

}  // namespace deepscope
