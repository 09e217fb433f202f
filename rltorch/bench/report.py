"""Tables, targets, plots and comparisons from a run's results (the dict
:func:`rltorch.bench.runner.run` returns and ``--json`` writes).

One table per measured thing: a row per size, rltorch's median with its
spread, then each anchor's median and rltorch's speed-up over it (anchor
median / rltorch median, so 5.0x means rltorch takes a fifth of the time).
Time-to-solve tables have a row per implementation instead: the median over
seeds, the range, and how many seeds solved.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict

from rltorch.bench.contention import IDLE, LOADED, LOADED_ONE_THREAD
from rltorch.bench.core import SUBJECT, Result
from rltorch.bench.formatting import fmt_rate, fmt_ratio, fmt_size, fmt_time, plural
from rltorch.bench.targets import judge_all, judge_contention

# One colour per implementation across every plot of a run; rltorch keeps the first.
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def _is_variant(impl: str) -> bool:
    return impl != SUBJECT and impl.startswith(SUBJECT)


def grouped(results: list[Result]) -> OrderedDict:
    """Results by (capability, where, device), in the order they ran."""
    groups: OrderedDict = OrderedDict()
    for r in results:
        groups.setdefault((r.capability, r.where, r.device), []).append(r)
    return groups


def _impls(results: list[Result]) -> list[str]:
    """rltorch first, its variants next, then the anchors in the order they ran."""
    return _impl_order([r.impl for r in results])


def _impl_order(impls: list[str]) -> list[str]:
    seen = list(OrderedDict.fromkeys(impls))
    return sorted(seen, key=lambda impl: (impl != SUBJECT, not _is_variant(impl), seen.index(impl)))


def _cell(r: Result | None) -> str:
    if r is None:
        return ""
    if not r.ok:
        return r.status
    return f"{fmt_time(r.median)} ±{r.spread * 50:.0f}%"


def timed_table(results: list[Result]) -> tuple[list[str], list[list[str]]]:
    impls = _impls(results)
    anchors = [i for i in impls if i != SUBJECT and not _is_variant(i)]
    label = results[0].size_label or "size"
    header = [label] + [i for i in impls if i == SUBJECT or _is_variant(i)]
    for anchor in anchors:
        header += [anchor, "x"]
    header.append("rltorch throughput")
    rows = []
    sizes = list(OrderedDict.fromkeys(r.size for r in results))
    for size in sizes:
        at = {r.impl: r for r in results if r.size == size}
        ours = at.get(SUBJECT)
        row = [fmt_size(size) if size is not None else "-"]
        row += [_cell(at.get(i)) for i in impls if i == SUBJECT or _is_variant(i)]
        for anchor in anchors:
            theirs = at.get(anchor)
            row.append(_cell(theirs))
            ratio = ""
            if ours is not None and ours.ok and theirs is not None and theirs.ok:
                ratio = fmt_ratio(ours.speedup_over(theirs))
            row.append(ratio)
        row.append(fmt_rate(ours.throughput, ours.item) if ours is not None and ours.ok else "")
        rows.append(row)
    return header, rows


def solve_table(results: list[Result]) -> tuple[list[str], list[list[str]]]:
    header = ["implementation", "median", "range", "solved", "env steps (median)", "x"]
    ours = next((r for r in results if r.impl == SUBJECT and r.ok), None)
    rows = []
    for impl in _impls(results):
        r = next(r for r in results if r.impl == impl)
        if not r.ok:
            rows.append([impl, r.status, "", "", "", ""])
            continue
        steps = sorted(r.env_steps)[len(r.env_steps) // 2] if r.env_steps else 0
        ratio = (
            fmt_ratio(ours.speedup_over(r)) if ours is not None and impl != SUBJECT and not _is_variant(impl) else ""
        )
        rows.append([impl, f"{r.median:.2f} s", f"{min(r.samples):.2f} - {max(r.samples):.2f} s",
                     f"{sum(r.solved)}/{len(r.samples)}", f"{steps:,}", ratio])
    return header, rows


def tables(results: list[Result]) -> list[tuple[str, list[str], list[list[str]]]]:
    out = []
    for (capability, where, device), rs in grouped(results).items():
        kind = rs[0].kind
        header, rows = solve_table(rs) if kind == "solve" else timed_table(rs)
        unit = "seconds to solve, over seeds" if kind == "solve" else "median per call, ±half the IQR"
        out.append((f"{capability}: {where} ({device}; {unit})", header, rows))
    return out


def idle_results(results: list[Result]) -> list[Result]:
    """The results measured on the idle machine (all of a run without --contention)."""
    return [r for r in results if r.condition == IDLE]


def contention_tables(results: list[Result]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per capability: each case idle, beside a busy process, and (rltorch's) on one thread under that load,
    with the ratios the thread policy is judged by, and rltorch's speed-up over each peer idle and loaded."""
    by_condition: dict[tuple, dict[str, Result]] = OrderedDict()
    for r in results:
        by_condition.setdefault((r.capability, r.where, r.device, r.size, r.impl), {})[r.condition] = r
    if not any(LOADED in conds for conds in by_condition.values()):
        return []
    subjects = {(k[0], k[1], k[2], k[3]): conds for k, conds in by_condition.items() if k[4] == SUBJECT}
    out: OrderedDict = OrderedDict()
    header = ["case", "implementation", "idle", "loaded", "loaded, 1 thread", "loaded / 1 thread", "loaded / idle",
              "rltorch x: idle, loaded"]
    for (capability, where, device, size, impl), conds in by_condition.items():
        idle, loaded, single = conds.get(IDLE), conds.get(LOADED), conds.get(LOADED_ONE_THREAD)
        case = where + (f" {idle.size_label or 'size'}={fmt_size(size)}" if size is not None and idle else "")
        ratio = lambda a, b: fmt_ratio(a.median / b.median) if a and b and a.ok and b.ok else ""  # noqa: E731
        versus = ""
        ours = subjects.get((capability, where, device, size), {})
        if impl != SUBJECT and not _is_variant(impl):
            pairs = [(ours.get(c), conds.get(c)) for c in (IDLE, LOADED)]
            versus = ", ".join(fmt_ratio(o.speedup_over(t)) if o and t and o.ok and t.ok else "-" for o, t in pairs)
        row = [case, impl, _cell(idle), _cell(loaded), _cell(single) if single else "",
               ratio(loaded, single), ratio(loaded, idle), versus]
        out.setdefault((capability, device), {}).setdefault((where, size), []).append((impl, row))
    tables_out = []
    for (capability, device), cases in out.items():
        rows = []
        for rows_of_case in cases.values():
            order = _impl_order([impl for impl, _ in rows_of_case])
            rows += [row for _, row in sorted(rows_of_case, key=lambda pair: order.index(pair[0]))]
        tables_out.append((f"{capability} ({device}): idle, beside a busy process on one core, and on one thread "
                           "under that load", header, rows))
    return tables_out


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    line = lambda cells: "| " + " | ".join(str(c) for c in cells) + " |"  # noqa: E731
    return "\n".join([line(header), line(["---"] * len(header))] + [line(r) for r in rows])


