# Tests of deepscope.dynamics: CMD kernels, post-hoc and online decomposition.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepscope.dynamics import (
    CMD,
    OnlineCMD,
    ParameterSet,
    assign_and_fit,
    balanced_sample,
    cluster_correlations,
    update_bn,
)

from tests import reference as ref
from tests.conftest import to_numpy


def synthetic(N=3000, T=21, M=3, noise=1e-3, seed=0, dtype=np.float32):
    """(T, N) window w = a r_m(t) + b + noise with known modes."""
    rng = np.random.default_rng(seed)
    refs = np.cumsum(rng.normal(size=(M, T)), axis=1)
    modes = rng.integers(0, M, N)
    a = rng.normal(size=N)
    b = rng.normal(size=N)
    w = a * refs[modes].T + b + noise * rng.normal(size=(T, N))
    return w.astype(dtype), refs, modes, a, b


# ------------------------------------------------------------ fused kernel


@pytest.mark.parametrize("N", [0, 1, 2, 63, 64, 65, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("time_major", [True, False])
def test_assign_and_fit_matches_reference(backend, N, dtype, time_major):
    rng = np.random.default_rng(N)
    T, M = 9, 4
    w = (rng.normal(size=(T, N)).cumsum(0) + 5.0).astype(dtype)
    refs = rng.normal(size=(M, T)).cumsum(1)
    x = w if time_major else np.ascontiguousarray(w.T)
    x_b = backend.asarray(x)
    out = assign_and_fit(x_b, refs, time_major=time_major)
    assert backend.is_native(out.a)
    assert backend.is_native(out.modes)
    modes, a, b, rho = ref.cmd_assign_fit_reference(w, refs)
    np.testing.assert_array_equal(to_numpy(out.modes), modes)
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(to_numpy(out.a), a, rtol=tol, atol=tol)
    np.testing.assert_allclose(to_numpy(out.b), b, rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(to_numpy(out.rho), rho, rtol=tol, atol=tol)
    np.testing.assert_array_equal(to_numpy(x_b), x)  # input not modified


def test_assign_and_fit_matches_full_numpy_baseline():
    w, refs, *_ = synthetic(N=2000, noise=0.1)
    out = assign_and_fit(w, refs)
    modes, a, b = ref.cmd_full_numpy(w.T, refs)
    np.testing.assert_array_equal(out.modes, modes)
    np.testing.assert_allclose(out.a, a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.b, b, rtol=1e-5, atol=1e-5)


def test_constant_trajectory_and_constant_reference_give_no_nan():
    T = 7
    refs = np.stack([np.full(T, 3.0), np.arange(T, dtype=float)])
    w = np.stack(
        [np.full(T, 2.5), 2.0 * np.arange(T) + 1.0, np.full(T, 1e5)], axis=1
    ).astype(np.float32)
    out = assign_and_fit(w, refs)
    for x in (out.a, out.b, out.rho, out.sxx, out.sse):
        assert np.isfinite(x).all()
    np.testing.assert_array_equal(out.modes, [0, 1, 0])
    np.testing.assert_allclose(out.a, [0.0, 2.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out.b, [2.5, 1.0, 1e5], rtol=1e-7)
    np.testing.assert_array_equal(out.rho[[0, 2]], [0.0, 0.0])


def test_near_constant_reference_never_wins():
    T = 11
    base = np.full(T, 1000.0)
    base[3] += 1e-10  # below float32 resolution of 1000
    refs = np.stack([base, np.linspace(0.0, 1.0, T)])
    w = np.linspace(0.0, 1.0, T)[:, None].repeat(3, 1).astype(np.float32)
    w[:, 1] = 1000.0
    out = assign_and_fit(w, refs)
    assert (out.modes == 1).sum() >= 2
    assert np.isfinite(out.a).all()
    assert np.abs(out.a).max() < 10


def test_ties_go_to_lowest_reference():
    T = 6
    r = np.arange(T, dtype=float)
    refs = np.stack([r, 2.0 * r + 1.0, -r])
    w = (3.0 * r[:, None] + np.zeros((T, 5))).astype(np.float64)
    out = assign_and_fit(w, refs)
    np.testing.assert_array_equal(out.modes, 0)


def test_large_offset_small_variation_is_accurate():
    # |mean| >> std: one-pass float32 sums would cancel; shifted float64 sums
    # keep the correlation exact.
    T = 21
    r = np.sin(np.arange(T) / 3.0)
    w = (1e4 + 1e-2 * r[:, None] * np.ones((T, 4))).astype(np.float64)
    out = assign_and_fit(w, r[None, :])
    np.testing.assert_allclose(out.rho, 1.0, atol=1e-6)
    np.testing.assert_allclose(out.a, 1e-2, rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_window_is_rejected(bad):
    w = np.ones((5, 10), np.float32)
    w[2, 3] = bad
    with pytest.raises(ValueError, match="window"):
        assign_and_fit(w, np.arange(5.0)[None])


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="references"):
        assign_and_fit(np.ones((5, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="window"):
        assign_and_fit(np.ones(5), np.ones((2, 5)))
    with pytest.raises(ValueError, match="window"):
        assign_and_fit(np.ones((5, 3), np.int32), np.ones((2, 5)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_upcast(dtype):
    w, refs, *_ = synthetic(N=200, noise=0.05)
    out = assign_and_fit(torch.from_numpy(w).to(dtype), refs)
    assert out.a.dtype == torch.float32
    expect = assign_and_fit(torch.from_numpy(w).to(dtype).float(), refs)
    assert torch.equal(out.modes, expect.modes)


def test_read_only_and_requires_grad_inputs():
    w, refs, *_ = synthetic(N=100)
    w.setflags(write=False)
    out = assign_and_fit(w, refs)
    t = torch.from_numpy(w.copy()).requires_grad_(True)
    out_t = assign_and_fit(t, refs)
    np.testing.assert_array_equal(out.modes, out_t.modes.numpy())


# ------------------------------------------------------------- post-hoc CMD


def _same_partition(found, truth):
    pairs = set(zip(found.tolist(), truth.tolist(), strict=True))
    return len(pairs) == len(set(truth.tolist())) == len(set(found.tolist()))


@pytest.mark.parametrize("clustering", ["linkage", "kmedoids"])
def test_cmd_recovers_synthetic_modes(clustering):
    w, refs, modes, a, b = synthetic(N=3000, M=3)
    cmd = CMD(n_modes=3, n_samples=200, clustering=clustering).fit(
        torch.from_numpy(w), [1000, 1500, 500]
    )
    assert _same_partition(cmd.modes_.numpy(), modes)
    assert cmd.total_explained_variance_ > 0.9999
    assert cmd.layer_errors_.shape == (3,)
    assert (cmd.layer_errors_ < 1e-3).all()
    assert cmd.mode_sizes_.sum() == 3000
    # Clusters of the candidates are labelled by decreasing size.
    assert (np.diff(np.bincount(cmd.sample_labels_)) <= 0).all()
    np.testing.assert_allclose(cmd.reconstruct(4).numpy(), w[4], atol=1e-2)
    # Reconstruction from reference values equals a * r + b.
    r = cmd.references_[:, -1]
    expect = cmd.a_.double().numpy() * r[cmd.modes_.numpy()] + cmd.b_.double().numpy()
    np.testing.assert_allclose(cmd.reconstruct_from(r).numpy(), expect, rtol=1e-6)


def test_cmd_is_deterministic_for_a_seed():
    w, *_ = synthetic(N=1000, noise=0.3)
    c1 = CMD(4, 100, seed=3).fit(w)
    c2 = CMD(4, 100, seed=3).fit(w)
    np.testing.assert_array_equal(c1.modes_, c2.modes_)
    np.testing.assert_array_equal(c1.reference_indices_, c2.reference_indices_)


def test_cmd_with_constant_parameters_and_one_mode():
    w, *_ = synthetic(N=300)
    w[:, :50] = 0.25  # a frozen slice
    cmd = CMD(n_modes=1, n_samples=1000).fit(w)
    assert len(cmd.references_) == 1
    assert not np.isclose(cmd.references_[0].std(), 0.0)
    assert np.isfinite(cmd.a_).all()
    assert np.isfinite(cmd.b_).all()
    np.testing.assert_allclose(cmd.reconstruct(0)[:50], 0.25)
    cmd2 = CMD(n_modes=3, n_samples=1).fit(w[:, 60:])
    assert (cmd2.modes_ == 0).all()


def test_cmd_argument_errors():
    with pytest.raises(ValueError, match="n_modes"):
        CMD(n_modes=0)
    with pytest.raises(ValueError, match="clustering"):
        CMD(clustering="spectral")
    with pytest.raises(ValueError, match="layer_sizes"):
        CMD().fit(np.ones((3, 10)), [4, 4])
    with pytest.raises(RuntimeError, match="fit"):
        CMD().reconstruct_from(np.zeros(1))
    with pytest.raises(ValueError, match="t:"):
        CMD(2, 10).fit(synthetic(N=50)[0]).reconstruct(21)


def test_balanced_sample_scheme():
    sizes = [10, 1000, 50, 5000]
    idx = balanced_sample(sizes, 400, seed=1)
    assert len(idx) == 400
    assert len(np.unique(idx)) == 400
    layer = np.searchsorted(np.cumsum(sizes), idx, side="right")
    counts = np.bincount(layer, minlength=4)
    # floor(K / 2L) = 50 each (10 for the small layer) plus size shares.
    assert counts[0] == 10
    assert counts[3] > counts[1] > counts[2] >= 50
    np.testing.assert_array_equal(idx, balanced_sample(sizes, 400, seed=1))
    np.testing.assert_array_equal(balanced_sample([3, 4], 100), np.arange(7))
    assert len(balanced_sample([5] * 40, 20)) == 20  # K/2 < L: uniform


def test_cluster_correlations_single_and_block():
    corr = np.array([[1, 0.99, 0.0], [0.99, 1, 0.01], [0.0, 0.01, 1.0]])
    np.testing.assert_array_equal(cluster_correlations(corr, 2), [0, 0, 1])
    np.testing.assert_array_equal(cluster_correlations(corr, 1), [0, 0, 0])


# --------------------------------------------------------------- online CMD


def _train(model, steps, seed=0, lr=0.05):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(128, 10, generator=g)
    y = torch.randint(0, 3, (128,), generator=g)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    for i in range(steps):
        sl = slice((i * 32) % 128, (i * 32) % 128 + 32)
        loss = torch.nn.functional.cross_entropy(model(X[sl]), y[sl])
        opt.zero_grad()
        loss.backward()
        opt.step()


def _mlp(seed=0, bn=True):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(10, 16)]
    if bn:
        layers.append(torch.nn.BatchNorm1d(16))
    layers += [torch.nn.ReLU(), torch.nn.Linear(16, 3)]
    return torch.nn.Sequential(*layers)


def test_online_update_equals_batch_least_squares():
    model = _mlp()
    cmd = OnlineCMD(model, n_modes=3, n_samples=60, warmup=4)
    snaps = []
    for _ in range(10):
        _train(model, 4)
        cmd.observe()
        snaps.append(cmd.params.gather().double().numpy().copy())
    W = np.stack(snaps)
    R = cmd.reference_trajectories
    assert R.shape == (len(cmd.cmd.references_), 10)
    a, b = cmd.coefficients()
    modes = cmd.modes.numpy()
    for i in range(0, W.shape[1], 5):
        r = R[modes[i]]
        if r.std() == 0:
            continue
        sol = np.linalg.lstsq(np.stack([r, np.ones_like(r)], 1), W[:, i], rcond=None)[0]
        np.testing.assert_allclose(
            [a[i].item(), b[i].item()], sol, rtol=1e-5, atol=1e-6
        )
    # The last reconstruction is the least-squares model at the last step.
    rec = cmd.reconstruct().double().numpy()
    np.testing.assert_allclose(
        rec,
        a.double().numpy() * R[modes, -1] + b.double().numpy(),
        rtol=1e-6,
        atol=1e-7,
    )


def test_online_swap_reconstruct_and_state_dict():
    model = _mlp()
    cmd = OnlineCMD(model, n_modes=2, n_samples=40, warmup=3)
    with pytest.raises(RuntimeError, match="not fitted"):
        cmd.reconstruct_()
    for step in range(6):
        _train(model, 3)
        cmd.observe()
        if step == 1:
            half = cmd.state_dict()
    before = [p.detach().clone() for p in model.parameters()]
    with cmd.swap():
        swapped = cmd.params.gather().clone()
    after = [p.detach().clone() for p in model.parameters()]
    assert all(torch.equal(x, y) for x, y in zip(before, after, strict=True))
    torch.testing.assert_close(swapped, cmd.reconstruct())

    other = OnlineCMD(model, n_modes=2, n_samples=40, warmup=3)
    other.load_state_dict(cmd.state_dict())
    for x, y in zip(other.coefficients(), cmd.coefficients(), strict=True):
        assert torch.equal(x, y)
    # Resuming from the warm-up state and observing the same models agrees.
    resumed = OnlineCMD(model, n_modes=2, n_samples=40, warmup=3)
    resumed.load_state_dict(half)
    assert resumed.n_observed == 2
    assert not resumed.is_fitted
    cmd.reconstruct_()
    torch.testing.assert_close(cmd.params.gather(), cmd.reconstruct())


def test_parameter_set_policies():
    torch.manual_seed(0)

    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(7, 4)
            self.out = torch.nn.Linear(4, 7, bias=False)
            self.out.weight = self.emb.weight  # tied
            self.frozen = torch.nn.Linear(4, 4)
            self.frozen.requires_grad_(False)
            self.bn = torch.nn.BatchNorm1d(4)

    m = Tied()
    ps = ParameterSet(m)
    assert ps.names == ["emb.weight", "bn.weight", "bn.bias"]
    assert ps.numel == 28 + 8
    ps_bn = ParameterSet(m, bn="model")
    assert ps_bn.names[-2:] == ["bn.running_mean", "bn.running_var"]
    assert "bn.num_batches_tracked" not in ps_bn.names
    flat = ps.gather()
    ps.scatter(flat * 0 + 1.5)
    assert torch.all(m.emb.weight == 1.5)
    assert torch.all(m.out.weight == 1.5)
    with pytest.raises(ValueError, match="bn"):
        ParameterSet(m, bn="recompute")
    with pytest.raises(ValueError, match="model"):
        ParameterSet(torch.nn.ReLU())


def test_half_precision_model_accumulates_in_float32():
    model = _mlp(bn=False).to(torch.bfloat16)
    cmd = OnlineCMD(model, n_modes=2, n_samples=30, warmup=2)
    for _ in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        cmd.observe()
    assert cmd.params.dtype == torch.float32
    a, b = cmd.coefficients()
    assert a.dtype == torch.float32
    assert torch.isfinite(a).all()
    cmd.reconstruct_()
    assert model[0].weight.dtype == torch.bfloat16


def test_update_bn_with_call_fn():
    model = _mlp()
    data = [({"x": torch.randn(16, 10) * 3 + 2}, 0) for _ in range(4)]
    calls = []

    def call(mdl, batch):
        calls.append(1)
        return mdl(batch[0]["x"])

    model.eval()
    update_bn(data, model, call_fn=call)
    assert len(calls) == 4
    assert not model.training
    bn = model[1]
    assert bn.momentum == 0.1
    assert bn.num_batches_tracked.item() == 4
    assert not torch.allclose(bn.running_mean, torch.zeros(16))


def test_online_with_bn_model_option():
    model = _mlp()
    cmd = OnlineCMD(model, n_modes=2, n_samples=50, warmup=2, bn="model")
    for _ in range(4):
        _train(model, 2)
        cmd.observe()
    cmd.reconstruct_()
    assert torch.isfinite(model[1].running_var).all()


# ------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("time_major", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu_exactly(time_major, dtype):
    w, refs, *_ = synthetic(N=5000, M=20, noise=0.2, dtype=np.float64)
    w[:, :7] = 1.0
    x = torch.from_numpy(w if time_major else np.ascontiguousarray(w.T)).to(dtype)
    cpu = assign_and_fit(x, refs, time_major=time_major)
    gpu = assign_and_fit(x.cuda(), refs, time_major=time_major)
    for c, g in zip(cpu, gpu, strict=True):
        assert torch.equal(c, g.cpu())


@pytest.mark.cuda
def test_cuda_online_matches_cpu():
    model = _mlp()
    model_gpu = _mlp().cuda()
    model_gpu.load_state_dict(model.state_dict())
    c_cpu = OnlineCMD(model, n_modes=3, n_samples=60, warmup=3)
    c_gpu = OnlineCMD(model_gpu, n_modes=3, n_samples=60, warmup=3)
    for _ in range(6):
        with torch.no_grad():
            for p, q in zip(model.parameters(), model_gpu.parameters(), strict=True):
                p.add_(0.01 * torch.randn_like(p) + 0.001)
                q.copy_(p)
        c_cpu.observe()
        c_gpu.observe()
    for x, y in zip(c_cpu.coefficients(), c_gpu.coefficients(), strict=True):
        assert torch.equal(x, y.cpu())
    assert torch.equal(c_cpu.reconstruct(), c_gpu.reconstruct().cpu())


# ------------------------------------------------------------- embedded CMD


def test_embedded_cmd_stops_gradients_and_optimizer_state():
    from deepscope.dynamics import EmbeddedCMD

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(10, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 3),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    cmd = EmbeddedCMD(
        model,
        opt,
        n_modes=2,
        n_samples=100,
        warmup=3,
        embed_every=2,
        embed_fraction=0.3,
    )
    for _ in range(10):
        _train_with(model, opt, 3)
        cmd.observe()
    assert cmd.embedded, "nothing was embedded"
    assert 0.0 < cmd.embedded_fraction <= 0.9
    named = dict(model.named_parameters())
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    for name in cmd.embedded:
        p = named[name]
        assert not p.requires_grad
        assert id(p) not in trained
        assert p not in opt.state
    # One more step: embedded tensors get no gradient; their value is the
    # frozen CMD model at the latest reference values.
    _train_with(model, opt, 1)
    assert all(named[n].grad is None for n in cmd.embedded)
    cmd.observe()
    a, b = cmd._frozen_ab
    full = a.double() * torch.from_numpy(cmd._refs[-1])[cmd.modes] + b.double()
    offsets = np.concatenate([[0], np.cumsum(cmd.params.sizes)])
    k = cmd.params.names.index(cmd.embedded[0])
    got = named[cmd.embedded[0]].detach().reshape(-1).double()
    torch.testing.assert_close(got, full[offsets[k] : offsets[k + 1]].float().double())


def _train_with(model, opt, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(96, 10, generator=g)
    y = torch.randint(0, 3, (96,), generator=g)
    for i in range(steps):
        sl = slice((i * 32) % 96, (i * 32) % 96 + 32)
        loss = torch.nn.functional.cross_entropy(model(X[sl]), y[sl])
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("shape", [(1, 5), (2, 5), (3, 1), (5, 2)])
def test_cmd_tiny_windows(shape):
    w = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    cmd = CMD(3, 10).fit(w)
    assert np.isfinite(cmd.a_).all()
    assert np.isfinite(cmd.layer_errors_).all()
    if shape[0] <= 2:  # two points are always fitted exactly
        np.testing.assert_allclose(cmd.reconstruct(-1), w[-1], atol=1e-5)


def test_cmd_all_constant_window():
    cmd = CMD(3, 10).fit(np.ones((4, 6), np.float32))
    np.testing.assert_array_equal(cmd.modes_, 0)
    np.testing.assert_array_equal(cmd.a_, 0.0)
    np.testing.assert_array_equal(cmd.b_, 1.0)
    assert cmd.total_explained_variance_ == 1.0


def test_online_reestimates_when_the_dynamics_change():
    rng = np.random.default_rng(0)
    N, F = 400, 4
    model = torch.nn.Linear(N, 1, bias=False)
    a = rng.normal(size=N)
    b = rng.normal(size=N)
    r_old = np.cumsum(rng.normal(size=40))
    r_new = np.cumsum(rng.normal(size=40))
    cmd = OnlineCMD(model, n_modes=2, n_samples=100, warmup=F, reestimate_below=0.9)
    ev = []
    for t in range(20):
        # Until t = 8 every parameter follows r_old; then half follow r_new
        # and the other half r_old again, so one mode no longer fits.
        r = np.where(np.arange(N) < N // 2, r_new[t], r_old[t]) if t >= 8 else r_old[t]
        with torch.no_grad():
            model.weight.copy_(torch.from_numpy(a * r + b).float()[None])
        cmd.observe()
        if cmd.is_fitted:
            ev.append(cmd.explained_variance())
    assert ev[0] > 0.999
    assert min(ev) < 0.9
    assert cmd.n_refits == 1
    assert ev[-1] > 0.99  # the new window has two modes, and they are found
    assert cmd.reference_trajectories.shape[1] <= 20 - 8
    per_mode = cmd.explained_variance(per_mode=True)
    assert per_mode.shape == (2,)
    with pytest.raises(ValueError, match="reestimate_below"):
        OnlineCMD(model, reestimate_below=1.5)
