# Tests of deepscope.decompose: DXAI decomposition, Explanation, scoring curves.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from deepscope.decompose import (
    DXAI,
    DXAIConfig,
    SmallCNN,
    accuracy,
    load_digits,
    plot_explanation,
    train_classifier,
    unnormalize,
)
from deepscope.decompose import _scoring as sc

TINY = DXAIConfig(width=4, levels=1, style_dim=8, disc_width=8, lr=1e-3, ema_beta=0.9)


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return load_digits("train", limit=400), load_digits("test", limit=64)


@pytest.fixture(scope="module")
def classifier(digits):
    tr, _ = digits
    return train_classifier(tr.images, tr.labels, num_classes=10, epochs=8, seed=0)


@pytest.fixture(scope="module")
def dxai(digits, classifier):
    tr, _ = digits
    model = DXAI(classifier, 10, 1, (8, 8), TINY, seed=1)
    model.fit(tr.images, tr.labels, iterations=20, batch_size=8, seed=2)
    return model


def test_data_and_classifier(digits, classifier):
    tr, te = digits
    assert tr.images.shape == (400, 1, 8, 8)
    assert tr.images.dtype == torch.float32
    assert -1.0 <= float(tr.images.min())
    assert float(tr.images.max()) <= 1.0
    assert accuracy(classifier, te.images, te.labels) > 0.7
    assert not classifier.training


def test_sum_identity(dxai, digits):
    _, te = digits
    e = dxai.explain(te.images[:5], te.labels[:5])
    assert e.max_sum_error() < 1e-5
    torch.testing.assert_close(e.branches.sum(1) + e.residual, e.input)
    torch.testing.assert_close(e.distinct, e.branches[:, 0])
    raw = dxai.explain(te.images[:5], te.labels[:5], absorb_residual=False)
    torch.testing.assert_close(raw.agnostic, raw.branches[:, 1:].sum(1))
    torch.testing.assert_close(raw.input - raw.distinct - raw.agnostic, raw.residual)


def test_shapes_batch_one_and_n(dxai, digits):
    _, te = digits
    e1 = dxai.explain(te.images[3])
    en = dxai.explain(te.images[:6])
    assert e1.branches.shape == (1, 5, 1, 8, 8)
    assert en.branches.shape == (6, 5, 1, 8, 8)
    assert en.distinct.shape == en.agnostic.shape == (6, 1, 8, 8)
    assert en.target.shape == (6,)
    assert en.target.dtype == torch.int64
    torch.testing.assert_close(e1.branches[0], en.branches[3], atol=1e-5, rtol=1e-5)
    # Default target = classifier prediction.
    assert int(e1.target[0]) == int(dxai.classifier(te.images[3:4]).argmax())


def test_branches_are_independent(dxai, digits):
    # Zeroing the stem weights of one group changes that branch only.
    _, te = digits
    x = te.images[:2]
    before = dxai.decompose(x, 0)
    g = dxai.generator_ema
    saved = g.stem.weight.detach().clone()
    per = g.stem.weight.shape[0] // 5
    with torch.no_grad():
        g.stem.weight[2 * per : 3 * per] = 0
    after = dxai.decompose(x, 0)
    with torch.no_grad():
        g.stem.weight.copy_(saved)
    changed = (before - after).abs().flatten(2).amax(2).amax(0)
    assert changed[2] > 0
    assert torch.all(changed[[0, 1, 3, 4]] == 0)


def test_classifier_frozen_and_mode_warned(digits):
    tr, _ = digits
    clf = SmallCNN(1, 10, 8)
    clf.train()
    snapshot = {k: v.clone() for k, v in clf.state_dict().items()}
    model = DXAI(clf, 10, 1, (8, 8), TINY)
    with pytest.warns(UserWarning, match="train mode"):
        model.fit(tr.images, tr.labels, iterations=2, batch_size=4)
    for k, v in clf.state_dict().items():
        torch.testing.assert_close(v, snapshot[k], rtol=0, atol=0)
    assert clf.training
    assert all(p.requires_grad for p in clf.parameters())
    assert all(p.grad is None for p in clf.parameters())


def test_deterministic_with_seed(digits, classifier):
    tr, te = digits
    outs = []
    for _ in range(2):
        m = DXAI(classifier, 10, 1, (8, 8), TINY, seed=3)
        m.fit(tr.images, tr.labels, iterations=3, batch_size=4, seed=5)
        outs.append(m.decompose(te.images[:4], te.labels[:4]))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    m = DXAI(classifier, 10, 1, (8, 8), TINY, seed=3)
    m.fit(tr.images, tr.labels, iterations=3, batch_size=4, seed=6)
    assert not torch.equal(m.decompose(te.images[:4], te.labels[:4]), outs[0])


def test_save_load_roundtrip(dxai, digits, tmp_path):
    _, te = digits
    path = tmp_path / "dxai.pt"
    dxai.save(path)
    again = DXAI.load(path, dxai.classifier)
    torch.testing.assert_close(
        again.decompose(te.images[:3], 1), dxai.decompose(te.images[:3], 1)
    )
    assert again.iterations == dxai.iterations


