"""The ``rltorch`` command line (also ``python -m rltorch``)."""

from __future__ import annotations

import argparse
import json
import os
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


class CliError(Exception):
    """A user mistake: printed as one line, exit status 2."""


def _parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise CliError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from rltorch import runs
    from rltorch.agents import DQN, DQNConfig

    values: dict = {}
    if args.config:
        values.update(runs.load_config_file(args.config))
    for flag in ("env_id", "num_envs", "device", "seed", "total_steps", "env_backend"):
        value = getattr(args, flag)
        if value is not None:
            values[flag] = value
    if args.no_stop:
        values["stop_when_solved"] = False
    for item in args.set or []:
        key, value = _parse_override(item)
        values[key] = value
    try:
        config = DQNConfig.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise CliError(f"--device {config.device} needs CUDA, but torch.cuda.is_available() is False")

    run_dir = args.run_dir or runs.new_run_dir(args.runs_root, "dqn", config.env_id, config.seed)
    os.makedirs(run_dir, exist_ok=True)
    runs.write_json(os.path.join(run_dir, runs.CONFIG_FILE), config.to_dict())
    try:
        agent = DQN(config)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    metrics = runs.MetricsWriter(run_dir)
    print(f"rltorch: training DQN on {config.env_id} ({agent.env.num_envs} envs, {agent.device}); run dir {run_dir}",
          flush=True)
    try:
        result = agent.train(progress=not args.quiet, callback=metrics)
    finally:
        metrics.close()
    # Reported before the checkpoint and the plot are written, so a wrapper
    # timing the process sees when training itself ended.
    if result.solved:
        print(f"solved {config.env_id}: greedy mean return >= {agent.threshold:g} over {config.eval_episodes} episodes "
              f"after {result.time_to_solve_s:.1f} s and {result.steps_to_solve} env steps "
              f"({result.updates} updates)", flush=True)
    else:
        print(f"not solved after {result.env_steps} env steps ({result.wall_time_s:.1f} s); "
              f"last greedy evaluation {result.last_eval_return}", flush=True)
    agent.save(os.path.join(run_dir, runs.CHECKPOINT_FILE), include_buffer=args.save_buffer)
    runs.write_json(os.path.join(run_dir, runs.RESULT_FILE), {
        "solved": result.solved, "time_to_solve_s": result.time_to_solve_s, "steps_to_solve": result.steps_to_solve,
        "env_steps": result.env_steps, "updates": result.updates, "wall_time_s": result.wall_time_s,
        "last_eval_return": result.last_eval_return, "threshold": agent.threshold,
    })
    curve = runs.plot_learning_curve(run_dir, agent.threshold)
    print(f"run dir: {run_dir}" + (f" (learning curve: {curve})" if curve else ""))
    agent.close()
    return 0 if result.solved or not config.stop_when_solved else 1


def _load_run(run_dir: str, device: str | None):
    from rltorch import runs
    from rltorch.agents import DQN

    if not os.path.isdir(run_dir):
        raise CliError(f"run directory {run_dir!r} does not exist")
    try:
        return DQN.load(os.path.join(run_dir, runs.CHECKPOINT_FILE), device=device)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from exc


def _cmd_eval(args: argparse.Namespace) -> int:
    agent = _load_run(args.run_dir, args.device)
    returns = agent.evaluate_returns(args.episodes, seed=args.seed)
    print(f"greedy return over {args.episodes} episodes: {returns.mean().item():.2f} +- {returns.std().item():.2f} "
          f"(min {returns.min().item():.0f}, max {returns.max().item():.0f}; solved at >= {agent.threshold:g})")
    agent.close()
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    agent = _load_run(args.run_dir, "cpu")
    suffix = {"torchscript": "policy.ts", "export": "policy.pt2"}[args.format]
    path = agent.export(args.output or os.path.join(args.run_dir, suffix), format=args.format)
    loader = "torch.jit.load" if args.format == "torchscript" else "torch.export.load(...).module()"
    print(f"exported the greedy policy to {path} (load with {loader}; input float32 [batch, obs_dim], output actions)")
    agent.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rltorch", description="Fast C++/CUDA reinforcement-learning ops for PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="report version, build and which kernels each op uses")
    p_info.add_argument("--json", action="store_true", help="print the report as JSON")
    p_info.set_defaults(func=_cmd_info)
    p_demo = sub.add_parser("demo", help="run each op once against its eager PyTorch equivalent")
    p_demo.set_defaults(func=_cmd_demo)

    p_train = sub.add_parser("train", help="train an agent")
    algos = p_train.add_subparsers(dest="algo", metavar="ALGO", required=True)
    p_dqn = algos.add_parser("dqn", help="DQN (Double, dueling, n-step, prioritized replay: see --set)")
    p_dqn.add_argument("--env", dest="env_id", default=None, help="gymnasium env id (default CartPole-v1)")
    p_dqn.add_argument("--env-backend", default=None, choices=["auto", "rltorch", "gymnasium"],
                       help="CartPole-v1 runs on rltorch's vectorized env unless 'gymnasium'")
    p_dqn.add_argument("--num-envs", type=int, default=None)
    p_dqn.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    p_dqn.add_argument("--seed", type=int, default=None)
    p_dqn.add_argument("--total-steps", type=int, default=None, help="upper bound on env steps")
    p_dqn.add_argument("--config", default=None, help="a .toml or .json file of DQNConfig fields")
    p_dqn.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override one DQNConfig field, e.g. --set n_step=3 --set prioritized=true")
    p_dqn.add_argument("--no-stop", action="store_true", help="keep training after solving")
    p_dqn.add_argument("--run-dir", default=None, help="where to write the run (default runs/dqn-ENV-sSEED-TIME)")
    p_dqn.add_argument("--runs-root", default="runs")
    p_dqn.add_argument("--save-buffer", action="store_true", help="include the replay buffer in the checkpoint")
    p_dqn.add_argument("--quiet", action="store_true", help="no progress bar")
    p_dqn.set_defaults(func=_cmd_train)

    p_eval = sub.add_parser("eval", help="greedy return of a trained run")
    p_eval.add_argument("run_dir")
    p_eval.add_argument("--episodes", type=int, default=100)
    p_eval.add_argument("--device", default=None)
    p_eval.add_argument("--seed", type=int, default=12345)
    p_eval.set_defaults(func=_cmd_eval)

    p_export = sub.add_parser("export", help="save a run's greedy policy for deployment without rltorch")
    p_export.add_argument("run_dir")
    p_export.add_argument("--format", choices=["torchscript", "export"], default="torchscript")
    p_export.add_argument("--output", default=None)
    p_export.set_defaults(func=_cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except CliError as exc:
        print(f"rltorch: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`rltorch info --json | head`): stop quietly, as Unix tools do.
        sys.stdout = open(os.devnull, "w")
        return 141


if __name__ == "__main__":
    sys.exit(main())
