# Trains the robustness table's models on Fashion-MNIST points and evaluates them.
# SPDX-License-Identifier: MIT
"""The small real robustness evaluation of :mod:`deepscope.robust` (CPU).

Usage::

    python tools/robust_fmnist.py all OUT_DIR     # train + eval: the whole table
    python tools/robust_fmnist.py train OUT_DIR [NAME ...]   # models -> OUT_DIR/*.pt
    python tools/robust_fmnist.py eval OUT_DIR    # table -> OUT_DIR/report.*
    python tools/robust_fmnist.py ship OUT_DIR    # float16 copies -> the package
    python tools/robust_fmnist.py train OUT_DIR dgcnn-patch dgcnn-curve dgcnn-random
    python tools/robust_fmnist.py eval-dgcnn OUT_DIR   # DGCNN + EPiC rows

One torch thread per process unless ``OMP_NUM_THREADS`` says otherwise.

Data: Fashion-MNIST point clouds (:func:`deepscope.pointsets.fashion_mnist_points`)
with 1024 points per cloud, so that every ModelNet-C corruption applies with
its published parameters (dropout_local removes up to 500 points).

Models (``train`` skips those already in OUT_DIR):

* ``dgcnn``: a plain, CPU-sized DGCNN (k = 20, EdgeConv widths 32-32-64-128,
  ``emb_dims`` 256) trained from scratch: the CE / RCE normaliser (the role
  the published DGCNN plays on ModelNet-C).
* ``patch``, ``curve``, ``random``: EPiC members, PointNets (``emb_dims``
  256) trained from scratch on partial clouds (512-point patches, 512-point
  curves, 128-point random subsets), as the paper's separately trained
  backbones.
* ``critical``: a PointNet trained from scratch on its own least important
  points (Critical Points++).
* ``dgcnn-patch``, ``dgcnn-curve``, ``dgcnn-random`` (not in ``all``): EPiC
  members with the DGCNN backbone of ``dgcnn``, trained from scratch, for the
  DGCNN + EPiC rows (``eval-dgcnn``).

The plain PointNet row is the shipped ``pretrained("pointnet-fmnist")``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from deepscope import robust
from deepscope.models import (
    DGCNN,
    PointNet,
    load_checkpoint,
    pretrained,
    save_checkpoint,
    train_classifier,
)
from deepscope.models import (
    evaluate as accuracy_of,
)
from deepscope.pointsets import FASHION_MNIST_CLASSES, fashion_mnist_points

ROOT = Path(__file__).resolve().parents[1]
N_POINTS = 1024
TEST_LIMIT = 100
#: The stages of the DGCNN patch and curve members (512-point partial clouds).
DGCNN_PARTIAL_STAGES = [
    {"first": 0, "last": 3000, "epochs": 4, "lr": 2e-3, "batch_size": 16},
    {"first": 3000, "last": 6000, "epochs": 3, "lr": 1e-3, "batch_size": 16},
]
#: name -> training stages, each a cosine cycle of Adam on the training
#: clouds ``first:last`` (label smoothing 0.2, EPiC augmentation); the DGCNN
#: runs three cycles, the patch / curve members two, each on new clouds.
RECIPES = {
    "dgcnn": [
        {"first": 0, "last": 800, "epochs": 2, "lr": 2e-3, "batch_size": 16},
        {"first": 800, "last": 1600, "epochs": 2, "lr": 1e-3, "batch_size": 16},
        # The shipped weights ran this third cycle from the float16 copy of
        # the first two (shipped earlier); a rerun continues the float32 ones.
        {"first": 1600, "last": 7600, "epochs": 2, "lr": 1e-3, "batch_size": 16},
    ],
    "patch": [
        {"first": 0, "last": 3000, "epochs": 6, "lr": 1e-3, "batch_size": 16},
        {"first": 3000, "last": 6000, "epochs": 4, "lr": 1e-3, "batch_size": 16},
    ],
    "curve": [
        {"first": 0, "last": 3000, "epochs": 6, "lr": 1e-3, "batch_size": 16},
        {"first": 3000, "last": 6000, "epochs": 4, "lr": 1e-3, "batch_size": 16},
    ],
    "random": [{"first": 0, "last": 3000, "epochs": 10, "lr": 1e-3, "batch_size": 32}],
    "critical": [{"first": 0, "last": 3000, "epochs": 6, "lr": 1e-3, "batch_size": 16}],
    # EPiC members with the DGCNN backbone (the published configuration),
    # shorter than the PointNet members: a DGCNN step costs about 6x more.
    "dgcnn-patch": DGCNN_PARTIAL_STAGES,
    "dgcnn-curve": DGCNN_PARTIAL_STAGES,
    "dgcnn-random": [
        {"first": 0, "last": 3000, "epochs": 10, "lr": 2e-3, "batch_size": 32}
    ],
}
DGCNN_OPTIONS = {"k": 20, "emb_dims": 256, "channels": (32, 32, 64, 128)}
MEMBERS = ("patch", "curve", "random", "critical")
DGCNN_MEMBERS = ("dgcnn-patch", "dgcnn-curve", "dgcnn-random")


def _build(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(trained module, backbone saved) for one recipe."""
    torch.manual_seed(0)
    if name.startswith("dgcnn"):
        backbone = DGCNN(10, dropout=0.5, knn="deepscope", **DGCNN_OPTIONS)
        if name == "dgcnn":
            return backbone, backbone
        return robust.PartialMember(backbone, name.removeprefix("dgcnn-")), backbone
    backbone = PointNet(10, emb_dims=256, dropout=0.3)
    if name == "critical":
        return robust.CriticalSubsetMember(backbone), backbone
    return robust.PartialMember(backbone, name), backbone


