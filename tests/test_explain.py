# Tests for deepscope.importance.explain, outlier removal, faithfulness curves, CLI.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepscope.importance import (  # noqa: E402
    MEASURES,
    explain,
    importance_outliers,
    post_bottleneck_norms,
    removal_curves,
)
from deepscope.models import PointNet  # noqa: E402

from tests import reference as ref  # noqa: E402

HAS_CAPTUM = importlib.util.find_spec("captum") is not None


class ToyMax(torch.nn.Module):
    """Class 1 iff some point has x > 0.5; features (x, x / 2) max-pooled.

    Known answers for clouds with 0 <= x: the gradient of logit 1 is 1 on the
    x coordinate of the point with the largest x and 0 elsewhere; FBI is
    ``|x| * sqrt(1.25)``; Integrated Gradients from the origin give ``x_max``
    at the arg-max point.
    """

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

    def forward_features(self, points):
        x = points[..., 0]
        features = torch.stack([x, 0.5 * x], dim=1) * self.scale
        top = features[:, 0].amax(dim=1)
        logits = torch.stack([0.5 - top, top - 0.5], dim=1)
        return logits, features

    def forward(self, points):
        return self.forward_features(points)[0]


def _toy_clouds(S=6, N=20, K=4, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, (S, N, 3))
    pts[..., 0] = rng.uniform(0.0, 0.4, (S, N))
    for s in range(S):
        signal = rng.choice(N, K, replace=False)
        pts[s, signal, 0] = rng.uniform(0.6, 1.0, K)
    return pts


