# Graphs: kNN graphs, Laplacians, graph SSL, learned spectral embeddings.
# SPDX-License-Identifier: MIT
"""kNN affinity graphs, sparse Laplacians and graph semi-supervised learning.

Graphs are SciPy CSR matrices (torch sparse CSR for torch inputs), built by
native kernels: an exact blocked kNN for features of any dimension (BLAS
Gram blocks + a fused top-k kernel, CPU and CUDA), and CSR assembly of the
weighted, symmetrised affinity and of its Laplacians. Learned spectral
embeddings (:class:`BASiS`, the :class:`SpectralNetEmbedding` baseline) and
their quality metrics (:mod:`deepscope.graph.metrics`) build on them.
"""

from __future__ import annotations

from deepscope.graph import metrics
from deepscope.graph._basis import BASiS, SpectralNetEmbedding
from deepscope.graph._knn_graph import (
    KNNGraph,
    feature_knn,
    graph_from_neighbors,
    knn_graph,
)
from deepscope.graph._laplacian import LaplacianResult, connected_components, laplacian
from deepscope.graph._spectral import (
    EigenResult,
    smallest_eigenvectors,
    spectral_clustering,
)
from deepscope.graph._ssl import (
    LaplaceLearning,
    LaplacianSSL,
    PoissonLearning,
    ssl_affinity,
)

__all__ = [
    "BASiS",
    "EigenResult",
    "KNNGraph",
    "LaplaceLearning",
    "LaplacianResult",
    "LaplacianSSL",
    "PoissonLearning",
    "SpectralNetEmbedding",
    "connected_components",
    "feature_knn",
    "graph_from_neighbors",
    "knn_graph",
    "laplacian",
    "metrics",
    "smallest_eigenvectors",
    "spectral_clustering",
    "ssl_affinity",
]