def busy_warning(run: dict) -> str | None:
    """A run that started on a machine already busy with other work measured that work too."""
    m = run["machine"]
    load = (m.get("load_average") or [0])[0]
    if load > 0.5 * m["usable_cores"]:
        return (f"Warning: the machine was busy when this run started (load average {load:.1f} on "
                f"{m['usable_cores']} cores): multi-threaded cases stall while other processes hold the cores, "
                f"so these timings are not comparable with an idle run.")
    return None


def machine_line(run: dict) -> str:
    m = run["machine"]
    gpu = f", {m['gpu']}" if m.get("gpu") else ", no GPU"
    return (f"{m['cpu']}, {m['usable_cores']} cores{gpu}; torch {m['torch']}, rltorch {m['rltorch']}, "
            f"Python {m['python']}; {m['date']}")


def skipped(results: list[Result]) -> list[str]:
    lines = []
    for r in results:
        if r.status == "skipped":
            hint = f" Install: `{r.install}`" if r.install else ""
            lines.append(f"{r.key} skipped: {r.reason}.{hint}")
        elif r.status == "error":
            lines.append(f"{r.key} FAILED: {r.reason}")
    return lines


def render(run: dict, markdown: bool = False, command: str | None = None) -> str:
    """The whole report: machine, tables, targets, what was skipped and why."""
    everything = [Result.from_dict(r) for r in run["results"]]
    results = idle_results(everything)
    settings = run["settings"]
    heading = "### " if markdown else ""
    table = _md_table if markdown else _text_table
    parts = []
    if command:
        parts.append(f"```bash\n{command}\n```" if markdown else f"$ {command}")
    if settings["mode"] == "pytest-benchmark":
        parts.append(f"Machine: {machine_line(run)}. Timed by pytest-benchmark, device {settings['device']}.")
    else:
        parts.append(f"Machine: {machine_line(run)}. Mode {settings['mode']}, device {settings['device']}, "
                     f"{settings['seeds']} seeds per time-to-solve case, {run['wall_seconds']:.0f} s in all.")
    warning = busy_warning(run)
    if warning:
        parts.append(f"**{warning}**" if markdown else warning)
    parts.append("x = rltorch's speed-up over that implementation, measured in the same run "
                 "(its median time per item / rltorch's); ± is half the interquartile range, relative to the median.")
    for title, header, rows in tables(results):
        parts.append(f"{heading}{title}\n\n{table(header, rows)}" if markdown else f"{title}\n{table(header, rows)}")
    loaded = contention_tables(everything)
    if loaded:
        core = (settings.get("contention") or {}).get("busy_core")
        parts.append(f"Beside other work: each case again with a competing process spinning on core {core} "
                     "(started and stopped by the bench), and rltorch's cases once more on one thread (torch and "
                     "the kernels) under that same load. loaded / 1 thread near 1.0 means rltorch's default thread "
                     "policy lost nothing to the neighbour.")
        for title, header, rows in loaded:
            parts.append(
                f"{heading}{title}\n\n{table(header, rows)}" if markdown else f"{title}\n{table(header, rows)}"
            )
    measured_groups = {r.group for r in results}
    verdicts = [v for v in judge_all(results, settings["device"]) if v.target.where.split()[0] in measured_groups]
    verdicts += judge_contention(everything) if loaded else []
    if verdicts:
        rows = [[f"#{v.target.issue}", v.target.text, v.measured, v.anchor, v.status] for v in verdicts]
        title = "Targets named in the issues"
        body = table(["issue", "target", "measured", "anchor (same run)", "verdict"], rows)
        parts.append(f"{heading}{title}\n\n{body}" if markdown else f"{title}\n{body}")
    notes = skipped(everything)
    if notes:
        bullet = "- " if markdown else "  "
        parts.append(("Not measured:\n\n" if markdown else "Not measured:\n") + "\n".join(bullet + n for n in notes))
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- plots

