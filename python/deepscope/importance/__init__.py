# Point importance: Critical Points++ discrete/soft importance, FBI norms, entropy.
# SPDX-License-Identifier: MIT
"""Point-importance measures on the features right before a global max-pool.

* :func:`importance_stats` - the fused kernel: norms, argmax counts, entropy.
* :func:`feature_norms` - FBI soft importance (arXiv 2403.07706).
* :func:`critical_counts`, :func:`critical_set` - Critical Points++ discrete
  importance and PointNet's critical set (arXiv 2308.05525).
* :func:`normalized_entropy`, :func:`least_important`,
  :func:`adaptive_subset` - the Critical Points++ adaptive threshold.
* :func:`explain` - per-point explanations of a classifier's prediction by
  FBI (pre- or post-bottleneck), critical counts, vanilla gradients,
  Integrated Gradients or point dropping, with an entropy score.
* :func:`importance_outliers` - the points an importance-based outlier
  filter removes; :func:`removal_curves` - MoRF / LeRF faithfulness curves.
"""

from __future__ import annotations

from deepscope.importance._explain import (
    MEASURES,
    Explanation,
    explain,
    post_bottleneck_norms,
)
from deepscope.importance._faithfulness import (
    OutlierMask,
    RemovalCurves,
    importance_outliers,
    removal_curves,
)
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
    "MEASURES",
    "Explanation",
    "ImportanceStats",
    "OutlierMask",
    "RemovalCurves",
    "adaptive_subset",
    "critical_counts",
    "critical_set",
    "explain",
    "feature_norms",
    "importance_outliers",
    "importance_stats",
    "least_important",
    "normalized_entropy",
    "post_bottleneck_norms",
    "removal_curves",
]
