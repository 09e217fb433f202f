"""The ``rltorch`` command line (also ``python -m rltorch``)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from rltorch.config import add_config_flags, config_from_flags, flag_name


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
    threads = report["threads"]
    print(f"  CPU threads      : {report['num_threads']} torch intra-op, {threads['cpu_cores']} usable cores")
    mode = threads["kernel_parallel_mode"] or "n/a (no CPU kernels)"
    print(f"  thread policy    : kernels {mode} (RLTORCH_CPU_PARALLEL=adaptive|static|serial); agents "
          f"{threads['agent_threads_auto']} thread under --threads auto (default), --threads N to override")
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


def _flag(name: str) -> str:
    return flag_name(name)


def _config_flags(parser: argparse.ArgumentParser, config_class) -> None:
    add_config_flags(parser, config_class)


def _config_from_args(args: argparse.Namespace, config_class, algorithm: str):
    try:
        return config_from_flags(args, config_class, algorithm)
    except (FileNotFoundError, TypeError, ValueError) as exc:
        raise CliError(str(exc)) from None


def _check_device(device: str) -> None:
    from rltorch._checks import resolve_device

    try:
        resolve_device(device)
    except (RuntimeError, ValueError) as exc:
        raise CliError(f"--device {device}: {exc}") from None


def _plan_run_dir(args: argparse.Namespace, algorithm: str, label: str, seed: int) -> str:
    """Where the run will be written, checked but not created yet (a rejected run leaves nothing behind)."""
    from rltorch import runs

    try:
        if args.run_dir:
            runs.check_run_dir(args.run_dir, "--run-dir")
            return args.run_dir
        runs.check_run_dir(args.runs_root, "--runs-root")
        return runs.plan_run_dir(args.runs_root, algorithm, label, seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _resume(args: argparse.Namespace, agent_class):
    """The agent of ``--resume CHECKPOINT``: its own config, so no config flag may try to change it."""
    import dataclasses

    given = [f.name for f in dataclasses.fields(agent_class.config_class) if hasattr(args, f.name)]
    if given or args.config or args.set:
        flags = ", ".join(_flag(name) for name in given) or "--config/--set"
        raise CliError(f"--resume continues the checkpoint's run with its own config; drop {flags}")
    try:
        return agent_class.load(args.resume)
    except (OSError, RuntimeError, ValueError) as exc:
        raise CliError(f"--resume {args.resume}: {exc}") from None


def _cmd_train(args: argparse.Namespace) -> int:
    from rltorch import runs

    agent_class = args.agent_class
    if args.resume:
        agent = _resume(args, agent_class)
        config = agent.config
        try:
            run_dir = _plan_run_dir(args, agent_class.name, config.env_id, config.seed)
        except CliError:
            agent.close()
            raise
    else:
        config = _config_from_args(args, agent_class.config_class, agent_class.name)
        # Everything is checked before the run directory exists: a rejected run leaves nothing behind.
        _check_device(config.device)
        run_dir = _plan_run_dir(args, agent_class.name, config.env_id, config.seed)
        try:
            agent = agent_class(config)
        except (RuntimeError, ValueError) as exc:
            raise CliError(str(exc)) from None
    population = agent.num_agents > 1
    try:
        os.makedirs(run_dir, exist_ok=True)
        runs.write_config(run_dir, agent_class.name, config)
        if population:
            from rltorch.agents.population.run_files import PopulationRunFiles

            population_files = PopulationRunFiles(run_dir, agent)
            metrics = population_files.row
        else:
            metrics = runs.MetricsWriter(run_dir, agent.metric_columns())
    except OSError as exc:
        agent.close()
        raise CliError(f"cannot write the run directory {run_dir!r}: {exc.strerror or exc}") from None
    resumed = f", resumed at {agent.env_steps} env steps" if args.resume else ""
    agents = f"{agent.num_agents} agents x {config.num_envs} envs" if population else f"{agent.env.num_envs} envs"
    print(f"rltorch: training {agent_class.__name__} on {config.env_id} ({agents}, {agent.device}"
          f"{resumed}); run dir {run_dir}", flush=True)
    checkpoint = os.path.join(run_dir, runs.CHECKPOINT_FILE)
    next_checkpoint = [(agent.env_steps // args.checkpoint_every + 1) * args.checkpoint_every
                       if args.checkpoint_every else None]

    def on_row(row: dict) -> None:
        metrics(row)
        if next_checkpoint[0] is not None and agent.env_steps >= next_checkpoint[0]:
            agent.save(checkpoint, include_buffer=args.save_buffer)
            next_checkpoint[0] = (agent.env_steps // args.checkpoint_every + 1) * args.checkpoint_every

    from rltorch.agents.base import EnvDataError

    try:
        result = agent.train(progress=not args.quiet, callback=on_row)
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM for Ape-X): stop the workers and leave the last periodic checkpoint as it was.
        agent.close()
        saved = f"; last checkpoint {checkpoint}" if os.path.exists(checkpoint) else ""
        print(f"rltorch: interrupted at {agent.env_steps} env steps{saved}", file=sys.stderr, flush=True)
        return 130
    except EnvDataError as exc:
        # Found at a log row, before that row's checkpoint: the last one written learned from finite data only.
        agent.close()
        saved = f"; last checkpoint {checkpoint}" if os.path.exists(checkpoint) else "; no checkpoint was written"
        print(f"rltorch: error: {exc}{saved}", file=sys.stderr, flush=True)
        return 1
    except BaseException:
        agent.close()
        raise
    finally:
        (population_files if population else metrics).close()
    if population:
        return _finish_population(args, agent, result, run_dir, population_files)
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
    curve = runs.plot_learning_curve(run_dir, agent.threshold, config.eval_stop_early)
    agent.write_run_files(run_dir)  # an algorithm's own figures (BC: confusion matrix)
    print(f"run dir: {run_dir}" + (f" (learning curve: {curve})" if curve else ""))
    agent.close()
    return 0 if result.solved or not config.stop_when_solved else 1


def _finish_population(args: argparse.Namespace, agent, result, run_dir: str, files) -> int:
    """A population's end of run: the summary line, then the checkpoint, result.json and the plots."""
    from rltorch import runs
    from rltorch.agents.population.run_files import summary

    print(summary(result, agent.threshold), flush=True)
    agent.save(os.path.join(run_dir, runs.CHECKPOINT_FILE), include_buffer=args.save_buffer)
    written = files.finish(result)
    agent.write_run_files(run_dir)
    print(f"run dir: {run_dir} (result.json, learning curves: {os.path.basename(written[1])}"
          + (f", sensitivity: {', '.join(os.path.basename(p) for p in written[2:])}" if written[2:] else "") + ")")
    agent.close()
    return 0 if result.solved or not agent.config.stop_when_solved else 1


