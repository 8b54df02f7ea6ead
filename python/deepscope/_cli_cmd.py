# The `deepscope cmd` command: the Fashion-MNIST CMD vs SWA/EMA experiment.
# SPDX-License-Identifier: MIT
"""``deepscope cmd``: trains a small CNN on Fashion-MNIST with SGD, Online CMD,
Embedded CMD, SWA and EMA (several seeds), prints a results table and writes
``results.json``, ``results.md`` and plots (mode trajectories, accuracy
curves) into the output folder. Register with :func:`add_cmd_command`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from deepscope._cli_common import flag_errors

__all__ = ["add_cmd_command", "format_table"]


def add_cmd_command(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``cmd`` sub-command to an argparse sub-parser collection."""
    p = subparsers.add_parser(
        "cmd",
        help="CMD vs SGD/SWA/EMA on Fashion-MNIST (small CNN, several seeds)",
        description=(
            "Train a small CNN on a Fashion-MNIST subset with SGD and compare "
            "Online CMD, Embedded CMD, SWA and EMA; print a table and write "
            "results and plots."
        ),
    )
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    p.add_argument("--epochs", type=int, default=12, help="epochs (default 12)")
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="CMD warm-up epochs F (default 5, or epochs - 1 when fewer)",
    )
    p.add_argument(
        "--train-size", type=int, default=5000, help="training images (default 5000)"
    )
    p.add_argument(
        "--test-size", type=int, default=10000, help="test images (default 10000)"
    )
    p.add_argument("--modes", type=int, default=10, help="CMD modes M (default 10)")
    p.add_argument(
        "--embedded-modes",
        type=int,
        default=2,
        help="modes of the Embedded CMD runs (default 2)",
    )
    p.add_argument(
        "--samples", type=int, default=1000, help="CMD candidates K (default 1000)"
    )
    p.add_argument("--width", type=int, default=16, help="CNN width (default 16)")
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1)"
    )
    p.add_argument(
        "--no-embedded", action="store_true", help="skip the Embedded CMD runs"
    )
    p.add_argument("--data", type=Path, default=None, help="Fashion-MNIST folder")
    p.add_argument(
        "-o", "--output", type=Path, default=Path("cmd_results"), help="output folder"
    )
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=run_cmd_command)
    return p


def run_cmd_command(args: argparse.Namespace) -> int:
    """Runs the experiment from parsed arguments; returns the exit status."""
    import torch

    from deepscope.dynamics import experiment

    if args.warmup is None:
        if args.epochs < 2:
            raise ValueError(
                f"--epochs: expected >= 2 (a warm-up epoch and more), got {args.epochs}"
            )
        args.warmup = min(5, args.epochs - 1)
    for name in (
        "seeds",
        "epochs",
        "warmup",
        "train_size",
        "test_size",
        "modes",
        "embedded_modes",
        "samples",
        "width",
        "threads",
    ):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag}: expected >= 1, got {getattr(args, name)}")
    if args.output.exists() and not args.output.is_dir():
        raise ValueError(f"--output: {args.output} is not a folder")
    if args.warmup >= args.epochs:
        raise ValueError(
            f"--warmup: expected fewer than --epochs ({args.epochs}), got {args.warmup}"
        )
    torch.set_num_threads(args.threads)
    kwargs = {}
    if args.data is not None:
        kwargs["data_root"] = args.data
    with flag_errors({"train_size": "--train-size", "test_size": "--test-size"}):
        result = experiment.run_experiment(
            seeds=tuple(range(args.seeds)),
            epochs=args.epochs,
            warmup=args.warmup,
            train_size=args.train_size,
            test_size=args.test_size,
            width=args.width,
            modes=args.modes,
            samples=args.samples,
            embedded_modes=args.embedded_modes,
            embedded=not args.no_embedded,
            show_progress=not args.no_progress,
            **kwargs,
        )
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(
        json.dumps(_json_safe(result), indent=1, allow_nan=False)
    )
    table = format_table(result)
    (args.output / "results.md").write_text(table + "\n")
    print(table)
    if not args.no_plots:
        _plots(result, args.output)
    print(f"wrote      {args.output}/ (results.json, results.md", end="")
    print(")" if args.no_plots else ", accuracy_curves.png, mode_trajectories.png)")
    return 0


def format_table(result: dict[str, Any]) -> str:
    """A Markdown table of the summary and the CMD / embedding measurements."""
    names = {
        "sgd": "SGD (last epoch)",
        "cmd": "Online CMD (reconstructed, BN recomputed)",
        "swa": "SWA (from warm-up end, BN recomputed)",
        "ema": "EMA (per step)",
        "embedded": "Embedded CMD (trained with freezing)",
    }
    lines = ["| method | test accuracy % (mean +- std) |", "|---|---|"]
    for key, (mean, std) in result["summary"].items():
        lines.append(f"| {names[key]} | {mean:.2f} +- {std:.2f} |")
    runs = result["runs"]

    def avg(key: str) -> float:
        values = [r[key] for r in runs if key in r and not _isnan(r[key])]
        return sum(values) / len(values) if values else float("nan")

    lines += [
        "",
        "| measurement | mean over seeds |",
        "|---|---|",
        f"| parameters N | {runs[0]['n_params']} |",
        f"| modes | {avg('modes'):.1f} |",
        f"| explained variance over warm-up | {avg('explained_variance_warmup'):.4f} |",
        f"| relative L2 error, CMD vs SGD weights (last epoch) "
        f"| {avg('reconstruction_error'):.4f} |",
        f"| CMD state after warm-up (bytes) | {avg('cmd_state_bytes'):.0f} |",
        f"| SWA / EMA copy (bytes) | {avg('swa_bytes'):.0f} |",
    ]
    if "embedded_fraction" in runs[0]:
        lines += [
            f"| embedded fraction of parameters | {avg('embedded_fraction'):.3f} |",
            f"| epoch time before embedding (s) | {_fmt(avg('epoch_time_before'))} |",
            f"| epoch time after embedding (s) | {_fmt(avg('epoch_time_after'))} |",
            f"| optimizer state before (bytes) | {avg('optimizer_bytes_before'):.0f} |",
            f"| optimizer state after (bytes) | {avg('optimizer_bytes_after'):.0f} |",
        ]
    return "\n".join(lines)


def _fmt(x: float) -> str:
    """Three decimals, or "n/a" for a value that was never measured."""
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _plots(result: dict[str, Any], out: Path) -> None:
    # A Figure of its own: no pyplot state, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    run = result["runs"][0]
    styles = ["-", "--", "-.", ":"]
    markers = ["o", "s", "^", "v", "D", "x"]
    fig = Figure(figsize=(7.5, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (key, values) in enumerate(run["curves"].items()):
        # Curves that coincide (EMA / SWA before their start) stay visible
        # through distinct line styles and markers.
        ax.plot(
            range(1, len(values) + 1),
            values,
            label=key,
            linestyle=styles[i % len(styles)],
            marker=markers[i % len(markers)],
            markersize=4,
            alpha=0.85,
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    size = result.get("config", {}).get("curve_size")
    ax.set_ylabel(f"test accuracy % ({size:,} images)" if size else "test accuracy %")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title("Fashion-MNIST, seed 0")
    fig.savefig(out / "accuracy_curves.png")

    fig = Figure(figsize=(7.5, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for m, traj in enumerate(run["references"]):
        ax.plot(range(len(traj)), traj, label=f"mode {m}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("observation (epoch)")
    ax.set_ylabel("reference parameter value")
    ax.set_title("CMD reference trajectories, seed 0")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
    fig.savefig(out / "mode_trajectories.png")
