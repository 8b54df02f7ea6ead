# Tests for `deepscope evaluate`: the robustness table on tiny digits runs.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import argparse
import importlib.util
import json

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None, reason="needs scikit-learn"
)


def _run(argv):
    from deepscope._cli_evaluate import add_evaluate_command

    parser = argparse.ArgumentParser()
    add_evaluate_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.run(args)


def _members(folder):
    import torch

    from deepscope.models import PointNet, save_checkpoint

    torch.manual_seed(0)
    folder.mkdir()
    for name in ("patch", "curve", "random", "critical"):
        save_checkpoint(PointNet(10, emb_dims=16).eval(), folder / f"{name}.pt")
    return folder


def test_evaluate_plain_and_members(tmp_path, capsys):
    members = _members(tmp_path / "members")
    out = tmp_path / "result.json"
    argv = ["evaluate", "--data", "digits", "--points", "96", "--limit", "12"]
    argv += ["--kinds", "jitter", "add_global", "--members", str(members)]
    argv += ["--threads", "1", "--quiet", "--json", str(out)]
    assert _run(argv) == 0
    printed = capsys.readouterr().out
    assert "mCE" in printed
    assert "normalised by plain" in printed
    result = json.loads(out.read_text())
    assert set(result["scores"]) == {
        "plain",
        "+EPiC",
        "+EPiC+critical",
        "critical alone",
    }
    assert result["scores"]["plain"]["mce"] == 1.0
    assert len(result["accuracy"]["plain"]) == 11  # clean + 2 kinds x 5 levels


def test_evaluate_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--model"):
        _run(["evaluate", "--model", str(tmp_path / "none.pt")])
    with pytest.raises(FileNotFoundError, match="--members"):
        _run(["evaluate", "--members", str(tmp_path)])
    with pytest.raises(ValueError, match="--limit"):
        _run(["evaluate", "--limit", "0"])


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--threads", "0"), ("--threads", "-2"), ("--batch-size", "0")],
)
def test_evaluate_and_demo_counts_are_checked(tmp_path, flag, value):
    # --threads 0 used to crash in torch.set_num_threads (RuntimeError) and
    # --batch-size 0 in range() with a message naming neither flag.
    with pytest.raises(ValueError, match=rf"{flag}: expected >= 1, got {value}"):
        _run(["evaluate", "--data", "digits", "--limit", "2", flag, value])
    if flag == "--threads":
        from deepscope._cli_demo import add_demo_command

        parser = argparse.ArgumentParser()
        add_demo_command(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["demo", "-o", str(tmp_path / "d"), flag, value])
        with pytest.raises(ValueError, match=rf"{flag}: expected >= 1, got {value}"):
            args.run(args)


def test_demo_checks_kinds_before_loading(tmp_path, monkeypatch, capsys):
    # An unknown --kinds used to be reported only after the data and the
    # models were loaded (and the output folder created).
    from deepscope import _cli_demo

    def no_data(limit):
        raise AssertionError("data loaded before --kinds was checked")

    monkeypatch.setattr(_cli_demo, "_data", no_data)
    parser = argparse.ArgumentParser()
    _cli_demo.add_demo_command(parser.add_subparsers(dest="command"))
    out = tmp_path / "demo"
    args = parser.parse_args(["demo", "-o", str(out), "--kinds", "scale", "wobble"])
    with pytest.raises(ValueError, match="--kinds: expected some of .*got wobble"):
        args.run(args)
    assert not out.exists()
    help_text = _cli_demo.add_demo_command(
        argparse.ArgumentParser().add_subparsers()
    ).format_help()
    assert "default: deepscope-demo" in help_text
    assert "corruption seed (default: 0)" in help_text


def test_registered_in_main(capsys):
    from deepscope.cli import main

    assert main(["evaluate", "--limit", "0"]) == 2
    assert "--limit" in capsys.readouterr().err


