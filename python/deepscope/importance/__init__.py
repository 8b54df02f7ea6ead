# Point importance: Critical Points++ discrete/soft importance, FBI norms, entropy.
# SPDX-License-Identifier: MIT
"""Point-importance measures on the features right before a global max-pool.

* :func:`importance_stats` - the fused kernel: norms, argmax counts, entropy.
* :func:`feature_norms` - FBI soft importance (arXiv 2403.07706).
* :func:`critical_counts`, :func:`critical_set` - Critical Points++ discrete
  importance and PointNet's critical set (arXiv 2308.05525).
* :func:`normalized_entropy`, :func:`least_important`,
  :func:`adaptive_subset` - the Critical Points++ adaptive threshold.
"""

from __future__ import annotations

from deepscope.importance._measures import (
    ImportanceStats,
    adaptive_subset,
    critical_counts,
    critical_set,
    feature_norms,
    importance_stats,
    least_important,
    normalized_entropy,
)

__all__ = [
    "ImportanceStats",
    "adaptive_subset",
    "critical_counts",
    "critical_set",
    "feature_norms",
    "importance_stats",
    "least_important",
    "normalized_entropy",
]
