# The branched generator, mapping network and multi-head discriminator of DXAI.
# SPDX-License-Identifier: MIT
"""Networks of the DXAI decomposition (a scaled-down StarGAN-v2-like design).

Every generator convolution is grouped with ``groups = K`` so the K branches are
independent sub-networks inside one module; the input image is replicated K times
along channels and each branch emits C channels. Branch k never sees another
branch's activations (InstanceNorm and AdaIN act per channel).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["BranchedGenerator", "Discriminator", "MappingNetwork"]


class _GroupedRes(nn.Module):
    """Pre-activation residual block, grouped, optional InstanceNorm / AdaIN."""

    def __init__(self, cin: int, cout: int, groups: int, style_dim: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, groups=groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, groups=groups)
        self.skip = (
            nn.Conv2d(cin, cout, 1, groups=groups, bias=False) if cin != cout else None
        )
        self.style_dim = style_dim
        self.norm1 = nn.InstanceNorm2d(cin, affine=style_dim == 0)
        self.norm2 = nn.InstanceNorm2d(cout, affine=style_dim == 0)
        if style_dim:
            self.fc1 = nn.Linear(style_dim, 2 * cin)
            self.fc2 = nn.Linear(style_dim, 2 * cout)

    @staticmethod
    def _adain(norm, fc, h, s):
        gamma, beta = fc(s)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * norm(h) + beta

    def forward(self, h: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        x = h
        h = self._adain(self.norm1, self.fc1, h, s) if self.style_dim else self.norm1(h)
        h = self.conv1(F.leaky_relu(h, 0.2))
        h = self._adain(self.norm2, self.fc2, h, s) if self.style_dim else self.norm2(h)
        h = self.conv2(F.leaky_relu(h, 0.2))
        skip = x if self.skip is None else self.skip(x)
        return (h + skip) / math.sqrt(2)


class BranchedGenerator(nn.Module):
    """U-Net with K grouped branches; output (B, K, C, H, W), image = sum over K.

    Args:
        in_channels: image channels C.
        num_branches: K.
        width: channels per branch at full resolution (doubled per level, max 4x).
        levels: number of 2x down/up-sampling levels (H and W must be divisible
            by ``2**levels``).
        style_dim: style vector size per AdaIN block.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_branches: int = 5,
        width: int = 8,
        levels: int = 2,
        style_dim: int = 16,
    ):
        super().__init__()
        k, c = num_branches, in_channels
        self.in_channels, self.num_branches, self.levels = c, k, levels
        widths = [width * min(2**i, 4) for i in range(levels + 1)]
        self.stem = nn.Conv2d(k * c, k * widths[0], 3, padding=1, groups=k)
        self.down = nn.ModuleList(
            _GroupedRes(k * widths[i], k * widths[i + 1], k) for i in range(levels)
        )
        self.mid = _GroupedRes(k * widths[-1], k * widths[-1], k, style_dim)
        # Decoder blocks take the upsampled features concatenated (per branch)
        # with the encoder skip of the same level.
        self.up = nn.ModuleList(
            _GroupedRes(k * (widths[i + 1] + widths[i]), k * widths[i], k, style_dim)
            for i in reversed(range(levels))
        )
        self.head = nn.Sequential(
            nn.InstanceNorm2d(k * widths[0], affine=True),
            nn.LeakyReLU(0.2),
            nn.Conv2d(k * widths[0], k * c, 1, groups=k),
        )
        self.num_styles = 1 + levels
        self.style_dim = style_dim

    def _cat(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # Interleave per branch so that grouped convolutions stay branch-local.
        k = self.num_branches
        n, _, h, w = a.shape
        a = a.view(n, k, -1, h, w)
        b = b.view(n, k, -1, h, w)
        return torch.cat([a, b], dim=2).view(n, -1, h, w)

    def forward(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); styles: (B, num_styles, style_dim) -> (B, K, C, H, W)."""
        n, c, h, w = x.shape
        k = self.num_branches
        feat = self.stem(x.repeat(1, k, 1, 1))
        skips = []
        for block in self.down:
            skips.append(feat)
            feat = F.avg_pool2d(block(feat), 2)
        feat = self.mid(feat, styles[:, 0])
        for i, block in enumerate(self.up):
            feat = F.interpolate(feat, scale_factor=2, mode="nearest")
            feat = block(self._cat(feat, skips[-1 - i]), styles[:, 1 + i])
        return self.head(feat).view(n, k, c, h, w)


class MappingNetwork(nn.Module):
    """Latent z + target class -> style vectors (shared trunk, one head per class)."""

    def __init__(
        self,
        latent_dim: int,
        num_classes: int,
        num_styles: int,
        style_dim: int,
        hidden: int = 64,
    ):
        super().__init__()
        self.latent_dim, self.num_styles, self.style_dim = (
            latent_dim,
            num_styles,
            style_dim,
        )
        self.shared = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Linear(hidden, hidden),
                nn.ReLU(),
                nn.Linear(hidden, num_styles * style_dim),
            )
            for _ in range(num_classes)
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim), y: (B,) int64 -> (B, num_styles, style_dim)."""
        h = self.shared(z)
        out = torch.stack([head(h) for head in self.heads], dim=1)
        out = out[torch.arange(len(y), device=y.device), y]
        return out.view(len(y), self.num_styles, self.style_dim)


class Discriminator(nn.Module):
    """Residual conv net with one real/fake logit per class (multi-head)."""

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 16, levels: int = 2
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1)]
        c = width
        for _ in range(levels):
            layers += [_GroupedRes(c, 2 * c, 1), nn.AvgPool2d(2)]
            c *= 2
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W), y: (B,) -> (B,) real/fake logit of head y."""
        h = F.leaky_relu(self.body(x), 0.2).mean(dim=(2, 3))
        return self.out(h)[torch.arange(len(y), device=y.device), y]
