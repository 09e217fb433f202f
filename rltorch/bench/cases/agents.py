"""Time to solve CartPole-v1 with PPO and DQN: rltorch's agents beside stable-baselines3 (rl-zoo3
hyperparameters) and CleanRL.

Solved means a greedy mean return >= 475 over 100 episodes (gymnasium's
threshold), checked periodically; for rltorch the evaluations count in the time.
Every seed trains in a fresh process, so one run's warm caches or threads never
help the next; the time is taken from the start of training, and the time from
process start (interpreter and imports included) is kept in ``extra``.

Peers:

- stable-baselines3, by ``rltorch/bench/sb3_solve.py`` with the same criterion;
  its time spent evaluating is left out (``extra["eval_s"]`` holds it), so its
  training-only time is what rltorch is compared with. It runs in
  ``Settings.python``, else ``$RLTORCH_BENCH_SB3_PYTHON``, else this interpreter:
  a venv of its own (:func:`sb3_venv`) when its pins conflict with ours.
- CleanRL's ``dqn.py`` / ``ppo.py``, unmodified, from the checkout at
  ``Settings.cleanrl`` (``rltorch bench --cleanrl PATH``) or ``$RLTORCH_BENCH_CLEANRL``, in a venv of its
  own made on first use (it pins gymnasium 0.29.1); timed from process start until the mean of its last
  100 training episodes reaches 475, its own criterion.

``rltorch bench --only agents`` runs them (``--seeds``, ``--train-args``, ``--sb3-python``/``--sb3-venv``,
``--cleanrl``); ``rltorch bench --profile ppo`` splits rltorch's time to solve into its parts.
"""

from __future__ import annotations

import functools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from rltorch.bench.core import Case, Settings, SolveRun, Unavailable

SB3_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sb3_solve.py")
SB3_PYTHON_ENV = "RLTORCH_BENCH_SB3_PYTHON"
SB3_REQUIREMENTS = ["torch==2.13.0", "stable-baselines3==2.9.2"]  # torch first: the CPU wheel, then SB3 against it
INSTALL_SB3 = ("pip install 'rltorch[bench]'  (or a venv of its own: rltorch bench --sb3-venv DIR makes one; "
               f"or set {SB3_PYTHON_ENV}=VENV/bin/python)")
CLEANRL_ENV = "RLTORCH_BENCH_CLEANRL"
INSTALL_CLEANRL = (f"git clone https://github.com/vwxyzjn/cleanrl PATH, then rltorch bench --cleanrl PATH (or "
                   f"{CLEANRL_ENV}=PATH; a venv with gymnasium 0.29.1 is made in the checkout on first use)")
SOLVED_AT = 475.0

# Torch threads per peer training process (SB3, CleanRL): their networks are small, and a second
# thread only waits (SB3 advises one). rltorch's agents choose their own (RunConfig.threads="auto")
# and run with the defaults a user gets, except under the bench's "one thread" condition.
SOLVE_THREADS = 1


def _package_root() -> str:
    from rltorch import _version

    return os.path.dirname(os.path.dirname(os.path.abspath(_version.__file__)))


def child_env(threads: int | None, pythonpath: str | None = None, serial_kernels: bool = False) -> dict:
    """This process's environment with the thread count pinned, rltorch's kernels serial when asked, and
    ``pythonpath`` first on the path."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if serial_kernels:
        env["RLTORCH_CPU_PARALLEL"] = "serial"
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    return env


# --- rltorch ------------------------------------------------------------------------------------

def run_rltorch(algorithm: str, seed: int, extra_args: list[str] = (), device: str = "cpu",
                one_thread: bool = False) -> dict:
    """One seed of rltorch's ``algorithm`` (``rltorch train ALGORITHM``'s config from ``extra_args``) in a
    fresh process, by :mod:`rltorch.bench.rltorch_solve`: its result, plus ``from_process_start_s`` (when
    the result line appeared) and ``steps_per_s``. ``one_thread``: one OpenMP thread, ``--threads 1`` and
    serial kernels, instead of rltorch's defaults."""
    threads = ["--threads", "1"] if one_thread else []
    cmd = [sys.executable, "-u", "-m", "rltorch.bench.rltorch_solve", algorithm, "--seed", str(seed),
           "--device", device, *threads, *extra_args]
    with tempfile.TemporaryDirectory(prefix="rltorch-bench-") as tmp:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=child_env(1 if one_thread else None, _package_root(), one_thread))
        result, result_at = None, None
        for line in proc.stdout:
            if line.startswith("RESULT "):
                result_at = time.perf_counter() - start
                result = json.loads(line[len("RESULT "):])
        stderr = proc.stderr.read()
        proc.wait()
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"rltorch {algorithm} seed {seed} failed:\n{stderr[-3000:]}")
    result.update(from_process_start_s=result_at, steps_per_s=result["env_steps"] / result["wall_time_s"])
    return result


