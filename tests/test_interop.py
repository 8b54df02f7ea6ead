# Tests for the array interop layer: frameworks, dtypes, layouts, devices.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import numpy as np
import pytest

from deepscope import _arrays

from tests.conftest import HAS_TORCH, to_numpy

torch = pytest.importorskip("torch") if HAS_TORCH else None


def test_prepare_numpy_keeps_float32_without_copy(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    view = _arrays.prepare(x, "points", ndim=(2,))
    assert view.framework == "numpy"
    assert view.dtype == "float32"
    assert view.device == -1
    assert view.stream == 0
    assert view.array is x
    assert view.ptr == x.ctypes.data


def test_prepare_numpy_noncontiguous_and_readonly_copies(rng):
    base = rng.standard_normal((3, 8)).astype(np.float64)
    x = base.T  # (8, 3), not C-contiguous
    x.flags.writeable = False
    before = x.copy()
    view = _arrays.prepare(x, "points")
    assert view.array.flags.c_contiguous
    assert view.shape == (8, 3)
    np.testing.assert_array_equal(view.array, before)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_prepare_numpy_float_dtypes(dtype):
    x = np.ones((2, 3), dtype=dtype)
    view = _arrays.prepare(x, "points")
    expected = "float64" if dtype == np.float64 else "float32"
    assert view.dtype == expected
    assert view.array.dtype == np.dtype(expected)


def test_prepare_lists_become_numpy():
    view = _arrays.prepare([[0.0, 1.0, 2.0]], "points")
    assert view.framework == "numpy"
    assert view.dtype == "float64"


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.ones((2, 3), dtype=np.int32), "points: expected a floating dtype"),
        (np.ones((2, 3), dtype=bool), "points: expected a floating dtype"),
        (np.ones(3), "points: expected 2 or 3 dimensions, got 1"),
        ("abc", "points: expected an array"),
        (None, "points: expected an array"),
    ],
)
def test_prepare_rejects_bad_inputs_naming_the_argument(value, match):
    with pytest.raises(ValueError, match=match):
        _arrays.prepare(value, "points", ndim=(2, 3))


def test_prepare_type_errors_are_also_typeerrors():
    with pytest.raises(TypeError):
        _arrays.prepare({"a": 1}, "points")


def test_prepare_int64_kind_casts_integers():
    view = _arrays.prepare(np.array([1, 2], dtype=np.int32), "lengths", kind="int64")
    assert view.dtype == "int64"
    assert view.array.dtype == np.int64
    with pytest.raises(ValueError, match="lengths: expected an integer dtype"):
        _arrays.prepare(np.array([1.0]), "lengths", kind="int64")


def test_check_finite_names_argument():
    x = np.array([[0.0, np.nan, 1.0]])
    with pytest.raises(ValueError, match="points: expected finite values"):
        _arrays.check_finite(_arrays.prepare(x, "points"), "points")
    y = np.array([[0.0, np.inf, 1.0]])
    with pytest.raises(ValueError, match="points"):
        _arrays.check_finite(_arrays.prepare(y, "points"), "points")


def test_empty_full_as_array_follow_framework():
    view = _arrays.prepare(np.zeros((2, 3)), "points")
    out = _arrays.full(view, (2, 2), -1, "int64")
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.int64
    assert (out == -1).all()
    moved = _arrays.as_array(view, [1, 2], "int64")
    np.testing.assert_array_equal(moved, [1, 2])


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
class TestTorch:
    def test_requires_grad_and_noncontiguous(self):
        x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
        xt = x.t()  # (5, 3) non-contiguous view that requires grad
        view = _arrays.prepare(xt, "points")
        assert view.framework == "torch"
        assert view.array.is_contiguous()
        assert not view.array.requires_grad
        assert view.dtype == "float64"
        torch.testing.assert_close(view.array, xt.detach())

    @pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
    def test_half_precision_upcasts_to_float32(self, dtype):
        x = torch.randn(4, 3).to(getattr(torch, dtype))
        view = _arrays.prepare(x, "points")
        assert view.dtype == "float32"
        assert view.array.dtype == torch.float32
        np.testing.assert_array_equal(to_numpy(view.array), to_numpy(x.float()))

    def test_outputs_are_torch_on_cpu(self):
        view = _arrays.prepare(torch.zeros(2, 3), "points")
        out = _arrays.full(view, (3,), -1, "int64")
        assert isinstance(out, torch.Tensor)
        assert out.dtype == torch.int64
        assert out.device.type == "cpu"
        assert _arrays.data_ptr(view.array) == view.array.data_ptr()

    def test_mixed_frameworks_rejected(self):
        first = _arrays.prepare(torch.zeros(2, 3), "query")
        with pytest.raises(ValueError, match="reference: expected a torch array"):
            _arrays.prepare(np.zeros((2, 3)), "reference", like=first)

    def test_meta_device_rejected(self):
        with pytest.raises(ValueError, match="points: expected a CPU or CUDA tensor"):
            _arrays.prepare(torch.zeros(2, 3, device="meta"), "points")

    def test_conjugate_and_negative_views_resolved(self):
        x = torch.randn(4, 3)
        neg = torch._neg_view(x)
        view = _arrays.prepare(neg, "points")
        np.testing.assert_array_equal(to_numpy(view.array), -to_numpy(x))


