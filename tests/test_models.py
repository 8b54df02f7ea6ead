# Tests for deepscope.models: networks, feature protocol, checkpoints, training.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepscope import models  # noqa: E402
from deepscope.models import (  # noqa: E402
    DGCNN,
    FeatureModel,
    PointNet,
    capture_features,
    dense_knn,
    evaluate,
    load_checkpoint,
    save_checkpoint,
    train_classifier,
)
from deepscope.pointsets import FASHION_MNIST_DIR  # noqa: E402

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAS_FMNIST = (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()


def _has_knn_kernel() -> bool:
    try:
        from deepscope.pointcloud import knn  # noqa: F401
    except ImportError:
        return False
    return True


needs_knn_kernel = pytest.mark.skipif(
    not _has_knn_kernel(), reason="deepscope.pointcloud.knn not in this build"
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _points(b: int = 4, n: int = 64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, 3, generator=generator)


def _small(arch: str, **options):
    torch.manual_seed(0)
    if arch == "pointnet":
        return PointNet(5, emb_dims=32, **options)
    return DGCNN(5, k=8, emb_dims=32, knn="torch", **options)


# ----------------------------------------------------------------------------
# Shapes and the feature protocol


@pytest.mark.parametrize("arch", ["pointnet", "dgcnn"])
def test_forward_and_forward_features_shapes(arch):
    model = _small(arch).eval()
    x = _points()
    logits, features = model.forward_features(x)
    assert logits.shape == (4, 5)
    assert features.shape == (4, 32, 64)
    torch.testing.assert_close(model(x), logits)
    assert isinstance(model, FeatureModel)


@pytest.mark.parametrize("arch", ["pointnet", "dgcnn"])
def test_features_feed_the_global_max_pool(arch):
    model = _small(arch).eval()
    seen = []
    handle = model.head.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    _, features = model.forward_features(_points())
    handle.remove()
    pooled = seen[0]
    torch.testing.assert_close(pooled[:, :32], features.max(-1).values, rtol=0, atol=0)
    if arch == "dgcnn":
        torch.testing.assert_close(pooled[:, 32:], features.mean(-1))


@pytest.mark.parametrize("arch", ["pointnet", "dgcnn"])
def test_eval_is_permutation_invariant_and_features_follow_points(arch):
    model = _small(arch).eval()
    x = _points(2, 48)
    order = torch.randperm(48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, features = model.forward_features(x)
        logits_p, features_p = model.forward_features(x[:, order])
    torch.testing.assert_close(logits_p, logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(features_p, features[:, :, order], rtol=1e-4, atol=1e-5)


def test_pointnet_with_transforms():
    model = PointNet(3, emb_dims=16, input_transform=True, feature_transform=True)
    logits, features = model.train().forward_features(_points(3, 20))
    assert logits.shape == (3, 3)
    assert features.shape == (3, 16, 20)
    # Identity initialisation: the penalty starts at zero and has a gradient.
    penalty = model.regularization_loss()
    assert penalty.item() == pytest.approx(0.0, abs=1e-8)
    (logits.sum() + penalty).backward()
    assert model.feature_tnet.out.weight.grad is not None
    assert float(PointNet(3).regularization_loss()) == 0.0


def test_gradients_flow_to_all_dgcnn_weights():
    model = _small("dgcnn").train()
    model(_points()).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


@pytest.mark.parametrize("arch", ["pointnet", "dgcnn"])
def test_bad_inputs_raise_value_errors(arch):
    model = _small(arch)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        model(torch.zeros(2, 3, 64, 1))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        model(torch.zeros(2, 64, 4))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(2, 64, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model(np.zeros((2, 64, 3), np.float32))


def test_dgcnn_needs_k_points_and_valid_options():
    with pytest.raises(ValueError, match="at least 8 points"):
        _small("dgcnn").eval()(_points(2, 7))
    with pytest.raises(ValueError, match="knn"):
        DGCNN(3, knn="faiss")
    with pytest.raises(ValueError, match="k:"):
        DGCNN(3, k=0)
    with pytest.raises(ValueError, match="channels"):
        DGCNN(3, channels=(8, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        DGCNN(3, channels=(8, 0, 8, 8))


def test_dgcnn_channels_and_edge_conv_equal_the_edge_feature_form(tmp_path):
    from deepscope.models.dgcnn import _edge_features

    torch.manual_seed(0)
    model = DGCNN(5, k=6, emb_dims=16, channels=(4, 6, 8, 10), knn="torch")
    assert model.conv4[0].weight.shape == (10, 16, 1, 1)
    assert model.conv5[0].weight.shape == (16, 28, 1)
    model.train()
    model(_points(4, 40))  # moves the BatchNorm running statistics
    model.eval().double()
    x = _points(2, 40).double()
    # The cheap EdgeConv against the 2C-channel edge features, layer by layer.
    features, expected = x.transpose(1, 2), []
    for layer, conv in enumerate((model.conv1, model.conv2, model.conv3, model.conv4)):
        edges = _edge_features(features, model.neighbours(features, layer))
        features = conv(edges).amax(dim=-1)
        expected.append(features)
    expected = model.conv5(torch.cat(expected, dim=1))
    torch.testing.assert_close(model.forward_features(x)[1], expected)
    path = save_checkpoint(model.float(), tmp_path / "narrow.pt")
    loaded = load_checkpoint(path, knn="torch")
    assert loaded.config["channels"] == [4, 6, 8, 10]
    torch.testing.assert_close(loaded(x.float()), model(x.float()), rtol=0, atol=0)


def test_float64_points_run_in_the_weights_dtype():
    model = _small("pointnet").eval()
    x = _points()
    torch.testing.assert_close(model(x.double()), model(x))


# ----------------------------------------------------------------------------
# kNN inside DGCNN


def _brute_knn(x: np.ndarray, k: int) -> np.ndarray:
    """float64 brute force, sorted by (squared distance, index)."""
    x = x.astype(np.float64)
    dist = ((x[:, :, None, :] - x[:, None, :, :]) ** 2).sum(-1)
    return np.argsort(dist, axis=-1, kind="stable")[..., :k]


@pytest.mark.parametrize("dims", [3, 64])
def test_dense_knn_matches_brute_force(dims):
    x = torch.randn(2, 50, dims, generator=torch.Generator().manual_seed(dims))
    indices = dense_knn(x, 7)
    assert indices.dtype == torch.int64
    np.testing.assert_array_equal(indices.numpy(), _brute_knn(x.numpy(), 7))
    np.testing.assert_array_equal(
        indices[..., 0].numpy(), np.tile(np.arange(50), (2, 1))
    )


@pytest.mark.parametrize("k", [1, 2, 3, 5, 16])
def test_dense_knn_breaks_ties_by_lowest_index(k):
    corners = torch.tensor(
        [[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=torch.float32
    )
    x = torch.cat([corners, corners])[None]  # every point has an exact duplicate
    indices = dense_knn(x, k)
    np.testing.assert_array_equal(indices.numpy(), _brute_knn(x.numpy(), k))
    assert indices[0, 8, : min(k, 2)].tolist() == [0, 8][:k]


@pytest.mark.parametrize("dims", [3, 16])
def test_dense_knn_on_a_grid_with_many_ties(dims):
    g = torch.Generator().manual_seed(dims)
    x = torch.randint(0, 3, (2, 60, dims), generator=g).float()
    np.testing.assert_array_equal(dense_knn(x, 9).numpy(), _brute_knn(x.numpy(), 9))


def test_dense_knn_carries_no_gradient():
    x = torch.randn(1, 10, 3, requires_grad=True)
    assert not dense_knn(x, 3).requires_grad


@needs_knn_kernel
@pytest.mark.parametrize("mode", ["deepscope", "auto"])
def test_dgcnn_kernel_and_dense_knn_give_identical_logits(mode):
    torch.manual_seed(0)
    dense = DGCNN(5, k=10, emb_dims=32, knn="torch").eval()
    kernel = DGCNN(5, k=10, emb_dims=32, knn=mode).eval()
    kernel.load_state_dict(dense.state_dict())
    x = _points(3, 80)
    for layer in range(4):
        feats = x.transpose(1, 2) if layer == 0 else torch.randn(3, 64, 80)
        assert torch.equal(
            kernel.neighbours(feats, layer), dense.neighbours(feats, layer)
        )
    torch.testing.assert_close(kernel(x), dense(x), rtol=0, atol=0)


# ----------------------------------------------------------------------------
# capture_features on networks we did not write


class _ForeignNet(torch.nn.Module):
    """A channels-first net in the style of the CP++ code: returns (logits, x_f)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Sequential(torch.nn.Conv1d(3, 16, 1), torch.nn.ReLU())
        self.fc = torch.nn.Linear(16, 4)

    def forward(self, x):  # x: (B, 3, N)
        x_f = self.conv(x)
        return self.fc(x_f.max(-1).values), x_f


def test_capture_features_on_a_foreign_model():
    net = _ForeignNet().eval()
    x = torch.randn(2, 3, 30)
    logits, features = capture_features(net, x, module="conv")
    expected_logits, expected_features = net(x)
    torch.testing.assert_close(logits, expected_logits)
    torch.testing.assert_close(features, expected_features)
    assert not features.requires_grad
    # A NumPy input is turned into a tensor on the model's device.
    logits_np, _ = capture_features(net, x.numpy(), module="conv.1")
    torch.testing.assert_close(logits_np, expected_logits)


def test_capture_features_matches_forward_features():
    model = _small("pointnet").eval()
    x = _points()
    logits, features = capture_features(model, x, module="conv5")
    expected_logits, expected_features = model.forward_features(x)
    torch.testing.assert_close(features, expected_features)
    torch.testing.assert_close(logits, expected_logits)


def test_capture_features_channels_last_and_errors():
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Linear(8, 2)).eval()
    _, features = capture_features(net, torch.randn(2, 11, 3), "0", channels_last=True)
    assert features.shape == (2, 8, 11)
    with pytest.raises(ValueError, match="no submodule"):
        capture_features(net, torch.randn(2, 11, 3), "conv9")
    with pytest.raises(ValueError, match=r"\(B, F, N\)"):
        capture_features(net, torch.randn(11, 3), "0")


def test_capture_features_warns_in_training_mode_and_runs_as_is():
    net = _ForeignNet().train()
    with pytest.warns(UserWarning, match="training mode"):
        capture_features(net, torch.randn(2, 3, 5), "conv")
    assert net.training


# ----------------------------------------------------------------------------
# Checkpoints


@pytest.mark.parametrize("arch", ["pointnet", "dgcnn"])
def test_checkpoint_round_trip_with_weights_only(tmp_path, arch):
    model = _small(arch)
    model.train()
    model(_points(8))  # moves the BatchNorm running statistics
    model.eval()
    meta = {"class_names": list("abcde"), "test_accuracy": np.float32(0.5), "n": 3}
    path = save_checkpoint(model, tmp_path / "sub" / "model.pt", meta=meta)

    raw = torch.load(path, weights_only=True)
    assert raw["architecture"] == arch
    assert raw["meta"]["test_accuracy"] == 0.5
    options = {"knn": "torch"} if arch == "dgcnn" else {}
    loaded = load_checkpoint(path, **options)
    assert type(loaded) is type(model)
    assert not loaded.training
    assert loaded.meta["class_names"] == list("abcde")
    assert loaded.config == model.config
    x = _points()
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_checkpoint_rejects_foreign_files_and_metadata(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a deepscope"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="JSON-like"):
        save_checkpoint(_small("pointnet"), tmp_path / "m.pt", meta={"f": object()})
    with pytest.raises(ValueError, match="model"):
        save_checkpoint(_ForeignNet(), tmp_path / "m.pt")


# ----------------------------------------------------------------------------
# Training


def _toy_set(count: int, seed: int):
    """Two separable classes: flat discs versus tall sticks."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 2
    points = torch.randn(count, 32, 3, generator=g)
    points[labels == 0, :, 2] *= 0.05
    points[labels == 1, :, :2] *= 0.05
    return points, labels


def test_training_is_deterministic_with_a_seed():
    data = _toy_set(40, 0)

    def run(seed):
        torch.manual_seed(123)
        model = PointNet(2, emb_dims=16)
        history = train_classifier(
            model, data, data, epochs=2, batch_size=8, seed=seed, progress=False
        )
        return model, history

    (a, ha), (b, hb), (c, _) = run(0), run(0), run(1)
    assert ha["train_loss"] == hb["train_loss"]
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    for name, tensor in sa.items():
        assert torch.equal(tensor, sb[name]), name
    assert any(
        not torch.equal(tensor, sc[name])
        for name, tensor in sa.items()
        if tensor.is_floating_point()
    )


def test_training_leaves_the_global_rng_alone_and_reports_history():
    model = PointNet(2, emb_dims=16)
    state = torch.get_rng_state()
    calls = []
    history = train_classifier(
        model,
        _toy_set(20, 0),
        epochs=2,
        batch_size=6,
        optimizer="sgd",
        label_smoothing=0.1,
        progress=False,
        callback=lambda epoch, h: calls.append(epoch),
    )
    assert torch.equal(torch.get_rng_state(), state)
    assert calls == [0, 1]
    assert len(history["train_loss"]) == 2
    assert np.isnan(history["test_acc"]).all()
    assert history["lr"][1] < history["lr"][0]
    with pytest.raises(ValueError, match="optimizer"):
        train_classifier(PointNet(2), _toy_set(4, 0), epochs=1, optimizer="rmsprop")


def test_augment_points_shuffles_scales_and_shifts():
    x = _points(3, 40)
    y = models.augment_points(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert not torch.equal(y, x)
    # Undo shift and scale per axis and cloud: the multiset of points matches.
    for b in range(3):
        xs, _ = x[b].sort(dim=0)
        ys, _ = y[b].sort(dim=0)
        scale = (ys[-1] - ys[0]) / (xs[-1] - xs[0])
        assert ((scale > 2 / 3 - 1e-4) & (scale < 1.5 + 1e-4)).all()
        torch.testing.assert_close((ys - ys.mean(0)) / scale, xs - xs.mean(0))


@pytest.mark.skipif(not HAS_SKLEARN, reason="needs scikit-learn")
def test_tiny_digits_training_beats_chance():
    from deepscope.pointsets import digits_points

    train = digits_points("train", 128, limit=700)
    test = digits_points("test", 128)
    torch.manual_seed(0)
    model = PointNet(10, emb_dims=128)
    history = train_classifier(
        model, train, None, epochs=2, lr=3e-3, seed=0, progress=False
    )
    accuracy = evaluate(model, test.points, test.labels)
    assert history["train_loss"][1] < history["train_loss"][0]
    assert accuracy > 0.35  # chance is 0.1


def test_evaluate_restores_the_training_mode():
    model = _small("pointnet").train()
    points, labels = _toy_set(10, 0)
    accuracy = evaluate(model, points, labels, batch_size=4)
    assert 0.0 <= accuracy <= 1.0
    assert model.training
    with pytest.raises(ValueError, match="labels"):
        evaluate(model, points, labels[:3])


# ----------------------------------------------------------------------------
# Shipped checkpoints


def _pretrained_or_skip(name: str, **options):
    if name not in models.PRETRAINED:
        pytest.skip(f"{name} weights not shipped")
    try:
        return models.pretrained(name, **options)
    except FileNotFoundError:
        pytest.skip(f"{name} weights not shipped")


@pytest.mark.skipif(not HAS_FMNIST, reason="apt-get install -y dataset-fashion-mnist")
@pytest.mark.parametrize(
    ("name", "count", "threshold"),
    [("pointnet-fmnist", 500, 0.7), ("dgcnn-fmnist", 64, 0.5)],
)
def test_pretrained_accuracy_on_fashion_mnist(name, count, threshold):
    from deepscope.pointsets import fashion_mnist_points

    # The kNN kernel is the fastest DGCNN path on CPU for 1024-point clouds.
    options = {"knn": "deepscope"} if name.startswith("dgcnn") else {}
    model = _pretrained_or_skip(name, **options)
    meta = model.meta
    assert meta["dataset"] == "fashion-mnist"
    assert meta["class_names"][0] == "T-shirt/top"
    test = fashion_mnist_points("test", meta["n_points"], seed=1, limit=count)
    accuracy = evaluate(model, test.points, test.labels, batch_size=100)
    assert accuracy > threshold
    assert abs(accuracy - meta["test_accuracy"]) < 0.1


def test_pretrained_rejects_unknown_names():
    with pytest.raises(ValueError, match="pointnet-fmnist"):
        models.pretrained("resnet")


# ----------------------------------------------------------------------------
# CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("arch", ["pointnet", "dgcnn"])
def test_models_on_cuda_match_cpu(arch):
    model = _small(arch).eval()
    x = _points(3, 64)
    expected_logits, expected_features = model.forward_features(x)
    logits, features = model.cuda().forward_features(x.cuda())
    torch.testing.assert_close(logits.cpu(), expected_logits, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(features.cpu(), expected_features, rtol=1e-3, atol=1e-3)


@pytest.mark.cuda
@needs_knn_kernel
def test_dgcnn_kernel_knn_on_cuda_matches_dense():
    torch.manual_seed(0)
    dense = DGCNN(5, k=10, emb_dims=32, knn="torch").eval().cuda()
    kernel = DGCNN(5, k=10, emb_dims=32, knn="auto").eval().cuda()
    kernel.load_state_dict(dense.state_dict())
    x = _points(3, 80).cuda()
    for layer, dims in enumerate((3, 64, 64, 128)):
        feats = x.transpose(1, 2) if layer == 0 else torch.randn(3, dims, 80).cuda()
        assert torch.equal(
            kernel.neighbours(feats, layer), dense.neighbours(feats, layer)
        )
    torch.testing.assert_close(kernel(x), dense(x), rtol=0, atol=0)
