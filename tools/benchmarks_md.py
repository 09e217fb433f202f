"""BENCHMARKS.md's generated part: the report of the recorded full run, spliced
between two markers, so every figure there comes from one run with its
command, machine and date.

    python -m rltorch bench --full --out benchmarks/results/full-cpu
    python tools/benchmarks_md.py benchmarks/results/full-cpu            # rewrite the block
    python tools/benchmarks_md.py benchmarks/results/full-cpu --check    # exit 1 if the block is stale

tests/test_bench.py runs the check, so the file cannot drift from its results.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BEGIN = "<!-- BEGIN GENERATED: python tools/benchmarks_md.py {run_dir} -->"
END = "<!-- END GENERATED -->"


def generated_block(run_dir: str) -> str:
    """The report of ``run_dir/results.json`` as BENCHMARKS.md shows it, plots linked."""
    from rltorch.bench import report

    run = report.load(os.path.join(ROOT, run_dir, "results.json"))
    body = report.render(run, markdown=True, command=run.get("command"))
    plots = sorted(p for p in os.listdir(os.path.join(ROOT, run_dir)) if p.endswith(".png"))
    if plots:
        body += "\nPlots of this run:\n\n" + "\n".join(f"- [{p[:-4]}]({run_dir}/{p})" for p in plots) + "\n"
    return f"{BEGIN.format(run_dir=run_dir)}\n\n{body}\n{END}"


def splice(text: str, block: str) -> str:
    start = text.find("<!-- BEGIN GENERATED")
    end = text.find(END)
    if start < 0 or end < 0:
        raise ValueError("BENCHMARKS.md has no generated block (the BEGIN GENERATED / END GENERATED markers)")
    return text[:start] + block + text[end + len(END):]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="directory written by rltorch bench --full --out DIR (relative to the repo)")
    parser.add_argument("--check", action="store_true", help="only check that BENCHMARKS.md is up to date")
    parser.add_argument("--file", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    with open(args.file) as f:
        text = f.read()
    updated = splice(text, generated_block(args.run_dir))
    if args.check:
        if updated != text:
            print(f"{args.file} is stale: run python tools/benchmarks_md.py {args.run_dir}", file=sys.stderr)
            return 1
        return 0
    with open(args.file, "w") as f:
        f.write(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
