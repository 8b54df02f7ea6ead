# Turns a pytest-benchmark JSON file into a Markdown table of medians/ratios.
# SPDX-License-Identifier: MIT
"""Usage: python benchmarks/summarize.py bench.json > table.md

One table per benchmark group: median, IQR, rounds and the ratio of each
entry's median to the fastest deepscope entry (names holding "deepscope"
or "_ours").
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    data = json.load(open(path))
    machine = data.get("machine_info", {})
    print(
        f"Machine: {machine.get('cpu', {}).get('brand_raw', '?')}, "
        f"{machine.get('cpu', {}).get('count', '?')} CPUs, "
        f"Python {machine.get('python_version', '?')}; "
        f"{data.get('datetime', '')}\n"
    )
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in data["benchmarks"]:
        groups[bench.get("group") or bench["name"]].append(bench)
    for group, benches in groups.items():
        ours = [b for b in benches if _is_ours(b)]
        base = min((b["stats"]["median"] for b in ours), default=None)
        print(f"### {group}\n")
        print("| method | median (ms) | IQR (ms) | rounds | time / deepscope |")
        print("|---|---|---|---|---|")
        for b in sorted(benches, key=lambda b: b["stats"]["median"]):
            s = b["stats"]
            ratio = f"{s['median'] / base:.2f}x" if base else "-"
            print(
                f"| {_label(b)} | {1e3 * s['median']:.2f} | {1e3 * s['iqr']:.2f} "
                f"| {s['rounds']} | {ratio} |"
            )
        print()


def _label(bench: dict) -> str:
    return str(bench.get("extra_info", {}).get("method", bench["name"]))


def _is_ours(bench: dict) -> bool:
    text = f"{bench['name']} {_label(bench)}".lower()
    return "deepscope" in text or "_ours" in text


if __name__ == "__main__":
    main(sys.argv[1])
