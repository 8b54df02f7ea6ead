# Tests of deepscope.embedding: conformity (exact, identity, estimate), geometry.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import numpy as np
import pytest
import torch

import deepscope.embedding as E

from tests import reference as ref
from tests.conftest import Backend, to_numpy


def _cloud(rng, n=300, d=24, offset=1.0, dtype=np.float32):
    return (rng.normal(size=(n, d)) + offset).astype(dtype)


# ----------------------------------------------------------------------------
# exact conformity and the identity against the float64 brute force


@pytest.mark.parametrize("fn", [E.exact_conformity, E.conformity])
@pytest.mark.parametrize("loo", [True, False])
def test_conformity_matches_float64_reference(backend: Backend, rng, fn, loo):
    x = _cloud(rng, 517, 33)
    out = fn(backend.asarray(x), leave_one_out=loo)
    assert backend.is_native(out)
    assert to_numpy(out).dtype == np.float32
    np.testing.assert_allclose(
        to_numpy(out), ref.conformity_reference(x, loo=loo), rtol=0, atol=2e-6
    )


@pytest.mark.parametrize("fn", [E.exact_conformity, E.conformity])
def test_conformity_float64_is_tight(rng, fn):
    x = _cloud(rng, 200, 16, dtype=np.float64)
    out = fn(x)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref.conformity_reference(x), rtol=0, atol=1e-13)


@pytest.mark.parametrize("fn", [E.exact_conformity, E.conformity])
def test_conformity_separate_reference(backend: Backend, rng, fn):
    x, r = _cloud(rng, 70, 12), _cloud(rng, 301, 12, offset=0.3)
    out = fn(backend.asarray(x), backend.asarray(r))
    np.testing.assert_allclose(
        to_numpy(out), ref.conformity_reference(x, r), rtol=0, atol=2e-6
    )


@pytest.mark.parametrize("block", [1, 2, 63, 64, 65, 1000])
def test_exact_blocks_agree(rng, block):
    x = _cloud(rng, 130, 8, dtype=np.float64)
    expected = ref.conformity_reference(x)
    np.testing.assert_allclose(
        E.exact_conformity(x, block=block), expected, rtol=0, atol=1e-13
    )
    np.testing.assert_allclose(
        E.exact_conformity(x[:40], x, block=block),
        ref.conformity_reference(x[:40], x),
        rtol=0,
        atol=1e-13,
    )


def test_identity_equals_exact_pairwise(rng):
    """C_j = <u_j, mean_k u_k> (inclusive) and its leave-one-out form."""
    x = _cloud(rng, 400, 20, dtype=np.float64)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    ubar = u.mean(0)
    np.testing.assert_allclose(
        E.exact_conformity(x, leave_one_out=False), u @ ubar, rtol=0, atol=1e-13
    )
    n = len(x)
    np.testing.assert_allclose(
        E.exact_conformity(x), (n * (u @ ubar) - 1) / (n - 1), rtol=0, atol=1e-13
    )
    np.testing.assert_allclose(E.conformity(x), E.exact_conformity(x), atol=1e-13)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_conformity_dtypes(rng, dtype):
    x = _cloud(rng, 50, 8)
    t = torch.from_numpy(x).to(getattr(torch, dtype))
    expected = ref.conformity_reference(t.to(torch.float64).numpy())
    for fn in (E.exact_conformity, E.conformity):
        out = fn(t)
        assert out.dtype == (torch.float64 if dtype == "float64" else torch.float32)
        np.testing.assert_allclose(out.numpy(), expected, atol=2e-6)


def test_inputs_not_modified_readonly_noncontiguous_grad(rng):
    x = _cloud(rng, 60, 10)
    ro = x.copy()
    ro.flags.writeable = False
    expected = ref.conformity_reference(x)
    np.testing.assert_allclose(E.conformity(ro), expected, atol=2e-6)
    np.testing.assert_allclose(E.exact_conformity(ro), expected, atol=2e-6)
    wide = np.asfortranarray(x)
    np.testing.assert_allclose(E.exact_conformity(wide), expected, atol=2e-6)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    before = t.detach().clone()
    out = E.exact_conformity(t[:, :])
    assert not out.requires_grad
    assert torch.equal(t.detach(), before)
    sliced = np.concatenate([x, x], 1)[:, ::2]
    np.testing.assert_allclose(
        E.conformity(sliced), ref.conformity_reference(sliced), atol=2e-6
    )


# ----------------------------------------------------------------------------
# edge cases: never NaN


