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
