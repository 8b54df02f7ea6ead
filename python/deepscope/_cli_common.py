# Helpers shared by the command modules.
# SPDX-License-Identifier: MIT
"""What several ``deepscope`` commands share: errors under their flag names,
output-name checks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path


@contextlib.contextmanager
def flag_errors(flags: Mapping[str, str], hint: str = "") -> Iterator[None]:
    """Re-raises an API ``ValueError`` under the command-line flag it concerns.

    The library names the parameter first (``"n: expected ..."``); a command
    user knows the flag (``-n``). A ``ValueError`` whose leading name is a key
    of ``flags`` is raised again as ``"<flag>: <rest><hint>"``; any other
    error passes unchanged.
    """
    try:
        yield
    except ValueError as error:
        name, sep, rest = str(error).partition(": ")
        if not sep or name not in flags:
            raise
        raise ValueError(f"{flags[name]}: {rest}{hint}") from None


def check_ply_output(path: Path, flag: str = "-o") -> None:
    """Rejects an output name that is not ``.ply``: the command writes PLY."""
    if path.suffix.lower() != ".ply":
        raise ValueError(f"{flag}: expected a .ply file name, got {path}")
