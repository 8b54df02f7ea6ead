# Fashion-MNIST experiment: SGD vs Online CMD vs Embedded CMD vs SWA and EMA.
# SPDX-License-Identifier: MIT
"""A small, seeded comparison of CMD with weight averaging on real data.

One SGD run per seed is post-processed by Online CMD, SWA and EMA (like the
official code, Online CMD does not change training: it models the trajectory
and is evaluated on the reconstructed weights). A second run per seed trains
with :class:`~deepscope.dynamics.EmbeddedCMD`, which freezes settled tensors,
and reports the measured epoch time and optimizer state before and after.

Data: the Debian package ``dataset-fashion-mnist`` (IDX files under
``/usr/share/datasets/fashion-mnist``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_fashion_mnist", "run_experiment", "small_cnn"]

LOG = logging.getLogger(__name__)


def load_fashion_mnist(root: str | Path | None = None) -> dict[str, np.ndarray]:
    """Fashion-MNIST as float32 images in [0, 1] (N, 1, 28, 28) and int64 labels.

    Args:
        root: folder of the IDX files (default: ``$DEEPSCOPE_FASHION_MNIST`` or
            ``/usr/share/datasets/fashion-mnist``).

    Raises:
        FileNotFoundError: the IDX files are missing (install the Debian
            package ``dataset-fashion-mnist``).
    """
    from deepscope.pointsets import fashion_mnist_images

    out = {}
    for split in ("train", "test"):
        images, labels = fashion_mnist_images(split, root=root)
        out[f"x_{split}"] = (images.astype(np.float32) / 255.0)[:, None]
        out[f"y_{split}"] = labels.astype(np.int64)
    return out


def small_cnn(width: int = 16) -> Any:
    """Two conv-BN-ReLU-pool blocks and a linear classifier (28x28 inputs)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * 7 * 7, 10),
    )


def _accuracy(model: Any, x: Any, y: Any, batch: int = 1000) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(x), batch):
            correct += int(
                (model(x[s : s + batch]).argmax(1) == y[s : s + batch]).sum()
            )
    model.train()
    return 100.0 * correct / len(x)


def _optimizer_state_bytes(opt: Any) -> int:
    import torch

    return sum(
        v.numel() * v.element_size()
        for state in opt.state.values()
        for v in state.values()
        if isinstance(v, torch.Tensor)
    )


def _batches(n: int, batch: int, gen: Any) -> list[Any]:
    import torch

    perm = torch.randperm(n, generator=gen)
    return [perm[s : s + batch] for s in range(0, n, batch)]


def _bn_loader(x: Any, batch: int = 500) -> list[Any]:
    return [(x[s : s + batch],) for s in range(0, len(x), batch)]


def _run_seed(
    seed: int, data: dict[str, Any], cfg: dict[str, Any], progress: Any
) -> dict[str, Any]:
    """One SGD run post-processed by Online CMD, SWA and EMA."""
    import torch
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from deepscope.dynamics import OnlineCMD, update_bn

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = small_cnn(cfg["width"])
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9)
    cmd = OnlineCMD(
        model, cfg["modes"], cfg["samples"], cfg["warmup"], bn="skip", seed=seed
    )
    swa = AveragedModel(model)
    ema = AveragedModel(
        model, multi_avg_fn=get_ema_multi_avg_fn(cfg["ema_decay"]), use_buffers=True
    )
    xtr, ytr = data["x_train"], data["y_train"]
    xte, yte = data["x_test"], data["y_test"]
    xcurve, ycurve = xte[: cfg["curve_size"]], yte[: cfg["curve_size"]]
    bn_data = _bn_loader(xtr[: cfg["bn_size"]])
    curves: dict[str, list[float]] = {"sgd": [], "cmd": [], "ema": [], "swa": []}
    loss_fn = torch.nn.CrossEntropyLoss()
    cmd_model = small_cnn(cfg["width"])

    for epoch in range(cfg["epochs"]):
        for idx in _batches(len(xtr), cfg["batch"], gen):
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            ema.update_parameters(model)
        cmd.observe()
        if epoch >= cfg["swa_start"]:
            swa.update_parameters(model)
        curves["sgd"].append(_accuracy(model, xcurve, ycurve))
        curves["ema"].append(_accuracy(ema.module, xcurve, ycurve))
        if cmd.is_fitted:
            cmd_model.load_state_dict(model.state_dict())
            cmd.reconstruct_(cmd_model)
            update_bn(bn_data, cmd_model)
            curves["cmd"].append(_accuracy(cmd_model, xcurve, ycurve))
        else:
            curves["cmd"].append(float("nan"))
        if epoch >= cfg["swa_start"]:
            swa_eval = small_cnn(cfg["width"])
            swa_eval.load_state_dict(swa.module.state_dict())
            update_bn(bn_data, swa_eval)
            curves["swa"].append(_accuracy(swa_eval, xcurve, ycurve))
        else:
            curves["swa"].append(float("nan"))
        progress.update(1)

    # Final test accuracy on the full test set.
    flat_sgd = cmd.params.gather().clone()
    flat_cmd = cmd.reconstruct()
    rec_error = float(
        torch.linalg.vector_norm(flat_cmd - flat_sgd)
        / torch.linalg.vector_norm(flat_sgd)
    )
    swa_eval = small_cnn(cfg["width"])
    swa_eval.load_state_dict(swa.module.state_dict())
    update_bn(bn_data, swa_eval)
    n = cmd.params.numel
    state_bytes = sum(
        v.numel() * v.element_size() for v in cmd.state_dict()["stats"].values()
    )
    return {
        "sgd": _accuracy(model, xte, yte),
        "cmd": _accuracy(cmd_model, xte, yte),
        "swa": _accuracy(swa_eval, xte, yte),
        "ema": _accuracy(ema.module, xte, yte),
        "modes": int(len(cmd.cmd.references_)),
        "mode_sizes": cmd.cmd.mode_sizes_.tolist(),
        "explained_variance_warmup": float(cmd.cmd.total_explained_variance_),
        "reconstruction_error": rec_error,
        "n_params": n,
        "cmd_state_bytes": int(state_bytes),
        "swa_bytes": 4 * n,
        "curves": curves,
        "references": cmd.reference_trajectories.tolist(),
    }