def rltorch_solve_run(result: dict) -> SolveRun:
    seconds = result["time_to_solve_s"] if result["solved"] else result["wall_time_s"]
    steps = result["steps_to_solve"] if result["solved"] else result["env_steps"]
    return SolveRun(seconds=seconds, env_steps=steps, solved=result["solved"],
                    extra={"env_steps_per_s": round(result["steps_per_s"]), "updates": result["updates"],
                           "from_process_start_s": round(result["from_process_start_s"], 3),
                           "last_eval_return": result["last_eval_return"], "threads": result["threads"]})


# --- stable-baselines3 --------------------------------------------------------------------------

def sb3_python(settings: Settings | None = None) -> str:
    return (settings.python if settings else None) or os.environ.get(SB3_PYTHON_ENV) or sys.executable


@functools.cache
def sb3_version(python: str) -> str:
    """SB3's version in ``python``; Unavailable when it does not import there."""
    try:
        proc = subprocess.run([python, "-c", "import stable_baselines3; print(stable_baselines3.__version__)"],
                              capture_output=True, text=True)
    except OSError as exc:
        raise Unavailable(f"cannot run {python}: {exc.strerror or exc}", INSTALL_SB3) from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable(f"stable-baselines3 does not import in {python}: {last}", INSTALL_SB3)
    return proc.stdout.strip()


def sb3_venv(venv: str) -> str:
    """The interpreter of a venv holding SB3 at its own pins, made on first use."""
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        print(f"creating {venv} with {' '.join(SB3_REQUIREMENTS)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        for requirement in SB3_REQUIREMENTS:
            subprocess.run([python, "-m", "pip", "install", "-q", requirement], check=True)
    return python


def run_sb3(algorithm: str, python: str, seed: int, threads: int | None, eval_every: int = 2048,
            total_steps: int | None = None, env_id: str = "CartPole-v1") -> dict:
    """One seed of SB3's ``algorithm`` on ``env_id`` (rl-zoo3 hyperparameters) by ``sb3_solve.py`` in ``python``."""
    args = [algorithm, "--seed", str(seed), "--threads", str(threads or 0), "--eval-every", str(eval_every)]
    if total_steps:
        args += ["--total-steps", str(total_steps)]
    if env_id != "CartPole-v1":
        args += ["--env", env_id]
    return run_peer_script(python, SB3_SCRIPT, args, threads, f"SB3 {algorithm} seed {seed}")


def run_peer_script(python: str, script: str, args: list[str], threads: int | None, what: str) -> dict:
    """``script`` (a file of rltorch/bench that imports nothing from rltorch) run in ``python`` with ``args``
    in a scratch directory: its ``RESULT {json}`` line, plus ``process_s``."""
    # run_path, not the script's path on the command line: that would put rltorch/bench first on sys.path.
    cmd = [python, "-u", "-c", "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], "
           "run_name='__main__')", script, *args]
    with tempfile.TemporaryDirectory(prefix="rltorch-bench-peer-") as tmp:
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=child_env(threads))
        process_s = time.perf_counter() - start
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT "):]), process_s=process_s)
    raise RuntimeError(f"{what} failed:\n{proc.stderr[-3000:]}")


