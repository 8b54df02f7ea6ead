# Build and runtime facts: version, CUDA, architectures, GPUs, OpenMP.
# SPDX-License-Identifier: MIT
"""What this build of deepscope can do on this machine."""

from __future__ import annotations

from typing import Any

from deepscope import _core
from deepscope._version import __version__


def info() -> dict[str, Any]:
    """Facts about this build and machine.

    Returns:
        A dict with ``version``, ``cuda_compiled`` (CUDA kernels are in the
        build), ``cuda_architectures``, ``cuda_runtime_version``,
        ``cuda_driver_version``, ``cuda_device_count`` (usable now),
        ``cuda_devices`` (names), ``cuda_available``, ``cuda_error`` (why no
        GPU is usable, if none is), ``openmp`` and ``omp_max_threads``.
    """
    facts = dict(_core.build_info())
    facts["version"] = __version__
    count = int(facts["cuda_device_count"])
    facts["cuda_available"] = bool(facts["cuda_compiled"]) and count > 0
    facts["cuda_devices"] = [_core.cuda_device_name(i) for i in range(count)]
    return facts


def cuda_available() -> bool:
    """True when CUDA kernels were compiled and a GPU is usable now."""
    facts = _core.build_info()
    return bool(facts["cuda_compiled"]) and int(facts["cuda_device_count"]) > 0
