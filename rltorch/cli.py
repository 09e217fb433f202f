"""The ``rltorch`` command line (also ``python -m rltorch``)."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_info(args: argparse.Namespace) -> int:
    from rltorch import info

    report = info()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"rltorch {report['version']}  (torch {report['torch']}, torch CUDA {report['torch_cuda']})")
    loaded = "yes" if report["extension_loaded"] else f"no ({report['extension_error']})"
    print(f"  extension loaded : {loaded}")
    print(f"  CUDA kernels     : {'compiled' if report['cuda_compiled'] else 'not compiled'}")
    print(f"  CUDA available   : {'yes' if report['cuda_available'] else 'no'}")
    print(f"  CPU threads      : {report['num_threads']}")
    for name, per_device in report["ops"].items():
        where = ", ".join(f"{device}: {impl}" for device, impl in per_device.items())
        print(f"  {name:<22} {where}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """A short tour of the ops with their speed next to the eager expressions they replace."""
    import time

    import torch

    import rltorch
    from rltorch import _reference

    def best_of(fn, repeat=200):
        fn()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times) * 1e6

    g = torch.Generator().manual_seed(0)
    B, A = 4096, 2
    reward = torch.rand(B, generator=g)
    terminated = torch.rand(B, generator=g) < 0.05
    next_q = torch.randn(B, A, generator=g)
    ours = rltorch.ops.td_target(reward, terminated, next_q, 0.99)
    eager = reward + 0.99 * next_q.max(dim=1).values * (1 - terminated.float())
    torch.testing.assert_close(ours, eager)
    t_ours = best_of(lambda: rltorch.ops.td_target(reward, terminated, next_q, 0.99))
    t_eager = best_of(lambda: reward + 0.99 * next_q.max(dim=1).values * (1 - terminated.float()))
    print(f"DQN target, B={B}: rltorch {t_ours:.1f} us, eager PyTorch {t_eager:.1f} us ({t_eager / t_ours:.1f}x)")

    T, N = 128, 64
    r = torch.randn(T, N, generator=g)
    v = torch.randn(T, N, generator=g)
    nv = torch.randn(T, N, generator=g)
    term = torch.rand(T, N, generator=g) < 0.02
    done = term | (torch.rand(T, N, generator=g) < 0.01)
    adv, _ = rltorch.ops.gae(r, v, nv, term, done, 0.99, 0.95)
    torch.testing.assert_close(adv, _reference.gae(r, v, nv, term, done, 0.99, 0.95)[0])
    t_ours = best_of(lambda: rltorch.ops.gae(r, v, nv, term, done, 0.99, 0.95))
    t_loop = best_of(lambda: _reference.gae(r, v, nv, term, done, 0.99, 0.95), repeat=20)
    print(f"GAE, T x N = {T} x {N}: rltorch {t_ours:.1f} us, Python loop {t_loop:.1f} us ({t_loop / t_ours:.0f}x)")
    print(f"extension loaded: {rltorch.info()['extension_loaded']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rltorch", description="Fast C++/CUDA reinforcement-learning ops for PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="report version, build and which kernels each op uses")
    p_info.add_argument("--json", action="store_true", help="print the report as JSON")
    p_info.set_defaults(func=_cmd_info)
    p_demo = sub.add_parser("demo", help="run each op once against its eager PyTorch equivalent")
    p_demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