def _cmd_train_classifier(args: argparse.Namespace) -> int:
    from rltorch.apps.classifier_run import ALGORITHM, ClassifierConfig, prepare, run_classifier

    config = _config_from_args(args, ClassifierConfig, ALGORITHM)
    _check_device(config.device)
    # The expert, the data and the classifier's parameters are checked (the data made) before the run
    # directory exists: a rejected run leaves nothing behind.
    try:
        prepared = prepare(config)
    except (OSError, RuntimeError, ValueError) as exc:
        raise CliError(str(exc)) from None
    run_dir = _plan_run_dir(args, ALGORITHM, config.dataset, config.seed)
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as exc:
        raise CliError(str(exc)) from None
    print(f"rltorch: training a classifier on {config.dataset} ({config.num_samples} samples); run dir {run_dir}",
          flush=True)
    try:
        result = run_classifier(prepared, run_dir, progress=not args.quiet)
    except (RuntimeError, ValueError) as exc:
        raise CliError(str(exc)) from None
    test = result["test"]
    print(f"{result['classifier']} on {config.dataset}: test accuracy {test['accuracy']:.4f}, macro F1 "
          f"{test['f1_macro']:.4f} over {result['test_samples']} samples after {result['epochs']} epochs "
          f"({result['fit_time_s']:.1f} s of fit)")
    print(f"run dir: {run_dir}")
    return 0


