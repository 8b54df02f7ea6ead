# A small, seeded training loop for point-cloud classifiers, and evaluation.
# SPDX-License-Identifier: MIT
"""Training and evaluating point-cloud classifiers.

:func:`train_classifier` follows the EPiC / CP++ recipe at small scale:
cross-entropy with optional label smoothing, cosine learning-rate decay, and
the augmentation of the EPiC code (per-cloud anisotropic scale U[2/3, 3/2]
and shift U[-0.2, 0.2] per axis, then a random point order). On CPU a run is
reproducible from its seed: the loop uses its own generator for batches and
augmentation, and seeds torch's global generator (for dropout) inside a forked
RNG state, so the caller's random state is left unchanged.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from deepscope._arrays import check_count, check_seed

__all__ = ["augment_points", "evaluate", "predict", "train_classifier"]

logger = logging.getLogger(__name__)

#: Weight of a model's ``regularization_loss`` (PointNet's feature transform).
REGULARIZATION_WEIGHT = 1e-3


def augment_points(points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """EPiC augmentation: anisotropic scale, shift and a point shuffle per cloud.

    Args:
        points: (B, N, C) float points; the first three channels are x, y, z.
        generator: a CPU generator (the draws are made on CPU, then moved).

    Returns:
        (B, N, C) augmented points (a new tensor).
    """
    B, N, _ = points.shape
    scale = torch.empty(B, 1, 3).uniform_(2.0 / 3.0, 1.5, generator=generator)
    shift = torch.empty(B, 1, 3).uniform_(-0.2, 0.2, generator=generator)
    order = torch.rand(B, N, generator=generator).argsort(dim=1)
    out = points.clone()
    xyz = out[..., :3] * scale.to(out) + shift.to(out)
    out[..., :3] = xyz
    index = order.to(out.device)[..., None].expand_as(out)
    return torch.gather(out, 1, index)


def train_classifier(
    model: nn.Module,
    train_set: Any,
    test_set: Any = None,
    *,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 1e-4,
    label_smoothing: float = 0.0,
    augment: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    callback: Callable[[int, dict[str, list[float]]], None] | None = None,
) -> dict[str, list[float]]:
    """Trains a classifier on labelled point clouds.

    Args:
        model: takes (B, N, C) float points and returns (B, classes) logits.
        train_set: ``(points, labels)`` (a :class:`deepscope.pointsets.PointSet`
            works): (S, N, C) float points and (S,) integer labels, NumPy or torch.
        test_set: the same, evaluated after every epoch (optional).
        epochs: passes over ``train_set``.
        batch_size: clouds per step (a final batch of one cloud is dropped,
            since BatchNorm cannot train on it).
        lr: initial learning rate, decayed to ``lr / 100`` by a cosine schedule.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        weight_decay: L2 weight decay of the optimizer.
        label_smoothing: cross-entropy label smoothing (the CP++ recipe uses 0.2).
        augment: apply :func:`augment_points` to every training batch.
        seed: seed of the batch order, augmentation, dropout and initialisation
            noise inside the loop.
        device: where to train; the model is moved there.
        progress: show a tqdm progress bar (when tqdm is installed).
        callback: called as ``callback(epoch, history)`` after every epoch.

    Returns:
        The history: per-epoch lists ``train_loss``, ``train_acc``, ``test_acc``
        (NaN without a test set), ``lr`` and ``seconds``.
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer: expected 'adam' or 'sgd', got {optimizer!r}")
    epochs = check_count(epochs, "epochs", 0)
    seed = check_seed(seed)
    if check_count(batch_size, "batch_size") < 2:
        raise ValueError(f"batch_size: expected >= 2 (BatchNorm), got {batch_size}")
    points, labels = _as_tensors(train_set, "train_set")
    test = _as_tensors(test_set, "test_set") if test_set is not None else None
    device = torch.device(device)
    model.to(device)

    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(
            params, lr=lr, weight_decay=weight_decay
        )
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max(int(epochs), 1), eta_min=lr / 100
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    history: dict[str, list[float]] = {
        key: [] for key in ("train_loss", "train_acc", "test_acc", "lr", "seconds")
    }
    generator = torch.Generator().manual_seed(seed)
    devices = [device.index or 0] if device.type == "cuda" else []
    steps = len(points) // batch_size + (len(points) % batch_size > 1)
    bar = _progress_bar(int(epochs) * steps, progress)

    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for epoch in range(int(epochs)):
            start = time.perf_counter()
            history["lr"].append(opt.param_groups[0]["lr"])
            model.train()
            order = torch.randperm(len(points), generator=generator)
            total_loss, correct, seen = 0.0, 0, 0
            for first in range(0, len(order), batch_size):
                batch = order[first : first + batch_size]
                if len(batch) < 2:
                    continue
                x = points[batch]
                if augment:
                    x = augment_points(x, generator)
                x, y = x.to(device), labels[batch].to(device)
                logits = model(x)
                loss = loss_fn(logits, y)
                extra = getattr(model, "regularization_loss", None)
                if callable(extra):
                    loss = loss + REGULARIZATION_WEIGHT * extra()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

                total_loss += loss.item() * len(batch)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(batch)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
            schedule.step()

            history["train_loss"].append(total_loss / max(seen, 1))
            history["train_acc"].append(correct / max(seen, 1))
            accuracy = (
                evaluate(model, *test, batch_size=max(batch_size, 64), device=device)
                if test is not None
                else math.nan
            )
            history["test_acc"].append(accuracy)
            history["seconds"].append(time.perf_counter() - start)
            logger.info(
                "epoch %d/%d: loss %.4f, train acc %.4f, test acc %.4f (%.1f s)",
                epoch + 1,
                epochs,
                history["train_loss"][-1],
                history["train_acc"][-1],
                accuracy,
                history["seconds"][-1],
            )
            if bar is not None and test is not None:
                bar.set_postfix(epoch=epoch + 1, test_acc=f"{accuracy:.3f}")
            if callback is not None:
                callback(epoch, history)
    if bar is not None:
        bar.close()
    model.eval()
    return history


