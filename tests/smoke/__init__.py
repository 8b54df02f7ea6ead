# The smoke tests of an installed wheel (tools/wheel_smoke.sh, cibuildwheel).
# SPDX-License-Identifier: MIT