def _colours(results: list[Result]) -> dict[str, str]:
    """rltorch red, every other implementation its own colour across the run's plots; past the
    palette's ten colours an implementation keeps its colour where it can and never shares one in a plot."""
    impls = _impls(results)
    return {impl: PALETTE[0] if impl == SUBJECT else PALETTE[1 + i % (len(PALETTE) - 1)]
            for i, impl in enumerate(i for i in impls if i != SUBJECT)} | {SUBJECT: PALETTE[0]}


def _plot_colours(results: list[Result], preferred: dict[str, str]) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for impl in _impls(results):
        colour = preferred[impl]
        if colour in chosen.values():
            colour = next(c for c in PALETTE[1:] if c not in chosen.values())
        chosen[impl] = colour
    return chosen


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def plot(run: dict, out_dir: str) -> list[str]:
    """PNG per measured thing: throughput against size (log-log, a line per
    implementation) where several sizes ran; seconds to solve per seed (a strip
    plot, log scale, hollow markers for seeds that did not solve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = idle_results([Result.from_dict(r) for r in run["results"]])
    palette = _colours(results)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for (capability, where, device), rs in grouped(results).items():
        ok = [r for r in rs if r.ok]
        if not ok:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        colours = _plot_colours(ok, palette)
        if rs[0].kind == "solve":
            _strip_plot(ax, ok, colours)
            ax.set_title(f"{where.replace('_', ' ')} ({device})")
        elif len({r.size for r in ok}) >= 2:
            _throughput_plot(ax, ok, colours)
            ax.set_title(f"{where.replace('_', ' ')} ({device}): throughput")
        else:
            _bar_plot(ax, ok, colours)
            size = f" at {ok[0].size_label} = {fmt_size(ok[0].size)}" if ok[0].size is not None else ""
            ax.set_title(f"{where.replace('_', ' ')}{size} ({device})")
        ax.grid(True, which="major", alpha=0.3)
        fig.text(0.99, 0.01, machine_line(run), ha="right", va="bottom", fontsize=6, color="#555555")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        path = os.path.join(out_dir, f"{capability}_{_slug(where)}_{device}.png")
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def _throughput_plot(ax, results: list[Result], colours: dict[str, str]) -> None:
    for impl in _impls(results):
        points = sorted((r.size, r.throughput) for r in results if r.impl == impl)
        xs, ys = zip(*points)
        style = "-" if impl == SUBJECT else ("--" if _is_variant(impl) else "-")
        ax.plot(xs, ys, style, marker="o", color=colours[impl], label=impl, linewidth=2.2 if impl == SUBJECT else 1.4)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _log_ticks(ax, _si)
    first = results[0]
    ax.set_xlabel(f"{first.size_label} (log scale)")
    ax.set_ylabel(f"{plural(first.item)} per second (log scale)")
    ax.legend(fontsize=8)


def _log_ticks(ax, label) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: label(v)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _si(value: float) -> str:
    """Tick labels as people say rates: 2k, 500M, 1.5G."""
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{prefix}"
    return f"{value:g}"


def _bar_plot(ax, results: list[Result], colours: dict[str, str]) -> None:
    impls = _impls(results)
    medians = [next(r for r in results if r.impl == i).median for i in impls]
    ax.barh(range(len(impls)), medians, color=[colours[i] for i in impls])
    ax.set_yticks(range(len(impls)), impls)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median time per call, seconds (log scale; shorter is faster)")
    for y, m in enumerate(medians):
        ax.text(m, y, f" {fmt_time(m)}", va="center", fontsize=8)


def _strip_plot(ax, results: list[Result], colours: dict[str, str]) -> None:
    impls = _impls(results)
    for x, impl in enumerate(impls):
        r = next(r for r in results if r.impl == impl)
        n = len(r.samples)
        offsets = [(i - (n - 1) / 2) * (0.5 / max(n, 1)) for i in range(n)]  # deterministic jitter
        for dx, seconds, solved in zip(offsets, r.samples, r.solved or [True] * n):
            ax.scatter(x + dx, seconds, s=40, color=colours[impl] if solved else "none", edgecolors=colours[impl],
                       linewidths=1.5, zorder=3)
        ax.hlines(r.median, x - 0.3, x + 0.3, color=colours[impl], linewidth=2.5, zorder=2)
    ax.set_xticks(range(len(impls)), impls)
    ax.set_xlim(-0.6, len(impls) - 0.4)
    ax.set_yscale("log")
    # Plain seconds on the ticks ("0.5", not "5 x 10^-1") at 1, 2, 3, 5 of each decade.
    _log_ticks(ax, lambda v: f"{v:g}")
    ax.set_ylabel("seconds to solve (log scale; bar = median)")
    if any(not s for r in results for s in r.solved):
        ax.scatter([], [], s=40, color="none", edgecolors="#333333", label="not solved: a lower bound")
        ax.legend(fontsize=8)


# ---------------------------------------------------------------- writing and comparing

def write(run: dict, out_dir: str, command: str | None = None) -> dict[str, object]:
    """results.json, report.md and the plots under ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "results.json")
    with open(json_path, "w") as f:
        json.dump(run, f, separators=(",", ":"))
    md_path = os.path.join(out_dir, "report.md")
    with open(md_path, "w") as f:
        f.write(render(run, markdown=True, command=command))
    return {"json": json_path, "markdown": md_path, "plots": plot(run, out_dir)}


