# `python -m deepscope`: the same command line as the `deepscope` script.
# SPDX-License-Identifier: MIT
"""Runs :func:`deepscope.cli.main`."""

from deepscope.cli import main

raise SystemExit(main())
