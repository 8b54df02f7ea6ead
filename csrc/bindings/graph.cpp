// Python bindings for the graph kernels: top-k selection and CSR assembly.
// SPDX-License-Identifier: MIT
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings/dispatch.h"
#include "graph/assemble.h"
#include "graph/knn_select.h"

namespace py = pybind11;

namespace deepscope {

namespace {

void topk_block_update(std::uintptr_t gram, std::uintptr_t row_norms,
                       std::uintptr_t col_norms, std::int64_t rows,
                       std::int64_t cols, std::int64_t row_stride,
                       std::int64_t col_stride, std::int64_t row_offset,
                       std::int64_t col_offset, std::int64_t pool,
                       bool exclude_self, std::uintptr_t pool_idx,
                       std::uintptr_t pool_d2, const std::string& dtype,
                       int device_index, std::uintptr_t stream) {
  TopkBlock b;
  b.rows = rows;
  b.cols = cols;
  b.row_stride = row_stride;
  b.col_stride = col_stride;
  b.row_offset = row_offset;
  b.col_offset = col_offset;
  b.pool = pool;
  b.exclude_self = exclude_self;
  const Device device{device_index, stream};
  auto* idx = as_ptr<std::int64_t>(pool_idx);
  auto* d2 = as_ptr<double>(pool_d2);
  DS_DISPATCH_FLOATING(dtype, [&] {
    const auto* g = as_ptr<const scalar_t>(gram);
    const auto* rn = as_ptr<const scalar_t>(row_norms);
    const auto* cn = as_ptr<const scalar_t>(col_norms);
    DS_DISPATCH_DEVICE(
        device, topk_block_update_cpu<scalar_t>(b, g, rn, cn, idx, d2),
        topk_block_update_cuda<scalar_t>(b, g, rn, cn, idx, d2, device));
  });
}

void rerank_pool(std::uintptr_t query, std::uintptr_t reference,
                 std::int64_t num_query, std::int64_t dim, std::int64_t pool,
                 std::int64_t k, std::uintptr_t pool_idx,
                 std::uintptr_t pool_d2, std::uintptr_t slack,
                 std::uintptr_t indices, std::uintptr_t d2,
                 std::uintptr_t certified, const std::string& dtype,
                 int device_index, std::uintptr_t stream) {
  RerankArgs a;
  a.num_query = num_query;
  a.dim = dim;
  a.pool = pool;
  a.k = k;
  const Device device{device_index, stream};
  const auto* pi = as_ptr<const std::int64_t>(pool_idx);
  const auto* pd = as_ptr<const double>(pool_d2);
  const auto* sl = as_ptr<const double>(slack);
  auto* idx = as_ptr<std::int64_t>(indices);
  auto* dd = as_ptr<double>(d2);
  auto* cert = as_ptr<std::int64_t>(certified);
  DS_DISPATCH_FLOATING(dtype, [&] {
    const auto* q = as_ptr<const scalar_t>(query);
    const auto* r = as_ptr<const scalar_t>(reference);
    DS_DISPATCH_DEVICE(
        device,
        rerank_pool_cpu<scalar_t>(a, q, r, pi, pd, sl, idx, dd, cert),
        rerank_pool_cuda<scalar_t>(a, q, r, pi, pd, sl, idx, dd, cert,
                                   device));
  });
}

void refine_block(std::uintptr_t gram, std::uintptr_t row_norms,
                  std::uintptr_t col_norms, std::int64_t rows,
                  std::int64_t cols, std::int64_t row_stride,
                  std::int64_t col_stride, std::int64_t row_offset,
                  std::int64_t col_offset, std::int64_t k, bool exclude_self,
                  std::int64_t dim, std::uintptr_t slack, std::uintptr_t query,
                  std::uintptr_t reference, std::uintptr_t row_ids,
                  std::uintptr_t col_ids, std::uintptr_t top_idx,
                  std::uintptr_t top_d2, std::uintptr_t checked,
                  const std::string& dtype, int device_index) {
  DS_CHECK_ARG(device_index < 0,
               "refine_block: the projected search runs on the CPU only");
  TopkBlock b;
  b.rows = rows;
  b.cols = cols;
  b.row_stride = row_stride;
  b.col_stride = col_stride;
  b.row_offset = row_offset;
  b.col_offset = col_offset;
  b.pool = k;
  b.exclude_self = exclude_self;
  DS_DISPATCH_FLOATING(dtype, [&] {
    refine_block_cpu<scalar_t>(
        b, dim, as_ptr<const scalar_t>(gram), as_ptr<const scalar_t>(row_norms),
        as_ptr<const scalar_t>(col_norms), as_ptr<const double>(slack),
        as_ptr<const scalar_t>(query), as_ptr<const scalar_t>(reference),
        as_ptr<const std::int64_t>(row_ids),
        as_ptr<const std::int64_t>(col_ids),
        as_ptr<std::int64_t>(top_idx), as_ptr<double>(top_d2),
        as_ptr<std::int64_t>(checked));
  });
}

std::int64_t assemble_knn_graph(std::uintptr_t indices, std::uintptr_t d2,
                                std::int64_t n, std::int64_t k, int weight,
                                int symmetrize, std::int64_t sigma_col,
                                double scale, double global_sigma,
                                double sigma_floor, std::uintptr_t sigma,
                                std::uintptr_t indptr, std::uintptr_t cols,
                                std::uintptr_t vals, const std::string& dtype,
                                int device_index, std::uintptr_t stream) {
  DS_CHECK_ARG(weight >= 0 && weight <= 3, "weight: unknown code " << weight);
  DS_CHECK_ARG(symmetrize >= 0 && symmetrize <= 3,
               "symmetrize: unknown code " << symmetrize);
  GraphAssembly g;
  g.n = n;
  g.k = k;
  g.weight = static_cast<EdgeWeight>(weight);
  g.symmetrize = static_cast<Symmetrize>(symmetrize);
  g.sigma_col = sigma_col;
  g.scale = scale;
  g.global_sigma = global_sigma;
  g.sigma_floor = sigma_floor;
  const Device device{device_index, stream};
  std::int64_t nnz = 0;
  DS_DISPATCH_FLOATING(dtype, [&] {
    const auto* ip = as_ptr<const std::int64_t>(indices);
    const auto* dp = as_ptr<const double>(d2);
    auto* sp = as_ptr<double>(sigma);
    auto* pp = as_ptr<std::int64_t>(indptr);
    auto* cp = as_ptr<std::int64_t>(cols);
    auto* vp = as_ptr<scalar_t>(vals);
    DS_DISPATCH_DEVICE(
        device,
        nnz = assemble_knn_graph_cpu<scalar_t>(g, ip, dp, sp, pp, cp, vp),
        nnz = assemble_knn_graph_cuda<scalar_t>(g, ip, dp, sp, pp, cp, vp,
                                                device));
  });
  return nnz;
}

std::int64_t assemble_laplacian(std::int64_t n, int kind,
                                std::uintptr_t indptr, std::uintptr_t cols,
                                std::uintptr_t vals, std::uintptr_t degrees,
                                std::uintptr_t out_indptr,
                                std::uintptr_t out_cols,
                                std::uintptr_t out_vals,
                                const std::string& dtype, int device_index,
                                std::uintptr_t stream) {
  DS_CHECK_ARG(kind >= 0 && kind <= 2, "kind: unknown code " << kind);
  const Device device{device_index, stream};
  const auto lk = static_cast<LaplacianKind>(kind);
  std::int64_t nnz = 0;
  DS_DISPATCH_FLOATING(dtype, [&] {
    const auto* ip = as_ptr<const std::int64_t>(indptr);
    const auto* cp = as_ptr<const std::int64_t>(cols);
    const auto* vp = as_ptr<const scalar_t>(vals);
    auto* dg = as_ptr<double>(degrees);
    auto* op = as_ptr<std::int64_t>(out_indptr);
    auto* oc = as_ptr<std::int64_t>(out_cols);
    auto* ov = as_ptr<scalar_t>(out_vals);
    DS_DISPATCH_DEVICE(
        device,
        nnz = assemble_laplacian_cpu<scalar_t>(n, lk, ip, cp, vp, dg, op, oc,
                                               ov),
        nnz = assemble_laplacian_cuda<scalar_t>(n, lk, ip, cp, vp, dg, op, oc,
                                                ov, device));
  });
  return nnz;
}

}  // namespace

void bind_graph(py::module_& m) {
  m.def("topk_block_update", &topk_block_update, py::arg("gram"),
        py::arg("row_norms"), py::arg("col_norms"), py::arg("rows"),
        py::arg("cols"), py::arg("row_stride"), py::arg("col_stride"),
        py::arg("row_offset"), py::arg("col_offset"), py::arg("pool"),
        py::arg("exclude_self"), py::arg("pool_idx"), py::arg("pool_d2"),
        py::arg("dtype"), py::arg("device_index"), py::arg("stream"),
        py::call_guard<py::gil_scoped_release>(),
        "Merges one Gram block into running top-k pools (knn_select.h).");
  m.def("rerank_pool", &rerank_pool, py::arg("query"), py::arg("reference"),
        py::arg("num_query"), py::arg("dim"), py::arg("pool"), py::arg("k"),
        py::arg("pool_idx"), py::arg("pool_d2"), py::arg("slack"),
        py::arg("indices"), py::arg("d2"), py::arg("certified"),
        py::arg("dtype"), py::arg("device_index"), py::arg("stream"),
        py::call_guard<py::gil_scoped_release>(),
        "Exact float64 re-ranking of candidate pools (knn_select.h).");
  m.def("refine_block", &refine_block, py::arg("gram"), py::arg("row_norms"),
        py::arg("col_norms"), py::arg("rows"), py::arg("cols"),
        py::arg("row_stride"), py::arg("col_stride"), py::arg("row_offset"),
        py::arg("col_offset"), py::arg("k"), py::arg("exclude_self"),
        py::arg("dim"), py::arg("slack"), py::arg("query"),
        py::arg("reference"), py::arg("row_ids"), py::arg("col_ids"),
        py::arg("top_idx"), py::arg("top_d2"),
        py::arg("checked"), py::arg("dtype"), py::arg("device_index"),
        py::call_guard<py::gil_scoped_release>(),
        "Exact kNN refinement over a lower-bound Gram block (knn_select.h).");
  m.def("assemble_knn_graph", &assemble_knn_graph, py::arg("indices"),
        py::arg("d2"), py::arg("n"), py::arg("k"), py::arg("weight"),
        py::arg("symmetrize"), py::arg("sigma_col"), py::arg("scale"),
        py::arg("global_sigma"), py::arg("sigma_floor"), py::arg("sigma"),
        py::arg("indptr"), py::arg("cols"), py::arg("vals"), py::arg("dtype"),
        py::arg("device_index") = -1, py::arg("stream") = 0,
        py::call_guard<py::gil_scoped_release>(),
        "kNN affinity graph in CSR (assemble.h); returns nnz.");
  m.def("assemble_laplacian", &assemble_laplacian, py::arg("n"),
        py::arg("kind"), py::arg("indptr"), py::arg("cols"), py::arg("vals"),
        py::arg("degrees"), py::arg("out_indptr"), py::arg("out_cols"),
        py::arg("out_vals"), py::arg("dtype"), py::arg("device_index") = -1,
        py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>(),
        "Graph Laplacian in CSR (assemble.h); returns nnz.");
}

}  // namespace deepscope
