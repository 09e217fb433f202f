"""Markdown tables from pytest-benchmark JSON: per group, each case's median
time and its speed relative to the group's anchor (the baseline measured in
the same run), so BENCHMARKS.md quotes ratios rather than drifting absolutes.

    python -m pytest benchmarks/bench_returns.py --benchmark-only --benchmark-json=returns.json
    python benchmarks/report.py returns.json [--anchor eager] [--per-item B]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict


def case_label(bench: dict) -> str:
    params = bench.get("params") or {}
    # The suites over rltorch.bench's cases parametrize by case and name the impl in extra_info.
    impl = params.get("impl") or (bench.get("extra_info") or {}).get("impl")
    if impl:
        return str(impl)
    varying = {k: v for k, v in params.items() if k not in ("device", "n", "batch", "op")}
    base = re.sub(r"\[.*\]$", "", bench["name"]).removeprefix("test_")
    if varying:
        return base + " " + " ".join(f"{k}={v}" for k, v in varying.items())
    return base


def fmt_time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--anchor", action="append", default=[],
                        help="case label(s) to divide by, first match per group (default: slowest case)")
    parser.add_argument("--subject", default="rltorch", help="the case whose speed-up is reported")
    args = parser.parse_args()
    groups: dict[str, list[dict]] = defaultdict(list)
    machine = None
    for path in args.files:
        with open(path) as f:
            data = json.load(f)
        machine = machine or data.get("machine_info", {})
        for bench in data["benchmarks"]:
            groups[bench.get("group") or bench["name"]].append(bench)
    if machine:
        print(f"_{machine.get('cpu', {}).get('brand_raw', '?')}, {machine.get('cpu', {}).get('count', '?')} cores, "
              f"Python {machine.get('python_version', '?')}_\n")
    for group in sorted(groups):
        cases = groups[group]
        medians = {case_label(b): b["stats"]["median"] for b in cases}
        anchor = next((a for a in args.anchor if a in medians), None) or max(medians, key=medians.get)
        print(f"**{group}** (x = speed-up over `{anchor}`)\n")
        print("| case | median | x |")
        print("|---|---|---|")
        for label, median in sorted(medians.items(), key=lambda kv: kv[1]):
            extra = next((b.get("extra_info") or {} for b in cases if case_label(b) == label), {})
            note = ""
            if "env_steps_per_s" in extra:
                note = f" ({extra['env_steps_per_s'] / 1e6:.1f} M steps/s, {extra['ns_per_env_step']:.2f} ns/step)"
            print(f"| {label}{note} | {fmt_time(median)} | {medians[anchor] / median:.1f} |")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
