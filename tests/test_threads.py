"""The thread policy (rltorch/_threads.py, csrc/cpu/parallel.h): the kernels give the same bits in every
parallel mode, the adaptive mode measures both modes, and agents run on their configured thread count and
restore the caller's."""

import subprocess
import sys

import pytest
import torch

from rltorch import ops
from rltorch.agents import DQN, PPO, DQNConfig, PPOConfig, RunConfig
from rltorch.agents.config import parse_field
from rltorch.envs import CartPoleVecEnv

MODES = ("adaptive", "static", "serial")


@pytest.fixture
def two_threads():
    """At least two torch threads, so the kernels may fork; the caller's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(2, before))
    yield
    torch.set_num_threads(before)


@pytest.fixture
def restore_mode():
    before = ops.cpu_parallel()
    yield
    ops.set_cpu_parallel(before)


def _cartpole_run(num_envs: int, steps: int) -> list[torch.Tensor]:
    env = CartPoleVecEnv(num_envs, seed=3, autoreset_mode="same_step")
    out = [env.reset()[0]]
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(torch.randint(0, 2, (num_envs,), generator=gen))
        out += [obs, reward, terminated, truncated, info["final_obs"]]
    out.append(env.state_dict()["state"])
    return out


def _kernel_outputs() -> list[torch.Tensor]:
    """Every CPU kernel family on inputs large enough to pass the fork threshold."""
    gen = torch.Generator().manual_seed(1)
    T, N = 64, 4096
    r, v, nv = (torch.randn(T, N, generator=gen) for _ in range(3))
    term = torch.rand(T, N, generator=gen) < 0.02
    done = term | (torch.rand(T, N, generator=gen) < 0.02)
    out = list(ops.gae(r, v, nv, term, done, gamma=0.99, lmbda=0.95))
    out += list(ops.nstep_returns(r, term, done & ~term, n=3, gamma=0.99))
    q = torch.randn(1 << 16, 4, generator=gen)
    out.append(ops.td_target(torch.randn(1 << 16, generator=gen), torch.rand(1 << 16, generator=gen) < 0.1, q,
                             gamma=0.99))
    tree = ops.SumTree(1 << 16)
    tree.update(torch.arange(1 << 16), torch.rand(1 << 16, generator=gen))
    out.append(tree.find(torch.rand(1 << 15, generator=gen) * tree.total()))
    out += list(tree.sample(1 << 15, beta=0.4, generator=torch.Generator().manual_seed(2)))
    out += _cartpole_run(1 << 15, 30)
    return out


def test_kernels_give_the_same_bits_in_every_mode(two_threads, restore_mode):
    results = {}
    for mode in MODES:
        ops.set_cpu_parallel(mode)
        results[mode] = [_kernel_outputs() for _ in range(2)]  # the adaptive mode probes on its first calls
    reference = results["serial"][0]
    for mode, runs in results.items():
        for run in runs:
            assert len(run) == len(reference)
            for got, want in zip(run, reference):
                assert torch.equal(got, want), mode


def test_adaptive_mode_measures_both_modes_and_reports_them(two_threads, restore_mode):
    ops.set_cpu_parallel("adaptive")  # forgets earlier measurements
    assert ops.cpu_parallel_report() == []
    _cartpole_run(1 << 16, 10)  # one try of each mode: parallel's 4 untimed calls + 3 timed ones, serial's 3
    lines = [line for line in ops.cpu_parallel_report() if line.startswith("cartpole_step n>=2^16")]
    assert len(lines) == 1, ops.cpu_parallel_report()
    serial = float(lines[0].split("serial ")[1].split(" ns")[0])
    parallel = float(lines[0].split("parallel ")[1].split(" ns")[0])
    assert serial > 0 and parallel > 0
    assert lines[0].endswith("-> parallel" if parallel < serial else "-> serial")


def test_small_work_never_forks(two_threads, restore_mode):
    ops.set_cpu_parallel("adaptive")
    _cartpole_run(64, 4)
    ops.gae(*(torch.randn(8, 8) for _ in range(3)), torch.zeros(8, 8, dtype=torch.bool),
            torch.zeros(8, 8, dtype=torch.bool), gamma=0.9, lmbda=0.9)
    assert ops.cpu_parallel_report() == []  # below the threshold nothing is timed or learned


def test_one_thread_never_forks(restore_mode):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ops.set_cpu_parallel("static")
        _cartpole_run(1 << 16, 2)
        ops.set_cpu_parallel("adaptive")
        _cartpole_run(1 << 16, 2)
        assert ops.cpu_parallel_report() == []
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("mode", ["threaded", "", "SERIAL", None, 1])
def test_set_cpu_parallel_rejects_unknown_modes(mode, restore_mode):
    before = ops.cpu_parallel()
    with pytest.raises(ValueError, match="`mode`"):
        ops.set_cpu_parallel(mode)
    assert ops.cpu_parallel() == before


def test_environment_variable_sets_the_mode_and_a_bad_one_is_ignored_with_a_warning():
    code = "import rltorch; print(rltorch.ops.cpu_parallel())"
    for value, want in (("serial", "serial"), ("static", "static"), ("bogus", "adaptive")):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**_env(), "RLTORCH_CPU_PARALLEL": value})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == want
        assert ("ignoring RLTORCH_CPU_PARALLEL='bogus'" in proc.stderr) == (value == "bogus")


def _env():
    import os

    return dict(os.environ)


# ---------------------------------------------------------------- agents


def _tiny(config_class, **kw):
    base = dict(seed=0, total_steps=256, eval_interval=10**6, log_interval=64, device="cpu")
    if config_class is DQNConfig:
        base.update(num_envs=4, learning_starts=32, batch_size=16, buffer_size=1000)
    else:
        base.update(num_envs=4, num_steps=16, num_minibatches=2, update_epochs=1)
    base.update(kw)
    return config_class(**base)


@pytest.mark.parametrize("agent_class,config_class", [(DQN, DQNConfig), (PPO, PPOConfig)])
@pytest.mark.parametrize("threads,want", [("auto", 1), (1, 1), (2, 2), (3, 3)])
def test_agents_train_on_their_thread_count_and_restore_the_callers(agent_class, config_class, threads, want):
    before = torch.get_num_threads()
    caller = 5 if want != 5 else 4
    torch.set_num_threads(caller)
    try:
        agent = agent_class(_tiny(config_class, threads=threads))
        seen = []
        agent.train(callback=lambda row: seen.append(torch.get_num_threads()))
        assert seen and set(seen) == {want}
        assert torch.get_num_threads() == caller
        agent.evaluate(4)
        assert torch.get_num_threads() == caller
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("agent_class,config_class", [(DQN, DQNConfig), (PPO, PPOConfig)])
def test_networks_do_not_depend_on_the_callers_thread_count(agent_class, config_class):
    # Orthogonal inits are QRs, whose last bits depend on the thread count: agents build their networks on
    # their own threads (RunConfig.threads), so a seed gives the same networks on any machine, and a
    # population's hundreds of QRs do not fork beside a busy process (3-5 s on 2 threads, 36 ms on one).
    before = torch.get_num_threads()
    built = []
    try:
        for caller in (1, 2, 3):
            torch.set_num_threads(caller)
            agent = agent_class(_tiny(config_class, num_agents=2))
            section = agent.state_dict()[agent_class.__name__.lower()]
            nets = section["net"] if "net" in section else section["q"]
            built.append({name: value.clone() for name, value in nets.items()})
            assert torch.get_num_threads() == caller
            agent.close()
    finally:
        torch.set_num_threads(before)
    assert built[0].keys() == built[1].keys() == built[2].keys() and built[0]
    for name in built[0]:
        assert torch.equal(built[0][name], built[1][name]) and torch.equal(built[0][name], built[2][name]), name


def test_the_callers_threads_come_back_when_training_fails():
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        agent = DQN(_tiny(DQNConfig))

        def fail(row):
            assert torch.get_num_threads() == 1
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            agent.train(callback=fail)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", [0, -1, 1025, "two", "", True, 1.5, None])
def test_threads_field_rejects_bad_values_naming_it(value):
    with pytest.raises(ValueError, match="`threads`"):
        RunConfig(threads=value)


def test_threads_field_reads_auto_and_integers_from_flags_and_files():
    assert parse_field(RunConfig, "threads", "auto") == "auto"
    assert parse_field(RunConfig, "threads", "4") == 4
    assert RunConfig.from_dict({"threads": 2}).threads == 2
    assert RunConfig.from_dict({"threads": "auto"}).to_dict()["threads"] == "auto"
    with pytest.raises(ValueError, match="`threads`"):
        RunConfig.from_dict({"threads": parse_field(RunConfig, "threads", "many")})


def test_cli_threads_flag_is_honoured(tmp_path):
    from rltorch.cli import _config_from_args, build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "ppo", "--threads", "2", "--run-dir", str(tmp_path / "run")])
    assert _config_from_args(args, PPOConfig, "ppo").threads == 2
    help_text = subprocess.run([sys.executable, "-m", "rltorch", "train", "ppo", "--help"], capture_output=True,
                               text=True).stdout
    assert "--threads N|auto" in help_text
    proc = subprocess.run([sys.executable, "-m", "rltorch", "train", "ppo", "--threads", "0",
                           "--run-dir", str(tmp_path / "bad")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "`threads`" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "bad").exists()
