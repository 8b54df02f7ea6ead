# Robust classification: ModelNet-C corruptions and scores, EPiC ensembles.
# SPDX-License-Identifier: MIT
"""Robust point-cloud classification.

* :func:`corrupt`, :func:`corrupt_dataset` - the seven ModelNet-C corruptions
  at five levels (reference-code parameters), batched and seeded;
  :func:`load_modelnet_c` / :func:`save_modelnet_c` - the official HDF5 layout.
* :func:`mce` - CE, RCE, mCE, RmCE and mOA with the official rounding;
  :func:`evaluate_robustness` / :func:`format_report` - accuracy of several
  models on every split, and the table.
* :class:`EPiC`, :class:`PartialMember`, :class:`CriticalSubsetMember`,
  :func:`train_member` - ensembles of partial-cloud members (EPiC, ICCV 2023)
  and Critical Points++ subset members.
"""

from __future__ import annotations

from deepscope.robust._corrupt import (
    CORRUPTIONS,
    LEVELS,
    Corrupted,
    corrupt,
    corrupt_dataset,
    load_modelnet_c,
    save_modelnet_c,
)
from deepscope.robust._epic import (
    CriticalSubsetMember,
    EPiC,
    PartialMember,
    train_member,
)
from deepscope.robust._evaluate import (
    RobustnessReport,
    evaluate_robustness,
    format_report,
)
from deepscope.robust._metrics import DGCNN_ACCURACY, MCEResult, mce

__all__ = [
    "CORRUPTIONS",
    "DGCNN_ACCURACY",
    "LEVELS",
    "Corrupted",
    "CriticalSubsetMember",
    "EPiC",
    "MCEResult",
    "PartialMember",
    "RobustnessReport",
    "corrupt",
    "corrupt_dataset",
    "evaluate_robustness",
    "format_report",
    "load_modelnet_c",
    "mce",
    "save_modelnet_c",
    "train_member",
]
