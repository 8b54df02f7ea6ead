# Tests for `deepscope train`: a tiny digits run writes a checkpoint and a curve.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import importlib.util

import pytest

from deepscope.cli import main

pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None, reason="needs scikit-learn"
)


def test_train_digits_writes_checkpoint_and_curve(tmp_path, capsys):
    from deepscope.models import load_checkpoint

    out = tmp_path / "tiny.pt"
    argv = ["train", "--model", "pointnet", "--data", "digits", "--epochs", "1"]
    argv += ["--points", "32", "--limit", "64", "--test-limit", "40"]
    argv += ["--emb-dims", "16", "--threads", "1", "--quiet", "-o", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed
    assert out.is_file()
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    model = load_checkpoint(out)
    assert model.meta["dataset"] == "digits"
    assert model.meta["train_samples"] == 64
    assert model.meta["test_samples"] == 40
    assert 0.0 <= model.meta["test_accuracy"] <= 1.0


def test_train_rejects_bad_arguments(tmp_path, capsys):
    argv = ["train", "--data", "digits", "--epochs", "0", "-o", str(tmp_path / "x.pt")]
    assert main(argv) == 2
    assert "--epochs" in capsys.readouterr().err
    assert main(["train", "--model", "pointnet2"]) == 2
