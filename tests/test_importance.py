# Tests for deepscope.importance: CP++ / FBI measures against float64 references.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import numpy as np
import pytest

from deepscope import importance as imp

from tests.conftest import HAS_GPU, HAS_TORCH, to_numpy
from tests.reference import (
    entropy_reference,
    importance_reference,
    least_important_reference,
)

torch = pytest.importorskip("torch") if HAS_TORCH else None

P_VALUES = [1, 2, np.inf]


def _features(rng, B, C, N, dtype=np.float32):
    return rng.standard_normal((B, C, N)).astype(dtype)


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 2e-6


def _check_stats(stats, features64, *, p=2, lengths=None, entropy_of="counts"):
    norms, counts, entropy = importance_reference(
        features64, p=p, lengths=lengths, entropy_of=entropy_of
    )
    got_norms = to_numpy(stats.norms)
    rtol = 1e-12 if got_norms.dtype == np.float64 else 2e-6
    np.testing.assert_allclose(got_norms, norms, rtol=rtol, atol=1e-30)
    np.testing.assert_array_equal(to_numpy(stats.counts), counts)
    np.testing.assert_allclose(to_numpy(stats.entropy), entropy, rtol=rtol, atol=1e-7)


# ------------------------------------------------------------ correctness


@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stats_match_reference_every_backend(backend, rng, dtype, p):
    f = _features(rng, 3, 37, 53, dtype)
    stats = imp.importance_stats(backend.asarray(f), p=p)
    assert backend.is_native(stats.norms)
    assert backend.is_native(stats.counts)
    assert to_numpy(stats.norms).dtype == dtype
    assert to_numpy(stats.counts).dtype == np.int64
    assert to_numpy(stats.entropy).dtype == dtype
    assert to_numpy(stats.norms).shape == (3, 53)
    assert to_numpy(stats.entropy).shape == (3,)
    _check_stats(stats, f.astype(np.float64), p=p)
    np.testing.assert_array_equal(to_numpy(stats.counts).sum(1), [37, 37, 37])


@pytest.mark.parametrize("entropy_of", ["counts", "norms"])
def test_entropy_of_counts_or_norms(rng, entropy_of):
    f = _features(rng, 4, 16, 30, np.float64)
    stats = imp.importance_stats(f, p=1, entropy_of=entropy_of)
    _check_stats(stats, f, p=1, entropy_of=entropy_of)
    source = stats.norms if entropy_of == "norms" else stats.counts
    np.testing.assert_array_equal(stats.entropy, imp.normalized_entropy(source))


@pytest.mark.parametrize("channels_last", [False, True])
def test_many_point_blocks_with_ties_across_blocks(rng, channels_last):
    # One large cloud is split into several point blocks; values from a small
    # set make every channel's maximum tie across blocks.
    f = rng.integers(0, 4, size=(1, 13, 5000)).astype(np.float32)
    x = np.ascontiguousarray(f.transpose(0, 2, 1)) if channels_last else f
    stats = imp.importance_stats(x, channels_last=channels_last)
    _check_stats(stats, f.astype(np.float64))


def test_batch_of_one_equals_batch_of_many(rng):
    f = _features(rng, 6, 24, 40)
    lengths = np.array([40, 1, 17, 0, 39, 2])
    full = imp.importance_stats(f, lengths=lengths, p=1)
    for b in range(6):
        one = imp.importance_stats(f[b : b + 1], lengths=lengths[b : b + 1], p=1)
        np.testing.assert_array_equal(one.norms[0], full.norms[b])
        np.testing.assert_array_equal(one.counts[0], full.counts[b])
        np.testing.assert_array_equal(one.entropy[0], full.entropy[b])
        # Unbatched (C, n) on the valid points gives the same numbers.
        n = lengths[b]
        if n:
            single = imp.importance_stats(f[b, :, :n], p=1)
            np.testing.assert_array_equal(single.counts, full.counts[b, :n])
            np.testing.assert_array_equal(single.norms, full.norms[b, :n])
            assert single.entropy.shape == ()