def train_stage(
    name: str, model: torch.nn.Module, index: int
) -> dict[str, list[float]]:
    """Runs stage ``index`` of ``RECIPES[name]`` on ``model`` (seed 1 + index)."""
    stage = RECIPES[name][index]
    data = fashion_mnist_points("train", N_POINTS, seed=0, limit=stage["last"])
    return train_classifier(
        model,
        (data.points[stage["first"] :], data.labels[stage["first"] :]),
        epochs=stage["epochs"],
        batch_size=stage["batch_size"],
        lr=stage["lr"],
        optimizer="adam",
        label_smoothing=0.2,
        seed=1 + index,
        progress=False,
        callback=lambda epoch, h: print(
            f"{name} stage {index + 1} epoch {epoch + 1}: loss "
            f"{h['train_loss'][-1]:.3f}, train acc {h['train_acc'][-1]:.3f}, "
            f"{h['seconds'][-1]:.0f} s",
            flush=True,
        ),
    )


def train(out: Path, names: list[str] | None = None) -> None:
    """Trains each model; a saved model whose stages are a prefix of its
    recipe resumes with the remaining stages (each stage is a fresh, seeded
    cosine cycle, so resuming equals an uninterrupted run)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in names or [n for n in RECIPES if n not in DGCNN_MEMBERS]:
        path = out / f"{name}.pt"
        model, backbone = _build(name)
        done, earlier = 0, {}
        if path.is_file():
            checkpoint = torch.load(path, weights_only=True)
            earlier = dict(checkpoint["meta"])
            stages = [dict(stage) for stage in earlier.get("stages", [])]
            done = len(stages)
            if stages != RECIPES[name][:done]:
                raise SystemExit(f"{path}: its stages are not a prefix of {name}'s")
            if done == len(RECIPES[name]):
                continue
            backbone.load_state_dict(checkpoint["state_dict"])
            print(f"{name}: resuming after stage {done}", flush=True)
        start = time.perf_counter()
        cpu = time.process_time()
        histories = [
            train_stage(name, model, i) for i in range(done, len(RECIPES[name]))
        ]
        seconds = time.perf_counter() - start + earlier.get("train_seconds", 0.0)
        cpu = time.process_time() - cpu + earlier.get("train_cpu_seconds", 0.0)
        losses = [x for h in histories for x in h["train_loss"]]
        accuracies = [x for h in histories for x in h["train_acc"]]
        meta = {
            "class_names": list(FASHION_MNIST_CLASSES),
            "dataset": "fashion-mnist",
            "n_points": N_POINTS,
            "points_seed_train": 0,
            "points_seed_test": 1,
            "stages": RECIPES[name],
            "optimizer": "adam",
            "label_smoothing": 0.2,
            "augment": True,
            "init": "scratch",
            "train_seconds": round(seconds, 1),
            "train_cpu_seconds": round(cpu, 1),
            "train_loss": list(earlier.get("train_loss", [])) + losses,
            "train_accuracy": list(earlier.get("train_accuracy", [])) + accuracies,
        }
        if name == "dgcnn":
            test = fashion_mnist_points("test", N_POINTS, seed=1, limit=300)
            meta["test_samples"] = 300
            meta["test_accuracy"] = accuracy_of(
                model, test.points, test.labels, batch_size=50
            )
        else:
            meta["member"] = name.removeprefix("dgcnn-")
            meta["backbone"] = "dgcnn" if name.startswith("dgcnn-") else "pointnet"
        save_checkpoint(backbone, path, meta=meta)
        print(
            f"{name}: {seconds:.0f} s wall, {cpu:.0f} s CPU, "
            f"test accuracy {meta.get('test_accuracy', float('nan')):.3f}",
            flush=True,
        )


ROWS = (
    "DGCNN (plain, normaliser)",
    "PointNet (plain)",
    "PointNet + EPiC (12)",
    "PointNet + EPiC + critical (13)",
    "critical subset alone",
)


def evaluate(out: Path) -> None:
    """The main table: plain PointNet, + EPiC, + critical, normalised by DGCNN."""
    dgcnn = load_checkpoint(out / "dgcnn.pt", knn="deepscope")
    members = {name: load_checkpoint(out / f"{name}.pt") for name in MEMBERS}
    epic = robust.EPiC.from_backbones(
        [members[m] for m in ("patch", "curve", "random")]
    )
    critical = robust.CriticalSubsetMember(members["critical"])
    keys = ("dgcnn", "plain", "+EPiC", "+EPiC+critical", "critical alone")
    _evaluate_rows(
        out / "report",
        dict(zip(ROWS, keys, strict=True)),
        pretrained("pointnet-fmnist"),
        epic,
        critical,
        references={"dgcnn": dgcnn},
    )


DGCNN_ROWS = (
    "DGCNN (plain, normaliser)",
    "DGCNN + EPiC (12, DGCNN members)",
    "DGCNN + EPiC + critical (13)",
)


def evaluate_dgcnn(out: Path) -> None:
    """The DGCNN-backbone rows: plain DGCNN vs DGCNN + EPiC (+ critical).

    The plain DGCNN and the critical-subset member are the shipped float16
    copies, the DGCNN members come from ``out``.
    """
    members = [load_checkpoint(out / f"{n}.pt", knn="deepscope") for n in DGCNN_MEMBERS]
    weights = ROOT / "python/deepscope/robust/weights/critical.pt"
    _evaluate_rows(
        out / "report_dgcnn",
        dict(zip(DGCNN_ROWS, ("plain", "+EPiC", "+EPiC+critical"), strict=True)),
        pretrained("dgcnn-fmnist", knn="deepscope"),
        robust.EPiC.from_backbones(members),
        robust.CriticalSubsetMember(load_checkpoint(weights)),
    )


def _evaluate_rows(
    stem: Path,
    rows: dict[str, str],
    plain: torch.nn.Module,
    epic: robust.EPiC,
    critical: robust.CriticalSubsetMember,
    references: dict[str, torch.nn.Module] | None = None,
) -> None:
    """Scores ``rows`` (table row -> ensemble key) on the corrupted test set,
    normalised by the first row; prints the table and writes ``stem.md`` and
    ``stem.json``."""
    from deepscope.robust._evaluate import _ensemble_accuracies

    data = fashion_mnist_points("test", N_POINTS, seed=1, limit=TEST_LIMIT)
    dataset = robust.corrupt_dataset(data.points, seed=0)
    start = time.perf_counter()
    cpu = time.process_time()
    found = _ensemble_accuracies(
        plain,
        epic,
        critical,
        dataset,
        data.labels,
        references=references,
        progress=lambda model, split: print(split, flush=True),
    )
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    accuracy = {row: found[key] for row, key in rows.items()}
    normaliser = next(iter(rows))
    reference = accuracy[normaliser]
    scores = {name: robust.mce(acc, reference) for name, acc in accuracy.items()}
    report = robust.RobustnessReport(accuracy, scores, normaliser, {})
    print(robust.format_report(report))
    print(f"evaluation: {seconds:.0f} s wall, {cpu:.0f} s CPU")
    stem.with_suffix(".md").write_text(
        robust.format_report(report, markdown=True) + "\n"
    )
    stem.with_suffix(".json").write_text(
        json.dumps(
            {
                "accuracy": accuracy,
                "scores": {k: v._asdict() for k, v in scores.items()},
                "unrounded": {
                    k: robust.mce(acc, reference, rounded=False)._asdict()
                    for k, acc in accuracy.items()
                },
                "other_accuracy": {
                    k: v for k, v in found.items() if k not in rows.values()
                },
                "test_samples": TEST_LIMIT,
                "n_points": N_POINTS,
                "eval_seconds": seconds,
                "eval_cpu_seconds": cpu,
            },
            indent=1,
        )
    )


def _half(checkpoint: dict) -> dict:
    checkpoint["state_dict"] = {
        key: value.half() if value.is_floating_point() else value
        for key, value in checkpoint["state_dict"].items()
    }
    return checkpoint


def ship(out: Path) -> None:
    """Float16 copies: DGCNN to ``models/weights``, members to ``robust/weights``."""
    package = ROOT / "python/deepscope"
    torch.save(
        _half(torch.load(out / "dgcnn.pt", weights_only=True)),
        package / "models/weights/dgcnn_fmnist.pt",
    )
    for name in MEMBERS:
        torch.save(
            _half(torch.load(out / f"{name}.pt", weights_only=True)),
            package / f"robust/weights/{name}.pt",
        )


def main(argv: list[str]) -> None:
    # One thread unless OMP_NUM_THREADS says otherwise (the kernels follow it).
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if len(argv) < 2 or argv[0] not in ("all", "train", "eval", "eval-dgcnn", "ship"):
        raise SystemExit(__doc__)
    command, folder = argv[0], Path(argv[1])
    if command in ("all", "train"):
        train(folder, argv[2:] or None)
    if command in ("all", "eval"):
        evaluate(folder)
    if command == "eval-dgcnn":
        evaluate_dgcnn(folder)
    if command == "ship":
        ship(folder)


if __name__ == "__main__":
    main(sys.argv[1:])