def sb3_solve_run(result: dict) -> SolveRun:
    if result["solved"]:
        seconds, steps = result["training_only_s"], result["steps_to_solve"]
    else:
        seconds, steps = result["wall_time_s"] - result["eval_s"], result["env_steps"]
    return SolveRun(seconds=seconds, env_steps=steps, solved=result["solved"],
                    extra={"clock": "training only (its evaluations left out)",
                           "env_steps_per_s": round(result["steps_per_s"]), "eval_s": round(result["eval_s"], 3),
                           "with_eval_s": result["time_to_solve_s"] or result["wall_time_s"],
                           "from_process_start_s": result["from_process_start_s"],
                           "process_s": round(result["process_s"], 3), "last_eval_return": result["last_eval_return"]})


# --- CleanRL ------------------------------------------------------------------------------------

def cleanrl_checkout(settings: Settings | None = None) -> str:
    """The CleanRL checkout named by ``settings.cleanrl`` or ``$RLTORCH_BENCH_CLEANRL``; Unavailable without one."""
    path = (settings.cleanrl if settings else None) or os.environ.get(CLEANRL_ENV)
    if not path:
        raise Unavailable(f"no CleanRL checkout: pass --cleanrl PATH or set {CLEANRL_ENV}", INSTALL_CLEANRL)
    path = os.path.expanduser(path)
    if not os.path.isfile(os.path.join(path, "cleanrl", "dqn.py")):
        raise Unavailable(f"{path} is not a CleanRL checkout (no cleanrl/dqn.py)", INSTALL_CLEANRL)
    return path


def cleanrl_venv(path: str) -> str:
    venv = os.path.join(path, ".rltorch-bench-venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        # CleanRL pins gymnasium 0.29.1, which needs NumPy 1.x.
        subprocess.run([python, "-m", "pip", "install", "-q", "torch", "gymnasium==0.29.1", "numpy<2", "tyro",
                        "tensorboard"], check=True)
    return python


def run_cleanrl(path: str, seed: int, script: str = "dqn.py", threads: int | None = None,
                extra_args: list[str] = ()) -> dict:
    """One seed of CleanRL's ``cleanrl/SCRIPT`` from the checkout at ``path``, timed from process start
    until the rolling mean of its last 100 training episodes first reaches 475 (its own criterion)."""
    python = cleanrl_venv(path)
    start = time.perf_counter()
    proc = subprocess.Popen([python, "-u", os.path.join(path, "cleanrl", script), "--seed", str(seed),
                             "--env-id", "CartPole-v1", "--no-track", "--no-capture-video", *extra_args], cwd=path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=child_env(threads, path))  # cleanrl_utils lives at the root
    returns: list[float] = []
    solved_at, last_step = None, 0
    for line in proc.stdout:
        match = re.search(r"global_step=(\d+), episodic_return=\[?([\d.]+)", line)
        if not match:
            continue
        last_step = int(match.group(1))
        returns.append(float(match.group(2)))
        if len(returns) >= 100 and statistics.fmean(returns[-100:]) >= SOLVED_AT:
            solved_at = (time.perf_counter() - start, last_step)
            proc.kill()
            break
    proc.wait()
    elapsed = time.perf_counter() - start
    if solved_at is None and proc.returncode != 0:
        raise RuntimeError(f"CleanRL {script} seed {seed} exited with {proc.returncode}")
    return {"solved": solved_at is not None, "time_to_solve_s": solved_at[0] if solved_at else None,
            "steps_to_solve": solved_at[1] if solved_at else None, "process_s": elapsed, "env_steps": last_step}


def cleanrl_solve_run(result: dict) -> SolveRun:
    solved = result["solved"]
    return SolveRun(seconds=result["time_to_solve_s"] if solved else result["process_s"],
                    env_steps=result["steps_to_solve"] if solved else result["env_steps"], solved=solved,
                    extra={"clock": "from process start; solved = mean of its last 100 training episodes >= 475"})


# --- populations ---------------------------------------------------------------------------------

POPULATION_LAYERS = (64, 64)  # PPO's tanh networks


def _stacked_update_case(impl: str, agents: int, rows: int) -> Case:
    """Forward and backward of K agents' PPO policy and value MLPs on ``rows`` observations each: rltorch's
    stacked parameters (one ``baddbmm`` per layer) beside ``torch.func.functional_call`` under ``vmap`` over
    stacked state dicts, the other way to batch K networks in PyTorch. Both run on the intra-op threads a
    population trains with (``RunConfig.threads='auto'``), as PPO runs its update."""

    def setup(settings: Settings):
        import copy

        from torch.func import functional_call, stack_module_state, vmap

        from rltorch._threads import AUTO, agent_threads, torch_threads
        from rltorch.nn import mlp
        from rltorch.nn.stacked import StackedMLP

        device = settings.torch_device
        threads = agent_threads(AUTO)
        obs = torch.randn(agents, rows, 4, device=device)
        if impl == "rltorch":
            actor = StackedMLP(agents, 4, POPULATION_LAYERS, 2, activation="tanh").to(device)
            critic = StackedMLP(agents, 4, POPULATION_LAYERS, 1, activation="tanh").to(device)

            def step():
                (actor(obs).sum() + critic(obs).sum()).backward()
        else:
            nets = []
            for out in (2, 1):
                singles = [mlp(4, POPULATION_LAYERS, out, activation="tanh").to(device) for _ in range(agents)]
                params, buffers = stack_module_state(singles)
                base = copy.deepcopy(singles[0]).to("meta")
                nets.append((vmap(lambda p, b, x, base=base: functional_call(base, (p, b), (x,))), params, buffers))

            def step():
                sum(f(p, b, obs).sum() for f, p, b in nets).backward()

        def update():
            with torch_threads(threads):
                step()

        return update

    return Case("agents", "stacked_mlp_update", impl, setup, size=rows, size_label="rows per agent",
                params=(("agents", agents),), items=agents * rows, item="row")


REJAX_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "rejax_solve.py")
REJAX_PYTHON_ENV = "RLTORCH_BENCH_REJAX_PYTHON"
REJAX_REQUIREMENTS = ["rejax==0.1.3", "gymnax==0.0.9"]  # rejax 0.1.3 fails on gymnax 1.x (six values from step)
INSTALL_REJAX = (f"rltorch bench --rejax-venv DIR (makes a venv with {' '.join(REJAX_REQUIREMENTS)}), or "
                 f"set {REJAX_PYTHON_ENV}=VENV/bin/python for a venv that has them")