def from_pytest_benchmark(data: dict, path: str) -> dict:
    """A run dict from the JSON of ``pytest benchmarks --benchmark-json=FILE`` (the suite's cases under
    pytest-benchmark, whose conftest records each case in ``extra_info``), so one report renders both."""
    from rltorch._version import __version__

    machine = data.get("machine_info") or {}
    cpu = machine.get("cpu") or {}
    results, devices, torch_version = [], set(), "?"
    for i, bench in enumerate(data.get("benchmarks") or []):
        info, stats = bench.get("extra_info") or {}, bench.get("stats") or {}
        if "key" not in info or not isinstance(stats.get("data"), list):
            raise ValueError(f"{path!r}: benchmark {i} ({bench.get('name')!r}) was not written by rltorch's "
                             "benchmarks/ suite (no case in its extra_info, or no per-round data)")
        devices.add(info.get("device", "cpu"))
        torch_version = str(info.get("torch", torch_version))
        results.append({"capability": info.get("capability"), "group": info.get("group_name"),
                        "where": info.get("where"), "impl": info.get("impl"), "key": info["key"], "kind": "timed",
                        "size": info.get("size"), "size_label": info.get("size_label", ""),
                        "items": info.get("items", 1), "item": info.get("item", "call"),
                        "device": info.get("device", "cpu"), "status": "ok", "samples": stats["data"]})
    return {"schema": 1, "command": f"python -m pytest benchmarks --benchmark-json={os.path.basename(path)}",
            "settings": {"mode": "pytest-benchmark", "device": ",".join(sorted(devices)) or "cpu", "seeds": 0},
            "machine": {"date": str(data.get("datetime", "")), "cpu": str(cpu.get("brand_raw", "?")),
                        "usable_cores": int(cpu.get("count") or 0), "gpu": None, "torch": torch_version,
                        "rltorch": __version__,
                        "python": str(machine.get("python_version", "?"))},
            "wall_seconds": 0.0, "results": results}