def _load_run(run_dir: str, device: str | None):
    """The agent saved in ``run_dir``, of the algorithm its config.json records."""
    from rltorch import runs
    from rltorch._checks import resolve_device
    from rltorch.agents import Agent, algorithm_class

    if not os.path.exists(run_dir):
        raise CliError(f"run directory {run_dir!r} does not exist")
    if not os.path.isdir(run_dir):
        raise CliError(f"run directory {run_dir!r} is not a directory")
    if device is not None:
        try:
            resolve_device(device)
        except (RuntimeError, ValueError) as exc:
            raise CliError(f"--device {device}: {exc}") from None
    try:
        algorithm = runs.read_algorithm(run_dir)
        if algorithm == "classifier":
            raise CliError(f"{run_dir!r} is a classifier run: its test metrics are in {runs.RESULT_FILE}; "
                           f"load it with rltorch.classifiers.load_classifier")
        agent_class = Agent if algorithm is None else algorithm_class(algorithm)
        return agent_class.load(os.path.join(run_dir, runs.CHECKPOINT_FILE), device=device)
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        raise CliError(str(exc)) from None


def _which_agent(agent, choice: str | None) -> int | None:
    """``--agent``: None for a lone agent; an index (``best``: :meth:`Agent.best_agent`) for a population."""
    if agent.num_agents == 1:
        if choice not in (None, "best", "0"):
            agent.close()
            raise CliError(f"--agent {choice}: the run trained one agent")
        return None
    if choice is None:
        agent.close()
        raise CliError(f"the run trained {agent.num_agents} agents: pass --agent best or an index in "
                       f"[0, {agent.num_agents})")
    index = agent.best_agent() if choice == "best" else int(choice)
    if not 0 <= index < agent.num_agents:
        agent.close()
        raise CliError(f"--agent {choice}: the run trained agents 0 to {agent.num_agents - 1}")
    return index


def _cmd_eval(args: argparse.Namespace) -> int:
    agent = _load_run(args.run_dir, args.device)
    population = agent.num_agents > 1
    index = _which_agent(agent, args.agent) if args.agent is not None or not population else None
    try:
        agents = None if index is None else torch_long([index])
        returns = agent.evaluate_returns(args.episodes, seed=args.seed, agents=agents) if population else \
            agent.evaluate_returns(args.episodes, seed=args.seed)
    finally:
        agent.close()
    if population and index is None:
        means = returns.mean(dim=1)
        solved = int((means >= agent.threshold).sum())
        print(f"greedy return over {args.episodes} episodes per agent, {agent.num_agents} agents: median "
              f"{means.median().item():.2f}, min {means.min().item():.2f} (agent {int(means.argmin())}), max "
              f"{means.max().item():.2f} (agent {int(means.argmax())}); {solved} at >= {agent.threshold:g}")
        return 0
    returns = returns.flatten()
    who = f"agent {index}: " if population else ""
    print(f"{who}greedy return over {args.episodes} episodes: {returns.mean().item():.2f} +- "
          f"{returns.std().item() if args.episodes > 1 else 0.0:.2f} "
          f"(min {returns.min().item():.0f}, max {returns.max().item():.0f}; solved at >= {agent.threshold:g})")
    return 0


def torch_long(values: list[int]):
    import torch

    return torch.tensor(values, dtype=torch.long)


def _cmd_export(args: argparse.Namespace) -> int:
    from rltorch._io import check_writable

    suffix = {"torchscript": "policy.ts", "export": "policy.pt2"}[args.format]
    output = args.output or os.path.join(args.run_dir, suffix)
    if args.output is not None:  # checked before the run is loaded; the default lies in the run directory
        try:
            check_writable(output, "--output `path`", probe=True)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    if os.path.isdir(args.run_dir):
        from rltorch import runs

        try:
            classifier_run = runs.read_algorithm(args.run_dir) == "classifier"
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if classifier_run:
            from rltorch.classifiers import load_classifier

            try:
                path = load_classifier(os.path.join(args.run_dir, runs.CHECKPOINT_FILE)).export(output, args.format)
            except (OSError, ValueError) as exc:
                raise CliError(str(exc)) from None
            print(f"exported the classifier to {path} (input float32 [batch, *features], output labels)")
            return 0
    agent = _load_run(args.run_dir, "cpu")
    index = _which_agent(agent, args.agent)
    try:
        path = agent.export(output, format=args.format, agent=index)
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    finally:
        agent.close()
    loader = "torch.jit.load" if args.format == "torchscript" else "torch.export.load(...).module()"
    print(f"exported the greedy policy to {path} (load with {loader}; input float32 [batch, obs_dim], output actions)")
    return 0


