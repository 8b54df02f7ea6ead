# The `deepscope` command: one subcommand per job, on the public API only.
# SPDX-License-Identifier: MIT
"""The ``deepscope`` command line, built on the public API only.

``deepscope info [--json]`` describes the build and the machine;
``deepscope sample [INPUT] --method fps|random|patch|curve -n N -o OUT.ply``
samples a real point set (the embedded bunny when INPUT is omitted) and
writes the samples as PLY plus a PNG picture;
``deepscope train --model pointnet|dgcnn --data fashion-mnist|digits -o CKPT.pt``
trains a point-cloud classifier (see :mod:`deepscope._cli_train`);
``deepscope explain [INPUT] [--model CKPT] [--measure fbi|critical|gradient]``
explains a classifier's prediction by per-point importance;
``deepscope conformity [EMB]`` analyses embedding geometry;
``deepscope cmd`` runs the CMD training-dynamics experiment;
``deepscope bench [--quick]`` compares the kernels with installed peers;
``deepscope evaluate`` prints accuracy, mCE and RmCE under the ModelNet-C
corruptions; ``deepscope demo`` runs the robustness tour; ``deepscope ssl``
evaluates graph semi-supervised learning; ``deepscope decompose`` splits
images into class-distinct and class-agnostic parts (DXAI); ``deepscope
embed`` trains a learned spectral embedding (BASiS) and scores it. Bad
arguments and unreadable inputs end with a one-line message and exit status
2; a missing optional dependency ends with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import deepscope
from deepscope._cli_bench import add_bench_command
from deepscope._cli_cmd import add_cmd_command
from deepscope._cli_common import check_ply_output
from deepscope._cli_conformity import add_conformity_command
from deepscope._cli_decompose import add_decompose_command
from deepscope._cli_demo import add_demo_command
from deepscope._cli_embed import add_embed_command
from deepscope._cli_evaluate import add_evaluate_command
from deepscope._cli_explain import add_explain_command
from deepscope._cli_ssl import add_ssl_command
from deepscope._cli_train import add_train_command

__all__ = ["main"]

#: Inputs with more points than this show a progress bar over the stages.
PROGRESS_MIN_POINTS = 200_000
#: Input files larger than this (bytes) show the bar from the start.
PROGRESS_MIN_BYTES = 8_000_000
#: Input points drawn in the PNG at most (a seeded subset beyond that).
PLOT_MAX_POINTS = 30_000

METHODS = ("fps", "random", "patch", "curve")


class UsageError(ValueError):
    """A bad argument found after parsing (exit status 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
        0 on success, 2 for bad arguments or unreadable inputs, 1 when an
        optional dependency is missing or an output cannot be written.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse exits on --help and on errors
        return stop.code if isinstance(stop.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        return args.run(args)
    except (
        UsageError,
        ValueError,
        FileNotFoundError,
        IsADirectoryError,
        pickle.UnpicklingError,
    ) as error:
        print(f"deepscope {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (ImportError, OSError) as error:
        print(f"deepscope {args.command}: error: {error}", file=sys.stderr)
        return 1


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepscope",
        description="Fast C++/CUDA kernels for robust and explainable deep learning.",
    )
    parser.add_argument(
        "--version", action="version", version=f"deepscope {deepscope.__version__}"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress to stderr"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = commands.add_parser(
        "info", help="describe this build: version, CUDA, GPUs, OpenMP"
    )
    info.add_argument("--json", action="store_true", help="print the facts as JSON")
    info.set_defaults(run=_run_info)

    sample = commands.add_parser(
        "sample",
        help="sample a point set and write PLY + PNG",
        description=(
            "Sample a real point set (mesh, point file or LiDAR; the embedded "
            "Stanford bunny when INPUT is omitted) and write the samples as a "
            "PLY point cloud and a PNG picture."
        ),
    )
    sample.add_argument(
        "input",
        nargs="?",
        metavar="INPUT",
        help=(
            "mesh (.off .obj .stl .ply), point file (.xyz .pts .pwn .txt .csv, "
            ".ply) or LiDAR (.las .laz); default: the embedded bunny's vertices"
        ),
    )
    sample.add_argument(
        "--method",
        choices=METHODS,
        default="fps",
        help="farthest point sampling, a random subset, a local patch or a "
        "curve-shaped partial cloud (default: fps)",
    )
    sample.add_argument(
        "-n",
        "--n-samples",
        type=int,
        default=1024,
        dest="n",
        help="number of points to sample (default: 1024)",
    )
    sample.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output PLY (default: INPUTSTEM_METHOD_N.ply in the current folder)",
    )
    sample.add_argument(
        "--png", type=Path, help="output picture (default: OUTPUT with .png suffix)"
    )
    sample.add_argument("--no-png", action="store_true", help="write no picture")
    sample.add_argument(
        "--seed", type=int, default=0, help="seed of the sampler (default: 0)"
    )
    sample.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu"
    )
    sample.add_argument(
        "--mesh-samples",
        type=int,
        default=None,
        help="surface points drawn from a mesh INPUT (default: 50000)",
    )
    sample.add_argument(
        "--up",
        choices=("x", "y", "z"),
        default=None,
        help="vertical axis of the picture (default: y for the bunny, else z)",
    )
    sample.set_defaults(run=_run_sample)
    add_train_command(commands)
    add_explain_command(commands)
    add_conformity_command(commands)
    add_cmd_command(commands)
    add_bench_command(commands)
    add_evaluate_command(commands)
    add_demo_command(commands)
    add_ssl_command(commands)
    add_decompose_command(commands)
    add_embed_command(commands)
    return parser