def rejax_python(settings: Settings | None = None) -> str:
    """The interpreter of rejax's venv (``settings.rejax_python`` or ``$RLTORCH_BENCH_REJAX_PYTHON``);
    Unavailable when there is none or rejax does not import there."""
    python = (settings.rejax_python if settings else None) or os.environ.get(REJAX_PYTHON_ENV)
    if not python:
        raise Unavailable(f"no rejax venv: pass --rejax-venv DIR or set {REJAX_PYTHON_ENV}", INSTALL_REJAX)
    try:
        proc = subprocess.run([python, "-c", "import rejax, gymnax"], capture_output=True, text=True)
    except OSError as exc:
        raise Unavailable(f"cannot run {python}: {exc.strerror or exc}", INSTALL_REJAX) from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable(f"rejax does not import in {python}: {last}", INSTALL_REJAX)
    return python


def rejax_venv(venv: str) -> str:
    """The interpreter of a venv holding rejax at its pins, made on first use (JAX never enters rltorch's)."""
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        print(f"creating {venv} with {' '.join(REJAX_REQUIREMENTS)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *REJAX_REQUIREMENTS], check=True)
    return python


def run_rejax(python: str, seeds: int, seed: int, total_steps: int | None = None, eval_every: int = 2000) -> dict:
    """rejax's PPO vmapped over ``seeds`` seeds by ``rejax_solve.py`` in ``python`` (one OpenMP thread, as the
    other peers; XLA's CPU client uses about one core here anyway)."""
    args = ["--seeds", str(seeds), "--seed", str(seed), "--eval-every", str(eval_every)]
    if total_steps:
        args += ["--total-steps", str(total_steps)]
    return run_peer_script(python, REJAX_SCRIPT, args, SOLVE_THREADS, f"rejax seed {seed}")


def rejax_solve_run(result: dict) -> SolveRun:
    """Every seed solved means every seed reached 475 at some greedy evaluation; rejax trains its whole budget
    (one compiled loop), so its time is the whole run, its JIT compile included (``run_s`` leaves it out)."""
    seeds = result["seeds"]
    first = [s for s in result["first_solved_step"] if s is not None]
    return SolveRun(seconds=result["with_compile_s"], env_steps=result["env_steps_per_seed"],
                    solved=result["solved_at_some_point"] == seeds,
                    extra={"clock": "whole run incl. JIT compile (rejax trains its full budget)",
                           "run_s": round(result["run_s"], 3), "compile_s": round(result["compile_s"], 3),
                           "solved_at_some_point": f"{result['solved_at_some_point']}/{seeds}",
                           "solved_at_end": f"{result['solved_at_end']}/{seeds}",
                           "median_first_solved_step": statistics.median(first) if first else None,
                           "versions": result["versions"]})


def run_rltorch_population(algorithm: str, agents: int, seed: int, extra_args: list[str] = (),
                           device: str = "cpu") -> dict:
    """``agents`` agents of rltorch's ``algorithm`` trained at once (``--num-agents``) in a fresh process."""
    return run_rltorch(algorithm, seed, ["--num-agents", str(agents), *extra_args], device)


def population_solve_run(result: dict) -> SolveRun:
    """Seconds until the last agent solved (every agent's evaluations included), or until the population gave
    up; env steps per agent until the last one solved."""
    agents = result["agents"]
    solved = [a for a in agents if a["solved"]]
    steps = [a["steps_to_solve"] for a in solved]
    return SolveRun(seconds=result["time_to_solve_s"] if result["solved"] else result["wall_time_s"],
                    env_steps=result["steps_to_solve"] if result["solved"] else result["env_steps"],
                    solved=result["solved"],
                    extra={"agents": len(agents), "solved_agents": len(solved),
                           "median_steps_to_solve": statistics.median(steps) if steps else None,
                           "total_env_steps": sum(a["env_steps"] for a in agents),
                           "from_process_start_s": round(result["from_process_start_s"], 3),
                           "threads": result["threads"]})


#: The population cases' hyperparameters: each agent on 8 envs x 64 steps, one epoch of 8 minibatches
#: (64 transitions each) at a higher learning rate. Fewer gradient rows per env step than the single-agent
#: defaults (whose 2 x 1024-row minibatches suit one agent's fixed costs), and a population pays per row.
POPULATION_PPO_ARGS = ["--num-envs", "8", "--num-steps", "64", "--update-epochs", "1", "--num-minibatches", "8",
                       "--learning-rate", "2e-3"]


def _population_case(group: str, algorithm: str, agents: int, args: list[str], tiny_args: list[str]) -> Case:
    def setup(settings: Settings):
        extra_args = [*args, *settings.train_args, *(tiny_args if settings.mode == "tiny" else [])]
        return lambda seed: population_solve_run(run_rltorch_population(algorithm, agents, seed, extra_args,
                                                                        settings.device))

    return Case("agents", group, "rltorch", setup, kind="solve", item="env step", params=(("agents", agents),))


def _rejax_case(group: str, agents: int) -> Case:
    def setup(settings: Settings):
        python = rejax_python(settings)
        return lambda seed: rejax_solve_run(run_rejax(python, agents, seed))

    return Case("agents", group, "rejax PPO (jit+vmap)", setup, kind="solve", item="env step",
                params=(("agents", agents),), devices=("cpu",), max_seeds=1)


# --- cases --------------------------------------------------------------------------------------

def _rltorch_case(group: str, algorithm: str, tiny_args: list[str], impl: str = "rltorch",
                  args: list[str] = ()) -> Case:
    def setup(settings: Settings):
        extra_args = [*args, *settings.train_args, *(tiny_args if settings.mode == "tiny" else [])]
        return lambda seed: rltorch_solve_run(run_rltorch(algorithm, seed, extra_args, settings.device,
                                                          settings.one_thread))

    return Case("agents", group, impl, setup, kind="solve", item="env step")


def _sb3_case(group: str, impl: str, algorithm: str, threads: int | None, total_steps) -> Case:
    def setup(settings: Settings):
        python = sb3_python(settings)
        version = sb3_version(python)
        steps = total_steps(settings)
        eval_every = settings.pick(512, 2048, 2048)

        def run_seed(seed: int) -> SolveRun:
            run = sb3_solve_run(run_sb3(algorithm, python, seed, threads, eval_every, steps))
            run.extra.update(sb3=version)
            return run

        return run_seed

    return Case("agents", group, impl, setup, kind="solve", item="env step", devices=("cpu",))


def _cleanrl_case(group: str, impl: str, script: str, threads: int | None, tiny_args: list[str]) -> Case:
    def setup(settings: Settings):
        path = cleanrl_checkout(settings)
        cleanrl_venv(path)  # made here, untimed, on first use
        extra_args = tiny_args if settings.mode == "tiny" else []
        return lambda seed: cleanrl_solve_run(run_cleanrl(path, seed, script, threads, extra_args))

    return Case("agents", group, impl, setup, kind="solve", item="env step", devices=("cpu",))


# --- the classic-control suite (issue #22) ------------------------------------------------------

#: rl-zoo3's DQN settings for MountainCar-v0 (hyperparams/dqn.yml) in rltorch's terms: one env, 8 updates
#: after every 16 env steps (its train_freq 16 and gradient_steps 8: 0.5 updates per env step, run together,
#: so epsilon-greedy acts on one network for 16 steps; 16 envs stepped once, or one update every 2 steps,
#: never reached the flag in 1.2e5 steps), its target_update_interval of 600 env steps is 300 updates, its
#: exploration_fraction 0.2 of 1.2e5 steps is eps_decay_steps 24,000; SB3's DQN is not Double DQN.
MOUNTAIN_CAR_DQN_ZOO = ["--num-envs", "1", "--train-freq", "16", "--updates-per-step", "0.5", "--batch-size", "128",
                        "--buffer-size", "10000", "--learning-starts", "1000", "--gamma", "0.98",
                        "--target-update", "hard", "--target-update-interval", "300", "--learning-rate", "4e-3",
                        "--hidden-sizes", "256,256", "--eps-start", "1", "--eps-end", "0.07",
                        "--eps-decay-steps", "24000", "--no-double-dqn"]

#: (algorithm, env id) -> rltorch's flags and step cap. Pendulum's follow rl-zoo3's PPO settings where
#: they share a name (gamma 0.9, GAE lambda 0.95, 10 epochs, the 1e5-step budget over which the learning
#: rate and clip range anneal) with 16 envs x 128 steps per rollout (the zoo: 4 x 1024) in minibatches of
#: 128 (the zoo: 64) and a learning rate of 2e-3 (the zoo: 1e-3, constant). Annealed over 3e5 steps the
#: policy first came within a few points of -200 after 40k-50k steps and then wandered around it for
#: another 50k-100k; annealed over 1e5 it settles there. Acrobot runs rltorch's PPO defaults; MountainCar's
#: DQN the zoo's settings above. SB3 runs the zoo's own settings (rltorch/bench/sb3_solve.py).
CLASSIC_SOLVE = {
    ("ppo", "Acrobot-v1"): (["--eval-interval", "4096"], 200_000),
    ("ppo", "Pendulum-v1"): (["--num-envs", "16", "--num-steps", "128", "--update-epochs", "10",
                              "--num-minibatches", "16", "--gamma", "0.9", "--gae-lambda", "0.95",
                              "--learning-rate", "2e-3", "--eval-interval", "2048"], 100_000),
    ("dqn", "MountainCar-v0"): ([*MOUNTAIN_CAR_DQN_ZOO, "--eval-interval", "10000"], 120_000),
}
#: SB3's evaluation interval per env: an evaluation of 100 episodes on gymnasium's Python envs
#: takes seconds (Acrobot: 100 x up to 500 steps), left out of SB3's training-only time. Pendulum's
#: matches rltorch's (2048: a quarter of a second per evaluation), so both sides' steps to solve are
#: counted on the same grid.
CLASSIC_SB3_EVAL_EVERY = {"Acrobot-v1": 16_384, "Pendulum-v1": 2048, "MountainCar-v0": 10_000}


def _classic_case(algorithm: str, env_id: str, impl: str) -> Case:
    """Time to solve ``env_id`` (greedy mean of 100 episodes >= its solve threshold) with rltorch's
    ``algorithm`` on rltorch's kernels, or with SB3 (``impl`` "SB3 PPO"/"SB3 DQN") on gymnasium's envs."""
    args, cap = CLASSIC_SOLVE[(algorithm, env_id)]

    def setup(settings: Settings):
        if impl == "rltorch":
            steps = settings.pick(2048, cap, cap)
            extra = ["--env", env_id, *args, "--total-steps", str(steps), *settings.train_args]
            return lambda seed: rltorch_solve_run(run_rltorch(algorithm, seed, extra, settings.device,
                                                              settings.one_thread))
        python = sb3_python(settings)
        version = sb3_version(python)

        def run_seed(seed: int) -> SolveRun:
            run = sb3_solve_run(run_sb3(algorithm, python, seed, SOLVE_THREADS, CLASSIC_SB3_EVAL_EVERY[env_id],
                                        env_id=env_id))
            run.extra.update(sb3=version)
            return run

        return run_seed

    return Case("agents", f"{algorithm}_time_to_solve", impl, setup, params=(("env", env_id),), kind="solve",
                item="env step", devices=("cpu", "cuda") if impl == "rltorch" else ("cpu",))


def classic_cases(settings: Settings) -> list[Case]:
    """rltorch's PPO on Acrobot-v1 and Pendulum-v1 and its DQN on MountainCar-v0 beside SB3 with rl-zoo3's
    settings. Each seed trains for seconds to minutes, so only full runs time them (tiny runs check rltorch's
    set-up, unsolved)."""
    if settings.mode == "quick":
        return []
    found = []
    for algorithm, env_id in CLASSIC_SOLVE:
        found.append(_classic_case(algorithm, env_id, "rltorch"))
        if settings.mode == "full":
            found.append(_classic_case(algorithm, env_id, f"SB3 {algorithm.upper()}"))
    return found


def cases(settings: Settings) -> list[Case]:
    # Tiny runs (the test suite's) stop after a few seconds, unsolved, and say so. SB3's DQN
    # (a 256x256 network, 0.5 updates per env step) and CleanRL (its criterion needs 200k-300k
    # steps) take 30-60 s per seed: too long for --quick, so only tiny and full runs have them.
    slow_peers = settings.mode != "quick"
    found = [
        _rltorch_case("ppo_time_to_solve", "ppo", ["--total-steps", "4096"]),
        _sb3_case("ppo_time_to_solve", "SB3 PPO", "ppo", SOLVE_THREADS, lambda s: s.pick(1024, None, None)),
    ]
    if slow_peers:
        found.append(_cleanrl_case("ppo_time_to_solve", "CleanRL PPO", "ppo.py", SOLVE_THREADS,
                                   ["--total-timesteps", "2048"]))
    found.append(_rltorch_case("dqn_time_to_solve", "dqn", ["--total-steps", "2000", "--eval-interval", "1000"]))
    if slow_peers:
        found.append(_sb3_case("dqn_time_to_solve", "SB3 DQN", "dqn", SOLVE_THREADS,
                               lambda s: s.pick(1280, None, 100_000)))
        found.append(_cleanrl_case("dqn_time_to_solve", "CleanRL DQN", "dqn.py", SOLVE_THREADS,
                                   ["--total-timesteps", "2000", "--learning-starts", "1000"]))
    agents = settings.pick(4, 64, 64)
    found.append(_population_case("ppo_population", "ppo", agents, POPULATION_PPO_ARGS, ["--total-steps", "2048"]))
    if settings.mode == "full":
        # rejax compiles for about 30 s and trains its whole budget: minutes per seed.
        found.append(_rejax_case("ppo_population", agents))
    for rows in settings.pick((16,), (128,), (64, 128, 1024)):
        found += [_stacked_update_case("rltorch", 64, rows), _stacked_update_case("torch.func vmap", 64, rows)]
    if settings.mode == "full":
        # Ape-X's learner plus 2 actor processes on Ray (a local cluster per seed, its start-up
        # counted in the time from process start, not in the time to solve).
        found.append(_rltorch_case("dqn_time_to_solve", "apex", [], impl="rltorch Ape-X (2 actors)",
                                   args=["--actors", "2"]))
    return found + classic_cases(settings)
