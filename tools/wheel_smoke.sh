#!/usr/bin/env bash
# Builds the deepscope wheel, installs it into a fresh venv and smoke-tests it (Linux).
# SPDX-License-Identifier: MIT
#
# Usage: tools/wheel_smoke.sh [OUTDIR]         (default OUTDIR: dist)
#        tools/wheel_smoke.sh --wheel FILE.whl  (test a wheel built elsewhere)
#
# 1. `pip wheel --no-build-isolation` into OUTDIR, with a persistent build
#    folder (build/wheel-cuda-auto or build/wheel-cpu), so a second run only
#    relinks. DEEPSCOPE_CUDA=OFF builds the CPU-only wheel; the default (AUTO)
#    compiles the CUDA kernels when nvcc is found.
# 2. Checks the extension module has no shared dependency on the CUDA driver
#    (libcuda) or runtime (libcudart): it must import without a GPU. With
#    auditwheel installed, also prints the manylinux tag the wheel could get.
# 3. Creates a fresh virtual environment (no system site-packages), installs
#    the wheel and pytest into it from the package index (or the pip cache),
#    and, from a scratch folder, runs tests/smoke/test_smoke.py and
#    `deepscope info`.
# Without scikit-build-core and pybind11 in the running Python, the wheel is
# built with build isolation instead (slower: a fresh build folder each time).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
given=""
if [ "${1:-}" = --wheel ]; then
  given=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
  [ -f "$given" ] || { echo "error: no wheel $2" >&2; exit 2; }
  set -- "$(dirname "$given")"
fi
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
py=${PYTHON:-python}
mode=${DEEPSCOPE_CUDA:-AUTO}
export DEEPSCOPE_CUDA=$mode
if [ "$mode" = OFF ]; then build_dir=build/wheel-cpu; else build_dir=build/wheel-cuda-auto; fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
t0=$(date +%s)

if [ -n "$given" ]; then
  wheel=$given
  echo "== testing the given wheel $(basename "$wheel")"
else
  echo "== build ($mode) into $out"
  rm -f "$out"/deepscope-*.whl
  if $py -c "import scikit_build_core, pybind11" 2>/dev/null; then
    $py -m pip wheel -q --no-deps --no-build-isolation -w "$out" \
      -Cbuild-dir="$build_dir" . >"$scratch/build.log" 2>&1 \
      || { tail -40 "$scratch/build.log"; exit 1; }
  else
    $py -m pip wheel -q --no-deps -w "$out" . >"$scratch/build.log" 2>&1 \
      || { tail -40 "$scratch/build.log"; exit 1; }
  fi
  wheel=$(ls "$out"/deepscope-*.whl)
fi
t1=$(date +%s)
echo "wheel $(basename "$wheel") ($(du -h "$wheel" | cut -f1)), built in $((t1 - t0)) s"

echo "== shared libraries of the extension"
mkdir "$scratch/unpacked"
$py -m zipfile -e "$wheel" "$scratch/unpacked"
core=$(ls "$scratch"/unpacked/deepscope/_core*.so)
ldd "$core" | sed 's/^/  /'
if ldd "$core" | grep -E 'libcuda\.so|libcudart' >/dev/null; then
  echo "error: $(basename "$core") links the CUDA driver or runtime" >&2
  exit 1
fi
echo "ok: no libcuda / libcudart dependency"
if $py -c "import auditwheel" 2>/dev/null; then
  # Informational: the manylinux tag this wheel could get (repair vendors
  # libgomp; the CUDA driver stays excluded, see docs/wheels.md).
  echo "== auditwheel show"
  $py -m auditwheel show "$wheel" 2>/dev/null | grep -A1 -E "consistent|constrains" \
    | sed 's/^/  /' || true
fi

echo "== fresh virtual environment"
$py -m venv "$scratch/venv"
venv_py=$scratch/venv/bin/python
$venv_py -m pip install -q --disable-pip-version-check "$wheel" pytest
t2=$(date +%s)

echo "== smoke tests and deepscope info (from $scratch/run)"
mkdir "$scratch/run"
cp tests/smoke/test_smoke.py "$scratch/run/"
expect=""
case $mode in
  OFF) expect=0 ;;
  ON) expect=1 ;;
esac
(
  cd "$scratch/run"
  export DEEPSCOPE_SMOKE_INSTALLED=1 DEEPSCOPE_SMOKE_EXPECT_CUDA=$expect
  [ -n "$expect" ] || unset DEEPSCOPE_SMOKE_EXPECT_CUDA
  # No source folders on the path: PYTHONPATH is cleared, cwd is scratch.
  env -u PYTHONPATH "$venv_py" -m pytest -q -p no:cacheprovider \
    --rootdir . test_smoke.py
  env -u PYTHONPATH "$scratch/venv/bin/deepscope" info
)
case $(cd "$scratch/run" && "$venv_py" -c "import deepscope; print(deepscope.__file__)") in
  "$root"/*) echo "error: deepscope was imported from the source tree" >&2; exit 1 ;;
esac
t3=$(date +%s)
echo "== done: build $((t1 - t0)) s, venv $((t2 - t1)) s, smoke $((t3 - t2)) s," \
  "total $((t3 - t0)) s"
