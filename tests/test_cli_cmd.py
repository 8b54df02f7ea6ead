# Tests of the `deepscope cmd` command module (Fashion-MNIST experiment).
# SPDX-License-Identifier: MIT
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from deepscope._cli_cmd import add_cmd_command, format_table
from deepscope.dynamics import experiment
from deepscope.pointsets import FASHION_MNIST_DIR

HAS_DATA = (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists()


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_cmd_command(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_DATA, reason="dataset-fashion-mnist not installed")
def test_cmd_command_runs_a_tiny_experiment(tmp_path: Path, capsys):
    argv = "cmd --seeds 1 --epochs 2 --warmup 1 --train-size 300 --test-size 300"
    argv += " --samples 100 --width 4 --no-progress -o"
    args = _parse([*argv.split(), str(tmp_path)])
    assert args.run(args) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert set(result["summary"]) == {"sgd", "cmd", "swa", "ema", "embedded"}
    for mean, _ in result["summary"].values():
        assert 0.0 <= mean <= 100.0
    assert (tmp_path / "accuracy_curves.png").stat().st_size > 0
    assert (tmp_path / "mode_trajectories.png").stat().st_size > 0
    assert "Online CMD" in capsys.readouterr().out


def test_cmd_command_rejects_bad_arguments(tmp_path: Path):
    args = _parse(["cmd", "--epochs", "3", "--warmup", "3", "-o", str(tmp_path)])
    with pytest.raises(ValueError, match="warmup"):
        args.run(args)
    # Rejected before any training, naming the argument the user gave.
    args = _parse(["cmd", "--epochs", "1", "-o", str(tmp_path)])
    with pytest.raises(ValueError, match="^--epochs: expected >= 2"):
        args.run(args)
    for flag in ("--width", "--samples", "--embedded-modes"):
        args = _parse(["cmd", flag, "0", "-o", str(tmp_path)])
        with pytest.raises(ValueError, match=f"^{flag}: expected >= 1, got 0$"):
            args.run(args)
    (tmp_path / "file").write_text("")
    args = _parse(["cmd", "-o", str(tmp_path / "file")])
    with pytest.raises(ValueError, match="^--output: .* is not a folder"):
        args.run(args)


def test_missing_dataset_is_reported(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="fashion"):
        experiment.load_fashion_mnist(tmp_path)


def test_format_table_lists_methods():
    result = {
        "summary": {"sgd": (90.0, 0.5), "cmd": (91.0, 0.25)},
        "runs": [
            {
                "n_params": 10,
                "modes": 2,
                "explained_variance_warmup": 0.9,
                "reconstruction_error": 0.01,
                "cmd_state_bytes": 360,
                "swa_bytes": 40,
            }
        ],
    }
    table = format_table(result)
    assert "| SGD (last epoch) | 90.00 +- 0.50 |" in table
    assert "embedded" not in table


def test_warmup_default_fits_short_runs(tmp_path: Path, monkeypatch):
    seen = {}

    def fake_run(**kwargs):
        seen.update(kwargs)
        run = {
            "n_params": 10,
            "modes": 2,
            "explained_variance_warmup": float("nan"),
            "reconstruction_error": float("inf"),
            "cmd_state_bytes": 360,
            "swa_bytes": 40,
        }
        return {"summary": {"sgd": (float("nan"), 0.0)}, "runs": [run]}

    monkeypatch.setattr(experiment, "run_experiment", fake_run)
    args = _parse(["cmd", "--epochs", "4", "--no-plots", "-o", str(tmp_path)])
    assert args.run(args) == 0
    assert seen["warmup"] == 3
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text
    assert "Infinity" not in text
    result = json.loads(text)
    assert result["summary"]["sgd"] == [None, 0.0]
    assert result["runs"][0]["explained_variance_warmup"] is None
    assert result["runs"][0]["reconstruction_error"] is None
    args = _parse(["cmd", "--no-plots", "-o", str(tmp_path)])
    args.run(args)
    assert seen["warmup"] == 5


@pytest.mark.skipif(not HAS_DATA, reason="dataset-fashion-mnist not installed")
def test_sizes_beyond_the_data_name_the_flag(tmp_path: Path):
    for flag, size in (("--train-size", "60001"), ("--test-size", "10001")):
        args = _parse(["cmd", "--epochs", "2", flag, size, "-o", str(tmp_path)])
        with pytest.raises(ValueError, match=f"^{flag}: expected an integer in \\[1, "):
            args.run(args)
