# Graph SSL accuracy on the full Fashion-MNIST (70,000 x 784), one kNN search.
# SPDX-License-Identifier: MIT
"""Accuracy at 1 / 3 / 5 / 10 labels per class on all 70,000 Fashion-MNIST images.

Usage: ``python benchmarks/ssl_eval_fmnist70k.py [--n N] [--seeds 10]
[--lssl-seeds S] [--out benchmarks/results]``. One exact kNN search at
k = 49 serves every graph (k = 10 lists are its prefixes). Writes
``ssl_fashion70k.json`` (per-draw accuracies), ``ssl_fashion70k.md`` (the
table) and ``ssl_fashion70k.png`` (the plot). ``--merge A.json B.json``
combines two runs (B's methods replace A's) into those three files, e.g. to
run L_SSL in its own process.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np


def write(ev, out: Path, name: str, wall: float) -> str:
    """Table, plot and JSON of one evaluation."""
    from deepscope.graph._evaluate import format_table, plot_accuracy

    out.mkdir(parents=True, exist_ok=True)
    title = f"Fashion-MNIST, all {ev.n_points:,} images"
    table = format_table(ev, title)
    (out / f"{name}.md").write_text(table + "\n")
    plot_accuracy(ev, out / f"{name}.png", title)
    record = {
        "n": int(ev.n_points),
        "wall_seconds": wall,
        "seconds": ev.seconds,
        "config": dict(ev.config),
        "accuracy": {
            m: {str(r): np.asarray(a).tolist() for r, a in by.items()}
            for m, by in ev.accuracy.items()
        },
    }
    (out / f"{name}.json").write_text(json.dumps(record, indent=1))
    return table


def merge(paths: list[str], out: Path, name: str) -> str:
    """Combines runs; later files' methods replace earlier ones."""
    from deepscope.graph._evaluate import METHODS, SSLEvaluation

    acc: dict = {}
    sec: dict = {}
    config: dict = {}
    n = 0
    wall = 0.0
    for path in paths:
        rec = json.loads(Path(path).read_text())
        n = rec["n"]
        wall += rec["wall_seconds"]
        config.update(rec["config"])
        for m, by in rec["accuracy"].items():
            acc[m] = {int(r): np.asarray(a) for r, a in by.items()}
            sec[m] = rec["seconds"][m]
    ordered = {m: acc[m] for m in METHODS if m in acc}
    ev = SSLEvaluation(ordered, sec, n, config)
    return write(ev, out, name, wall)


def main() -> None:
    from deepscope.graph._datasets import load_dataset
    from deepscope.graph._evaluate import METHODS, evaluate_ssl

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--lssl-seeds", type=int, default=10)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--name", default="ssl_fashion70k")
    parser.add_argument("--knn-cache", default=None, help="npz of the k = 49 lists")
    parser.add_argument("--merge", nargs="+", default=None, help="run JSON files")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.merge:
        print(merge(args.merge, Path(args.out), args.name))
        return

    X, y = load_dataset("fashion-mnist", n=args.n)
    neighbors = None
    if args.knn_cache and Path(args.knn_cache).exists():
        z = np.load(args.knn_cache)
        neighbors = (z["indices"], z["d2"])
    elif args.knn_cache:
        from deepscope._arrays import prepare
        from deepscope.graph._knn_graph import _search

        t = time.perf_counter()
        idx, d2, _ = _search(
            prepare(X, "X", ndim=(2,)), None, k=49, exclude_self=True, block_size=4096
        )
        logging.info("kNN k=49: %.1f s", time.perf_counter() - t)
        np.savez(args.knn_cache, indices=idx, d2=d2)
        neighbors = (idx, d2)
    start = time.perf_counter()
    ev = evaluate_ssl(
        X,
        y,
        n_seeds=args.seeds,
        methods=tuple(args.methods.split(",")),
        seeds_for={"lssl": args.lssl_seeds},
        neighbors=neighbors,
    )
    wall = time.perf_counter() - start
    table = write(ev, Path(args.out), args.name, wall)
    print(table)
    print(f"wall {wall:.1f} s")


if __name__ == "__main__":
    main()
