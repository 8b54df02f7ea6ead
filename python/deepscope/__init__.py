# deepscope: fast kernels and methods for robust and explainable deep learning.
# SPDX-License-Identifier: MIT
"""deepscope: C++/CUDA kernels under a thin, typed Python API.

Kernels accept NumPy arrays, torch tensors (CPU or CUDA) and CuPy arrays and
return results in the same framework, on the same device.
"""

from __future__ import annotations

import logging

from deepscope._info import cuda_available, info
from deepscope._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__", "cuda_available", "info"]