@pytest.mark.parametrize("channels_last", [False, True])
def test_lengths_padding_ignored(backend, rng, channels_last):
    f = _features(rng, 4, 19, 33)
    # Padded points hold huge values: they must never win or count.
    lengths = np.array([33, 5, 0, 1])
    for b, n in enumerate(lengths):
        f[b, :, n:] = 1e6
    x = np.ascontiguousarray(f.transpose(0, 2, 1)) if channels_last else f
    stats = imp.importance_stats(
        backend.asarray(x),
        lengths=backend.asarray(lengths),
        channels_last=channels_last,
    )
    _check_stats(stats, f.astype(np.float64), lengths=lengths)
    counts = to_numpy(stats.counts)
    np.testing.assert_array_equal(counts.sum(1), [19, 19, 0, 19])
    assert counts[3, 0] == 19
    assert (to_numpy(stats.norms)[1, 5:] == 0).all()
    np.testing.assert_array_equal(to_numpy(stats.entropy)[2:], [0.0, 0.0])


@pytest.mark.parametrize("channels_last", [False, True])
def test_constant_features_all_ties_go_to_point_zero(channels_last):
    shape = (2, 6, 8) if channels_last else (2, 8, 6)  # C = 8, N = 6
    f = np.full(shape, 3.5, dtype=np.float32)
    stats = imp.importance_stats(f, channels_last=channels_last)
    expected = np.zeros((2, 6), dtype=np.int64)
    expected[:, 0] = 8
    np.testing.assert_array_equal(stats.counts, expected)
    np.testing.assert_allclose(stats.norms, np.sqrt(8) * 3.5, rtol=1e-6)
    sets = imp.critical_set(f, channels_last=channels_last)
    assert [s.tolist() for s in sets] == [[0], [0]]


def test_all_zero_features_entropy_defined():
    f = np.zeros((3, 5, 7))
    for entropy_of in ("counts", "norms"):
        stats = imp.importance_stats(f, entropy_of=entropy_of)
        assert np.isfinite(stats.entropy).all()
        _check_stats(stats, f, entropy_of=entropy_of)
    # Norms all zero -> uniform -> entropy 1 exactly, with or without eps.
    np.testing.assert_allclose(imp.normalized_entropy(np.zeros((2, 7))), 1.0)
    np.testing.assert_array_equal(imp.normalized_entropy(np.zeros((2, 7)), eps=0), 1)


def test_single_point_and_single_channel(rng):
    one_point = _features(rng, 3, 9, 1)
    stats = imp.importance_stats(one_point)
    np.testing.assert_array_equal(stats.counts, np.full((3, 1), 9))
    np.testing.assert_array_equal(stats.entropy, np.zeros(3))
    one_channel = _features(rng, 3, 1, 11)
    stats = imp.importance_stats(one_channel)
    _check_stats(stats, one_channel.astype(np.float64))
    np.testing.assert_allclose(stats.norms, np.abs(one_channel[:, 0]), rtol=1e-7)


def test_float16_accumulates_beyond_float16_range(backend):
    # 300^2 * 1000 channels overflows float16 (max 65504) but not the kernel.
    f = np.full((1, 1000, 4), 300.0, dtype=np.float16)
    norms = imp.feature_norms(backend.asarray(f))
    assert to_numpy(norms).dtype == np.float32
    np.testing.assert_allclose(to_numpy(norms), 300.0 * np.sqrt(1000), rtol=1e-6)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_torch_half_dtypes(rng, dtype):
    f = torch.from_numpy(_features(rng, 2, 20, 25)).to(getattr(torch, dtype))
    stats = imp.importance_stats(f, p=1)
    assert stats.norms.dtype == torch.float32
    assert stats.entropy.dtype == torch.float32
    _check_stats(stats, f.float().numpy().astype(np.float64), p=1)


@pytest.mark.parametrize("p", P_VALUES)
def test_noncontiguous_and_channels_last_agree(backend, rng, p):
    f = _features(rng, 3, 21, 34)
    expected = imp.importance_stats(f, p=p)
    last = np.ascontiguousarray(f.transpose(0, 2, 1))
    cases = [
        (backend.asarray(last), True),  # contiguous (B, N, C)
        (
            backend.asarray(last).transpose(0, 2, 1)
            if backend.framework != "torch"
            else backend.asarray(last).transpose(1, 2),
            False,
        ),  # view of (B, N, C)
    ]
    for x, channels_last in cases:
        stats = imp.importance_stats(x, p=p, channels_last=channels_last)
        np.testing.assert_array_equal(to_numpy(stats.counts), expected.counts)
        np.testing.assert_allclose(to_numpy(stats.norms), expected.norms, rtol=1e-6)
    strided = backend.asarray(f)[:, ::2]
    stats = imp.importance_stats(strided, p=p)
    _check_stats(stats, f[:, ::2].astype(np.float64), p=p)
    unbatched = imp.importance_stats(last[0], p=p, channels_last=True)
    np.testing.assert_array_equal(unbatched.counts, expected.counts[0])