@pytest.mark.cuda
def test_torch_cuda_stream_is_callers_current_stream():
    device = torch.device("cuda", 0)
    stream = torch.cuda.Stream(device=device)
    with torch.cuda.stream(stream):
        view = _arrays.prepare(torch.zeros(2, 3, device=device), "points")
    assert view.device == 0
    assert view.stream == stream.cuda_stream


@pytest.mark.parametrize("scale", [1e160, 1e-170])
def test_coordinates_outside_float64_distance_range_rejected(rng, scale):
    from deepscope import pointcloud as pc

    points = rng.standard_normal((20, 3)) * scale
    with pytest.raises(ValueError, match="points: expected coordinates with"):
        pc.farthest_point_sample(points, 5)
    with pytest.raises(ValueError, match="query: expected coordinates with"):
        pc.knn(points, k=3)


def test_coordinates_at_the_range_limits_accepted(rng):
    from deepscope import pointcloud as pc

    points = rng.standard_normal((20, 3))
    points /= np.abs(points).max()
    for scale in (1e149, 1e-149):
        got = to_numpy(pc.knn(points * scale, k=3).indices)
        want = to_numpy(pc.knn(points, k=3).indices)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["channels_first", "exclude_self", "squared"])
def test_flags_must_be_booleans(rng, name):
    from deepscope import pointcloud as pc

    points = rng.standard_normal((20, 3))
    with pytest.raises(ValueError, match=f"{name}: expected True or False"):
        pc.knn(points, k=2, **{name: "no"})


def test_integer_python_lists_are_coordinates():
    from deepscope import pointcloud as pc

    result = pc.knn([[0, 0, 0], [1, 1, 1], [3, 3, 3]], k=2)
    np.testing.assert_array_equal(result.indices, [[0, 1], [1, 0], [2, 1]])


@pytest.mark.parametrize("seed", [1.5, "a", -1])
def test_fps_bad_seed_names_the_argument(rng, seed):
    from deepscope import pointcloud as pc

    with pytest.raises(ValueError, match="seed: expected"):
        pc.farthest_point_sample(rng.standard_normal((10, 3)), 3, seed=seed)


# ---------------------------------------------------------------------------
# The shared argument validators: counts, seeds, lengths.


@pytest.mark.parametrize("value", [3, np.int32(3), np.uint64(3), np.array(3)])
def test_check_count_accepts_python_and_numpy_integers(value):
    assert _arrays.check_count(value, "k") == 3
    assert type(_arrays.check_count(value, "k")) is int


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (True, "k: expected an integer, got a bool"),
        (np.bool_(True), "k: expected an integer, got a bool"),
        (3.0, "k: expected an integer, got float"),
        (np.float32(3.0), "k: expected an integer, got float32"),
        ("3", "k: expected an integer, got str"),
        (None, "k: expected an integer, got NoneType"),
        (0, "k: expected 1 <= k <= 5 \\(points per cloud\\), got 0"),
        (6, "k: expected 1 <= k <= 5 \\(points per cloud\\), got 6"),
    ],
)
def test_check_count_rejects_with_name_expected_and_got(value, match):
    with pytest.raises(ValueError, match=match):
        _arrays.check_count(value, "k", 1, 5, what="points per cloud")


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_check_count_torch_scalars():
    assert _arrays.check_count(torch.tensor(4), "k") == 4
    with pytest.raises(ValueError, match="k: expected an integer, got a bool"):
        _arrays.check_count(torch.tensor(True), "k")


@pytest.mark.parametrize("value", [0, 7, np.int64(7), np.uint64(2**64 - 1), 2**64 - 1])
def test_check_seed_accepts_integers_up_to_2_pow_64(value):
    assert _arrays.check_seed(value) == int(value)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (True, "seed: expected an integer .* got a bool"),
        (1.5, "seed: expected an integer .* got float"),
        (2.0, "seed: expected an integer .* got float"),
        (-1, r"seed: expected an integer in \[0, 2\*\*64 - 1\].*got -1"),
        (2**64, "seed: expected .* got 18446744073709551616"),
        ("a", "seed: expected .* got str"),
        (None, "seed: expected .* got None"),
    ],
)
def test_check_seed_rejects_with_name_expected_and_got(value, match):
    with pytest.raises(ValueError, match=match):
        _arrays.check_seed(value)


