# Training dynamics: Correlation Mode Decomposition (post-hoc and online).
# SPDX-License-Identifier: MIT
"""Correlation Mode Decomposition (CMD) of training dynamics.

* :class:`CMD` - post-hoc fit on a window of parameter snapshots.
* :class:`OnlineCMD` - observe a model while it trains; frozen modes and
  O(N) sufficient statistics after a warm-up window.
* :class:`EmbeddedCMD` - online CMD that takes settled parameter tensors
  out of training (no gradient, no optimizer state).
* :func:`assign_and_fit` - the fused kernel: mode assignment and affine fit.
* :func:`balanced_sample`, :func:`cluster_correlations` - the steps of the
  faithful method.
* :class:`ParameterSet`, :func:`update_bn` - which tensors of a module are
  modelled, and batch-norm recomputation with a caller-defined forward.
"""

from __future__ import annotations

from deepscope.dynamics._cmd import CMD, balanced_sample, cluster_correlations
from deepscope.dynamics._embedded import EmbeddedCMD
from deepscope.dynamics._kernels import AssignFit, assign_and_fit
from deepscope.dynamics._online import OnlineCMD
from deepscope.dynamics._params import ParameterSet, update_bn

__all__ = [
    "CMD",
    "AssignFit",
    "EmbeddedCMD",
    "OnlineCMD",
    "ParameterSet",
    "assign_and_fit",
    "balanced_sample",
    "cluster_correlations",
    "update_bn",
]
