# Embedded CMD: settled parameter tensors leave training and follow their model.
# SPDX-License-Identifier: MIT
"""Embedded Correlation Mode Decomposition with a real saving.

After the warm-up of :class:`OnlineCMD`, every ``embed_every`` observations
the parameters whose coefficients moved least since the previous embedding
round join the embedded set: they stop being trained and follow their CMD
model w = a r_m(t) + b with frozen (a, b), r_m being the still-trained
reference parameters.

Unlike the official code (which keeps training every weight and overwrites
the embedded ones after each epoch, saving nothing), embedding here happens
per parameter *tensor*: an embedded tensor gets ``requires_grad=False`` (its
weight gradient is no longer computed by autograd) and is removed from the
optimizer together with its state (momentum, Adam moments). Element-wise
masking would still compute and store full gradients, so it is not offered.
A tensor is ranked by the mean coefficient drift of its elements,
sqrt(da^2 + db^2) relative to the mean of sqrt(a^2 + b^2); tensors that hold
a reference parameter are never embedded.

Under DDP, a tensor that stops requiring gradients after the wrapper was
built is reported as unused by the gradient reducer; build DDP with
``find_unused_parameters=True`` (or re-wrap the model) when embedding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepscope.dynamics._online import OnlineCMD

__all__ = ["EmbeddedCMD"]


class EmbeddedCMD(OnlineCMD):
    """Online CMD that progressively freezes settled parameter tensors.

    Args:
        model: the module being trained.
        optimizer: its ``torch.optim.Optimizer``; embedded tensors are removed
            from its parameter groups and state.
        n_modes, n_samples, warmup, bn, clustering, seed: as
            :class:`OnlineCMD`.
        embed_every: observations between embedding rounds (official: 10).
        embed_fraction: fraction of all modelled parameters embedded per
            round (official: 10 %), in whole tensors: the least drifting
            tensors are taken until the fraction is reached (the last one
            may overshoot it).
        max_fraction: never embed more than this fraction in total.

    Attributes:
        embedded: names of the embedded tensors, in embedding order.
    """

    def __init__(
        self,
        model: Any,
        optimizer: Any,
        n_modes: int = 10,
        n_samples: int = 1000,
        warmup: int = 20,
        *,
        embed_every: int = 10,
        embed_fraction: float = 0.1,
        max_fraction: float = 0.9,
        bn: str = "skip",
        clustering: str = "linkage",
        seed: int = 0,
    ) -> None:
        super().__init__(
            model, n_modes, n_samples, warmup, bn=bn, clustering=clustering, seed=seed
        )
        if int(embed_every) < 1:
            raise ValueError(f"embed_every: expected >= 1, got {embed_every}")
        if not 0.0 < float(embed_fraction) <= 1.0:
            raise ValueError(
                f"embed_fraction: expected 0 < fraction <= 1, got {embed_fraction}"
            )
        self.optimizer = optimizer
        self.embed_every = int(embed_every)
        self.embed_fraction = float(embed_fraction)
        self.max_fraction = float(max_fraction)
        self.embedded: list[str] = []
        self._last_ab: tuple[Any, Any] | None = None
        self._frozen_ab: tuple[Any, Any] | None = None

    @property
    def embedded_fraction(self) -> float:
        """Fraction of the modelled parameters that are embedded."""
        sizes = dict(zip(self.params.names, self.params.sizes, strict=True))
        return sum(sizes[n] for n in self.embedded) / self.params.numel

    def observe(self, model: Any = None) -> None:
        """Records a sample, updates embedded tensors, maybe embeds more."""
        if model is not None and model is not self.model:
            raise ValueError("model: EmbeddedCMD observes only its own model")
        super().observe()
        if not self.is_fitted:
            return
        if self.embedded:
            self._apply_embedded()
        since = self.n_observed - (self.warmup + 1)
        if since % self.embed_every == 0:
            self._embed_round()

    def _apply_embedded(self) -> None:
        """Embedded tensors <- frozen a * r(t) + b at the latest sample."""
        import torch

        from deepscope import _arrays
        from deepscope.dynamics._kernels import reconstruct_into

        a, b = self._frozen_ab
        out = torch.empty_like(a)
        reconstruct_into(
            _arrays.prepare(out, "out", ndim=(1,)),
            self._stats["modes"],
            a,
            b,
            self._refs[-1],
        )
        offset = 0
        with torch.no_grad():
            for t, name, n in zip(
                self.params.tensors, self.params.names, self.params.sizes, strict=True
            ):
                if name in self.embedded:
                    t.copy_(out[offset : offset + n].view(t.shape).to(t.dtype))
                offset += n

    def _embed_round(self) -> None:
        import torch

        a, b = self.coefficients()
        if self._last_ab is None:
            self._last_ab = (a, b)
            self._frozen_ab = (a.clone(), b.clone())
            return
        a0, b0 = self._last_ab
        drift = torch.sqrt((a - a0).double() ** 2 + (b - b0).double() ** 2)
        size = torch.sqrt(a.double() ** 2 + b.double() ** 2)
        self._last_ab = (a, b)

        # Per-tensor relative drift; tensors holding a reference are kept.
        ref_idx = np.asarray(self.cmd.reference_indices_)
        offsets = np.concatenate([[0], np.cumsum(self.params.sizes)])
        candidates = []
        for k, name in enumerate(self.params.names):
            lo, hi = int(offsets[k]), int(offsets[k + 1])
            if name in self.embedded or ((ref_idx >= lo) & (ref_idx < hi)).any():
                continue
            tensor = self.params.tensors[k]
            if not isinstance(tensor, torch.nn.Parameter):
                continue  # buffers are not trained; nothing to save
            score = float(drift[lo:hi].mean() / (size[lo:hi].mean() + 1e-12))
            candidates.append((score, k))
        candidates.sort()

        budget = self.embed_fraction * self.params.numel
        cap = self.max_fraction * self.params.numel
        done = sum(self.params.sizes[self.params.names.index(n)] for n in self.embedded)
        taken = 0
        fa, fb = self._frozen_ab
        for _, k in candidates:
            n = self.params.sizes[k]
            if taken >= budget:
                break
            if done + taken + n > cap:
                continue
            lo = int(offsets[k])
            fa[lo : lo + n] = a[lo : lo + n]
            fb[lo : lo + n] = b[lo : lo + n]
            self._embed_tensor(k)
            taken += n
        if taken:
            self._apply_embedded()

    def _embed_tensor(self, k: int) -> None:
        p = self.params.tensors[k]
        p.requires_grad_(False)
        p.grad = None
        for group in self.optimizer.param_groups:
            group["params"] = [q for q in group["params"] if q is not p]
        self.optimizer.state.pop(p, None)
        self.embedded.append(self.params.names[k])
