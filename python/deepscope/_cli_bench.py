# The `deepscope bench` subcommand: deepscope against installed peers.
# SPDX-License-Identifier: MIT
"""``deepscope bench [--quick] [--json] [--only NAME ...] [--data DIR]``.

Registered by :mod:`deepscope.cli` through :func:`add_bench_command`; the
work is done by :mod:`deepscope.bench`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from deepscope._cli_common import flag_errors

__all__ = ["add_bench_command"]


def add_bench_command(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``bench`` subcommand to the ``deepscope`` parser.

    Args:
        subparsers: the object returned by ``parser.add_subparsers()``.

    Returns:
        The new subparser (its ``run`` default runs the benchmarks).
    """
    bench = subparsers.add_parser(
        "bench",
        help="time the kernels against installed peer libraries",
        description=(
            "Run every benchmark workload with deepscope and each installed peer "
            "(fpsample, SciPy, Open3D, scikit-learn, faiss, PyTorch3D, "
            "torch-cluster, torch) in this process, with warm-up and repeats, "
            "and print medians, IQRs and ratios plus machine metadata. Data: "
            "the real scans in $DEEPSCOPE_BENCH_DATA (benchmarks/fetch_data.sh) "
            "when present, else the embedded bunny, resampled."
        ),
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="about a minute: fewer rounds, no slow peers or large workloads",
    )
    bench.add_argument(
        "--json", action="store_true", help="print the report as JSON instead"
    )
    bench.add_argument(
        "-o", "--output", type=Path, help="also write the JSON report to this file"
    )
    bench.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only these workloads (see --list)",
    )
    bench.add_argument(
        "--list", action="store_true", help="list the workloads and peers, then exit"
    )
    bench.add_argument(
        "--data",
        type=Path,
        help="folder of the real scans (default: $DEEPSCOPE_BENCH_DATA)",
    )
    bench.add_argument(
        "--repeats",
        type=int,
        help="most timed rounds per method (default 20 quick, 50)",
    )
    bench.set_defaults(run=_run_bench)
    return bench


def _run_bench(args: argparse.Namespace) -> int:
    from deepscope import bench

    if args.list:
        for workload in bench.workloads():
            names = ", ".join(c.name for c in workload.candidates)
            quick = "" if workload.quick else " (full runs only)"
            title = workload.title.format(scan="scan", lidar="lidar")
            print(f"{workload.name:<15} {title}{quick}\n{'':<15} {names}")
        peers = bench.installed_peers()
        print(
            "peers: "
            + ", ".join(f"{p} {v}" if v else f"{p} (missing)" for p, v in peers.items())
        )
        return 0
    if args.data is not None and not args.data.is_dir():
        raise ValueError(f"--data: {args.data} is not a folder")
    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats: expected >= 1, got {args.repeats}")

    def progress(line: str) -> None:
        print(f"  timing {line}", file=sys.stderr, flush=True)

    with flag_errors({"only": "--only"}):
        report = bench.run(
            quick=args.quick,
            only=args.only,
            data_dir=args.data,
            repeats=args.repeats,
            progress=None if args.json else progress,
        )
    text = bench.dumps(report)
    if args.output is not None:
        args.output.write_text(text + "\n")
    print(text if args.json else bench.format_table(report))
    return 0
