"""How times, rates, ratios and sizes are written in tables, targets and plots."""


def fmt_time(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e9:.0f} ns"


def fmt_rate(per_second: float, item: str) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if per_second >= scale:
            return f"{per_second / scale:.1f} {prefix} {plural(item)}/s"
    return f"{per_second:.1f} {plural(item)}/s"


def plural(item: str) -> str:
    return item + ("es" if item.endswith(("s", "sh", "ch", "x")) else "s")


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def fmt_size(size: int) -> str:
    if size >= 1024 and size & (size - 1) == 0 and size not in (1024, 4096):
        return f"2^{size.bit_length() - 1}"
    return f"{size:,}"