def _run_embedded(
    seed: int, data: dict[str, Any], cfg: dict[str, Any], progress: Any
) -> dict[str, Any]:
    """One run with Embedded CMD; measured epoch times and optimizer state."""
    import torch

    from deepscope.dynamics import EmbeddedCMD

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = small_cnn(cfg["width"])
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9)
    cmd = EmbeddedCMD(
        model,
        opt,
        cfg["embedded_modes"],
        cfg["samples"],
        cfg["warmup"],
        embed_every=cfg["embed_every"],
        embed_fraction=cfg["embed_fraction"],
        seed=seed,
    )
    xtr, ytr = data["x_train"], data["y_train"]
    loss_fn = torch.nn.CrossEntropyLoss()
    times, state, frac = [], [], []
    for _ in range(cfg["epochs"]):
        start = time.perf_counter()
        for idx in _batches(len(xtr), cfg["batch"], gen):
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
        state.append(_optimizer_state_bytes(opt))
        frac.append(cmd.embedded_fraction)
        cmd.observe()
        progress.update(1)
    first = next((i for i, f in enumerate(frac) if f > 0), len(frac))
    before = float(np.median(times[1:first])) if first > 1 else float("nan")
    after = float(np.median(times[first:])) if first < len(times) else float("nan")
    return {
        "embedded": _accuracy(model, data["x_test"], data["y_test"]),
        "embedded_fraction": cmd.embedded_fraction,
        "embedded_tensors": list(cmd.embedded),
        "epoch_time_before": before,
        "epoch_time_after": after,
        "optimizer_bytes_before": int(state[max(first - 1, 0)]),
        "optimizer_bytes_after": int(state[-1]),
    }


def run_experiment(
    *,
    seeds: tuple[int, ...] = (0, 1, 2),
    epochs: int = 16,
    warmup: int = 8,
    train_size: int = 10_000,
    test_size: int = 10_000,
    width: int = 16,
    modes: int = 10,
    samples: int = 1000,
    lr: float = 0.05,
    batch: int = 128,
    ema_decay: float = 0.99,
    embed_every: int = 2,
    embed_fraction: float = 0.2,
    embedded_modes: int = 2,
    embedded: bool = True,
    data_root: str | Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Runs the comparison; returns per-seed results and a summary.

    The Embedded CMD runs use ``embedded_modes`` modes (the official
    ResNet-18 default, 2): a tensor holding a reference parameter is never
    embedded, and with few modes fewer tensors hold one.

    Returns:
        ``{"config": ..., "runs": [per-seed dicts], "summary": {method:
        (mean, std)}}``; accuracies in percent on the first ``test_size``
        test images (all 10,000 by default).
    """
    import torch

    raw = load_fashion_mnist(data_root)
    for name, size, split in (
        ("train_size", train_size, "x_train"),
        ("test_size", test_size, "x_test"),
    ):
        if not 1 <= size <= len(raw[split]):
            raise ValueError(
                f"{name}: expected an integer in [1, {len(raw[split])}] (the "
                f"Fashion-MNIST {split[2:]} images), got {size}"
            )
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(raw["x_train"]), size=train_size, replace=False))
    data = {
        "x_train": torch.from_numpy(raw["x_train"][pick].copy()),
        "y_train": torch.from_numpy(raw["y_train"][pick].copy()),
        "x_test": torch.from_numpy(raw["x_test"][:test_size].copy()),
        "y_test": torch.from_numpy(raw["y_test"][:test_size].copy()),
    }
    cfg = {
        "epochs": epochs,
        "warmup": warmup,
        "width": width,
        "modes": modes,
        "samples": samples,
        "lr": lr,
        "batch": batch,
        "swa_start": warmup,
        "curve_size": min(1000, test_size),
        "bn_size": min(1000, train_size),
        "ema_decay": ema_decay,
        "embed_every": embed_every,
        "embed_fraction": embed_fraction,
        "embedded_modes": embedded_modes,
        "train_size": train_size,
        "test_size": test_size,
        "seeds": list(seeds),
    }
    total = len(seeds) * epochs * (2 if embedded else 1)
    progress = _progress(total, show_progress)
    runs = []
    for seed in seeds:
        result = _run_seed(seed, data, cfg, progress)
        if embedded:
            result.update(_run_embedded(seed, data, cfg, progress))
        runs.append(result)
        LOG.info(
            "seed %d: %s", seed, {k: result[k] for k in ("sgd", "cmd", "swa", "ema")}
        )
    progress.close()
    methods = ["sgd", "cmd", "swa", "ema"] + (["embedded"] if embedded else [])
    summary = {
        m: (float(np.mean([r[m] for r in runs])), float(np.std([r[m] for r in runs])))
        for m in methods
    }
    return {"config": cfg, "runs": runs, "summary": summary}


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, show: bool) -> Any:
    if not show:
        return _NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoProgress()
    return tqdm(total=total, desc="epochs", unit="epoch")
