# Tests for the `deepscope ssl` command and the graph SSL evaluation.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from deepscope._cli_ssl import add_ssl_command
from deepscope.graph._evaluate import draw_labels, evaluate_ssl, format_table

pytest.importorskip("sklearn")


def _run(argv, capsys):
    parser = argparse.ArgumentParser(prog="deepscope")
    add_ssl_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code = args.run(args)
    return code, capsys.readouterr().out


def test_ssl_command_json_and_png(tmp_path, capsys):
    png = tmp_path / "acc.png"
    code, out = _run(
        [
            "ssl",
            "--dataset",
            "digits",
            "-n",
            "150",
            "--labels",
            "5",
            "--seeds",
            "2",
            "--methods",
            "laplace",
            "spectral",
            "--png",
            str(png),
            "--json",
        ],
        capsys,
    )
    assert code == 0
    res = json.loads(out)
    assert res["n_points"] == 150
    acc = np.array(res["accuracy"]["laplace"]["5"])
    assert acc.shape == (2,)
    assert acc.min() > 0.6
    assert png.stat().st_size > 1000


def test_ssl_command_table(capsys):
    code, out = _run(
        [
            "ssl",
            "-n",
            "200",
            "--labels",
            "3",
            "--seeds",
            "1",
            "--methods",
            "poisson",
            "lssl",
            "label_spreading",
        ],
        capsys,
    )
    assert code == 0
    assert "Poisson learning" in out
    assert "L_SSL spectral" in out
    assert "LabelSpreading" in out


def test_ssl_command_rejects_bad_counts(capsys):
    with pytest.raises(ValueError, match="--seeds"):
        _run(["ssl", "--seeds", "0"], capsys)
    with pytest.raises(ValueError, match=r"^-n: expected <= 1797"):
        _run(["ssl", "-n", "100000", "--methods", "laplace"], capsys)


def test_ssl_command_checks_the_png_folder_first(tmp_path, capsys):
    png = tmp_path / "missing" / "ssl.png"
    argv = ["ssl", "-n", "30", "--labels", "1", "--seeds", "1", "--json"]
    with pytest.raises(ValueError, match="^--png: folder .* does not exist"):
        _run([*argv, "--methods", "laplace", "--png", str(png)], capsys)
    assert capsys.readouterr().out == ""


def test_ssl_command_too_many_labels_names_the_flag(capsys):
    # 40 digits: no class has 30 points, so --labels 30 labels every point.
    with pytest.raises(ValueError, match=r"^--labels: expected fewer than.*raise -n"):
        _run(["ssl", "-n", "40", "--labels", "30", "--methods", "laplace"], capsys)


def test_load_dataset_subset_size_checked():
    # -n above the dataset size used to fall back to all points silently.
    from deepscope.graph._datasets import load_dataset

    X, y = load_dataset("digits", n=100, seed=3)
    assert X.shape == (100, 64)
    assert load_dataset("digits", n=1797)[0].shape == (1797, 64)
    with pytest.raises(ValueError, match=r"^n: expected <= 1797 \(points in digits\)"):
        load_dataset("digits", n=1798)


def test_draw_labels_stratified():
    y = np.repeat(np.arange(4), 10)
    yl = draw_labels(y, 3, seed=1)
    for c in range(4):
        assert (yl == c).sum() == 3
    assert (yl[yl >= 0] == y[yl >= 0]).all()
    np.testing.assert_array_equal(yl, draw_labels(y, 3, seed=1))


def test_evaluate_and_format_table(rng):
    X = np.concatenate([rng.standard_normal((30, 5)) + 8 * c for c in range(3)])
    y = np.repeat(np.arange(3), 30)
    ev = evaluate_ssl(
        X,
        y,
        labels_per_class=(1, 2),
        n_seeds=2,
        methods=("laplace", "poisson", "spectral"),
        n_neighbors=6,
    )
    for m in ("laplace", "poisson", "spectral"):
        assert ev.accuracy[m][2].mean() > 0.95
    table = format_table(ev, "blobs")
    assert "| Laplace learning |" in table
    with pytest.raises(ValueError, match="methods"):
        evaluate_ssl(X, y, methods=("knn",))


def test_evaluate_any_label_values_and_too_many_labels(rng):
    X = np.concatenate([rng.standard_normal((20, 4)) + 8 * c for c in range(3)])
    y = np.repeat(np.arange(3), 20)
    kw = dict(labels_per_class=(1, 2), n_seeds=2, n_neighbors=6)
    kw["methods"] = ("laplace", "poisson", "spectral", "lssl")
    kw["lssl_neighbors"] = 10
    kw["lssl_sigma_neighbor"] = 5
    expected = evaluate_ssl(X, y, **kw)
    # Non-contiguous label values (e.g. a subset without some classes) used
    # to fail with "y: labels [...] are not in classes"; they are the same
    # problem as 0..C-1.
    got = evaluate_ssl(X, np.array([3, 7, 11])[y], **kw)
    for m in kw["methods"]:
        for per in (1, 2):
            np.testing.assert_array_equal(
                got.accuracy[m][per], expected.accuracy[m][per]
            )
    # Labelling every point left nothing to score (the table printed nan).
    with pytest.raises(ValueError, match=r"labels_per_class: expected fewer than 20"):
        evaluate_ssl(X, y, labels_per_class=(1, 20), methods=("laplace",))


def test_fit_times_exclude_the_shared_knn_search(rng, monkeypatch, capsys):
    # The one kNN search serves every method: it is reported once, not added
    # to each method's fit time (which made every method look equally slow).
    import time

    import deepscope.graph._evaluate as evaluate

    search = evaluate._search
    delay = 1.5

    def slow_search(*args, **kwargs):
        time.sleep(delay)
        return search(*args, **kwargs)

    monkeypatch.setattr(evaluate, "_search", slow_search)
    X = np.concatenate([rng.standard_normal((25, 4)) + 8 * c for c in range(3)])
    y = np.repeat(np.arange(3), 25)
    methods = ("laplace", "poisson", "spectral", "lssl", "label_spreading")
    ev = evaluate_ssl(
        X,
        y,
        labels_per_class=(2,),
        n_seeds=1,
        methods=methods,
        n_neighbors=6,
        lssl_neighbors=10,
        lssl_sigma_neighbor=5,
    )
    assert ev.config["knn_seconds"] >= delay
    assert ev.config["graph_seconds"] >= ev.config["knn_seconds"]
    for m in methods:
        assert 0.0 <= ev.seconds[m] < delay, m
    table = format_table(ev, "blobs")
    shared = f"kNN graph: {ev.config['graph_seconds']:.1f} s (shared by all methods"
    assert table.count(shared) == 1
    # The command prints the same line once.
    code, out = _run(
        ["ssl", "-n", "120", "--labels", "2", "--seeds", "1", "--methods", "laplace"],
        capsys,
    )
    assert code == 0
    assert out.count("kNN graph: ") == 1
    assert "shared by all methods" in out