def test_input_validation(dxai):
    with pytest.raises(ValueError, match="x: expected"):
        dxai.explain(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        dxai.explain(torch.full((1, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="target"):
        dxai.explain(torch.zeros(2, 1, 8, 8), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="image_size"):
        DXAI(dxai.classifier, 10, 1, (9, 8), TINY)


def test_auc_normalisation():
    assert sc.normalized_auc([0, 0.5, 1.0], [0.8, 0.8, 0.8], True) == pytest.approx(1.0)
    assert sc.normalized_auc(sc.DELETION_BETAS, [0.5] * 5, False) == pytest.approx(0.2)
    assert sc.normalized_auc([0, 1.0], [1.0, 0.0], True) == pytest.approx(0.5)
    assert np.isnan(sc.normalized_auc([0, 1.0], [0.0, 0.0], True))


def test_curves_zero_attribution_and_oracle(classifier, digits):
    _, te = digits
    x, y = te.images, te.labels
    zero = torch.zeros_like(x)
    d = sc.distinct_from_attribution(zero, x)
    assert torch.all(d == 0)
    assert not torch.isnan(d).any()
    flat = sc.global_beta_curve(classifier, x, y, d)
    assert flat.auc == pytest.approx(1.0)
    dele = sc.deletion_curve(classifier, x, y, zero)
    assert np.isfinite(dele.auc)
    assert dele.accuracy.shape == (5,)
    # Removing the whole image (distinct = x) must hurt far more than nothing.
    oracle = sc.global_beta_curve(classifier, x, y, x)
    assert oracle.auc < 0.95
    assert oracle.accuracy[-1] < oracle.accuracy[0]


def test_train_mode_model_warned(digits):
    _, te = digits
    clf = SmallCNN(1, 10, 8).train()
    with pytest.warns(UserWarning, match="train mode"):
        sc.global_beta_curve(clf, te.images[:4], te.labels[:4], te.images[:4])


def test_score_methods_with_captum(classifier, dxai, digits):
    pytest.importorskip("captum")
    _, te = digits
    x, y = te.images[:16], te.labels[:16]
    methods = sc.attribution_methods(
        classifier.gradcam_layer, ig_steps=8, shap_samples=4
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = sc.score_methods(classifier, x, y, methods, dxai=dxai)
    assert set(scores) == {
        "random",
        "Saliency",
        "IntegratedGradients",
        "GradientShap",
        "LayerGradCam",
        "DXAI",
    }
    for curves in scores.values():
        assert np.isfinite(curves["global_beta"].auc)
        assert np.isfinite(curves["deletion"].auc)
    table = sc.format_auc_table(scores)
    assert "lower is better" in table
    assert "DXAI" in table


def test_plot_and_unnormalize(dxai, digits, tmp_path):
    _, te = digits
    img = unnormalize(torch.zeros(1, 2, 2), (0.5,), (0.5,))
    assert img.shape == (2, 2, 1)
    assert np.allclose(img, 0.5)
    assert np.allclose(unnormalize(-torch.ones(1, 2, 2), (0.5,), (0.5,)), 0.0)
    e = dxai.explain(te.images[:2])
    path = tmp_path / "panel.png"
    plot_explanation(e, path=path)
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="indices"):
        plot_explanation(e, indices=[5])


def test_cli_trains_and_writes_outputs(tmp_path, capsys):
    import argparse

    from deepscope._cli_decompose import add_decompose_command

    parser = argparse.ArgumentParser()
    add_decompose_command(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(
        [
            "decompose",
            "--train",
            "--dataset",
            "digits",
            "--iterations",
            "3",
            "--eval-images",
            "12",
            "--images",
            "2",
            "-o",
            str(out),
            "--save",
            str(tmp_path / "b.pt"),
        ]
    )
    assert args.run(args) == 0
    assert (out / "panel.png").stat().st_size > 1000
    assert "lower is better" in (out / "auc.md").read_text()
    assert "DXAI" in capsys.readouterr().out
    args = parser.parse_args(
        [
            "decompose",
            "--checkpoint",
            str(tmp_path / "b.pt"),
            "-o",
            str(out),
            "--eval-images",
            "0",
        ]
    )
    assert args.run(args) == 0


def test_shipped_checkpoint_loads():
    from deepscope.decompose._default import DEFAULT_CHECKPOINT, load_bundle

    if not DEFAULT_CHECKPOINT.exists():
        pytest.skip("no shipped checkpoint")
    b = load_bundle()
    x = torch.zeros(2, 1, *b.dxai.image_size)
    e = b.dxai.explain(x)
    assert e.branches.shape[:2] == (2, b.dxai.config.num_branches)
    assert e.max_sum_error() < 1e-5


def test_alpha_blend_conserves_parts(dxai, digits):
    # The blended pair keeps both distinct parts and redistributes the agnostic
    # branches: fake_A + fake_B == sum(psi_A) + sum(psi_B), and with the distinct
    # branch removed, fake_A - psi0_A is a convex mix of the agnostic branches.
    _, te = digits
    x, y = te.images[:4], te.labels[:4]
    torch.manual_seed(0)
    with torch.no_grad():
        fake, targets, psi = dxai._blend(x, y)
    n = len(y)
    torch.testing.assert_close(
        fake[:n] + fake[n:], psi[:n].sum(1) + psi[n:].sum(1), atol=1e-5, rtol=1e-5
    )
    assert torch.equal(targets[:n], y)
    assert torch.all(targets[n:] != y)
    lo = torch.minimum(psi[:n, 1:], psi[n:, 1:]).sum(1)
    hi = torch.maximum(psi[:n, 1:], psi[n:, 1:]).sum(1)
    mix = fake[:n] - psi[:n, 0]
    assert torch.all(mix >= lo - 1e-5)
    assert torch.all(mix <= hi + 1e-5)


def test_fashion_mnist_loader():
    from deepscope.decompose import load_fashion_mnist

    try:
        s = load_fashion_mnist("test", limit=20, classes=(7, 9))
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST not installed")
    assert s.images.shape == (20, 1, 28, 28)
    assert set(s.labels.tolist()) <= {0, 1}
    assert s.class_names == ("Sneaker", "Ankle boot")
    assert -1.0 <= float(s.images.min())
    assert float(s.images.max()) <= 1.0
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("val")
    with pytest.raises(FileNotFoundError):
        load_fashion_mnist(root="/nonexistent")