_MACHINE_KEYS = {"date": str, "cpu": str, "usable_cores": int, "torch": str, "rltorch": str, "python": str}
_SETTINGS_KEYS = {"mode": str, "device": str, "seeds": int}


MARKDOWN_BEGIN = "<!-- BEGIN GENERATED: rltorch bench --report {run_dir}/results.json --splice {target} -->"
MARKDOWN_END = "<!-- END GENERATED -->"


def splice_markdown(run_dir: str, target: str, check: bool = False) -> bool:
    """Writes the report of ``run_dir/results.json`` (plots linked relative to ``target``) between the
    BEGIN/END GENERATED markers of the markdown file ``target`` that name this run (one file can hold
    the reports of several runs). With ``check``, writes nothing and returns whether the file is up to
    date; otherwise returns whether it changed."""
    run = load(os.path.join(run_dir, "results.json"))
    link_dir = os.path.relpath(run_dir, os.path.dirname(os.path.abspath(target)))
    body = render(run, markdown=True, command=run.get("command"))
    plots = sorted(p for p in os.listdir(run_dir) if p.endswith(".png"))
    if plots:
        body += "\nPlots of this run:\n\n" + "\n".join(f"- [{p[:-4]}]({link_dir}/{p})" for p in plots) + "\n"
    block = f"{MARKDOWN_BEGIN.format(run_dir=link_dir, target=os.path.basename(target))}\n\n{body}\n{MARKDOWN_END}"
    with open(target) as f:
        text = f.read()
    start = text.find(f"<!-- BEGIN GENERATED: rltorch bench --report {link_dir}/results.json ")
    end = text.find(MARKDOWN_END, start) if start >= 0 else -1
    if start < 0 or end < 0:
        raise ValueError(f"{target!r} has no generated block for this run: add the two lines "
                         f"'{MARKDOWN_BEGIN.format(run_dir=link_dir, target=os.path.basename(target))}' and "
                         f"'{MARKDOWN_END}' where its report belongs")
    updated = text[:start] + block + text[end + len(MARKDOWN_END):]
    if check:
        return updated == text
    if updated != text:
        with open(target, "w") as f:
            f.write(updated)
    return updated != text