def _small_pointnet(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    model = PointNet(4, emb_dims=16, dropout=0.0).to(dtype)
    # Non-trivial BatchNorm statistics, then inference mode.
    with torch.no_grad():
        model(torch.randn(8, 32, 3, dtype=dtype))
    return model.eval()


# ------------------------------------------------------------------ measures


def test_fbi_critical_post_match_numpy_references():
    model = _small_pointnet()
    pts = np.random.default_rng(1).normal(size=(3, 24, 3))
    with torch.no_grad():
        logits, feats = model.forward_features(torch.from_numpy(pts))
    f = feats.numpy()
    norms, counts, _ = ref.importance_reference(f)
    refs = {
        "fbi": norms,
        "critical": counts.astype(np.float64),
        "fbi_post": ref.post_bottleneck_reference(f),
    }
    for measure, expected in refs.items():
        out = explain(model, pts, measure=measure)
        assert isinstance(out.importance, np.ndarray)
        np.testing.assert_allclose(out.importance, expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(out.predicted, logits.numpy().argmax(1))
        entropy = [ref.entropy_reference(row) for row in expected]
        np.testing.assert_allclose(out.entropy, entropy, rtol=1e-9)
        np.testing.assert_allclose(out.logits, logits.numpy(), rtol=1e-12)
    l1 = explain(model, pts, measure="fbi", p=1).importance
    np.testing.assert_allclose(l1, np.abs(f).sum(1), rtol=1e-10)
    for p in (1, float("inf")):
        np.testing.assert_allclose(
            post_bottleneck_norms(feats, p=p).numpy(),
            ref.post_bottleneck_reference(f, p=p),
            rtol=1e-12,
        )


def test_gradient_matches_finite_differences():
    model = _small_pointnet(2)
    pts = np.random.default_rng(3).normal(size=(2, 6, 3))
    out = explain(model, pts, measure="gradient")
    h = 1e-6
    for b in range(2):
        t = int(out.predicted[b])
        # All +h / -h perturbations of one coordinate, in one batch.
        shifts = np.eye(18).reshape(18, 6, 3) * h
        batch = np.concatenate([pts[b] + shifts, pts[b] - shifts])
        with torch.no_grad():
            values = model(torch.from_numpy(batch))[:, t].numpy()
        grad = ((values[:18] - values[18:]) / (2 * h)).reshape(6, 3)
        np.testing.assert_allclose(
            out.importance[b], np.linalg.norm(grad, axis=1), rtol=1e-4, atol=1e-6
        )


def test_point_dropping_matches_leave_one_out_loop():
    model = _small_pointnet(4)
    pts = np.random.default_rng(5).normal(size=(2, 9, 3))
    out = explain(model, pts, measure="point_dropping", batch_size=4)
    with torch.no_grad():
        for b in range(2):
            t = int(out.predicted[b])
            full = float(model(torch.from_numpy(pts[b][None]))[0, t])
            rest = np.stack([np.delete(pts[b], n, axis=0) for n in range(9)])
            ref = full - model(torch.from_numpy(rest))[:, t].numpy()
            np.testing.assert_allclose(out.importance[b], ref, rtol=1e-9, atol=1e-12)


def test_toy_model_known_answers():
    model = ToyMax().eval()
    pts = _toy_clouds(S=3)
    top = pts[..., 0].argmax(axis=1)
    fbi = explain(model, pts, measure="fbi").importance
    np.testing.assert_allclose(fbi, np.abs(pts[..., 0]) * math.sqrt(1.25), rtol=1e-12)
    grad = explain(model, pts, measure="gradient").importance
    expected = np.zeros((3, 20))
    expected[np.arange(3), top] = 1.0
    np.testing.assert_allclose(grad, expected, atol=1e-12)
    counts = explain(model, pts, measure="critical").importance
    np.testing.assert_array_equal(counts, 2 * expected)


@pytest.mark.skipif(not HAS_CAPTUM, reason="needs captum")
def test_integrated_gradients_toy_and_completeness():
    model = ToyMax().eval()
    pts = _toy_clouds(S=2)
    top = pts[..., 0].argmax(axis=1)
    ig = explain(model, pts, measure="integrated_gradients", n_steps=16).importance
    expected = np.zeros((2, 20))
    expected[np.arange(2), top] = pts[np.arange(2), top, 0]
    np.testing.assert_allclose(ig, expected, rtol=1e-9, atol=1e-12)


def test_integrated_gradients_without_captum_raises(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(ImportError, match="captum"):
        explain(ToyMax().eval(), _toy_clouds(S=1), measure="integrated_gradients")


# ------------------------------------------------------------ front end


def test_batch_of_one_equals_batch_of_many_and_frameworks():
    model = _small_pointnet(6, dtype=torch.float32)
    pts = np.random.default_rng(7).normal(size=(4, 16, 3)).astype(np.float32)
    for measure in ("fbi", "fbi_post", "critical", "gradient", "point_dropping"):
        size = 16 if measure == "point_dropping" else 3
        many = explain(model, pts, measure=measure, batch_size=size)
        single = explain(model, pts[2], measure=measure, batch_size=size)
        assert single.importance.shape == (16,)
        assert single.predicted.shape == ()
        np.testing.assert_allclose(
            single.importance, many.importance[2], rtol=1e-5, atol=1e-6
        )
        assert int(single.predicted) == int(many.predicted[2])
        assert np.all((many.entropy >= 0) & (many.entropy <= 1))
        if measure in ("fbi", "gradient"):
            as_torch = explain(model, torch.from_numpy(pts), measure=measure)
            assert isinstance(as_torch.importance, torch.Tensor)
            assert as_torch.importance.dtype == torch.float32
            np.testing.assert_allclose(
                as_torch.importance.numpy(), many.importance, rtol=1e-5, atol=1e-6
            )


def test_train_mode_warns_and_is_restored():
    model = _small_pointnet(8).train()
    pts = np.random.default_rng(9).normal(size=(2, 12, 3))
    with pytest.warns(UserWarning, match="training mode"):
        out = explain(model, pts)
    assert model.training
    np.testing.assert_allclose(out.importance, explain(model.eval(), pts).importance)


def test_frozen_model_works_for_gradient_measures():
    model = _small_pointnet(10)
    for param in model.parameters():
        param.requires_grad_(False)
    pts = np.random.default_rng(11).normal(size=(2, 12, 3))
    with torch.no_grad():  # even under no_grad
        out = explain(model, pts, measure="gradient")
    assert np.all(np.isfinite(out.importance))
    assert out.importance.max() > 0
    assert all(p.grad is None for p in model.parameters())


def test_input_not_modified_and_bad_arguments():
    model = _small_pointnet(12)
    pts = np.random.default_rng(13).normal(size=(2, 12, 3))
    pts.setflags(write=False)
    before = pts.copy()
    explain(model, pts, measure="gradient")
    np.testing.assert_array_equal(pts, before)
    with pytest.raises(ValueError, match="measure"):
        explain(model, pts, measure="lime")
    with pytest.raises(ValueError, match="points"):
        explain(model, pts[..., :2])
    with pytest.raises(ValueError, match="points"):
        explain(model, np.full((1, 4, 3), np.nan))
    with pytest.raises(ValueError, match="target"):
        explain(model, pts, measure="gradient", target=[0, 9])
    with pytest.raises(ValueError, match="p"):
        explain(model, pts, p=3)
    assert set(MEASURES) >= {"fbi", "critical", "gradient", "point_dropping"}


def test_capture_hook_models():
    model = _small_pointnet(14)

    class Plain(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, points):
            return self.inner(points)

    pts = np.random.default_rng(15).normal(size=(2, 12, 3))
    wrapped = Plain(model).eval()
    out = explain(wrapped, pts, module="inner.conv5")
    np.testing.assert_allclose(out.importance, explain(model, pts).importance)
    with pytest.raises(ValueError, match="module"):
        explain(wrapped, pts)


# ------------------------------------------------------------------ outliers


def test_importance_outliers_fraction_and_entropy():
    imp = np.array([[0.1, 5.0, 0.2, 0.2, 3.0, 0.0, 0.3, 0.1, 0.2, 0.1]])
    mask = importance_outliers(imp, fraction=0.2)
    np.testing.assert_array_equal(np.flatnonzero(mask.removed[0]), [1, 4])
    assert mask.counts.tolist() == [2]
    # Ties: the lower index counts as more important.
    tie = importance_outliers(np.array([1.0, 2.0, 2.0, 0.0]), fraction=0.25)
    np.testing.assert_array_equal(np.flatnonzero(tie.removed), [1])
    adaptive = importance_outliers(imp, method="entropy")
    h = ref.entropy_reference(imp[0])
    assert int(adaptive.counts[0]) == 10 - max(1, math.floor(h * 10))
    top = np.argsort(-imp[0], kind="stable")[: int(adaptive.counts[0])]
    np.testing.assert_array_equal(np.flatnonzero(adaptive.removed[0]), np.sort(top))
    # Uniform importance has entropy 1: nothing is removed.
    assert int(importance_outliers(np.ones(8), method="entropy").counts) == 0
    assert int(importance_outliers(np.ones(8), fraction=1.0).counts) == 7
    rng = np.random.default_rng(0)
    data = np.round(rng.random((5, 30)), 1)  # many ties
    for frac in (0.0, 0.1, 0.33, 1.0, None):
        got = importance_outliers(
            data, fraction=frac, method="entropy" if frac is None else "fraction"
        )
        for b in range(5):
            want = ref.outliers_reference(data[b], fraction=frac)
            np.testing.assert_array_equal(got.removed[b], want)
            assert got.counts[b] == want.sum()
    with pytest.raises(ValueError, match="fraction"):
        importance_outliers(imp, fraction=1.5)
    with pytest.raises(ValueError, match="method"):
        importance_outliers(imp, method="sor")
    with pytest.raises(ValueError, match="importance"):
        importance_outliers(np.array([np.nan, 1.0]))


# -------------------------------------------------------------- faithfulness


def test_removal_curves_on_toy_model_with_known_importance():
    model = ToyMax().eval()
    pts = _toy_clouds(S=8, N=20, K=4)
    labels = np.ones(8, dtype=np.int64)
    fractions = [0.0, 0.1, 0.2, 0.5]
    for mode in ("replace", "drop"):
        curves = removal_curves(
            model, pts, labels, pts[..., 0], fractions=fractions, mode=mode
        )
        # MoRF: r = 0, 2 keep a signal point; r = 4, 10 remove all four.
        np.testing.assert_array_equal(curves.morf, [1, 1, 0, 0])
        np.testing.assert_array_equal(curves.lerf, [1, 1, 1, 1])
        assert curves.aopc_morf == pytest.approx(0.5)
        assert curves.aopc_lerf == 0.0
        gap = np.array([0, 0, 1, 1.0])
        area = np.trapezoid(gap, fractions) / 0.5
        assert curves.area_between == pytest.approx(area)
    # An importance that points the wrong way swaps the curves.
    wrong = removal_curves(model, pts, labels, -pts[..., 0], fractions=fractions)
    np.testing.assert_array_equal(wrong.lerf, [1, 1, 0, 0])
    assert wrong.area_between == pytest.approx(-curves.area_between)


def test_removal_curves_seeded_and_replace_equals_drop_for_pointnet():
    model = _small_pointnet(16, dtype=torch.float32)
    rng = np.random.default_rng(17)
    pts = rng.normal(size=(12, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 4, 12)
    counts = explain(model, pts, measure="critical").importance  # many ties
    steps = (0.0, 0.3, 0.6, 0.9)
    a = removal_curves(model, pts, labels, counts, fractions=steps, seed=3)
    b = removal_curves(model, pts, labels, counts, fractions=steps, seed=3)
    np.testing.assert_array_equal(a.morf, b.morf)
    np.testing.assert_array_equal(a.lerf, b.lerf)
    # Max-pool networks in eval mode ignore duplicates: replacing == dropping.
    d = removal_curves(model, pts, labels, counts, fractions=steps, seed=3, mode="drop")
    np.testing.assert_array_equal(a.morf, d.morf)
    np.testing.assert_array_equal(a.lerf, d.lerf)
    assert a.morf[0] == a.lerf[0]
    with pytest.raises(ValueError, match="fractions"):
        removal_curves(model, pts, labels, counts, fractions=[0.5, 0.2])
    with pytest.raises(ValueError, match="importance"):
        removal_curves(model, pts, labels, counts[:, :5])
    with pytest.raises(ValueError, match="mode"):
        removal_curves(model, pts, labels, counts, mode="zero")


# ------------------------------------------------------------------- the CLI


def _read_ply(path):
    plyfile = pytest.importorskip("plyfile")
    vertex = plyfile.PlyData.read(str(path))["vertex"]
    return vertex


def test_cli_explain_default_writes_ply_png(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from deepscope.cli import main

    monkeypatch.setenv("DEEPSCOPE_FASHION_MNIST", str(tmp_path / "missing"))
    out = tmp_path / "expl.ply"
    assert main(["explain", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    for word in ("predicted", "entropy", "bunny", "outliers"):
        assert word in printed
    vertex = _read_ply(out)
    assert len(vertex) == 256
    assert {"red", "green", "blue"} <= {p.name for p in vertex.properties}
    outliers = _read_ply(tmp_path / "expl_outliers.ply")
    assert len(outliers) == math.ceil(0.05 * 256)
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


def test_cli_explain_input_file_gradient_and_errors(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from deepscope import datasets
    from deepscope.cli import main

    source = tmp_path / "cloud.ply"
    datasets.save_ply(source, np.random.default_rng(0).normal(size=(300, 3)))
    out = tmp_path / "g.ply"
    argv = ["explain", str(source), "--measure", "gradient", "--no-png"]
    argv += ["--outliers", "entropy", "-o", str(out)]
    assert main(argv) == 0
    assert len(_read_ply(out)) == 256
    assert not out.with_suffix(".png").exists()
    assert main(["explain", str(tmp_path / "nope.ply")]) == 2
    assert main(["explain", "--measure", "lime"]) == 2
    assert main(["explain", "--outlier-fraction", "2"]) == 2
    assert main(["explain", "-o", str(tmp_path / "noext")]) == 2
    assert "-o: expected a .ply file name" in capsys.readouterr().err
    assert not (tmp_path / "noext").exists()
    capsys.readouterr()


def test_cli_explain_index_past_the_test_set(tmp_path, capsys):
    from deepscope.cli import main
    from deepscope.pointsets import FASHION_MNIST_DIR

    if not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist not installed")
    argv = ["explain", "--index", "99999", "--no-png", "-o", str(tmp_path / "e.ply")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--index" in err
    assert "99999" in err
    assert "Traceback" not in err


def test_dgcnn_and_checkpoint_cli(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from deepscope.cli import main
    from deepscope.models import DGCNN, save_checkpoint

    torch.manual_seed(0)
    model = DGCNN(3, k=4, emb_dims=16).eval()
    pts = np.random.default_rng(0).normal(size=(2, 12, 3)).astype(np.float32)
    with torch.no_grad():
        _, feats = model.forward_features(torch.from_numpy(pts))
    out = explain(model, pts, measure="fbi")
    np.testing.assert_allclose(out.importance, feats.norm(dim=1).numpy(), rtol=1e-5)
    assert explain(model, pts, measure="gradient").importance.shape == (2, 12)

    ckpt = save_checkpoint(
        model, tmp_path / "d.pt", meta={"n_points": 24, "class_names": ["a", "b", "c"]}
    )
    out_ply = tmp_path / "d.ply"
    argv = ["explain", "--model", str(ckpt), "--measure", "critical", "--no-png"]
    assert main([*argv, "-o", str(out_ply)]) == 0
    assert len(_read_ply(out_ply)) == 24
    assert "class" in capsys.readouterr().out

    # A checkpoint trained on another data set, explained on a Fashion-MNIST cloud.
    from deepscope.pointsets import FASHION_MNIST_DIR

    if (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        ckpt = save_checkpoint(
            model, tmp_path / "g.pt", meta={"n_points": 24, "dataset": "digits"}
        )
        argv = ["explain", "--model", str(ckpt), "--no-png", "-o", str(out_ply)]
        capsys.readouterr()
        assert main(argv) == 0
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1
        assert err[0].startswith("deepscope explain: warning: --model was trained")
        assert "trained on 'digits'" in err[0]
