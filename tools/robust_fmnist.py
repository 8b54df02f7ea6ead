# Trains EPiC and critical-subset members on Fashion-MNIST points; evaluates them.
# SPDX-License-Identifier: MIT
"""The small real evaluation of :mod:`deepscope.robust` (CPU, one thread).

Usage::

    python tools/robust_fmnist.py train OUT_DIR   # members -> OUT_DIR/*.pt
    python tools/robust_fmnist.py eval OUT_DIR    # table -> OUT_DIR/report.*
    python tools/robust_fmnist.py ship OUT_DIR    # float16 copies -> the package

Data: Fashion-MNIST point clouds (:func:`deepscope.pointsets.fashion_mnist_points`)
with 1024 points per cloud, so that every ModelNet-C corruption applies with
its published parameters (dropout_local removes up to 500 points). The plain
backbone is the shipped ``pretrained("pointnet-fmnist")`` (PointNet, emb 256,
trained on 256-point clouds); the members are PointNets of the same shape
fine-tuned from it (a CPU-sized stand-in for the paper's separately trained
backbones), one per partial-cloud method, plus a critical-subset member.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import torch

from deepscope import robust
from deepscope.models import load_checkpoint, pretrained, save_checkpoint
from deepscope.pointsets import fashion_mnist_points

N_POINTS = 1024
TRAIN_LIMIT = 3000
TEST_LIMIT = 150
#: method -> (epochs, partial-cloud size)
RECIPES = {"patch": 2, "curve": 2, "random": 4, "critical": 1}


def _member(name: str, backbone: torch.nn.Module) -> torch.nn.Module:
    if name == "critical":
        return robust.CriticalSubsetMember(backbone)
    return robust.PartialMember(backbone, name)


def train(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = fashion_mnist_points("train", N_POINTS, seed=0, limit=TRAIN_LIMIT)
    for name, epochs in RECIPES.items():
        if (out / f"{name}.pt").is_file():
            continue
        backbone = copy.deepcopy(pretrained("pointnet-fmnist"))
        member = _member(name, backbone)
        start = time.perf_counter()
        history = robust.train_member(
            member, data, epochs=epochs, batch_size=32, lr=5e-4, seed=1, progress=False
        )
        seconds = time.perf_counter() - start
        print(f"{name}: {seconds:.0f} s, loss {history['train_loss']}", flush=True)
        save_checkpoint(
            backbone,
            out / f"{name}.pt",
            meta={
                "member": name,
                "epochs": epochs,
                "train_samples": TRAIN_LIMIT,
                "n_points": N_POINTS,
                "init": "pointnet-fmnist",
                "train_seconds": seconds,
            },
        )


def evaluate(out: Path) -> None:
    data = fashion_mnist_points("test", N_POINTS, seed=1, limit=TEST_LIMIT)
    dataset = robust.corrupt_dataset(data.points, seed=0)
    labels = torch.from_numpy(data.labels)
    plain = pretrained("pointnet-fmnist")
    members = {name: load_checkpoint(out / f"{name}.pt") for name in RECIPES}
    epic = robust.EPiC.from_backbones(
        [members[m] for m in ("patch", "curve", "random")]
    ).eval()
    critical = robust.CriticalSubsetMember(members["critical"]).eval()
    names = (
        "PointNet (plain)",
        "+EPiC (12)",
        "+EPiC+critical (13)",
        "critical subset alone",
    )
    accuracy: dict[str, dict[str, float]] = {name: {} for name in names}
    seconds = dict.fromkeys(names, 0.0)
    # Members' logits are computed once per split and combined.
    for split, points in dataset.items():
        start = time.perf_counter()
        x = torch.from_numpy(points)
        with torch.no_grad():
            chunks = [
                (
                    plain(x[i : i + 50]),
                    epic.member_logits(x[i : i + 50]),
                    critical.member_logits(x[i : i + 50]),
                )
                for i in range(0, len(x), 50)
            ]
        p = torch.cat([c[0] for c in chunks])
        e = torch.cat([c[1] for c in chunks], dim=1)
        c = torch.cat([c[2] for c in chunks], dim=1)
        logits = (p, e.mean(0), torch.cat([e, c]).mean(0), c[0])
        for name, value in zip(names, logits, strict=True):
            accuracy[name][split] = float((value.argmax(1) == labels).float().mean())
        print(
            f"{split}: "
            + ", ".join(f"{accuracy[n][split]:.3f}" for n in names)
            + f" ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    scores = {
        name: robust.mce(acc, accuracy[names[0]]) for name, acc in accuracy.items()
    }
    report = robust.RobustnessReport(accuracy, scores, names[0], seconds)
    print(robust.format_report(report))
    (out / "report.md").write_text(robust.format_report(report, markdown=True) + "\n")
    (out / "report.json").write_text(
        json.dumps(
            {
                "accuracy": accuracy,
                "scores": {k: v._asdict() for k, v in scores.items()},
                "unrounded": {
                    k: robust.mce(acc, accuracy[names[0]], rounded=False)._asdict()
                    for k, acc in accuracy.items()
                },
                "test_samples": TEST_LIMIT,
                "n_points": N_POINTS,
            },
            indent=1,
        )
    )


def ship(out: Path) -> None:
    """Float16 copies of the members into ``deepscope/robust/weights``."""
    weights = Path(__file__).resolve().parents[1] / "python/deepscope/robust/weights"
    weights.mkdir(exist_ok=True)
    for name in RECIPES:
        checkpoint = torch.load(out / f"{name}.pt", weights_only=True)
        checkpoint["state_dict"] = {
            key: value.half() if value.is_floating_point() else value
            for key, value in checkpoint["state_dict"].items()
        }
        torch.save(checkpoint, weights / f"{name}.pt")


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.manual_seed(0)
    command, folder = sys.argv[1], Path(sys.argv[2])
    {"train": train, "eval": evaluate, "ship": ship}[command](folder)
