# DXAI: decomposition of an image into class-distinct and class-agnostic parts.
# SPDX-License-Identifier: MIT
"""Training and inference of the DXAI branched-GAN decomposition.

Reimplemented from the description of Kadar & Gilboa, "DXAI: Explaining
Classification by Image Decomposition" (arXiv 2401.00320); no reference code used.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from deepscope._arrays import check_seed
from deepscope.decompose._explanation import Explanation
from deepscope.decompose._networks import (
    BranchedGenerator,
    Discriminator,
    MappingNetwork,
)

__all__ = ["DXAI", "DXAIConfig"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DXAIConfig:
    """Hyper-parameters. Loss weights and optimiser defaults are the published ones;
    sizes are scaled down so a CPU run takes minutes.

    Attributes:
        num_branches: K (branch 0 = class-distinct, 1..K-1 = class-agnostic).
        width: generator channels per branch at full resolution.
        levels: down/up-sampling levels of the generator and discriminator.
        style_dim: style vector size per AdaIN block.
        latent_dim: mapping-network latent size.
        disc_width: discriminator base width.
        lambda_adv: adversarial weight (1).
        lambda_cls: classification weight of the blended image (4).
        lambda_rec: reconstruction weight, MSE + L1 (4).
        lambda_dis_rec: distinct-region reconstruction weight (4).
        lambda_r1: R1 penalty weight on real images (1).
        lr: Adam learning rate of G and D (1e-4).
        lr_mapping: Adam learning rate of the mapping network (1e-6 published;
            scaled runs often need more).
        betas: Adam betas ((0, 0.99)).
        weight_decay: Adam weight decay (1e-4).
        ema_beta: EMA decay of the generator and mapping network (0.999).
        temperature: softmax temperature T of the classification loss (1).
        flip: random horizontal flips as augmentation.
    """

    num_branches: int = 5
    width: int = 8
    levels: int = 2
    style_dim: int = 16
    latent_dim: int = 8
    disc_width: int = 16
    lambda_adv: float = 1.0
    lambda_cls: float = 4.0
    lambda_rec: float = 4.0
    lambda_dis_rec: float = 4.0
    lambda_r1: float = 1.0
    lr: float = 1e-4
    lr_mapping: float = 1e-6
    betas: tuple[float, float] = (0.0, 0.99)
    weight_decay: float = 1e-4
    ema_beta: float = 0.999
    temperature: float = 1.0
    flip: bool = False


def _check_images(x: torch.Tensor, channels: int, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != channels or x.shape[0] == 0:
        raise ValueError(
            f"{name}: expected (B, {channels}, H, W) with B > 0, got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating dtype, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return x.float()


class DXAI:
    """Branched-GAN decomposition x ~ distinct + agnostic for a frozen classifier.

    Args:
        classifier: the frozen image classifier (never modified; warned about and
            used in eval mode if it is in train mode).
        num_classes: number of classes of the classifier.
        in_channels: image channels.
        image_size: (H, W); both divisible by ``2**config.levels``.
        config: hyper-parameters.
        seed: seed of the initialisation.
    """

    def __init__(
        self,
        classifier: nn.Module,
        num_classes: int,
        in_channels: int = 1,
        image_size: tuple[int, int] = (28, 28),
        config: DXAIConfig | None = None,
        seed: int = 0,
    ):
        self.config = cfg = config or DXAIConfig()
        if cfg.num_branches < 2:
            raise ValueError(f"num_branches: expected >= 2, got {cfg.num_branches}")
        if num_classes < 2:
            raise ValueError(f"num_classes: expected >= 2, got {num_classes}")
        div = 2**cfg.levels
        if image_size[0] % div or image_size[1] % div:
            raise ValueError(
                f"image_size: expected H and W divisible by 2**levels = {div}, "
                f"got {tuple(image_size)}"
            )
        self.classifier = classifier
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        with torch.random.fork_rng():
            torch.manual_seed(check_seed(seed))
            self.generator = BranchedGenerator(
                in_channels, cfg.num_branches, cfg.width, cfg.levels, cfg.style_dim
            )
            self.mapping = MappingNetwork(
                cfg.latent_dim,
                num_classes,
                self.generator.num_styles,
                cfg.style_dim,
            )
            self.discriminator = Discriminator(
                in_channels, num_classes, cfg.disc_width, cfg.levels
            )
        self.generator_ema = copy.deepcopy(self.generator).eval()
        self.mapping_ema = copy.deepcopy(self.mapping).eval()
        self.iterations = 0

    @property
    def device(self) -> torch.device:
        """Device of the generator (inputs are moved there)."""
        return next(self.generator.parameters()).device

    def to(self, device: torch.device | str) -> DXAI:
        """Moves the generator, mapping network, discriminator and EMA copies
        (not the classifier) to ``device``; returns self."""
        for net in (
            self.generator,
            self.mapping,
            self.discriminator,
            self.generator_ema,
            self.mapping_ema,
        ):
            net.to(device)
        return self

    # ------------------------------------------------------------------ inference
    def _styles(self, y: torch.Tensor, mapping: nn.Module) -> torch.Tensor:
        z = torch.zeros(len(y), self.config.latent_dim, device=y.device)
        return mapping(z, y)

    @torch.no_grad()
    def decompose(self, x: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
        """Branches of the EMA generator.

        Args:
            x: (B, C, H, W) or (C, H, W) float images (normalised like the
                classifier's inputs).
            target: class (int) or (B,) int64 classes.

        Returns:
            (B, K, C, H, W) float32 branches; branch 0 is class-distinct.
        """
        x = _check_images(x, self.in_channels).to(self.device)
        y = self._targets(target, len(x), x.device)
        return self.generator_ema(x, self._styles(y, self.mapping_ema))

    def _targets(self, target, n: int, device) -> torch.Tensor:
        y = torch.as_tensor(target, device=device).long().reshape(-1)
        if y.numel() == 1:
            y = y.expand(n)
        if y.numel() != n:
            raise ValueError(f"target: expected 1 or {n} classes, got {y.numel()}")
        if (y < 0).any() or (y >= self.num_classes).any():
            raise ValueError(
                f"target: expected classes in [0, {self.num_classes}), got {y.tolist()}"
            )
        return y

    @torch.no_grad()
    def explain(
        self,
        x: torch.Tensor,
        target: torch.Tensor | int | None = None,
        absorb_residual: bool = True,
    ) -> Explanation:
        """Decomposes ``x`` into class-distinct and class-agnostic parts.

        Args:
            x: (B, C, H, W) or (C, H, W) float images.
            target: the class to explain; default the classifier's prediction.
            absorb_residual: add the reconstruction residual ``x - sum(branches)``
                to the agnostic part, so that ``x == distinct + agnostic`` holds to
                float rounding (the generator alone only approximates ``x``).

        Returns:
            An :class:`Explanation` (batched, even for one image).
        """
        x = _check_images(x, self.in_channels).to(self.device)
        if target is None:
            training = self.classifier.training
            if training:
                _warn_train_mode()
            self.classifier.eval()
            target = self.classifier(x).argmax(1)
            self.classifier.train(training)
        y = self._targets(target, len(x), x.device)
        branches = self.decompose(x, y)
        residual = x - branches.sum(1)
        distinct = branches[:, 0]
        agnostic = branches[:, 1:].sum(1)
        if absorb_residual:
            agnostic = agnostic + residual
        return Explanation(
            input=x,
            distinct=distinct,
            agnostic=agnostic,
            branches=branches,
            target=y,
            residual=residual,
        )

    # ------------------------------------------------------------------- training
    def fit(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        iterations: int = 1000,
        batch_size: int = 16,
        seed: int = 0,
        log_every: int = 0,
    ) -> list[dict[str, float]]:
        """Trains the decomposition with the published losses and alpha-blending.

        Each step takes a batch x with labels y, duplicates it into half A
        (target = y) and half B (target = another class), generates branches for
        both halves and blends the agnostic branches across halves with per-branch
        alpha_k ~ U(0, 1):
        ``xa = psi0_A + sum_k a_k psik_A + (1 - a_k) psik_B`` and
        ``xb = psi0_B + sum_k (1 - a_k) psik_A + a_k psik_B``. Since the agnostic
        branches are interchangeable between targets, class evidence can only live
        in branch 0. Generator loss: adversarial (multi-head D, head = target) +
        CE(C(x_hat) / T, target) + (MSE + L1)(xa, x) + (MSE + L1) of xa vs x on
        the pixels where |psi0_A| exceeds its per-image spatial mean. D loss:
        BCE real + BCE fake + R1 on reals.

        Args:
            images: (S, C, H, W) float training images.
            labels: (S,) int64 labels.
            iterations: optimisation steps (counted across calls).
            batch_size: images per step (the generator sees twice as many).
            seed: seed of every random draw (deterministic on CPU).
            log_every: log losses every this many steps (0 = never).

        Returns:
            One dict of loss values per step.
        """
        images = _check_images(images, self.in_channels, "images")
        labels = torch.as_tensor(labels).long()
        if labels.shape != (len(images),):
            raise ValueError(
                f"labels: expected shape ({len(images)},), got {tuple(labels.shape)}"
            )
        if tuple(images.shape[2:]) != self.image_size:
            raise ValueError(
                f"images: expected size {self.image_size}, "
                f"got {tuple(images.shape[2:])}"
            )
        cfg = self.config
        clf = self.classifier
        was_training = clf.training
        if was_training:
            _warn_train_mode()
        grad_flags = [p.requires_grad for p in clf.parameters()]
        clf.eval()
        for p in clf.parameters():
            p.requires_grad_(False)
        opt_g = torch.optim.Adam(
            self.generator.parameters(),
            cfg.lr,
            cfg.betas,
            weight_decay=cfg.weight_decay,
        )
        opt_m = torch.optim.Adam(
            self.mapping.parameters(),
            cfg.lr_mapping,
            cfg.betas,
            weight_decay=cfg.weight_decay,
        )
        opt_d = torch.optim.Adam(
            self.discriminator.parameters(),
            cfg.lr,
            cfg.betas,
            weight_decay=cfg.weight_decay,
        )
        history: list[dict[str, float]] = []
        try:
            with torch.random.fork_rng():
                torch.manual_seed(check_seed(seed))
                for step in range(iterations):
                    idx = torch.randint(len(images), (batch_size,))
                    x, y = images[idx].to(self.device), labels[idx].to(self.device)
                    if cfg.flip:
                        flip = torch.rand(batch_size, device=self.device) < 0.5
                        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                    logs = self._step(x, y, opt_g, opt_m, opt_d)
                    history.append(logs)
                    self.iterations += 1
                    if log_every and (step + 1) % log_every == 0:
                        logger.info("dxai step %d: %s", self.iterations, logs)
        finally:
            for p, flag in zip(clf.parameters(), grad_flags, strict=True):
                p.requires_grad_(flag)
            clf.train(was_training)
        return history

    def _blend(self, x: torch.Tensor, y: torch.Tensor):
        cfg = self.config
        n = len(y)
        dev = x.device
        shift = torch.randint(1, self.num_classes, (n,), device=dev)
        y_other = (y + shift) % self.num_classes
        targets = torch.cat([y, y_other])
        z = torch.randn(2 * n, cfg.latent_dim, device=dev)
        styles = self.mapping(z, targets)
        psi = self.generator(torch.cat([x, x]), styles)
        psi_a, psi_b = psi[:n], psi[n:]
        alpha = torch.rand(n, cfg.num_branches - 1, 1, 1, 1, device=dev)
        mix_a = (alpha * psi_a[:, 1:] + (1 - alpha) * psi_b[:, 1:]).sum(1)
        mix_b = ((1 - alpha) * psi_a[:, 1:] + alpha * psi_b[:, 1:]).sum(1)
        fake = torch.cat([psi_a[:, 0] + mix_a, psi_b[:, 0] + mix_b])
        return fake, targets, psi

    def _step(self, x, y, opt_g, opt_m, opt_d) -> dict[str, float]:
        cfg = self.config
        n = len(y)
        # Discriminator: real (head = true class) vs blended fakes (head = target).
        with torch.no_grad():
            fake, targets, _ = self._blend(x, y)
        x_real = x.detach().requires_grad_(True)
        d_real = self.discriminator(x_real, y)
        loss_real = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
        (grad,) = torch.autograd.grad(d_real.sum(), x_real, create_graph=True)
        r1 = 0.5 * grad.pow(2).flatten(1).sum(1).mean()
        d_fake = self.discriminator(fake, targets)
        loss_fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        loss_d = loss_real + loss_fake + cfg.lambda_r1 * r1
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()

        # Generator and mapping network.
        fake, targets, psi = self._blend(x, y)
        psi_a = psi[:n]
        d_fake = self.discriminator(fake, targets)
        loss_adv = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        logits = self.classifier(fake) / cfg.temperature
        loss_cls = F.cross_entropy(logits, targets)
        fake_a = fake[:n]
        loss_rec = F.mse_loss(fake_a, x) + F.l1_loss(fake_a, x)
        mag = psi_a[:, 0].abs()
        mask = (mag > mag.mean(dim=(2, 3), keepdim=True)).float()
        denom = mask.sum().clamp_min(1.0)
        diff = fake_a - x
        loss_dis = ((diff.pow(2) + diff.abs()) * mask).sum() / denom
        loss_g = (
            cfg.lambda_adv * loss_adv
            + cfg.lambda_cls * loss_cls
            + cfg.lambda_rec * loss_rec
            + cfg.lambda_dis_rec * loss_dis
        )
        opt_g.zero_grad()
        opt_m.zero_grad()
        loss_g.backward()
        opt_g.step()
        opt_m.step()
        self.discriminator.zero_grad(set_to_none=True)
        self._update_ema()
        return {
            "d": float(loss_d.detach()),
            "r1": float(r1.detach()),
            "adv": float(loss_adv.detach()),
            "cls": float(loss_cls.detach()),
            "rec": float(loss_rec.detach()),
            "dis_rec": float(loss_dis.detach()),
        }

    @torch.no_grad()
    def _update_ema(self) -> None:
        beta = self.config.ema_beta
        for net, ema in (
            (self.generator, self.generator_ema),
            (self.mapping, self.mapping_ema),
        ):
            for p, q in zip(net.parameters(), ema.parameters(), strict=True):
                q.lerp_(p, 1.0 - beta)
            for b, c in zip(net.buffers(), ema.buffers(), strict=True):
                c.copy_(b)

    # ---------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """EMA generator and mapping weights plus the metadata needed to rebuild."""
        return {
            "config": dataclasses.asdict(self.config),
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "iterations": self.iterations,
            "generator_ema": self.generator_ema.state_dict(),
            "mapping_ema": self.mapping_ema.state_dict(),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Saves :meth:`state_dict` (inference weights only) with ``torch.save``."""
        torch.save(self.state_dict(), path)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], classifier: nn.Module) -> DXAI:
        """Rebuilds an inference-ready model (the training weights start fresh)."""
        cfg = dict(state["config"])
        cfg["betas"] = tuple(cfg["betas"])
        model = cls(
            classifier,
            state["num_classes"],
            state["in_channels"],
            tuple(state["image_size"]),
            DXAIConfig(**cfg),
        )
        model.generator_ema.load_state_dict(state["generator_ema"])
        model.mapping_ema.load_state_dict(state["mapping_ema"])
        model.generator.load_state_dict(state["generator_ema"])
        model.mapping.load_state_dict(state["mapping_ema"])
        model.iterations = int(state["iterations"])
        return model

    @classmethod
    def load(cls, path: str | os.PathLike, classifier: nn.Module) -> DXAI:
        """Loads a file written by :meth:`save`."""
        return cls.from_state_dict(torch.load(path, weights_only=True), classifier)


def _warn_train_mode() -> None:
    warnings.warn(
        "classifier is in train mode; DXAI uses it in eval mode and restores the mode",
        UserWarning,
        stacklevel=3,
    )
