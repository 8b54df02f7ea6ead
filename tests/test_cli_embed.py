# Tests for the `deepscope embed` command (learned spectral embeddings).
# SPDX-License-Identifier: MIT
from __future__ import annotations

import json

import pytest

from deepscope.cli import main

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def test_embed_json_and_png(tmp_path, capsys):
    png = tmp_path / "view.png"
    argv = [
        "embed",
        "--threads",
        "1",
        "-n",
        "400",
        "--iterations",
        "30",
        "--batch-size",
        "160",
    ]
    argv += ["--anchors", "60", "-k", "5", "--png", str(png), "--json"]
    assert main(argv) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["dataset"] == "digits"
    assert rep["method"] == "basis"
    assert rep["n_points"] == 400
    assert rep["components"] == 5
    assert 0.3 < rep["nmi"] <= 1.0
    assert 0.0 <= rep["grassmann_to_exact"] <= 5.0
    assert rep["orthogonality"] >= 0.0
    assert rep["transform_points_per_s"] > 0
    assert rep["png"] == str(png)
    assert png.stat().st_size > 5000


def test_embed_spectralnet_table(tmp_path, capsys):
    png = tmp_path / "sn.png"
    argv = [
        "embed",
        "--threads",
        "1",
        "--method",
        "spectralnet",
        "-n",
        "300",
        "--iterations",
        "20",
    ]
    argv += ["--batch-size", "150", "-k", "4", "--png", str(png)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "spectralnet on digits: N = 300" in out
    assert "NMI" in out
    assert "Grassmann to exact" in out
    assert f"wrote {png}" in out


def test_embed_three_moons_paper_setting(capsys):
    argv = [
        "embed",
        "--threads",
        "1",
        "--dataset",
        "three-moons",
        "-n",
        "500",
        "--iterations",
        "40",
    ]
    argv += ["--batch-size", "200", "--no-png", "--json"]
    assert main(argv) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["components"] == 2
    assert rep["n_points"] == 498  # 9 anchors + 3 x 163
    assert rep["nmi"] > 0.8
    assert "png" not in rep


_TINY = ["embed", "-n", "60", "--iterations", "2", "--batch-size", "40"]
_TINY += ["--anchors", "10", "--threads", "1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["embed", "--iterations", "0"], "--iterations"),
        (["embed", "-n", "1"], "-n"),
        (["embed", "-k", "0"], "--components"),
        # Bad picture paths fail before training, not after it.
        ([*_TINY, "--png", "view.txt"], "--png: expected a file name ending in .png"),
        ([*_TINY, "--png", "view"], "--png: expected a file name ending in .png"),
        ([*_TINY, "--png", "no/such/folder/view.png"], "--png: expected an existing"),
    ],
)
def test_embed_bad_arguments(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


_MOONS = ["embed", "--dataset", "three-moons", "--threads", "1", "--no-png"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # -k used to be ignored silently for three-moons (always K = 2).
        (["-k", "5"], "-k: expected 2 for three-moons"),
        (["--components", "3"], "-k: expected 2 for three-moons"),
        (["-k", "1"], "-k: expected 2 for three-moons"),
        # -n below the three-moons minimum used to be reported as n_samples.
        (["-n", "10"], "-n: expected an integer >= 12 for three-moons"),
    ],
)
def test_embed_three_moons_rejects_unsupported_options(extra, message, capsys):
    assert main([*_MOONS, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "n_samples" not in err


def test_embed_subset_above_dataset_size_names_n(capsys):
    assert main(["embed", "-n", "1798", "--threads", "1", "--no-png"]) == 2
    assert (
        "-n: expected <= 1797 (points in digits), got 1798" in capsys.readouterr().err
    )


def test_embed_three_moons_accepts_k_2(capsys):
    argv = [*_MOONS, "-n", "60", "-k", "2", "--iterations", "2"]
    argv += ["--batch-size", "40", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["components"] == 2