def test_demo_writes_report_and_figures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from deepscope.pointsets import FASHION_MNIST_DIR

    if not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(
            "the demo needs Fashion-MNIST: apt-get install dataset-fashion-mnist"
        )
    from deepscope._cli_demo import add_demo_command

    parser = argparse.ArgumentParser()
    add_demo_command(parser.add_subparsers(dest="command"))
    out = tmp_path / "demo"
    args = parser.parse_args(
        ["demo", "--limit", "2", "--kinds", "jitter", "--quiet", "--threads", "1"]
        + ["-o", str(out)]
    )
    assert args.run(args) == 0
    assert "mCE" in capsys.readouterr().out
    for name in ("corruptions", "importance", "accuracy_per_level"):
        assert (out / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    # Two clouds, one corruption: two panels a figure, no empty columns
    # (the PNG width, bytes 16-20 of the header, stays well under four panels).
    for name in ("corruptions", "importance"):
        width = int.from_bytes((out / f"{name}.png").read_bytes()[16:20], "big")
        assert width < 900, (name, width)
    assert "| Model |" in (out / "report.md").read_text()


def test_demo_colour_range_ignores_far_added_points():
    import numpy as np

    from deepscope._cli_demo import z_range

    clean = np.zeros((1, 5, 3))
    clean[0, :, 2] = [-0.2, -0.1, 0.0, 0.1, 0.15]
    far = clean.copy()
    far[0, 0, 2] = 0.9
    assert z_range({"clean": clean, "add_global_2": far}) == (-0.2, 0.15)


def test_parser_corruption_names_match():
    from deepscope import robust
    from deepscope._cli_evaluate import CORRUPTIONS

    assert CORRUPTIONS == robust.CORRUPTIONS


def test_evaluate_shipped_members(capsys):
    argv = ["evaluate", "--data", "digits", "--points", "64", "--limit", "6"]
    argv += ["--kinds", "rotate", "--members", "shipped", "--threads", "1", "--quiet"]
    assert _run(argv) == 0
    assert "+EPiC+critical" in capsys.readouterr().out


def test_evaluate_plain_only(capsys):
    argv = ["evaluate", "--data", "digits", "--points", "64", "--limit", "6"]
    argv += ["--kinds", "scale", "--members", "none", "--threads", "1", "--quiet"]
    assert _run(argv) == 0
    assert "+EPiC" not in capsys.readouterr().out


def test_evaluate_modelnet40_and_modelnet_c_folders(tmp_path, capsys):
    h5py = pytest.importorskip("h5py")
    import numpy as np

    from deepscope import robust

    rng = np.random.default_rng(0)
    folder = tmp_path / "modelnet40_ply_hdf5_2048"
    folder.mkdir()
    points = rng.normal(size=(5, 2048, 3)).astype(np.float32)
    labels = np.arange(5).reshape(-1, 1) % 3
    with h5py.File(folder / "ply_data_test0.h5", "w") as f:
        f["data"], f["label"] = points, labels
    argv = ["evaluate", "--modelnet40", str(tmp_path), "--points", "96"]
    argv += ["--kinds", "jitter", "--members", "none", "--threads", "1", "--quiet"]
    assert _run(argv) == 0
    assert "ModelNet40 test" in capsys.readouterr().out

    data = robust.corrupt_dataset(points[:, :96], kinds=["jitter"])
    robust.save_modelnet_c(tmp_path / "modelnet_c", data, labels)
    argv = ["evaluate", "--modelnet-c", str(tmp_path), "--kinds", "jitter"]
    argv += ["--members", "none", "--reference", "dgcnn", "--quiet"]
    assert _run(argv) == 0
    assert "normalised by DGCNN (published)" in capsys.readouterr().out


def test_evaluate_reference_checkpoint_is_the_normaliser(tmp_path, capsys):
    import torch

    from deepscope.models import DGCNN, save_checkpoint

    torch.manual_seed(1)
    reference = DGCNN(10, k=4, emb_dims=16, channels=(4, 4, 8, 8)).eval()
    path = save_checkpoint(reference, tmp_path / "ref.pt")
    out = tmp_path / "result.json"
    argv = ["evaluate", "--data", "digits", "--points", "32", "--limit", "8"]
    argv += ["--kinds", "jitter", "--members", "none", "--reference", str(path)]
    argv += ["--threads", "1", "--quiet", "--json", str(out)]
    assert _run(argv) == 0
    assert "normalised by reference" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert list(result["scores"]) == ["reference", "plain"]
    assert result["scores"]["reference"]["mce"] == 1.0
    assert result["reference"] == "reference"
    # The plain row's CE is its error over the reference's, as robust.mce says.
    from deepscope import robust

    expected = robust.mce(
        result["accuracy"]["plain"], result["accuracy"]["reference"], kinds=["jitter"]
    )
    assert result["scores"]["plain"]["ce"] == expected.ce


def test_reference_resolution(tmp_path):
    from deepscope._cli_evaluate import _reference
    from deepscope.models import PRETRAINED

    def resolve(**options):
        defaults = {
            "reference": "auto",
            "modelnet_c": None,
            "modelnet40": None,
            "data": "fashion-mnist",
            "model": "pointnet-fmnist",
        }
        return _reference(argparse.Namespace(**{**defaults, **options}))

    assert resolve(data="digits") == ("plain", None)
    assert resolve(modelnet_c=tmp_path) == ("published", None)
    assert resolve(reference="dgcnn") == ("published", None)
    assert resolve(reference="plain") == ("plain", None)
    assert resolve(reference="pointnet-fmnist") == ("plain", None)
    with pytest.raises(FileNotFoundError, match="--reference"):
        resolve(reference=str(tmp_path / "missing.pt"))
    assert "dgcnn-fmnist" in PRETRAINED
    name, model = resolve()
    if model is None:  # a build without the shipped DGCNN weights
        assert name == "plain"
    else:
        assert name == "dgcnn-fmnist"
        assert model.architecture == "dgcnn"
        assert model.config["k"] == 20
