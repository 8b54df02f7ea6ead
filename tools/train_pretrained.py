# Trains the small checkpoints shipped in deepscope/models/weights (CPU, one thread).
# SPDX-License-Identifier: MIT
"""Reproduces the shipped Fashion-MNIST point-cloud checkpoints.

Usage: ``python tools/train_pretrained.py [pointnet] [dgcnn]``. Needs the
Debian package ``dataset-fashion-mnist``. Runs on one CPU thread so that the
machine stays usable (PointNet: about 5 minutes; DGCNN: well over 20 minutes
on a busy 2-core machine), or on ``$DEEPSCOPE_TRAIN_DEVICE`` (e.g. ``cuda``).

The shipped ``dgcnn-fmnist`` (1024-point clouds, the robustness normaliser)
comes from ``tools/robust_fmnist.py``; the ``dgcnn`` recipe here (256-point
clouds) writes ``dgcnn_fmnist_256.pt``, which is not shipped.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from deepscope.models import (
    DGCNN,
    PointNet,
    evaluate,
    save_checkpoint,
    train_classifier,
)
from deepscope.pointsets import fashion_mnist_points

WEIGHTS = Path(__file__).resolve().parents[1] / "python/deepscope/models/weights"
N_POINTS = 256
RECIPES = {
    "pointnet": dict(
        build=lambda: PointNet(10, emb_dims=256, dropout=0.3),
        train_limit=10_000,
        test_limit=10_000,
        epochs=8,
        file="pointnet_fmnist.pt",
    ),
    "dgcnn": dict(
        build=lambda: DGCNN(10, k=20, emb_dims=256, dropout=0.5, knn="torch"),
        train_limit=1_024,
        test_limit=1_000,
        epochs=4,
        file="dgcnn_fmnist_256.pt",
    ),
}


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    device = os.environ.get("DEEPSCOPE_TRAIN_DEVICE", "cpu")
    for name in names or list(RECIPES):
        recipe = RECIPES[name]
        torch.manual_seed(0)
        model = recipe["build"]()
        train = fashion_mnist_points(
            "train", N_POINTS, seed=0, limit=recipe["train_limit"]
        )
        test = fashion_mnist_points(
            "test", N_POINTS, seed=1, limit=recipe["test_limit"]
        )
        start = time.perf_counter()
        history = train_classifier(
            model,
            train,
            None,
            epochs=recipe["epochs"],
            batch_size=32,
            lr=1e-3,
            optimizer="adam",
            augment=True,
            seed=0,
            device=device,
            progress=False,
        )
        seconds = time.perf_counter() - start
        accuracy = evaluate(model, test.points, test.labels, batch_size=100)
        model.cpu()
        meta = {
            "class_names": list(train.class_names),
            "dataset": "fashion-mnist",
            "n_points": N_POINTS,
            "points_seed_train": 0,
            "points_seed_test": 1,
            "train_samples": len(train.labels),
            "test_samples": len(test.labels),
            "epochs": recipe["epochs"],
            "optimizer": "adam",
            "lr": 1e-3,
            "batch_size": 32,
            "augment": True,
            "train_seconds": round(seconds, 1),
            "train_loss": history["train_loss"],
            "train_accuracy": history["train_acc"],
            "test_accuracy": accuracy,
        }
        path = save_checkpoint(model, WEIGHTS / recipe["file"], meta=meta)
        print(
            f"{name}: test accuracy {accuracy:.4f} on {len(test.labels)} clouds, "
            f"{seconds:.0f} s, {path} ({path.stat().st_size / 1e6:.2f} MB)",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