def _capabilities(text: str) -> list[str]:
    from rltorch.bench import CAPABILITIES

    chosen = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CAPABILITIES]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(f"choose from {','.join(CAPABILITIES)} (comma-separated), got {text!r}")
    return chosen


def _patterns(text: str) -> list[str]:
    chosen = [p.strip() for p in text.split(",") if p.strip()]
    if not chosen:
        raise argparse.ArgumentTypeError(f"give one or more comma-separated parts of case names, got {text!r}")
    return chosen


def _cmd_bench(args: argparse.Namespace) -> int:
    import time

    from rltorch.bench import report, runner
    from rltorch.bench.cases import collect
    from rltorch.bench.core import CAPABILITIES, Settings

    if args.compare:
        try:
            before, after = [report.load(path) for path in args.compare]
        except (OSError, ValueError) as exc:
            raise CliError(str(exc)) from None
        print(report.compare(before, after), end="")
        return 0
    _check_bench_outputs(args)
    train_args = _bench_train_args(args)
    if args.profile:
        from rltorch.agents import algorithm_class
        from rltorch.bench.profile import time_split

        agent_class = algorithm_class(args.profile)
        config = _config_from_tokens(agent_class, train_args)
        print(f"rltorch: where {agent_class.__name__}'s time to solve goes, {args.seeds or 3} seeds, this process",
              flush=True)
        time_split(agent_class, config, list(range(1, (args.seeds or 3) + 1)))
        return 0
    if args.report:
        try:
            run = report.load(args.report)
        except (OSError, ValueError) as exc:
            raise CliError(str(exc)) from None
        command = run.get("command")
        if args.splice:
            try:
                if args.check:
                    if not report.splice_markdown(os.path.dirname(args.report) or ".", args.splice, check=True):
                        raise CliError(f"{args.splice} is stale: run rltorch bench --report {args.report} "
                                       f"--splice {args.splice}")
                    return 0
                report.splice_markdown(os.path.dirname(args.report) or ".", args.splice)
            except (OSError, ValueError) as exc:
                raise CliError(str(exc)) from None
            print(f"{args.splice}: the report of {args.report} is in its generated block")
            return 0
    else:
        _check_device(args.device)
        overrides = {"seeds": args.seeds} if args.seeds is not None else {}
        if args.sb3_venv:
            from rltorch.bench.cases.agents import sb3_venv

            args.sb3_python = sb3_venv(args.sb3_venv)
        rejax = None
        if args.rejax_venv:
            from rltorch.bench.cases.agents import rejax_venv

            rejax = rejax_venv(args.rejax_venv)
        settings = Settings.for_mode(args.mode, device=args.device, python=args.sb3_python, cleanrl=args.cleanrl,
                                     rejax_python=rejax, train_args=tuple(train_args), **overrides)
        cases = collect(args.only or list(CAPABILITIES), settings)
        if args.skip:
            unmatched = [pattern for pattern in args.skip if not any(pattern in case.key for case in cases)]
            if unmatched:
                raise CliError(f"--skip: {', '.join(map(repr, unmatched))} matches no case of this run "
                               "(rltorch bench --list shows them)")
            cases = [case for case in cases if not any(pattern in case.key for pattern in args.skip)]
        if args.list:
            for case in cases:
                print(case.key + (" (time to solve)" if case.kind == "solve" else ""))
            return 0
        run = runner.run(cases, settings, progress=not args.quiet, contention=args.contention,
                         interleave=args.interleave)
        run["command"] = command = args.command_line
    out = args.out or os.path.join("bench-results", time.strftime("%Y%m%d-%H%M%S") + f"-{run['settings']['mode']}-"
                                   f"{run['settings']['device']}")
    print(report.render(run, command=command))
    written = report.write(run, out, command=command)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(run, f, separators=(",", ":"))
        print(f"results: {args.json}")
    print(f"report, results and {len(written['plots'])} plots: {out}/")
    errors = [r for r in run["results"] if r["status"] == "error"]
    return 1 if errors else 0