# ----------------------------------------------------------------------------
# deepscope info


def _run_info(args: argparse.Namespace) -> int:
    facts = deepscope.info()
    if args.json:
        print(json.dumps(facts, indent=2, sort_keys=True))
        return 0
    print("\n".join(_describe(facts)))
    return 0


def _describe(facts: dict[str, Any]) -> list[str]:
    """A short readable summary of :func:`deepscope.info`."""
    lines = [f"deepscope {facts['version']}"]
    if facts["cuda_compiled"]:
        runtime = _cuda_version(facts.get("cuda_runtime_version", 0))
        lines.append(
            f"CUDA     compiled, architectures {facts['cuda_architectures']}"
            f" (runtime {runtime})"
        )
    else:
        lines.append("CUDA     not compiled (CPU-only build)")
    if facts["cuda_available"]:
        names = ", ".join(facts["cuda_devices"])
        lines.append(f"GPU      {facts['cuda_device_count']} usable: {names}")
    else:
        reason = facts.get("cuda_error") or "no CUDA device"
        lines.append(f"GPU      none usable ({reason})")
    if facts["openmp"]:
        lines.append(f"OpenMP   yes, up to {facts['omp_max_threads']} threads")
    else:
        lines.append("OpenMP   no (single-threaded CPU kernels)")
    return lines


def _cuda_version(code: int) -> str:
    code = int(code)
    return f"{code // 1000}.{code % 1000 // 10}" if code > 0 else "unknown"


# ----------------------------------------------------------------------------
# deepscope sample


def _run_sample(args: argparse.Namespace) -> int:
    from deepscope import datasets

    # Check what can be checked before reading anything.
    if args.n < 1:
        raise UsageError(f"-n: expected a positive number of samples, got {args.n}")
    if not 0 <= args.seed < 2**64:
        raise UsageError(
            f"--seed: expected an integer in [0, 2**64 - 1], got {args.seed}"
        )
    if args.mesh_samples is not None and args.mesh_samples < 1:
        raise UsageError(f"--mesh-samples: expected >= 1, got {args.mesh_samples}")
    if args.device == "cuda" and not deepscope.cuda_available():
        reason = deepscope.info().get("cuda_error") or "no CUDA device"
        raise UsageError(f"--device cuda: no usable GPU ({reason})")
    if args.input is not None:
        source = Path(args.input)
        if not source.is_file():
            raise FileNotFoundError(f"{source}: no such file")
        stem, label = source.stem, str(source)
    else:
        source, stem, label = None, "bunny", "embedded Stanford bunny (vertices)"
    output = args.output or Path(f"{stem}_{args.method}_{args.n}.ply")
    check_ply_output(output)
    png = None if args.no_png else (args.png or output.with_suffix(".png"))
    for path in (output, png):
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"{path}: folder {path.parent} does not exist")
    big_file = source is not None and source.stat().st_size > PROGRESS_MIN_BYTES
    progress = _Progress(total=3 if png is None else 4, start=big_file)

    # Load.
    started = time.perf_counter()
    progress.stage("load")
    if source is None:
        points = datasets.bunny()
    else:
        points = datasets.load_points(source, n_points=args.mesh_samples)
    total = points.shape[0]
    progress.done(start=total > PROGRESS_MIN_POINTS)
    if args.n > total:
        raise UsageError(
            f"-n: expected at most {total} samples (points in the input), got {args.n}"
        )

    # Sample.
    progress.stage(f"sample ({args.method})")
    sample_start = time.perf_counter()
    indices = _sample(points, args.method, args.n, args.seed, args.device)
    seconds = time.perf_counter() - sample_start
    samples = points[indices]
    progress.done()

    # Write.
    progress.stage("write ply")
    datasets.save_ply(output, samples)
    progress.done()
    if png is not None:
        progress.stage("write png")
        up = args.up or ("y" if source is None else "z")
        title = (
            f"{args.method}: {samples.shape[0]} of {total} points "
            f"in {seconds * 1e3:.1f} ms ({args.device})"
        )
        _write_png(png, points, samples, title, up)
        progress.done()
    progress.close()

    print(f"input    {label}: {total} points")
    print(
        f"sampled  {samples.shape[0]} points with {args.method} on {args.device} "
        f"in {seconds * 1e3:.1f} ms (total {time.perf_counter() - started:.2f} s)"
    )
    print(f"wrote    {output}" + ("" if png is None else f"\nwrote    {png}"))
    return 0


