# Online CMD: warm-up window, then frozen modes and O(N) sufficient statistics.
# SPDX-License-Identifier: MIT
"""Online Correlation Mode Decomposition inside a normal training loop.

After ``warmup + 1`` observations (the official default: epochs 0..20) the
window is decomposed with :class:`~deepscope.dynamics.CMD`; the modes and
reference parameters are then frozen and every later observation updates
per-parameter sufficient statistics (float64 sums of the shifted parameter
and of its product with the shifted reference), so the coefficients are
always the exact least-squares fit over all observations so far, like the
official recursive update. Memory after warm-up: the mode index, the shift
and three float64 sums per parameter, plus the M reference trajectories;
the window is released.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from deepscope import _arrays
from deepscope.dynamics._cmd import CMD
from deepscope.dynamics._kernels import (
    online_coefficients,
    online_update,
    reconstruct_into,
    reference_stats,
)
from deepscope.dynamics._params import ParameterSet

__all__ = ["OnlineCMD"]

_STATE_VERSION = 1


class OnlineCMD:
    """CMD that observes a model while it trains.

    Example::

        cmd = OnlineCMD(model, n_modes=10, warmup=20)
        for epoch in range(epochs):
            train_one_epoch(model)
            cmd.observe()
            if cmd.is_fitted:
                with cmd.swap():
                    evaluate(model)          # the CMD model

    Args:
        model: the ``torch.nn.Module`` to observe (see :class:`ParameterSet`).
        n_modes: M (official default 10).
        n_samples: K candidates clustered at the end of warm-up (1000).
        warmup: F; the decomposition is fitted on observations 0..F.
        bn: ``"skip"`` or ``"model"`` (batch-norm statistics).
        clustering: ``"linkage"`` (faithful) or ``"kmedoids"``.
        seed: seed of the candidate sampling.
        reestimate_below: optional re-estimation (the official code freezes
            the modes forever). When the explained variance of the fit over
            the observations since the last fit falls below this value, a
            new window of ``warmup + 1`` observations is collected (the
            current model stays in use meanwhile) and the modes are fitted
            again on it; observation indices ``t`` then count from the start
            of that window. Costs the window's memory while collecting.

    Attributes:
        n_observed: observations so far.
        n_refits: re-estimations so far.
    """

    def __init__(
        self,
        model: Any,
        n_modes: int = 10,
        n_samples: int = 1000,
        warmup: int = 20,
        *,
        bn: str = "skip",
        clustering: str = "linkage",
        seed: int = 0,
        reestimate_below: float | None = None,
    ) -> None:
        if int(warmup) < 1:
            raise ValueError(f"warmup: expected >= 1, got {warmup}")
        if reestimate_below is not None and not 0.0 < reestimate_below <= 1.0:
            raise ValueError(
                f"reestimate_below: expected 0 < value <= 1 or None, got "
                f"{reestimate_below}"
            )
        self.reestimate_below = reestimate_below
        self.n_refits = 0
        self._filled = 0
        self.model = model
        self.params = ParameterSet(model, bn=bn)
        self.warmup = int(warmup)
        self.cmd = CMD(n_modes, n_samples, clustering=clustering, seed=seed)
        self.n_observed = 0
        self._buffer: Any = None
        self._stats: dict[str, Any] | None = None
        self._refs: list[np.ndarray] = []

    # -------------------------------------------------------------- observe

    @property
    def is_fitted(self) -> bool:
        """True once the warm-up window has been decomposed."""
        return self._stats is not None

    def observe(self, model: Any = None) -> None:
        """Records the current parameters (one time sample).

        Args:
            model: the observed module (default: the one given at creation);
                it must have the same modelled tensors.
        """
        import torch

        params = self.params if model is None else self._params_of(model)
        flat = params.gather()
        if not bool(torch.isfinite(flat).all()):
            raise ValueError("model: parameters contain NaN or inf")
        if self.is_fitted:
            self._add_sample(flat)
            if self._buffer is None and self._drifted():
                self._filled = 0  # start collecting a new window
                self._buffer = self._new_buffer()
        elif self._buffer is None:
            self._buffer = self._new_buffer()
        self.n_observed += 1
        if self._buffer is None:
            return
        self._buffer[self._filled].copy_(flat)
        self._filled += 1
        if self._filled == self.warmup + 1:
            if self.is_fitted:
                self.n_refits += 1
            self._fit_window()
            self._filled = 0

    def _new_buffer(self) -> Any:
        import torch

        return torch.empty(
            (self.warmup + 1, self.params.numel),
            dtype=self.params.dtype,
            device=self.params.device,
        )

    def _drifted(self) -> bool:
        return (
            self.reestimate_below is not None
            and self.explained_variance() < self.reestimate_below
        )

    def explained_variance(self, per_mode: bool = False) -> Any:
        """Explained variance of the fit over the observations since the fit.

        1 - sum(residual) / sum(variance) over the modelled parameters (or
        per mode with ``per_mode``); 1 where nothing varies.

        Returns:
            a float, or (M,) float64 NumPy array with ``per_mode``.
        """
        import torch

        self._check_fitted()
        s = self._stats
        refs = self.reference_trajectories
        n = refs.shape[1]
        delta = refs - refs[:, :1]
        r1 = delta.sum(axis=1)
        ryy = (delta * delta).sum(axis=1) - r1 * r1 / n
        dev = s["s1"].device
        modes = s["modes"]
        r1_i = torch.as_tensor(r1, device=dev)[modes]
        ryy_i = torch.as_tensor(ryy, device=dev)[modes]
        sxx = (s["s2"] - s["s1"] * s["s1"] / n).clamp_min(0.0)
        cxy = s["c"] - s["s1"] * r1_i / n
        fitted = torch.where(ryy_i > 0, cxy * cxy / ryy_i.clamp_min(1e-300), 0.0)
        resid = (sxx - fitted).clamp_min(0.0)
        M = len(r1)
        if per_mode:
            var_m = torch.zeros(M, dtype=torch.float64, device=dev)
            err_m = torch.zeros(M, dtype=torch.float64, device=dev)
            var_m.index_add_(0, modes, sxx)
            err_m.index_add_(0, modes, resid)
            var_m, err_m = var_m.cpu().numpy(), err_m.cpu().numpy()
            return np.where(
                var_m > 0, 1.0 - err_m / np.where(var_m > 0, var_m, 1.0), 1.0
            )
        total = float(sxx.sum())
        return 1.0 - float(resid.sum()) / total if total > 0 else 1.0

    def _params_of(self, model: Any) -> ParameterSet:
        params = ParameterSet(model, bn=self.params.bn)
        if params.sizes != self.params.sizes:
            raise ValueError(
                "model: expected the same modelled tensors as at creation "
                f"({len(self.params.sizes)} tensors, N = {self.params.numel}), "
                f"got {len(params.sizes)} tensors, N = {params.numel}"
            )
        return params

    def _fit_window(self) -> None:
        import torch

        window = self._buffer
        self.cmd.fit(window, self.params.sizes)
        dev = window.device
        N = self.params.numel
        modes = self.cmd.modes_
        self._stats = {
            "modes": modes,
            "shift": window[0].clone(),
            "s1": torch.zeros(N, dtype=torch.float64, device=dev),
            "c": torch.zeros(N, dtype=torch.float64, device=dev),
            "s2": torch.zeros(N, dtype=torch.float64, device=dev),
            "ref_index": torch.as_tensor(self.cmd.reference_indices_, device=dev),
        }
        self._refs = [self.cmd.references_[:, t].copy() for t in range(window.shape[0])]
        for t in range(window.shape[0]):
            self._update_stats(window[t], self._refs[t])
        self._buffer = None

    def _add_sample(self, flat: Any) -> None:
        ref = flat[self._stats["ref_index"]].double().cpu().numpy()
        self._refs.append(ref)
        self._update_stats(flat, ref)

    def _update_stats(self, flat: Any, ref: np.ndarray) -> None:
        s = self._stats
        view = _arrays.prepare(flat, "flat", ndim=(1,))
        online_update(
            view, s["modes"], s["shift"], ref - self._refs[0], s["s1"], s["c"], s["s2"]
        )

    # ------------------------------------------------------------ results

    @property
    def reference_trajectories(self) -> np.ndarray:
        """(M, n) float64 reference values at every observation so far."""
        self._check_fitted()
        return np.stack(self._refs, axis=1)

    def coefficients(self) -> tuple[Any, Any]:
        """(a, b): (N,) least-squares coefficients over all observations."""
        self._check_fitted()
        s = self._stats
        refs = self.reference_trajectories
        n = refs.shape[1]
        delta = refs - refs[:, :1]
        r1 = delta.sum(axis=1)
        r2 = (delta * delta).sum(axis=1)
        _, _, _, _, degenerate = reference_stats(refs, _dtype_name(s["shift"]))
        den = n * r2 - r1 * r1
        ok = ~degenerate & (den > 0)
        inv_den = np.where(ok, 1.0 / np.where(ok, den, 1.0), 0.0)
        like = _arrays.prepare(s["shift"], "shift", ndim=(1,))
        return online_coefficients(
            like, n, s["modes"], s["shift"], s["s1"], s["c"], r1, inv_den, refs[:, 0]
        )

    @property
    def modes(self) -> Any:
        """(N,) int64 mode of every parameter (after warm-up)."""
        self._check_fitted()
        return self._stats["modes"]

    def reconstruct(self, t: int = -1) -> Any:
        """The modelled flat parameters at observation ``t`` (default: last)."""
        refs = self.reference_trajectories
        n = refs.shape[1]
        if not -n <= int(t) < n:
            raise ValueError(f"t: expected {-n} <= t < {n}, got {t}")
        a, b = self.coefficients()
        out = _arrays.empty(
            _arrays.prepare(a, "a", ndim=(1,)), (len(a),), _dtype_name(a)
        )
        reconstruct_into(
            _arrays.prepare(out, "out", ndim=(1,)),
            self._stats["modes"],
            a,
            b,
            refs[:, int(t)],
        )
        return out

    def reconstruct_(self, model: Any = None, t: int = -1) -> None:
        """Overwrites the modelled tensors of ``model`` by the CMD model."""
        params = self.params if model is None else self._params_of(model)
        params.scatter(self.reconstruct(t))

    @contextlib.contextmanager
    def swap(self, model: Any = None, t: int = -1) -> Iterator[None]:
        """Context manager: the CMD model inside, the trained weights after."""
        params = self.params if model is None else self._params_of(model)
        saved = [p.detach().clone() for p in params.tensors]
        params.scatter(self.reconstruct(t))
        try:
            yield
        finally:
            import torch

            with torch.no_grad():
                for p, v in zip(params.tensors, saved, strict=True):
                    p.copy_(v)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(
                f"OnlineCMD: not fitted yet ({self._filled} of "
                f"{self.warmup + 1} warm-up observations)"
            )

    # ---------------------------------------------------------- state dict

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (tensors on their device)."""
        state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "warmup": self.warmup,
            "n_observed": self.n_observed,
            "filled": self._filled,
            "n_refits": self.n_refits,
            "sizes": list(self.params.sizes),
            "bn": self.params.bn,
        }
        if self._buffer is not None:
            state["buffer"] = self._buffer[: self._filled].clone()
        if self._stats is not None:
            state["stats"] = {k: v.clone() for k, v in self._stats.items()}
            state["refs"] = self.reference_trajectories.copy()
            state["cmd"] = {
                k: getattr(self.cmd, k)
                for k in ("reference_indices_", "sample_indices_", "references_")
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict` (onto the model's device)."""
        import torch

        if state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"state: expected version {_STATE_VERSION}, got {state.get('version')}"
            )
        if list(state["sizes"]) != list(self.params.sizes):
            raise ValueError("state: saved for a model with different parameters")
        self.warmup = int(state["warmup"])
        self.n_observed = int(state["n_observed"])
        self._filled = int(state["filled"])
        self.n_refits = int(state["n_refits"])
        dev = self.params.device
        self._buffer = None
        self._stats = None
        self._refs = []
        if "buffer" in state:
            self._buffer = torch.empty(
                (self.warmup + 1, self.params.numel),
                dtype=self.params.dtype,
                device=dev,
            )
            self._buffer[: self._filled].copy_(state["buffer"])
        if "stats" in state:
            self._stats = {k: v.to(dev) for k, v in state["stats"].items()}
            refs = np.asarray(state["refs"], dtype=np.float64)
            self._refs = [refs[:, t].copy() for t in range(refs.shape[1])]
            for k, v in state["cmd"].items():
                setattr(self.cmd, k, v)


def _dtype_name(x: Any) -> str:
    return str(x.dtype).replace("torch.", "")