def _config_from_tokens(agent_class, tokens: list[str]):
    """The config ``rltorch train ALGO TOKENS`` would build; CliError naming the algorithm otherwise."""
    parser = argparse.ArgumentParser(prog=f"--train-args for {agent_class.name}", add_help=False, allow_abbrev=False)
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", action="append")
    add_config_flags(parser, agent_class.config_class)
    try:
        args, unknown = parser.parse_known_args(tokens)
        if unknown:
            raise ValueError(f"unknown flag(s) {' '.join(unknown)}")
        return config_from_flags(args, agent_class.config_class, agent_class.name)
    except (FileNotFoundError, TypeError, ValueError) as exc:
        raise CliError(f"--train-args for {agent_class.name}: {exc}") from None


def _bench_train_args(args: argparse.Namespace) -> list[str]:
    """--train-args split like a shell would, checked against every algorithm it will reach."""
    from rltorch.agents import algorithm_class

    try:
        tokens = shlex.split(args.train_args or "")
    except ValueError as exc:
        raise CliError(f"--train-args: {exc}") from None
    algorithms = [args.profile] if args.profile else (["ppo", "dqn"] if tokens else [])
    for name in algorithms:
        _config_from_tokens(algorithm_class(name), tokens)
    if args.cleanrl and not os.path.isfile(os.path.join(os.path.expanduser(args.cleanrl), "cleanrl", "dqn.py")):
        raise CliError(f"--cleanrl {args.cleanrl}: not a CleanRL checkout (no cleanrl/dqn.py)")
    if args.sb3_python and not os.access(args.sb3_python, os.X_OK):
        raise CliError(f"--sb3-python {args.sb3_python}: not an executable interpreter")
    return tokens


def _check_bench_outputs(args: argparse.Namespace) -> None:
    """--out and --json must be writable before anything is measured (a run can take many minutes)."""
    for flag, path, kind in (("--out", args.out, "directory"), ("--json", args.json, "file")):
        if not path:
            continue
        if kind == "directory" and os.path.exists(path) and not os.path.isdir(path):
            raise CliError(f"{flag} {path}: exists and is not a directory")
        if kind == "file" and os.path.isdir(path):
            raise CliError(f"{flag} {path}: is a directory; give a file name")
        # The nearest existing folder on the way must let us create what is missing.
        probe = os.path.abspath(
            path if kind == "directory" and os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        )
        if kind == "file" and not os.path.isdir(probe):
            raise CliError(f"{flag} {path}: its directory {probe} does not exist")
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
        if not _can_create_in(probe):
            raise CliError(f"{flag} {path}: {probe} is not a writable directory")