def _sample(
    points: np.ndarray, method: str, n: int, seed: int, device: str
) -> np.ndarray:
    """Indices (int64, valid only, in sampling order) of the chosen samples."""
    from deepscope import pointcloud
    from deepscope._arrays import to_numpy

    cloud = _to_device(points, device)
    if method == "fps":
        result = pointcloud.farthest_point_sample(cloud, n)
        indices = to_numpy(result.indices).reshape(-1)
    elif method == "random":
        result = pointcloud.random_subsets(cloud, n, 1, seed=seed)
        indices = to_numpy(result.indices).reshape(-1)
    else:
        result = pointcloud.partial_clouds(
            cloud, method, n_anchors=1, size=n, seed=seed
        )
        indices = to_numpy(result.indices)[0]
    indices = np.asarray(indices, dtype=np.int64)
    return indices[indices >= 0]


def _to_device(points: np.ndarray, device: str) -> Any:
    if device == "cpu":
        return points
    try:
        import torch

        return torch.from_numpy(points).to("cuda")
    except ImportError:
        pass
    try:
        import cupy

        return cupy.asarray(points)
    except ImportError as error:
        raise ImportError(
            "--device cuda needs torch (with CUDA) or cupy installed"
        ) from error


def _write_png(
    path: Path, points: np.ndarray, samples: np.ndarray, title: str, up: str
) -> None:
    """Two 3-D panels: the input in grey, and the samples over a faint input."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "writing the PNG needs matplotlib; install it with "
            "`pip install deepscope[io]`, or pass --no-png"
        ) from error

    shown = points
    if shown.shape[0] > PLOT_MAX_POINTS:
        rng = np.random.default_rng(0)
        shown = shown[rng.choice(shown.shape[0], PLOT_MAX_POINTS, replace=False)]
    lower, upper = points.min(axis=0), points.max(axis=0)
    extent = np.maximum(upper - lower, 1e-12 * max(1.0, float(np.abs(upper).max())))
    # Georeferenced clouds (LiDAR) are drawn relative to their lower corner.
    offset = lower if np.abs(lower).max() > 1e4 else np.zeros(3)
    shown, samples, lower = shown - offset, samples - offset, lower - offset
    labels = [
        name if value == 0 else f"{name} - {value:.0f}"
        for name, value in zip("xyz", offset, strict=True)
    ]

    figure = Figure(figsize=(11, 5.5), dpi=100)
    FigureCanvasAgg(figure)
    panels = [
        (f"input ({points.shape[0]} points)", False),
        (f"samples ({samples.shape[0]} points)", True),
    ]
    for column, (name, overlay) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, 2, column, projection="3d")
        axes.view_init(elev=20, azim=-60, vertical_axis=up)
        grey = "0.55" if not overlay else "0.85"
        axes.scatter(*shown.T, s=1, c=grey, alpha=0.6 if not overlay else 0.3)
        if overlay:
            order = np.arange(samples.shape[0])
            axes.scatter(*samples.T, s=6, c=order, cmap="viridis", depthshade=False)
        axes.set_xlim(lower[0], lower[0] + extent[0])
        axes.set_ylim(lower[1], lower[1] + extent[1])
        axes.set_zlim(lower[2], lower[2] + extent[2])
        axes.set_box_aspect(_box_aspect(extent, up))
        axes.set_title(name)
        axes.set_xlabel(labels[0])
        axes.set_ylabel(labels[1])
        axes.set_zlabel(labels[2])
    figure.suptitle(title)
    figure.savefig(path, format="png")


def _box_aspect(extent: np.ndarray, up: str) -> tuple[float, float, float]:
    """Equal-aspect box in the displayed order (the vertical axis last)."""
    order = {"x": (1, 2, 0), "y": (2, 0, 1), "z": (0, 1, 2)}[up]
    return tuple(float(extent[i]) for i in order)


class _Progress:
    """A tqdm bar over the command's stages, shown for big inputs only."""

    def __init__(self, total: int, start: bool):
        self.total = total
        self.count = 0
        self.bar = None
        self.name = ""
        if start:
            self._open()

    def _open(self) -> None:
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(
            total=self.total,
            initial=self.count,
            desc=self.name,
            unit="stage",
            file=sys.stderr,
            leave=False,
        )

    def stage(self, name: str) -> None:
        self.name = name
        if self.bar is not None:
            self.bar.set_description(name)

    def done(self, start: bool = False) -> None:
        self.count += 1
        if self.bar is None and start:
            self._open()
        elif self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
