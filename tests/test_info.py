# Tests for build facts: import without a GPU, info() and `deepscope info`.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import deepscope


def test_info_reports_consistent_facts():
    facts = deepscope.info()
    assert facts["version"] == deepscope.__version__
    assert isinstance(facts["cuda_compiled"], bool)
    assert facts["omp_max_threads"] >= 1
    if facts["cuda_compiled"]:
        assert facts["cuda_architectures"]
    else:
        assert facts["cuda_architectures"] == ""
    if not facts["cuda_available"]:
        assert facts["cuda_device_count"] == 0 or not facts["cuda_compiled"]
        assert facts["cuda_error"]
    assert len(facts["cuda_devices"]) == facts["cuda_device_count"]
    assert deepscope.cuda_available() == facts["cuda_available"]