def test_check_seed_generator_is_drawn_from_once():
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    first = _arrays.check_seed(a)
    assert first == _arrays.check_seed(b)  # same state, same seed
    assert 0 <= first <= _arrays.SEED_MAX
    assert _arrays.check_seed(a) != first  # the generator advanced


def test_check_seed_none_only_where_documented_and_32_bit_range():
    assert _arrays.check_seed(None, allow_none=True) is None
    assert _arrays.check_seed(2**32 - 1, bits=32) == 2**32 - 1
    with pytest.raises(ValueError, match=r"\[0, 2\*\*32 - 1\]"):
        _arrays.check_seed(2**32, bits=32)
    assert _arrays.check_seed(np.random.default_rng(0), bits=32) < 2**32


@pytest.mark.parametrize(
    "dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.uint64]
)
def test_prepare_lengths_accepts_any_integer_dtype(dtype):
    like = _arrays.prepare(np.zeros((2, 5, 3)), "points")
    view, host = _arrays.prepare_lengths(np.array([5, 2], dtype=dtype), like, 2, 5)
    assert host.dtype == np.int64
    np.testing.assert_array_equal(host, [5, 2])
    assert view.framework == "numpy"
    assert view.dtype == "int64"
    np.testing.assert_array_equal(view.array, [5, 2])


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_prepare_lengths_from_any_framework_lands_with_the_points():
    like = _arrays.prepare(torch.zeros((2, 5, 3)), "points")
    for lengths in ([5, 2], np.array([5, 2], np.uint8), torch.tensor([5, 2])):
        view, host = _arrays.prepare_lengths(lengths, like, 2, 5)
        assert view.framework == "torch"
        assert view.array.dtype == torch.int64
        np.testing.assert_array_equal(to_numpy(view.array), [5, 2])
    numpy_like = _arrays.prepare(np.zeros((2, 5, 3)), "points")
    view, _ = _arrays.prepare_lengths(torch.tensor([1, 0]), numpy_like, 2, 5)
    assert isinstance(view.array, np.ndarray)


@pytest.mark.parametrize(
    ("lengths", "match"),
    [
        (np.array([1.0, 2.0]), "lengths: expected an integer dtype, got float64"),
        (np.array([True, False]), "lengths: expected an integer dtype, got bool"),
        (np.array([6, 1]), r"lengths: expected 0 <= lengths\[b\] <= 5 .* = 6"),
        (np.array([1, -1]), r"lengths: expected 0 <= lengths\[b\] <= 5 .* = -1"),
        (np.array([1, 1, 1]), r"lengths: expected shape \(2,\)"),
        (
            np.array([1, 2**63 + 1], dtype=np.uint64),
            "lengths: expected unsigned values <= 9223372036854775807",
        ),
    ],
)
def test_prepare_lengths_rejects_with_name_expected_and_got(lengths, match):
    like = _arrays.prepare(np.zeros((2, 5, 3)), "points")
    with pytest.raises(ValueError, match=match):
        _arrays.prepare_lengths(lengths, like, 2, 5)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_prepare_rejects_uint64_above_int64_max_instead_of_wrapping():
    big = np.array([1, 2**63 + 5], dtype=np.uint64)
    with pytest.raises(ValueError, match="x: expected unsigned values <= 922"):
        _arrays.prepare(big, "x", kind="int64")
    fine = _arrays.prepare(np.array([1, 2**63 - 1], dtype=np.uint64), "x", kind="int64")
    assert fine.array[1] == 2**63 - 1
    if hasattr(torch, "uint64"):
        with pytest.raises(ValueError, match="x: expected unsigned values"):
            _arrays.prepare(
                torch.tensor(big.astype(np.int64)).view(torch.uint64), "x", kind="int64"
            )


# Every public function that takes these arguments follows the same policy.


def _seeded_calls():
    from deepscope import pointcloud as pc

    pts = np.random.default_rng(0).standard_normal((2, 40, 3))
    anchors = np.array([[0, 5], [1, 7]])
    calls = {
        "farthest_point_sample": lambda s: pc.farthest_point_sample(pts, 4, seed=s)[0],
        "random_subsets": lambda s: pc.random_subsets(pts, 8, 3, seed=s).indices,
        "random_walk_curves": lambda s: (
            pc.random_walk_curves(pts, anchors, 8, k=4, seed=s).indices
        ),
        "partial_clouds": lambda s: (
            pc.partial_clouds(pts, "curve", size=8, k=4, seed=s).indices
        ),
    }
    if HAS_TORCH:
        from deepscope.robust import corrupt

        calls["corrupt"] = lambda s: corrupt(pts, "jitter", 1, seed=s).points
    return calls