def load(path: str) -> dict:
    """A run written by ``--json`` or ``--out``, checked entry by entry so a report of it cannot fail halfway:
    ValueError naming the file and the first bad entry otherwise."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"no benchmark results at {path!r}") from None
    except IsADirectoryError:
        raise ValueError(f"{path!r} is a directory, not a results file (give its results.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path!r} is not a results file written by rltorch bench: {exc}") from None
    if isinstance(data, dict) and "benchmarks" in data and "machine_info" in data:
        data = from_pytest_benchmark(data, path)
    if not isinstance(data, dict) or not {"machine", "settings", "results"} <= data.keys():
        raise ValueError(f"{path!r} is not a results file written by rltorch bench "
                         f"(expected the keys machine, settings, results)")
    problem = _problem(data)
    if problem:
        raise ValueError(f"{path!r} is not a valid rltorch bench results file: {problem}")
    return data


def _problem(data: dict) -> str | None:
    for section, keys in (("machine", _MACHINE_KEYS), ("settings", _SETTINGS_KEYS)):
        value = data[section]
        if not isinstance(value, dict):
            return f"`{section}` must be an object"
        for key, kind in keys.items():
            if not isinstance(value.get(key), kind) or isinstance(value.get(key), bool):
                return f"`{section}.{key}` must be a {kind.__name__}, got {value.get(key)!r:.60}"
    if not isinstance(data.get("wall_seconds", 0), (int, float)):
        return "`wall_seconds` must be a number"
    if not isinstance(data["results"], list):
        return "`results` must be a list"
    for i, entry in enumerate(data["results"]):
        try:
            result = Result.from_dict(entry)
        except TypeError as exc:
            return f"`results[{i}]` is not a result ({exc})"
        checks = (
            (
                isinstance(result.key, str) and isinstance(result.where, str) and isinstance(result.impl, str),
                "key, where and impl must be strings",
            ),
            (result.kind in ("timed", "solve"), "kind must be 'timed' or 'solve'"),
            (result.status in ("ok", "skipped", "error"), "status must be ok, skipped or error"),
            (isinstance(result.items, int) and result.items >= 1, "items must be an integer >= 1"),
            (
                result.size is None or (isinstance(result.size, int) and not isinstance(result.size, bool)),
                "size must be an integer or null",
            ),
            (
                isinstance(result.samples, list)
                and all(isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 for s in result.samples),
                "samples must be a list of positive numbers",
            ),
            (not (result.status == "ok" and not result.samples), "an ok result needs samples"),
            (
                isinstance(result.solved, list) and isinstance(result.env_steps, list),
                "solved and env_steps must be lists",
            ),
            (
                result.kind != "solve" or result.status != "ok" or len(result.solved) == len(result.samples),
                "a time-to-solve result needs one solved flag per sample",
            ),
            (isinstance(result.extra, dict), "extra must be an object"),
            (isinstance(result.condition, str), "condition must be a string"),
        )
        for ok, message in checks:
            if not ok:
                return f"`results[{i}]` ({str(entry.get('key'))[:60]}): {message}"
    return None


def _compare_key(result: dict) -> tuple[str, str]:
    condition = result.get("condition", IDLE)
    return result["key"] + ("" if condition == IDLE else f" [{condition}]"), result["device"]


def compare(before: dict, after: dict) -> str:
    """Each case measured in both runs: its median before and after and the change.
    Time-to-solve medians compare the same way; a case in one run only is listed."""
    a = {_compare_key(r): Result.from_dict(r) for r in before["results"]}
    b = {_compare_key(r): Result.from_dict(r) for r in after["results"]}
    lines = [f"before: {machine_line(before)}", f"after:  {machine_line(after)}"]
    ma, mb = before["machine"], after["machine"]
    differs = [k for k in ("cpu", "usable_cores", "gpu", "torch") if ma.get(k) != mb.get(k)]
    if differs:
        lines.append(f"note: the machines differ in {', '.join(differs)}; compare ratios, not times")
    rows = []
    for key in list(OrderedDict.fromkeys([*a, *b])):
        ra, rb = a.get(key), b.get(key)
        if ra is None or rb is None or not ra.ok or not rb.ok:
            status = "only after" if ra is None else "only before" if rb is None else "not measured in both"
            rows.append([f"{key[0]} ({key[1]})", _cell(ra) if ra else "", _cell(rb) if rb else "", status])
            continue
        change = rb.median / ra.median - 1
        noise = max(ra.spread, rb.spread) / 2
        if change == 0:
            verdict = "no change"
        else:
            word = "faster" if change < 0 else "slower"
            verdict = f"{abs(change) * 100:.1f}% {word}" + (" (within noise)" if abs(change) <= noise else "")
        rows.append([f"{key[0]} ({key[1]})", fmt_time(ra.median), fmt_time(rb.median), verdict])
    lines.append("")
    lines.append(_text_table(["case", "before", "after", "change"], rows))
    return "\n".join(lines) + "\n"
