# A small CNN image classifier and its training loop, the frozen model DXAI explains.
# SPDX-License-Identifier: MIT
"""``SmallCNN``: a compact convolutional classifier for 8 x 8 to 64 x 64 images."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from deepscope._arrays import check_count, check_seed

__all__ = ["SmallCNN", "accuracy", "train_classifier"]


class SmallCNN(nn.Module):
    """Three 3 x 3 convolutions (the last two stride 2), global pooling, linear.

    Size-agnostic thanks to global average pooling. ``gradcam_layer`` is the last
    convolution (for LayerGradCam). No in-place activations (Captum-friendly).

    Args:
        in_channels: image channels.
        num_classes: number of classes.
        width: channels of the first convolution (doubled twice).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.width = width
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * width, num_classes)

    @property
    def gradcam_layer(self) -> nn.Module:
        """The layer LayerGradCam attributes to."""
        return self.conv3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> logits (B, num_classes)."""
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        return self.fc(h.mean(dim=(2, 3)))


@torch.no_grad()
def accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 512
) -> float:
    """Top-1 accuracy of ``model`` (used in eval mode) on ``images``."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(labels), batch):
        pred = model(images[i : i + batch]).argmax(1)
        correct += int((pred == labels[i : i + batch]).sum())
    model.train(was_training)
    return correct / max(len(labels), 1)


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 2e-3,
    width: int = 16,
    seed: int = 0,
) -> SmallCNN:
    """Trains a :class:`SmallCNN` with Adam and returns it in eval mode.

    Args:
        images: (S, C, H, W) float32 training images.
        labels: (S,) int64 labels.
        num_classes: defaults to ``labels.max() + 1``.
        epochs: passes over the data.
        batch_size: mini-batch size.
        lr: Adam learning rate.
        width: network width.
        seed: seed of the initialisation and the shuffling.
    """
    if images.ndim != 4 or len(images) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"images, labels: expected (S, C, H, W) and (S,) with S > 0, got "
            f"{tuple(images.shape)} and {tuple(labels.shape)}"
        )
    n_cls = int(num_classes or int(labels.max()) + 1)
    seed = check_seed(seed)
    batch_size = check_count(batch_size, "batch_size")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SmallCNN(images.shape[1], n_cls, width)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(labels))
            for i in range(0, len(order), batch_size):
                idx = order[i : i + batch_size]
                loss = F.cross_entropy(model(images[idx]), labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return model.eval()
