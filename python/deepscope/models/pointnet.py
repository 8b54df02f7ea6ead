# PointNet classifier (Qi et al., CVPR 2017) with the pre-bottleneck feature protocol.
# SPDX-License-Identifier: MIT
"""PointNet: a shared per-point MLP, a global max-pool and an MLP head.

C. R. Qi, H. Su, K. Mo, L. J. Guibas, "PointNet: Deep Learning on Point Sets
for 3D Classification and Segmentation", CVPR 2017.
"""

from __future__ import annotations

import torch
from torch import nn

from deepscope.models._base import PointClassifier

__all__ = ["PointNet"]


def _shared_mlp(c_in: int, c_out: int) -> nn.Sequential:
    """A per-point linear layer (1x1 convolution) + BatchNorm + ReLU."""
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out), nn.ReLU()
    )


class TransformNet(nn.Module):
    """A light T-Net: predicts a (k, k) transform from (B, k, N) features.

    Shared MLP 64-128-256, max-pool, MLP 128 -> k*k; the last layer starts
    at zero so the initial transform is the identity.
    """

    def __init__(self, k: int):
        super().__init__()
        self.k = k
        self.mlp = nn.Sequential(_shared_mlp(k, 64), _shared_mlp(64, 128))
        self.mlp.append(_shared_mlp(128, 256))
        self.fc = nn.Sequential(
            nn.Linear(256, 128, bias=False), nn.BatchNorm1d(128), nn.ReLU()
        )
        self.out = nn.Linear(128, k * k)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, k, N) -> (B, k, k) transform (identity plus a learned offset)."""
        g = self.fc(self.mlp(x).amax(dim=-1))
        eye = torch.eye(self.k, dtype=x.dtype, device=x.device)
        return self.out(g).view(-1, self.k, self.k) + eye


class PointNet(PointClassifier):
    """The PointNet classifier.

    Layers: [input T-Net] -> shared MLP 64-64 -> [feature T-Net] -> shared MLP
    64-128-``emb_dims`` (each 1x1 conv + BatchNorm + ReLU) -> global max-pool
    -> MLP 512-256 (BatchNorm + ReLU + dropout) -> ``num_classes``. The
    pre-bottleneck features are the last shared layer's output (after its
    ReLU), as in the CP++ code.

    Args:
        num_classes: number of classes.
        in_channels: channels per input point (3 for x, y, z).
        emb_dims: width F of the per-point features and the global vector.
        dropout: dropout probability in the head.
        input_transform: learn an (in_channels x in_channels) input transform.
        feature_transform: learn a 64 x 64 feature transform; adds the
            orthogonality penalty of the paper through ``regularization_loss``.
    """

    architecture = "pointnet"

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int = 3,
        emb_dims: int = 1024,
        dropout: float = 0.3,
        input_transform: bool = False,
        feature_transform: bool = False,
    ):
        super().__init__(
            {
                "num_classes": int(num_classes),
                "in_channels": int(in_channels),
                "emb_dims": int(emb_dims),
                "dropout": float(dropout),
                "input_transform": bool(input_transform),
                "feature_transform": bool(feature_transform),
            }
        )
        self.input_tnet = TransformNet(in_channels) if input_transform else None
        self.conv1 = _shared_mlp(in_channels, 64)
        self.conv2 = _shared_mlp(64, 64)
        self.feature_tnet = TransformNet(64) if feature_transform else None
        self.conv3 = _shared_mlp(64, 64)
        self.conv4 = _shared_mlp(64, 128)
        self.conv5 = _shared_mlp(128, emb_dims)
        self.head = nn.Sequential(
            nn.Linear(emb_dims, 512, bias=False),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(512, 256, bias=False),
            nn.BatchNorm1d(256),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )
        self._feature_matrix: torch.Tensor | None = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, N) points -> (B, emb_dims, N) pre-bottleneck features."""
        if self.input_tnet is not None:
            x = torch.bmm(self.input_tnet(x).transpose(1, 2), x)
        x = self.conv2(self.conv1(x))
        if self.feature_tnet is not None:
            matrix = self.feature_tnet(x)
            self._feature_matrix = matrix
            x = torch.bmm(matrix.transpose(1, 2), x)
        return self.conv5(self.conv4(self.conv3(x)))

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, N) -> (B, F) global max-pool."""
        return features.amax(dim=-1)

    def regularization_loss(self) -> torch.Tensor:
        """The feature-transform penalty mean ||I - A A^T||_F^2 of the last forward.

        Zero without a feature transform. The training loop adds it with the
        paper's weight 0.001.
        """
        matrix = self._feature_matrix
        if matrix is None:
            return torch.zeros((), device=self.conv1[0].weight.device)
        eye = torch.eye(matrix.shape[-1], device=matrix.device, dtype=matrix.dtype)
        gram = torch.bmm(matrix, matrix.transpose(1, 2))
        return ((gram - eye) ** 2).sum(dim=(1, 2)).mean()