@pytest.mark.parametrize("fn", [E.exact_conformity, E.conformity])
def test_zero_row_is_a_clear_error(fn):
    x = np.ones((5, 3), np.float32)
    x[3] = 0
    with pytest.raises(ValueError, match=r"zero row.*index 3"):
        fn(x)
    with pytest.raises(ValueError, match="reference: expected non-zero"):
        fn(np.ones((2, 3)), x)


@pytest.mark.parametrize("fn", [E.exact_conformity, E.conformity])
def test_identical_rows_give_one(fn):
    x = np.tile(np.array([[0.5, -2.0, 3.0]], np.float32), (7, 1))
    np.testing.assert_allclose(fn(x), np.ones(7), atol=1e-6)
    np.testing.assert_allclose(fn(x, leave_one_out=False), np.ones(7), atol=1e-6)


@pytest.mark.parametrize("fn", [E.exact_conformity, E.conformity])
def test_bad_inputs(fn):
    with pytest.raises(ValueError, match="N >= 2"):
        fn(np.ones((1, 4)))
    np.testing.assert_allclose(fn(np.ones((1, 4)), leave_one_out=False), [1.0])
    with pytest.raises(ValueError, match="at least one row"):
        fn(np.ones((0, 4)))
    with pytest.raises(ValueError, match="2-D"):
        fn(np.ones(4))
    with pytest.raises(ValueError, match="floating"):
        fn(np.ones((3, 4), np.int64))
    with pytest.raises(ValueError, match="finite"):
        fn(np.array([[1.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="D = 4"):
        fn(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="leave_one_out"):
        fn(np.ones((3, 4)), np.ones((3, 4)), leave_one_out=True)


@pytest.mark.parametrize(
    "fn",
    [
        E.exact_conformity,
        E.conformity,
        E.fit_conformity_estimate,
        lambda x: E.ShellGeometry.fit(x),
    ],
)
@pytest.mark.parametrize("value", [[[1.0, 2.0], [3.0, 4.0]], ((1.0, 2.0),), "ab"])
def test_non_array_input_is_a_value_error(fn, value):
    # Lists used to reach torch.from_dlpack and fail with a RuntimeError.
    with pytest.raises(ValueError, match=r"expected a NumPy, torch or CuPy.*got"):
        fn(value)


def test_exact_bad_block():
    with pytest.raises(ValueError, match="block"):
        E.exact_conformity(np.ones((3, 2)), block=0)


# ----------------------------------------------------------------------------
# the mean-based estimate


def test_estimate_recovers_affine_relation():
    """On synthetic thin shells the fitted line predicts conformity closely."""
    d = E.double_ellipsoid(1500, 1200, 96, seed=3)
    for cloud in (d.image, d.text):
        est = E.fit_conformity_estimate(cloud)
        truth = ref.conformity_reference(cloud)
        pred = est.predict(cloud)
        assert est.pearson_r > 0.99
        assert abs(E.pearson(pred, truth) - est.pearson_r) < 1e-6
        np.testing.assert_allclose(pred, truth, atol=3 * est.max_abs_error + 1e-6)
        # a, b are the least-squares line of truth on cos(m, v).
        x = ref_cos(cloud, cloud.astype(np.float64).mean(0))
        a, b = np.polyfit(x, truth, 1)
        assert est.a == pytest.approx(a, rel=1e-6)
        assert est.b == pytest.approx(b, abs=1e-7)


def test_estimate_recovers_planted_a_b():
    """Unit rows: inclusive conformity is exactly |u_bar| cos(u_bar, u), so a
    equals |mean of the unit rows| and b equals 0 when m is that mean."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(800, 16)) + 0.7
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    est = E.fit_conformity_estimate(u, leave_one_out=False)
    assert est.a == pytest.approx(np.linalg.norm(u.mean(0)), rel=1e-10)
    assert est.b == pytest.approx(0.0, abs=1e-12)
    assert est.pearson_r == pytest.approx(1.0, abs=1e-12)
    n = len(u)
    loo = E.fit_conformity_estimate(u)
    assert loo.a == pytest.approx(n * np.linalg.norm(u.mean(0)) / (n - 1), rel=1e-10)
    assert loo.b == pytest.approx(-1 / (n - 1), rel=1e-8)


def ref_cos(x, m):
    x = np.asarray(x, np.float64)
    return x @ m / (np.linalg.norm(x, axis=1) * np.linalg.norm(m))


def test_estimate_edge_cases(backend: Backend):
    same = np.tile([[1.0, 2.0, 3.0]], (5, 1))
    est = E.fit_conformity_estimate(backend.asarray(same))
    assert (est.a, est.b, est.pearson_r) == (0.0, pytest.approx(1.0), 1.0)
    assert np.isfinite(to_numpy(est.predict(backend.asarray(same)))).all()
    with pytest.raises(ValueError, match="mean vector is zero"):
        E.fit_conformity_estimate(np.array([[1.0, 0.0], [-1.0, 0.0]]))
    with pytest.raises(ValueError, match="at least 2 rows"):
        E.fit_conformity_estimate(np.ones((1, 3)))
    with pytest.raises(ValueError, match="zero"):
        est.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="D = 3"):
        est.predict(np.ones((2, 4)))


def test_pearson_defined_values():
    assert E.pearson([1, 1, 1], [2, 2, 2]) == 1.0
    assert E.pearson([1, 1, 1], [1, 2, 3]) == 0.0
    assert E.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert E.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


# ----------------------------------------------------------------------------
# CUDA: same numbers as the CPU


@pytest.mark.cuda
def test_cuda_matches_cpu(rng):
    x = _cloud(rng, 3000, 64)
    cpu = E.exact_conformity(x)
    gpu = E.exact_conformity(torch.from_numpy(x).cuda(), block=512)
    assert gpu.is_cuda
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu, atol=2e-6)
    ident = E.conformity(torch.from_numpy(x).cuda())
    np.testing.assert_allclose(ident.cpu().numpy(), cpu, atol=2e-6)
    est = E.fit_conformity_estimate(torch.from_numpy(x).cuda())
    est_cpu = E.fit_conformity_estimate(x)
    assert est.a == pytest.approx(est_cpu.a, rel=1e-9)


# ----------------------------------------------------------------------------
# shell geometry


def test_double_ellipsoid_is_seeded_and_shaped():
    a = E.double_ellipsoid(50, 40, 16, seed=7)
    b = E.double_ellipsoid(50, 40, 16, seed=7)
    c = E.double_ellipsoid(50, 40, 16, seed=8)
    assert a.image.shape == (50, 16)
    assert a.text.shape == (40, 16)
    assert a.image.dtype == np.float32
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.text, b.text)
    assert not np.array_equal(a.image, c.image)
    with pytest.raises(ValueError, match="dim"):
        E.double_ellipsoid(5, dim=2, gap_dims=2)


def test_shell_geometry_statistics(backend: Backend):
    d = E.double_ellipsoid(1200, 1000, 64, offset_ratio=1.0, gap=1.0, seed=2)
    g = E.ShellGeometry.fit(
        backend.asarray(d.image), backend.asarray(d.text), spectrum=True
    )
    x = d.image.astype(np.float64)
    m = x.mean(0)
    np.testing.assert_allclose(g.image.mean, m, atol=1e-10)
    np.testing.assert_allclose(g.image.std, x.std(0), rtol=1e-10)
    norms = np.linalg.norm(x - m, axis=1)
    assert g.image.norm_mean == pytest.approx(norms.mean(), rel=1e-10)
    assert g.image.norm_cv == pytest.approx(norms.std() / norms.mean(), rel=1e-9)
    ratio = np.linalg.norm(m) / np.linalg.norm(x.std(0))
    assert g.image.mean_to_std_ratio == pytest.approx(ratio, rel=1e-10)
    eig = np.linalg.eigvalsh(np.cov(x.T, bias=True))[::-1]
    np.testing.assert_allclose(g.image.spectrum, eig, atol=1e-10)
    # The generator plants |m|/|sigma| close to 1 and a thin shell.
    assert 0.8 < g.text.mean_to_std_ratio < 1.25
    assert g.image.norm_cv < 0.25
    np.testing.assert_allclose(g.gap, g.image.mean - g.text.mean)
    assert g.separability.reached
    assert len(g.separability.dims) <= 2
    assert set(g.separability.dims) <= set(d.gap_dims)
    assert g.image.estimate.pearson_r > 0.99


def test_shell_geometry_save_load(tmp_path):
    d = E.double_ellipsoid(200, 150, 12, seed=1)
    g = E.ShellGeometry.fit(d.image, d.text, spectrum=True)
    g.save(tmp_path / "shell.npz")
    h = E.ShellGeometry.load(tmp_path / "shell.npz")
    assert h.image.norm_cv == g.image.norm_cv
    np.testing.assert_array_equal(h.text.spectrum, g.text.spectrum)
    np.testing.assert_array_equal(h.unit_gap, g.unit_gap)
    assert h.image.estimate.a == g.image.estimate.a
    np.testing.assert_array_equal(h.separability.dims, g.separability.dims)
    np.testing.assert_array_equal(
        h.text.estimate.predict(d.text), g.text.estimate.predict(d.text)
    )
    single = E.ShellGeometry.fit(d.image)
    single.save(tmp_path / "one.npz")
    one = E.ShellGeometry.load(tmp_path / "one.npz")
    assert one.text is None
    assert one.separability is None
    assert one.image.spectrum is None
    np.savez(tmp_path / "bad.npz", meta=np.asarray('{"format": "x"}'))
    with pytest.raises(ValueError, match="format"):
        E.ShellGeometry.load(tmp_path / "bad.npz")


def test_shell_geometry_edges():
    same = np.tile([[1.0, 2.0]], (4, 1))
    g = E.ShellGeometry.fit(same, same + 1.0)
    assert g.image.norm_mean == 0.0
    assert g.image.norm_cv == 0.0
    assert g.image.mean_to_std_ratio == float("inf")
    assert g.separability.accuracy == 1.0
    with pytest.raises(ValueError, match="zero"):
        E.ShellGeometry.fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="D = 2"):
        E.ShellGeometry.fit(same, np.ones((3, 3)))


def test_separability_probe_fewest_dims():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 10))
    b = rng.normal(size=(300, 10))
    a[:, 6] += 8.0  # one label coordinate
    p = E.separability_probe(a, b)
    assert p.reached
    assert p.dims.tolist() == [6]
    q = E.separability_probe(rng.normal(size=(100, 5)), rng.normal(size=(100, 5)))
    assert not q.reached
    assert 0.0 <= q.accuracy < 1.0
    assert len(q.accuracies) == 5


def test_gap_shift_divergence():
    d = E.double_ellipsoid(600, 600, 32, seed=4)
    # Text = the image cloud translated: alpha = 1 puts it back exactly.
    text = d.image.astype(np.float64) - (d.image_mean - d.text_mean)
    r = E.gap_shift_divergence(d.image, text, np.linspace(-1, 1, 9))
    assert r.divergence.shape == (9,)
    assert np.isfinite(r.divergence).all()
    assert (r.divergence >= 0).all()
    assert r.argmin_alpha == 1.0
    assert r.divergence[-1] == pytest.approx(0, abs=1e-9)
    assert not r.minimal_at_zero
    assert r.argmax_alpha == -1.0
    assert r.at_zero == pytest.approx(r.divergence[4])
    half = E.gap_shift_divergence(d.image, text, [-0.5, 0.5])
    assert half.at_zero == pytest.approx(half.divergence.mean())
    with pytest.raises(ValueError, match="bins"):
        E.gap_shift_divergence(d.image, d.text, bins=1)


# ----------------------------------------------------------------------------
# uses: ranking, outliers, re-ranking, streaming


def test_typicality_and_outliers():
    c = np.array([0.5, 0.9, 0.5, 0.7, -0.8, 0.6, 0.55, 0.65])
    assert E.typicality_order(c).tolist() == [1, 3, 7, 5, 6, 0, 2, 4]
    flags = E.conformity_outliers(c)
    assert flags.tolist() == [False] * 4 + [True] + [False] * 3
    assert not E.conformity_outliers(np.ones(5)).any()
    with pytest.raises(ValueError, match="finite"):
        E.typicality_order([0.1, np.nan])


def test_rerank_reduces_hubness():
    rng = np.random.default_rng(1)
    d = E.double_ellipsoid(400, 300, 32, seed=9)
    gallery, queries = d.image, d.text
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sim = q @ g.T
    # Hubs match every query: their conformity to the QUERY set is high.
    conf = E.conformity(gallery, queries)
    base, _ = E.rerank_by_conformity(sim, conf, weight=0.0, k=10)
    assert np.array_equal(base, np.argsort(-sim, axis=1, kind="stable")[:, :10])
    fair, scores = E.rerank_by_conformity(sim, conf, weight=1.0, k=10)
    assert (np.diff(scores, axis=1) <= 0).all()
    assert E.hubness(fair, len(g)) < E.hubness(base, len(g))
    assert E.hubness(np.arange(10)[None], 10) == 0.0
    with pytest.raises(ValueError, match="gallery size"):
        E.rerank_by_conformity(sim, conf[:-1])
    del rng


def test_streaming_moments_match_batch(backend: Backend):
    d = E.double_ellipsoid(1000, 10, 16, seed=6)
    x = d.image.astype(np.float64)
    s = E.StreamingMoments()
    for lo in range(0, 1000, 137):
        s.update(backend.asarray(x[lo : lo + 137]))
    s.update(backend.asarray(x[:0]))
    assert s.count == 1000
    np.testing.assert_allclose(s.mean, x.mean(0), atol=1e-12)
    np.testing.assert_allclose(s.std, x.std(0), rtol=1e-10)
    np.testing.assert_allclose(
        to_numpy(s.conformity(backend.asarray(x[:50]))),
        ref.conformity_reference(x[:50], x),
        atol=1e-12,
    )
    with pytest.raises(ValueError, match="no rows"):
        _ = E.StreamingMoments().mean
    with pytest.raises(ValueError, match="D = 16"):
        s.update(np.ones((2, 3)))


def test_finite_check_handles_overflowing_rows():
    x = np.full((3, 4), 3e38, np.float32)  # finite, but row sums overflow
    x[1] = 1.0
    assert E.typicality_order(E.conformity(x)).shape == (3,)
    x[2, 3] = np.inf
    with pytest.raises(ValueError, match="row 2"):
        E.conformity(x)


@pytest.mark.parametrize("scale", [1e-30, 1e-12, 1e12, 1e30])
def test_extreme_scales_float32(rng, scale):
    x = _cloud(rng, 40, 6, dtype=np.float64)
    expected = ref.conformity_reference(x)
    x32 = (x * scale).astype(np.float32)
    for fn in (E.exact_conformity, E.conformity):
        np.testing.assert_allclose(fn(x32), expected, atol=2e-6)
    est = E.fit_conformity_estimate(x32)
    assert np.isfinite(est.predict(x32)).all()


@pytest.mark.parametrize(("h", "w"), [(0, 5), (1, 1), (3, 7), (5, 4), (33, 130)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tile_sums_kernel_adds_float64_sums(rng, h, w, dtype):
    from deepscope import _core

    tile = rng.normal(size=(h, w)).astype(dtype)
    rows = np.full(h, 0.5)
    cols = np.full(w, -1.0)
    _core.tile_sums(
        tile.ctypes.data,
        np.dtype(dtype).name,
        h,
        w,
        rows.ctypes.data,
        cols.ctypes.data,
        -1,
    )
    t64 = tile.astype(np.float64)
    np.testing.assert_allclose(rows, 0.5 + t64.sum(1), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(cols, -1.0 + t64.sum(0), rtol=1e-13, atol=1e-13)
    only_rows = np.zeros(h)
    _core.tile_sums(
        tile.ctypes.data, np.dtype(dtype).name, h, w, only_rows.ctypes.data, 0, -1
    )
    np.testing.assert_allclose(only_rows, t64.sum(1), rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="CPU tile"):
        _core.tile_sums(tile.ctypes.data, "float32", h, w, rows.ctypes.data, 0, 0)


@pytest.mark.parametrize("scale", [1e-200, 1e-160, 1e160, 1e200])
def test_extreme_scales_float64(rng, scale):
    # Cosines are scale-invariant per row: squared norms may under/overflow,
    # the results must not.
    x = _cloud(rng, 40, 6, dtype=np.float64)
    expected = ref.conformity_reference(x)
    xs = x * scale
    xs_before = xs.copy()
    for fn in (E.exact_conformity, E.conformity):
        np.testing.assert_allclose(fn(xs), expected, rtol=0, atol=1e-13)
        np.testing.assert_allclose(
            fn(xs[:10], xs), ref.conformity_reference(x[:10], x), rtol=0, atol=1e-13
        )
    np.testing.assert_array_equal(xs, xs_before)
    est, est1 = E.fit_conformity_estimate(xs), E.fit_conformity_estimate(x)
    assert est.a == pytest.approx(est1.a, rel=1e-9)
    assert est.b == pytest.approx(est1.b, rel=1e-9)
    np.testing.assert_allclose(est.predict(xs), est1.predict(x), rtol=0, atol=1e-12)
    m = x.mean(0)
    norms = np.linalg.norm(x - m, axis=1)
    g = E.ShellGeometry.fit(xs, xs[::-1] + 0.5 * scale)
    assert g.image.norm_mean == pytest.approx(norms.mean() * scale, rel=1e-10)
    assert g.image.norm_cv == pytest.approx(norms.std() / norms.mean(), rel=1e-9)
    ratio = np.linalg.norm(m) / np.linalg.norm(x.std(0))
    assert g.image.mean_to_std_ratio == pytest.approx(ratio, rel=1e-10)
    assert g.image.estimate is not None
    # A truly all-zero row stays an error, however small the others are.
    xs[7] = 0.0
    for fn in (E.exact_conformity, E.conformity):
        with pytest.raises(ValueError, match=r"zero row.*index 7"):
            fn(xs)
    with pytest.raises(ValueError, match=r"image_emb: expected non-zero"):
        E.ShellGeometry.fit(xs)
