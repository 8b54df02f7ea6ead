# The embedded default: a Fashion-MNIST classifier plus its DXAI decomposition.
# SPDX-License-Identifier: MIT
"""Train, save and load the default (classifier, DXAI) pair used by the CLI."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch

from deepscope._arrays import check_seed
from deepscope.decompose._classifier import SmallCNN, accuracy, train_classifier
from deepscope.decompose._data import load_digits, load_fashion_mnist
from deepscope.decompose._dxai import DXAI, DXAIConfig

__all__ = ["DEFAULT_CHECKPOINT", "Bundle", "load_bundle", "save_bundle", "train_bundle"]

logger = logging.getLogger(__name__)

#: The shipped checkpoint (Fashion-MNIST, 10 classes, 28 x 28).
DEFAULT_CHECKPOINT = Path(__file__).parent / "weights" / "dxai_fmnist.pt"

#: Scaled-down hyper-parameters of the shipped model: published loss weights,
#: Adam betas (0, 0.99) and weight decay; larger learning rates and a shorter
#: EMA because it trains for hundreds, not hundreds of thousands, of steps.
SMALL_CONFIG = DXAIConfig(width=6, lr=1e-3, lr_mapping=1e-4, ema_beta=0.99)


class Bundle(NamedTuple):
    """A classifier and its decomposition.

    Attributes:
        classifier: the frozen :class:`SmallCNN` (eval mode).
        dxai: the trained :class:`DXAI`.
        class_names: class names in label order.
        dataset: ``"fashion-mnist"`` or ``"digits"``.
        meta: training metadata (seconds, iterations, accuracy, seed).
    """

    classifier: SmallCNN
    dxai: DXAI
    class_names: tuple[str, ...]
    dataset: str
    meta: dict[str, Any]


def _load_split(dataset: str, split: str, limit: int | None, seed: int):
    if dataset == "fashion-mnist":
        return load_fashion_mnist(split, limit=limit, seed=seed)
    if dataset == "digits":
        return load_digits(split, limit=limit, seed=seed)
    raise ValueError(f"dataset: expected 'fashion-mnist' or 'digits', got {dataset!r}")


def train_bundle(
    dataset: str = "fashion-mnist",
    iterations: int = 500,
    batch_size: int = 8,
    classifier_images: int = 20000,
    classifier_epochs: int = 4,
    config: DXAIConfig | None = None,
    seed: int = 0,
) -> Bundle:
    """Trains a :class:`SmallCNN` and then a DXAI for it (CPU-sized defaults).

    Args:
        dataset: ``"fashion-mnist"`` (28 x 28) or ``"digits"`` (8 x 8).
        iterations: DXAI steps.
        batch_size: DXAI images per step.
        classifier_images: training images for the classifier.
        classifier_epochs: classifier epochs.
        config: DXAI hyper-parameters (default :data:`SMALL_CONFIG`; one level
            fewer for digits).
        seed: seed of everything.
    """
    seed = check_seed(seed)  # one seed for every stage
    tr = _load_split(dataset, "train", classifier_images, seed)
    te = _load_split(dataset, "test", 2000, seed)
    t0 = time.perf_counter()
    clf = train_classifier(
        tr.images, tr.labels, len(tr.class_names), epochs=classifier_epochs, seed=seed
    )
    t_clf = time.perf_counter() - t0
    acc = accuracy(clf, te.images, te.labels)
    logger.info("classifier: %.1f s, test accuracy %.3f", t_clf, acc)
    cfg = config or (
        SMALL_CONFIG
        if dataset == "fashion-mnist"
        else DXAIConfig(width=6, levels=1, lr=1e-3, lr_mapping=1e-4, ema_beta=0.99)
    )
    size = tuple(tr.images.shape[2:])
    dx = DXAI(clf, len(tr.class_names), 1, size, cfg, seed=seed)
    t0 = time.perf_counter()
    hist = dx.fit(tr.images, tr.labels, iterations, batch_size, seed=seed, log_every=50)
    t_dx = time.perf_counter() - t0
    meta = {
        "classifier_seconds": t_clf,
        "classifier_test_accuracy": acc,
        "dxai_seconds": t_dx,
        "dxai_iterations": iterations,
        "dxai_batch_size": batch_size,
        "final_losses": hist[-1] if hist else {},
        "seed": seed,
        "threads": torch.get_num_threads(),
    }
    return Bundle(clf, dx, tr.class_names, dataset, meta)


def save_bundle(bundle: Bundle, path: str | os.PathLike) -> None:
    """Saves the classifier, the DXAI inference weights and the metadata."""
    clf = bundle.classifier
    torch.save(
        {
            "classifier": clf.state_dict(),
            "classifier_args": [clf.in_channels, clf.num_classes, clf.width],
            "dxai": bundle.dxai.state_dict(),
            "class_names": list(bundle.class_names),
            "dataset": bundle.dataset,
            "meta": bundle.meta,
        },
        path,
    )


def load_bundle(path: str | os.PathLike | None = None) -> Bundle:
    """Loads a bundle (default: the shipped :data:`DEFAULT_CHECKPOINT`)."""
    state = torch.load(path or DEFAULT_CHECKPOINT, weights_only=True)
    clf = SmallCNN(*state["classifier_args"])
    clf.load_state_dict(state["classifier"])
    clf.eval()
    dx = DXAI.from_state_dict(state["dxai"], clf)
    return Bundle(
        clf, dx, tuple(state["class_names"]), state["dataset"], dict(state["meta"])
    )
