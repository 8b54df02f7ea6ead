# The parameters of an nn.Module as one flat vector (gather and scatter).
# SPDX-License-Identifier: MIT
"""Which tensors of a model CMD models, and their flat layout.

Only leaf, trainable, floating parameters are modelled; a parameter tied to
several modules is counted once; frozen parameters (``requires_grad=False``)
and integer buffers are skipped. With ``bn="model"`` the floating running
statistics of batch-norm layers are modelled as well (as the official code
does, which models the whole ``state_dict``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ParameterSet", "update_bn"]

BN_OPTIONS = ("skip", "model")


class ParameterSet:
    """The modelled tensors of a module, flattened in registration order.

    Args:
        model: any ``torch.nn.Module``; all modelled tensors on one device.
        bn: ``"skip"`` (batch-norm statistics untouched; call
            :func:`update_bn` after a reconstruction to recompute them) or
            ``"model"`` (running means and variances are modelled too).

    Attributes:
        names: names of the modelled tensors.
        sizes: their numbers of elements ("layers" of the sampling).
        numel: N, the total.
        dtype: ``torch.float64`` when every tensor is float64, else
            ``torch.float32`` (float16/bfloat16 are accumulated in float32).
        device: the tensors' device.
    """

    def __init__(self, model: Any, *, bn: str = "skip") -> None:
        import torch

        if not isinstance(model, torch.nn.Module):
            raise ValueError(
                f"model: expected a torch.nn.Module, got {type(model).__name__}"
            )
        if bn not in BN_OPTIONS:
            raise ValueError(f"bn: expected one of {BN_OPTIONS}, got {bn!r}")
        self.bn = bn
        tensors, names, seen = [], [], set()
        for name, p in model.named_parameters():
            if not (p.requires_grad and p.is_leaf and p.is_floating_point()):
                continue
            key = (p.data_ptr(), p.numel(), p.dtype)
            if key in seen or p.numel() == 0:
                continue
            seen.add(key)
            tensors.append(p)
            names.append(name)
        if bn == "model":
            for mod_name, mod in model.named_modules():
                if not isinstance(mod, torch.nn.modules.batchnorm._NormBase):
                    continue
                for buf_name in ("running_mean", "running_var"):
                    buf = getattr(mod, buf_name, None)
                    if buf is None or not buf.is_floating_point():
                        continue
                    tensors.append(buf)
                    names.append(f"{mod_name}.{buf_name}" if mod_name else buf_name)
        if not tensors:
            raise ValueError(
                "model: expected at least one trainable floating parameter"
            )
        devices = {t.device for t in tensors}
        if len(devices) != 1:
            raise ValueError(
                f"model: expected all modelled tensors on one device, got "
                f"{sorted(str(d) for d in devices)}"
            )
        self.tensors = tensors
        self.names = names
        self.sizes = [int(t.numel()) for t in tensors]
        self.numel = sum(self.sizes)
        self.device = tensors[0].device
        all64 = all(t.dtype == torch.float64 for t in tensors)
        self.dtype = torch.float64 if all64 else torch.float32

    def gather(self, out: Any = None) -> Any:
        """The current values as a flat (N,) tensor of :attr:`dtype`."""
        import torch

        if out is None:
            out = torch.empty(self.numel, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            offset = 0
            for t, n in zip(self.tensors, self.sizes, strict=True):
                out[offset : offset + n].copy_(t.detach().reshape(-1))
                offset += n
        return out

    def scatter(self, flat: Any, mask: Any = None) -> None:
        """Writes a flat (N,) vector back into the tensors (cast to theirs).

        Args:
            flat: (N,) values.
            mask: optional (N,) bool; only entries where it is set are written.
        """
        import torch

        with torch.no_grad():
            offset = 0
            for t, n in zip(self.tensors, self.sizes, strict=True):
                src = flat[offset : offset + n].view(t.shape).to(t.dtype)
                if mask is None:
                    t.copy_(src)
                else:
                    m = mask[offset : offset + n].view(t.shape)
                    t.copy_(torch.where(m, src, t))
                offset += n


def update_bn(
    loader: Any,
    model: Any,
    call_fn: Any = None,
    device: Any = None,
) -> None:
    """Recomputes batch-norm running statistics with one pass over ``loader``.

    Like ``torch.optim.swa_utils.update_bn`` (cumulative averages, momentum
    None), but the forward call is the caller's: ``call_fn(model, batch)``
    (default: ``model(batch[0])`` for a tuple/list batch, else
    ``model(batch)``), so models with several or non-tensor inputs work.

    Args:
        loader: an iterable of batches.
        model: the module; its training flag is restored afterwards.
        call_fn: the forward call.
        device: when given, tensors of a tuple/list batch are moved there
            before the default call.
    """
    import torch

    norms = [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    if not norms:
        return
    momenta = {}
    for m in norms:
        m.reset_running_stats()
        momenta[m] = m.momentum
        m.momentum = None
    was_training = model.training
    model.train()

    def default_call(mdl: Any, batch: Any) -> Any:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        if device is not None:
            x = x.to(device)
        return mdl(x)

    call = call_fn or default_call
    with torch.no_grad():
        for batch in loader:
            call(model, batch)
    for m in norms:
        m.momentum = momenta[m]
    model.train(was_training)