def test_input_unchanged_and_read_only(rng):
    f = _features(rng, 2, 10, 12)
    before = f.copy()
    f.flags.writeable = False
    stats = imp.importance_stats(f, lengths=np.array([12, 3]))
    np.testing.assert_array_equal(f, before)
    assert stats.counts.sum() == 20


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_torch_requires_grad_input(rng):
    f = torch.from_numpy(_features(rng, 2, 10, 12)).requires_grad_(True)
    stats = imp.importance_stats(f)
    assert not stats.norms.requires_grad
    _check_stats(stats, f.detach().numpy().astype(np.float64))


# ------------------------------------------------------------- validation


def test_validation_errors_name_the_argument():
    f = np.ones((2, 3, 4), dtype=np.float32)
    bad = f.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="features: expected finite"):
        imp.importance_stats(bad)
    bad[1, 2, 3] = -np.inf
    with pytest.raises(ValueError, match="features: expected finite"):
        imp.critical_counts(bad)
    bad_last = np.ascontiguousarray(bad.transpose(0, 2, 1))
    with pytest.raises(ValueError, match="features: expected finite"):
        imp.feature_norms(bad_last, channels_last=True)
    with pytest.raises(ValueError, match="features: expected 2 or 3 dimensions"):
        imp.importance_stats(np.ones((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="features: expected at least 1 point"):
        imp.importance_stats(np.ones((2, 3, 0)))
    with pytest.raises(ValueError, match="p: expected 1, 2 or inf, got 3"):
        imp.importance_stats(f, p=3)
    with pytest.raises(ValueError, match="entropy_of"):
        imp.importance_stats(f, entropy_of="logits")
    with pytest.raises(ValueError, match=r"lengths: expected 0 <= lengths\[b\] <= 4"):
        imp.importance_stats(f, lengths=np.array([5, 1]))
    with pytest.raises(ValueError, match=r"lengths: expected shape \(2,\)"):
        imp.importance_stats(f, lengths=np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="features: expected a floating dtype"):
        imp.importance_stats(np.ones((2, 3, 4), dtype=np.int32))
    with pytest.raises(ValueError, match="k: expected 1 <= k <= 4"):
        imp.least_important(np.ones((2, 4)), 5)
    with pytest.raises(ValueError, match="k: expected 1 <= k <= 4"):
        imp.least_important(np.ones((2, 4)), 0)
    with pytest.raises(ValueError, match="importance: expected nonnegative"):
        imp.normalized_entropy(np.array([[0.5, -0.1]]))
    with pytest.raises(ValueError, match="importance: expected finite"):
        imp.normalized_entropy(np.array([[0.5, np.inf]]))
    with pytest.raises(ValueError, match="eps"):
        imp.normalized_entropy(np.ones(3), eps=-1)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_lengths_from_any_framework_are_moved_to_the_features():
    f = torch.ones((2, 3, 4))
    for lengths in ([4, 2], np.array([4, 2], dtype=np.uint8), torch.tensor([4, 2])):
        stats = imp.importance_stats(f, lengths=lengths)
        assert stats.counts.sum().item() == 6
    with pytest.raises(ValueError, match="lengths: expected an integer dtype"):
        imp.importance_stats(f, lengths=torch.tensor([4.0, 2.0]))


# ------------------------------------------------------- entropy and ranks


def test_normalized_entropy_batched_per_sample(backend, rng):
    importance = rng.random((5, 9)) * 3
    importance[2] = 0
    importance[3, 4] = 100
    lengths = np.array([9, 1, 9, 5, 0])
    got = imp.normalized_entropy(
        backend.asarray(importance), lengths=backend.asarray(lengths)
    )
    expected = [entropy_reference(importance[b, : lengths[b]]) for b in range(5)]
    np.testing.assert_allclose(to_numpy(got), expected, rtol=1e-12, atol=1e-15)
    assert to_numpy(got)[1] == 0.0
    assert to_numpy(got)[4] == 0.0
    counts = rng.integers(0, 5, size=(3, 8))
    got = to_numpy(imp.normalized_entropy(backend.asarray(counts)))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [entropy_reference(c) for c in counts], rtol=1e-12)
    one = imp.normalized_entropy(importance[0])
    assert one.shape == ()
    assert np.isclose(one, expected[0])


def test_least_important_reference_order(backend, rng):
    counts = rng.integers(0, 3, size=(4, 30))
    tiebreak = np.round(rng.random((4, 30)), 1)  # ties inside ties
    got = to_numpy(
        imp.least_important(
            backend.asarray(counts), 12, tiebreak=backend.asarray(tiebreak)
        )
    )
    for b in range(4):
        expected = least_important_reference(counts[b], 12, tiebreak[b])
        np.testing.assert_array_equal(got[b], expected)
    plain = to_numpy(imp.least_important(backend.asarray(counts), 30))
    for b in range(4):
        np.testing.assert_array_equal(
            plain[b], least_important_reference(counts[b], 30)
        )


def test_least_important_per_cloud_k_and_lengths(rng):
    importance = rng.random((3, 10)).astype(np.float32)
    importance[:, 6:] = -5.0  # padded points must never be picked
    lengths = np.array([6, 2, 0])
    got = imp.least_important(importance, np.array([4, 2, 0]), lengths=lengths)
    assert got.shape == (3, 4)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(
        got[0], least_important_reference(importance[0, :6], 4)
    )
    np.testing.assert_array_equal(
        got[1],
        np.concatenate([least_important_reference(importance[1, :2], 2), [-1, -1]]),
    )
    np.testing.assert_array_equal(got[2], [-1, -1, -1, -1])
    with pytest.raises(
        ValueError, match=r"k: expected 0 <= k <= 2 \(valid points of cloud 1\)"
    ):
        imp.least_important(importance, np.array([1, 3, 0]), lengths=lengths)
    single = imp.least_important(importance[0], 3)
    np.testing.assert_array_equal(single, least_important_reference(importance[0], 3))


def test_adaptive_subset_matches_reference(backend, rng):
    f = _features(rng, 4, 64, 50)
    lengths = np.array([50, 20, 1, 0])
    idx, k = imp.adaptive_subset(backend.asarray(f), lengths=backend.asarray(lengths))
    idx, k = to_numpy(idx), to_numpy(k)
    norms, counts, entropy = importance_reference(f, p=1, lengths=lengths)
    expected_k = [
        max(1, int(np.floor(entropy[b] * n))) if n else 0 for b, n in enumerate(lengths)
    ]
    np.testing.assert_array_equal(k, expected_k)
    assert idx.shape == (4, max(expected_k))
    for b, n in enumerate(lengths):
        expected = least_important_reference(counts[b, :n], expected_k[b], norms[b, :n])
        np.testing.assert_array_equal(idx[b, : expected_k[b]], expected)
        assert (idx[b, expected_k[b] :] == -1).all()
    single_idx, single_k = imp.adaptive_subset(f[0])
    assert single_k.shape == ()
    assert int(single_k) == k[0]
    np.testing.assert_array_equal(single_idx, idx[0, : k[0]])


def test_critical_set_and_counts(backend, rng):
    f = _features(rng, 3, 40, 25)
    counts = to_numpy(imp.critical_counts(backend.asarray(f)))
    sets = imp.critical_set(backend.asarray(f))
    assert len(sets) == 3
    for b in range(3):
        assert backend.is_native(sets[b])
        expected = np.unique(f[b].argmax(axis=1))
        np.testing.assert_array_equal(to_numpy(sets[b]), expected)
        np.testing.assert_array_equal(np.flatnonzero(counts[b]), expected)
    single = imp.critical_set(backend.asarray(f[1]))
    np.testing.assert_array_equal(to_numpy(single), to_numpy(sets[1]))


# --------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_GPU, reason="no usable CUDA GPU")
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_matches_cpu(rng, channels_last, p, dtype):
    f = _features(rng, 5, 300, 700, dtype)
    f[1] = np.round(f[1])  # many ties
    lengths = np.array([700, 513, 0, 1, 257])
    x = np.ascontiguousarray(f.transpose(0, 2, 1)) if channels_last else f
    cpu = imp.importance_stats(x, p=p, lengths=lengths, channels_last=channels_last)
    xg = torch.from_numpy(x).cuda()
    gpu = imp.importance_stats(
        xg, p=p, lengths=torch.from_numpy(lengths).cuda(), channels_last=channels_last
    )
    np.testing.assert_array_equal(to_numpy(gpu.counts), cpu.counts)
    np.testing.assert_allclose(
        to_numpy(gpu.norms), cpu.norms, rtol=1e-6 if dtype == np.float32 else 1e-13
    )
    np.testing.assert_allclose(to_numpy(gpu.entropy), cpu.entropy, rtol=1e-6, atol=1e-7)
    idx_cpu, k_cpu = imp.adaptive_subset(
        x, lengths=lengths, channels_last=channels_last
    )
    idx_gpu, k_gpu = imp.adaptive_subset(
        xg, lengths=torch.from_numpy(lengths).cuda(), channels_last=channels_last
    )
    np.testing.assert_array_equal(to_numpy(k_gpu), k_cpu)
    np.testing.assert_array_equal(to_numpy(idx_gpu), idx_cpu)
    bad = xg.clone()
    bad.view(-1)[123] = float("nan")
    with pytest.raises(ValueError, match="features: expected finite"):
        imp.importance_stats(bad, channels_last=channels_last)


def test_least_important_orders_large_integers_exactly():
    # Above 2**53 a float64 key would merge these values.
    got = imp.least_important(np.array([2**62 + 1, 2**62, 0]), 2)
    np.testing.assert_array_equal(got, [2, 1])


# ----------------------------------------------------- extreme importance values


@pytest.mark.parametrize("unit", [4e307, 1e300, 1e-308, 5e-324])
def test_normalized_entropy_is_scale_free_at_the_float64_extremes(unit):
    # [4, 2, 1, 0] * unit is exact from the largest float64 down to subnormals,
    # and its normalized entropy does not depend on the unit.
    shape = np.array([4.0, 2.0, 1.0, 0.0])
    q = shape[:3] / 7.0
    expected = float(-(q * np.log2(q)).sum() / 2.0)
    got = imp.normalized_entropy(shape[None] * unit, eps=0)
    np.testing.assert_allclose(got, [expected], rtol=1e-13)
    np.testing.assert_allclose(
        entropy_reference(shape * unit, eps=0), expected, rtol=1e-13
    )
    uniform = np.full((1, 4), unit)
    np.testing.assert_allclose(imp.normalized_entropy(uniform, eps=0), [1.0])


def test_normalized_entropy_near_overflow_and_with_zeros():
    big = np.array([[1e308, 1e308, 1e308, 1e308], [1e308, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(imp.normalized_entropy(big, eps=0), [1.0, 0.0])
    # eps is negligible next to 1e308 but not next to 1e-308.
    np.testing.assert_allclose(imp.normalized_entropy(big), [1.0, 0.0], atol=1e-12)
    tiny = np.array([[1e-308, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(imp.normalized_entropy(tiny, eps=0), [0.0])
    np.testing.assert_allclose(imp.normalized_entropy(tiny), [1.0])
    zeros = np.zeros((2, 5))
    np.testing.assert_array_equal(imp.normalized_entropy(zeros, eps=0), [1.0, 1.0])
    np.testing.assert_allclose(imp.normalized_entropy(zeros), [1.0, 1.0])


def test_importance_stats_entropy_of_huge_norms_is_finite():
    f = np.full((1, 3, 5), 1e308)  # inf-norms of 1e308 at every point
    stats = imp.importance_stats(f, p=np.inf, entropy_of="norms")
    np.testing.assert_allclose(stats.entropy, [1.0])


@pytest.mark.parametrize("dtype", [np.uint64, np.uint32, np.uint8])
def test_unsigned_importance_below_int64_max_ranks_exactly(dtype):
    top = np.iinfo(dtype).max if dtype != np.uint64 else 2**63 - 1
    values = np.array([top, 1, 3, 0], dtype=dtype)
    np.testing.assert_array_equal(imp.least_important(values, 2), [3, 1])
    assert np.isfinite(imp.normalized_entropy(values))


def test_uint64_importance_above_int64_max_is_rejected_not_wrapped():
    values = np.array([2**63 + 5, 1, 3], dtype=np.uint64)
    for call in (
        lambda: imp.least_important(values, 1),
        lambda: imp.normalized_entropy(values),
    ):
        with pytest.raises(
            ValueError, match="importance: expected unsigned values <= 922337"
        ):
            call()
    tiebreak = np.array([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="importance: expected unsigned"):
        imp.least_important(values, 1, tiebreak=tiebreak)