def _can_create_in(directory: str) -> bool:
    """Whether a file can be created in ``directory`` (tried: permission bits say nothing to root or on /proc)."""
    import tempfile

    if not os.path.isdir(directory):
        return False
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def _agent_choice(text: str) -> str:
    if text != "best" and not (text.isdigit() and int(text) >= 0):
        raise argparse.ArgumentTypeError(f"expected 'best' or an agent index >= 0, got {text!r}")
    return text


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (checked by rltorch._checks.integer, as config fields are)."""
    from rltorch._checks import integer

    def parse(text: str) -> int:
        try:
            return integer("rltorch", "value", int(text), minimum=low)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None

    return parse


def build_parser() -> argparse.ArgumentParser:
    from rltorch.agents import ALGORITHMS

    parser = argparse.ArgumentParser(
        prog="rltorch", description="Fast C++/CUDA reinforcement-learning ops for PyTorch."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="report version, build and which kernels each op uses")
    p_info.add_argument("--json", action="store_true", help="print the report as JSON")
    p_info.set_defaults(func=_cmd_info)
    p_demo = sub.add_parser("demo", help="run each op once against its eager PyTorch equivalent")
    p_demo.set_defaults(func=_cmd_demo)

    p_train = sub.add_parser("train", help="train an agent")
    algos = p_train.add_subparsers(dest="algo", metavar="ALGO", required=True)
    for name, agent_class in ALGORITHMS.items():
        summary = (agent_class.config_class.__doc__ or name).strip().splitlines()[0]
        p_algo = algos.add_parser(name, help=summary, description=f"Train {agent_class.__name__}. {summary}")
        run = p_algo.add_argument_group("run options")
        run.add_argument("--config", default=None, metavar="FILE",
                         help=f"a .toml or .json file of {agent_class.config_class.__name__} fields "
                              f"(flags and --set override it)")
        run.add_argument("--set", action="append", metavar="KEY=VALUE",
                         help="override one config field, e.g. --set n_step=3 (applied last)")
        run.add_argument("--no-stop", dest="stop_when_solved", action="store_false", default=argparse.SUPPRESS,
                         help="keep training after solving (same as --no-stop-when-solved)")
        run.add_argument(
            "--run-dir", default=None, help=f"where to write the run (default RUNS_ROOT/{name}-ENV-sSEED-TIME)"
        )
        run.add_argument("--runs-root", default="runs", help="parent of new run directories (default: runs)")
        run.add_argument("--save-buffer", action="store_true", help="include the replay buffer in the checkpoint")
        run.add_argument("--checkpoint-every", type=_int_at_least(1), default=None, metavar="STEPS",
                         help="also write the checkpoint every STEPS env steps during training (default: at the end)")
        run.add_argument("--resume", default=None, metavar="CHECKPOINT",
                         help="continue the run saved in CHECKPOINT (its config, network, optimizer and, if saved "
                              "with --save-buffer, its replay buffer) into a new run directory")
        run.add_argument("--quiet", action="store_true", help="no progress bar")
        _config_flags(p_algo, agent_class.config_class)
        p_algo.set_defaults(func=_cmd_train, agent_class=agent_class)

    from rltorch.apps.classifier_run import ClassifierConfig

    summary = ClassifierConfig.__doc__.strip().splitlines()[0]
    p_cls = algos.add_parser("classifier", help=summary, description=f"{summary} Writes a run directory like "
                             f"the agents' (config.json, metrics.csv, checkpoint.pt, result.json, PNGs).")
    run = p_cls.add_argument_group("run options")
    run.add_argument("--config", default=None, metavar="FILE", help="a .toml or .json file of ClassifierConfig fields")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config field (applied last)")
    run.add_argument(
        "--run-dir", default=None, help="where to write the run (default RUNS_ROOT/classifier-DATASET-sSEED-TIME)"
    )
    run.add_argument("--runs-root", default="runs", help="parent of new run directories (default: runs)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    _config_flags(p_cls, ClassifierConfig)
    p_cls.set_defaults(func=_cmd_train_classifier)

    p_eval = sub.add_parser("eval", help="greedy return of a trained run")
    p_eval.add_argument("run_dir")
    p_eval.add_argument("--episodes", type=_int_at_least(1), default=100, help="episodes to run (default: 100)")
    p_eval.add_argument("--device", default=None, help="device to evaluate on (default: the run's)")
    p_eval.add_argument("--seed", type=_int_at_least(0), default=12345, help="evaluation seed (default: 12345)")
    p_eval.add_argument("--agent", type=_agent_choice, default=None, metavar="best|INDEX",
                        help="a population's agent to evaluate (default: every agent, summarised)")
    p_eval.set_defaults(func=_cmd_eval)

    p_export = sub.add_parser("export", help="save a run's greedy policy for deployment without rltorch")
    p_export.add_argument("run_dir")
    p_export.add_argument("--format", choices=["torchscript", "export"], default="torchscript")
    p_export.add_argument("--output", default=None, help="file to write (default: RUN_DIR/policy.ts or policy.pt2)")
    p_export.add_argument("--agent", type=_agent_choice, default=None, metavar="best|INDEX",
                          help="which agent of a population (best: the best last evaluation, solved first)")
    p_export.set_defaults(func=_cmd_export)

    p_bench = sub.add_parser(
        "bench", help="rltorch beside its peers, measured in one run: tables, targets, plots",
        description="Times rltorch's ops, env, replay, agents and classifiers beside the libraries they replace "
                    "(eager PyTorch, torch.compile, gymnasium, EnvPool, cpprb, TorchRL, stable-baselines3) in one "
                    "run. Peers that are not installed are skipped with the command that installs them "
                    "(pip install 'rltorch[bench]' installs all that install cleanly). Prints a table of medians "
                    "and speed-ups with each case's spread, checks the performance targets, and writes "
                    "results.json, report.md and PNG plots to --out.")
    mode = p_bench.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="fewer sizes and seeds, under 3 minutes on 2 cores (the default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="every size, 5 seeds per time-to-solve case (what BENCHMARKS.md is made from)")
    mode.add_argument("--tiny", dest="mode", action="store_const", const="tiny",
                      help="smallest sizes and a short training cap: checks the set-up in seconds, measures little")
    p_bench.set_defaults(mode="quick")
    p_bench.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu); CPU-only peers run on the CPU")
    p_bench.add_argument("--only", type=_capabilities, default=None, metavar="LIST",
                         help="comma-separated capabilities: ops,env,replay,agents,classifiers,distributed "
                              "(default: all)")
    p_bench.add_argument("--skip", type=_patterns, default=None, metavar="LIST",
                         help="comma-separated parts of case names (as --list prints them) to leave out, e.g. "
                              "--skip env=MountainCar-v0 (a time-to-solve case that runs for an hour)")
    p_bench.add_argument("--seeds", type=_int_at_least(1), default=None,
                         help="seeds per time-to-solve case (default: 3 quick, 5 full)")
    p_bench.add_argument("--json", default=None, metavar="FILE", help="also write the results to FILE")
    p_bench.add_argument("--out", default=None, metavar="DIR",
                         help="directory for results.json, report.md and the plots "
                              "(default: bench-results/TIME-MODE-DEVICE)")
    p_bench.add_argument("--compare", nargs=2, default=None, metavar=("BEFORE", "AFTER"),
                         help="print the change per case between two results files, measuring nothing")
    p_bench.add_argument("--report", default=None, metavar="FILE",
                         help="rebuild the tables, report.md and plots of a results file, measuring nothing")
    p_bench.add_argument("--splice", default=None, metavar="MARKDOWN",
                         help="with --report DIR/results.json: write its report between the BEGIN/END GENERATED "
                              "markers of MARKDOWN (how BENCHMARKS.md is made), plots linked")
    p_bench.add_argument("--check", action="store_true",
                         help="with --splice: change nothing, exit 2 if MARKDOWN's generated block is stale")
    p_bench.add_argument("--list", action="store_true", help="list the cases this run would measure")
    p_bench.add_argument("--quiet", action="store_true", help="no progress bar")
    p_bench.add_argument("--train-args", default=None, metavar="'FLAGS'",
                         help="extra `rltorch train` flags for rltorch's time-to-solve runs, e.g. "
                              "--train-args '--num-envs 32'")
    p_bench.add_argument("--sb3-python", default=None, metavar="PYTHON",
                         help="interpreter with stable-baselines3 for its runs (default: $RLTORCH_BENCH_SB3_PYTHON "
                              "or this one)")
    p_bench.add_argument("--sb3-venv", default=None, metavar="DIR",
                         help="run stable-baselines3 in this venv, made on first use at its own pins")
    p_bench.add_argument("--rejax-venv", default=None, metavar="DIR",
                         help="run rejax (JAX) in this venv, made on first use with rejax 0.1.3 and gymnax 0.0.9: "
                              "adds its vmapped PPO to the population case of --full runs (default: "
                              "$RLTORCH_BENCH_REJAX_PYTHON)")
    p_bench.add_argument("--cleanrl", default=None, metavar="PATH",
                         help="a CleanRL checkout: adds its ppo.py and dqn.py to the time-to-solve cases "
                              "(default: $RLTORCH_BENCH_CLEANRL)")
    p_bench.add_argument("--profile", default=None, choices=["ppo", "dqn", "bc"],
                         help="instead of the suite: where this algorithm's time to solve goes (collecting, "
                              "learning, evaluating), per seed, in this process (with --train-args and --seeds)")
    p_bench.add_argument(
        "--interleave",
        action="store_true",
        help="time rltorch and its peers in alternating rounds, case group by case group, so load "
        "that comes and goes meanwhile slows both sides of each ratio alike (for shared machines)",
    )
    p_bench.add_argument("--contention", action="store_true",
                         help="also measure every case beside a busy process on one core (started and stopped by "
                              "the bench), and rltorch's cases on one thread under that load: the thread-policy "
                              "table and targets (about three times as long)")
    p_bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Recorded with bench results so a report names the command that made it.
    args.command_line = "rltorch " + shlex.join(sys.argv[1:] if argv is None else argv)
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