@pytest.mark.parametrize("name", list(_seeded_calls()))
def test_every_seed_takes_ints_numpy_ints_and_generators(name):
    call = _seeded_calls()[name]
    np.testing.assert_array_equal(call(np.int64(3)), call(3))
    np.testing.assert_array_equal(call(np.uint64(2**64 - 1)), call(2**64 - 1))
    drawn = _arrays.check_seed(np.random.default_rng(1))
    np.testing.assert_array_equal(call(np.random.default_rng(1)), call(drawn))


@pytest.mark.parametrize("name", list(_seeded_calls()))
@pytest.mark.parametrize("seed", [True, 1.5, -1, 2**64, "1"])
def test_every_seed_rejects_bools_floats_and_negatives(name, seed):
    with pytest.raises(ValueError, match="seed: expected"):
        _seeded_calls()[name](seed)


def _length_calls():
    from deepscope import importance as imp
    from deepscope import pointcloud as pc

    pts = np.random.default_rng(0).standard_normal((2, 10, 3))
    feats = np.random.default_rng(1).standard_normal((2, 10, 6))
    return {
        "farthest_point_sample": lambda n: (
            pc.farthest_point_sample(pts, 3, lengths=n).indices
        ),
        "knn": lambda n: pc.knn(pts, k=2, query_lengths=n).indices,
        "ball_query": lambda n: (
            pc.ball_query(pts, radius=1.0, max_neighbors=3, query_lengths=n).indices
        ),
        "random_subsets": lambda n: pc.random_subsets(pts, 4, 2, lengths=n).indices,
        "knn_patches": lambda n: pc.knn_patches(pts, [[0], [1]], 4, lengths=n).indices,
        "importance_stats": lambda n: (
            imp.importance_stats(feats, lengths=n, channels_last=True).counts
        ),
        "least_important": lambda n: imp.least_important(feats[..., 0], 3, lengths=n),
    }


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
@pytest.mark.parametrize("name", list(_length_calls()))
def test_every_lengths_takes_any_integer_dtype_and_framework(name):
    call = _length_calls()[name]
    expected = to_numpy(call(np.array([10, 6])))
    for lengths in (
        [10, 6],
        np.array([10, 6], dtype=np.uint8),
        np.array([10, 6], dtype=np.uint64),
        torch.tensor([10, 6], dtype=torch.int32),
    ):
        np.testing.assert_array_equal(to_numpy(call(lengths)), expected)


@pytest.mark.parametrize("name", list(_length_calls()))
@pytest.mark.parametrize(
    ("lengths", "match"),
    [
        (np.array([10.0, 6.0]), "lengths: expected an integer dtype"),
        (np.array([11, 6]), r"lengths: expected 0 <= \w*lengths\[b\] <= 10"),
        (np.array([10, -1]), r"lengths: expected 0 <= \w*lengths\[b\] <= 10"),
    ],
)
def test_every_lengths_rejects_the_same_way(name, lengths, match):
    with pytest.raises(ValueError, match=match):
        _length_calls()[name](lengths)


def _count_calls():
    from deepscope import importance as imp
    from deepscope import pointcloud as pc

    pts = np.random.default_rng(0).standard_normal((2, 10, 3))
    return {
        "n_samples": lambda c: pc.farthest_point_sample(pts, c).indices,
        "k": lambda c: pc.knn(pts, k=c).indices,
        "max_neighbors": lambda c: (
            pc.ball_query(pts, radius=1.0, max_neighbors=c).indices
        ),
        "size": lambda c: pc.random_subsets(pts, c, 2).indices,
        "patch_size": lambda c: pc.knn_patches(pts, [[0], [1]], c).indices,
        "least_important k": lambda c: imp.least_important(pts[..., 0], c),
    }


@pytest.mark.parametrize("name", list(_count_calls()))
def test_every_count_takes_numpy_integers_and_rejects_bools_and_floats(name):
    call = _count_calls()[name]
    np.testing.assert_array_equal(to_numpy(call(np.int32(3))), to_numpy(call(3)))
    arg = name.split()[-1]
    for bad in (True, 3.0, "3"):
        with pytest.raises(ValueError, match=f"{arg}: expected an integer"):
            call(bad)
