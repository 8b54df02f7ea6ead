#!/usr/bin/env bash
# The one prepared GPU check: build, CUDA tests, GPU benchmarks, one table.
# SPDX-License-Identifier: MIT
#
# Run on a lent GPU machine (no internet; python3 there has torch, CuPy,
# scikit-build-core, pybind11, CMake, ninja, pytest, pytest-benchmark):
#   before: bash benchmarks/fetch_data.sh   (here, writes benchmarks/data/*.npy)
#   device: bash tools/gpu_check.sh          (carry benchmarks/data)
# Results go to $OUT (or ./gpu_out): build.log, info.txt, tests.log,
# bench.json and gpu_results.md (the table for benchmarks/RESULTS.md).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

echo "== build"
start=$(date +%s)
$py -m pip install -q --no-build-isolation --no-deps \
  -Cbuild-dir=build/gpu . >"$out/build.log" 2>&1 \
  || { tail -50 "$out/build.log"; exit 1; }
echo "built in $(( $(date +%s) - start )) s"

echo "== info"
(cd /tmp && $py -m deepscope info) | tee "$out/info.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv \
  >>"$out/info.txt" 2>&1 || true

echo "== tests (CUDA first, then everything that runs here)"
$py -m pytest -q -x -m cuda tests 2>&1 | tee "$out/tests.log" | tail -15
$py -m pytest -q tests -p no:cacheprovider 2>&1 | tee -a "$out/tests.log" \
  | tail -15

echo "== GPU benchmarks"
DEEPSCOPE_BENCH_DATA=${DEEPSCOPE_BENCH_DATA:-benchmarks/data} \
  $py -m pytest -q benchmarks -k "cuda or gpu" --benchmark-only \
  --benchmark-json="$out/bench.json" 2>&1 | tail -40

echo "== table"
$py benchmarks/summarize.py "$out/bench.json" >"$out/gpu_results.md" \
  && cat "$out/gpu_results.md"