def predict(
    model: nn.Module,
    points: Any,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Logits of a model in eval mode, batch by batch, without gradients.

    Args:
        model: takes (B, N, C) float points.
        points: (S, N, C) float points, NumPy or torch.
        batch_size: clouds per forward pass.
        device: where to run (default: the model's device).

    Returns:
        (S, num_classes) float logits on the CPU. The model's train/eval mode
        is restored afterwards.
    """
    points = torch.as_tensor(
        np.asarray(points) if not torch.is_tensor(points) else points
    )
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            chunks = [
                model(points[i : i + batch_size].to(device)).float().cpu()
                for i in range(0, len(points), batch_size)
            ]
    finally:
        model.train(was_training)
    if not chunks:
        raise ValueError("points: expected at least one cloud")
    return torch.cat(chunks)


def evaluate(
    model: nn.Module,
    points: Any,
    labels: Any,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> float:
    """Classification accuracy of a model in eval mode.

    Args:
        model: takes (B, N, C) float points.
        points: (S, N, C) float points, NumPy or torch.
        labels: (S,) integer labels.
        batch_size: clouds per forward pass.
        device: where to run (default: the model's device).

    Returns:
        The fraction of clouds whose arg-max logit equals the label.
    """
    labels = torch.as_tensor(
        np.asarray(labels) if not torch.is_tensor(labels) else labels
    )
    logits = predict(model, points, batch_size=batch_size, device=device)
    if len(labels) != len(logits):
        raise ValueError(
            f"labels: expected {len(logits)} labels (one per cloud), got {len(labels)}"
        )
    return float((logits.argmax(1) == labels.cpu()).float().mean())


def _as_tensors(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(points, labels[, ...]) -> float32 points and int64 labels on the CPU."""
    try:
        points, labels = data[0], data[1]
    except (TypeError, IndexError, KeyError) as error:
        raise ValueError(f"{name}: expected a (points, labels) pair") from error
    points = torch.as_tensor(
        np.asarray(points) if not torch.is_tensor(points) else points
    )
    labels = torch.as_tensor(
        np.asarray(labels) if not torch.is_tensor(labels) else labels
    )
    if points.ndim != 3 or labels.shape != points.shape[:1]:
        raise ValueError(
            f"{name}: expected (S, N, C) points and (S,) labels, got "
            f"{tuple(points.shape)} and {tuple(labels.shape)}"
        )
    if len(labels) == 0:
        raise ValueError(f"{name}: expected at least one cloud")
    return points.float().cpu(), labels.long().cpu()


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="batch", leave=False)
