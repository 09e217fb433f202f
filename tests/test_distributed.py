"""Ape-X on Ray (rltorch.distributed): the actor's transitions and priorities, the
config's checks, learning with 2 actors on a local cluster, an actor killed
mid-run, the buffer's invariants afterwards, checkpoint resume, and clean
shutdown (no Ray process left, also after Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict

import pytest
import torch

from rltorch import ops
from rltorch.agents.base import EnvDataError
from rltorch.distributed import Apex, ApexActor, ApexConfig, actor_epsilon
from rltorch.envs import CartPoleVecEnv, SimulatedLatency

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RAY_PROCESSES = ("raylet", "gcs_server", "ray::")


def ray_processes() -> list[str]:
    """Ray processes still running. A zombie (state Z: exited, its parent has not reaped it yet; the
    earlier test's gcs_server did that) holds nothing and is not one."""
    out = subprocess.run(["ps", "-eo", "pid,stat,args"], capture_output=True, text=True).stdout.splitlines()[1:]
    running = [line.split(None, 2) for line in out if len(line.split(None, 2)) == 3]
    return [f"{pid} {args}" for pid, stat, args in running
            if not stat.startswith("Z") and any(name in args for name in RAY_PROCESSES) and "ps -eo" not in args]


@pytest.fixture
def no_ray_left():
    assert not ray_processes(), "Ray processes from before this test"
    yield
    deadline = time.time() + 60  # workers exit shortly after the cluster stops (longer on a loaded machine)
    while ray_processes() and time.time() < deadline:
        time.sleep(0.2)
    assert not ray_processes()


def small_config(**overrides) -> ApexConfig:
    # Two light actors and a learner that evaluates rarely: the test is about the plumbing and
    # whether learning happens, on a loaded 2-core machine.
    values = dict(actors=2, num_envs=8, actor_steps=16, total_steps=40_000, eval_interval=10**9, log_interval=2_000,
                  seed=3, object_store_mb=100, actor_num_cpus=0.5)
    values.update(overrides)
    return ApexConfig(**values)


def check_buffer_invariants(buffer) -> None:
    tree = buffer.tree
    leaves = tree.priorities()
    stored = len(buffer)
    assert stored == min(buffer.added, buffer.capacity)
    # Every stored transition has a positive priority and no empty slot has one.
    assert bool((leaves[:stored] > 0).all()) and bool((leaves[stored:] == 0).all())
    torch.testing.assert_close(tree.total(), leaves.sum().reshape(tree.total().shape), rtol=1e-9, atol=0)
    assert bool((buffer.discount[:stored] > 0).all()) and bool((buffer.discount[:stored] <= 1).all())
    # The buffer's own checks (ids follow the count, the tree matches its leaves) accept its state.
    buffer.load_state_dict(buffer.state_dict())


def test_apex_epsilons_follow_the_paper():
    assert actor_epsilon(0, 1) == 0.4
    eps = [actor_epsilon(i, 8) for i in range(8)]
    assert eps[0] == pytest.approx(0.4) and eps[-1] == pytest.approx(0.4 ** 8)
    assert all(a > b for a, b in zip(eps, eps[1:]))


@pytest.mark.parametrize("field,value,message", [
    ("actors", 0, "actors"), ("max_inflight", 0, "max_inflight"), ("prioritized", False, "prioritized"),
    ("actor_eps_base", 0.0, "actor_eps_base"), ("object_store_mb", 10, "object_store_mb"),
    ("step_latency_ms", -1.0, "step_latency_ms"), ("actor_num_cpus", -0.5, "actor_num_cpus"),
    ("train_freq", 2, "train_freq")])
def test_config_rejects_bad_values_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        ApexConfig(**{field: value}).validate()


def test_import_rltorch_and_its_distributed_package_never_import_ray():
    code = ("import sys, rltorch, rltorch.agents, rltorch.distributed, rltorch.cli; rltorch.cli.build_parser(); "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_actor_sends_nstep_transitions_with_their_td_error_as_priority():
    cfg = small_config(actor_steps=40)
    actor = ApexActor(asdict(cfg), index=0, num_actors=2)
    batch = actor.collect(0, None)
    assert batch["env_steps"] == 40 * 8
    count = batch["obs"].shape[0]
    # Each step completes at most one transition per env, plus the flush of windows at episode ends.
    assert 40 * 8 - 8 * cfg.n_step <= count <= 40 * 8
    gamma = cfg.gamma
    powers = torch.tensor([gamma ** k for k in (1, 2, 3)])
    assert bool(torch.isclose(batch["discount"].unsqueeze(1), powers).any(dim=1).all())
    with torch.no_grad():
        next_q = actor.q(batch["next_obs"])
        target = ops.td_target(batch["reward"], batch["terminated"], next_q, batch["discount"], next_q_online=next_q)
        expected = (actor.q(batch["obs"]).gather(1, batch["action"].unsqueeze(1)).squeeze(1) - target).abs()
    torch.testing.assert_close(batch["priority"], expected)
    assert batch["episode_returns"].numel() == batch["episode_lengths"].numel()
    torch.testing.assert_close(batch["episode_returns"], batch["episode_lengths"].float())  # CartPole: 1 per step
    # New weights are taken once per version.
    weights = {k: torch.zeros_like(v) for k, v in actor.q.state_dict().items()}
    actor.collect(1, weights)
    assert actor.weights_version == 1 and all(float(p.abs().sum()) == 0 for p in actor.q.parameters())


def test_simulated_latency_waits_per_step_and_checks_its_argument():
    with pytest.raises(ValueError, match="seconds"):
        SimulatedLatency(CartPoleVecEnv(2), seconds=-1)
    with pytest.raises(ValueError, match="seconds"):
        SimulatedLatency(CartPoleVecEnv(2), seconds=float("nan"))
    env = SimulatedLatency(CartPoleVecEnv(3), seconds=0.01)
    env.reset(seed=0)
    start = time.perf_counter()
    env.step(torch.zeros(3, dtype=torch.long))
    assert time.perf_counter() - start >= 0.03  # its 3 envs one after another


def refuse_batches_with_nan_or_inf(learner: Apex) -> None:
    """An actor batch with a NaN or inf in its data is refused before any of it reaches the learner's buffer
    (actors step their envs outside the frame's watch). Run on a live learner: building one starts a cluster."""
    batch = ApexActor(asdict(learner.config), index=1, num_actors=2).collect(0, None)
    added, steps = learner.buffer.added, learner.env_steps
    for key in ("obs", "reward", "next_obs"):
        for bad in (float("nan"), float("inf")):
            broken = {**batch, key: batch[key].clone()}
            broken[key].view(-1)[3] = bad
            message = r"actor 1's env 'CartPole-v1' returned a non-finite (observation|reward)"
            with pytest.raises(EnvDataError, match=message):
                learner._insert(broken, actor=1)
            assert (learner.buffer.added, learner.env_steps) == (added, steps)


def test_two_actors_learn_survive_a_killed_actor_and_resume_from_a_checkpoint(tmp_path, no_ray_left):
    import ray

    agent = Apex(small_config(total_steps=60_000))
    try:
        first = agent.train(stop_at=8_000)
        assert first.env_steps >= 8_000 and agent.updates > 0
        victim = agent.actors[0]
        old_pid = ray.get(victim.pid.remote())
        os.kill(old_pid, signal.SIGKILL)  # a crash, not a polite stop
        result = agent.train(stop_at=40_000)
        assert agent.actor_restarts >= 1
        new_pid = ray.get(victim.pid.remote(), timeout=60)
        assert new_pid != old_pid  # the same handle answers from a restarted process
        returns = [row["train_return"] for row in first.history + result.history if row["episodes"] > 0]
        # Random play scores about 22 per episode.
        assert max(returns[-5:]) > 100, returns
        check_buffer_invariants(agent.buffer)
        refuse_batches_with_nan_or_inf(agent)
        path = tmp_path / "apex.pt"
        agent.save(path, include_buffer=True)
        saved_steps, saved_updates, saved_len = agent.env_steps, agent.updates, len(agent.buffer)
        saved_q = {k: v.clone() for k, v in agent.q.state_dict().items()}
    finally:
        agent.close()
    assert not ray.is_initialized()

    resumed = Apex.load(path)
    try:
        assert (resumed.env_steps, resumed.updates) == (saved_steps, saved_updates)
        assert all(torch.equal(saved_q[k], v) for k, v in resumed.q.state_dict().items())
        assert len(resumed.buffer) == saved_len and saved_len > 0
        check_buffer_invariants(resumed.buffer)
        more = resumed.train(stop_at=saved_steps + 2_000)
        assert more.env_steps >= saved_steps + 2_000 and resumed.updates > saved_updates
    finally:
        resumed.close()


def test_ctrl_c_stops_the_cli_run_and_leaves_no_ray_process(tmp_path, no_ray_left):
    cmd = [sys.executable, "-m", "rltorch", "train", "apex", "--actors", "2", "--actor-num-cpus", "0.5",
           "--object-store-mb", "100", "--no-stop", "--total-steps", "10000000", "--quiet",
           "--run-dir", str(tmp_path / "run"), "--checkpoint-every", "4000"]
    # As in a terminal: SIGINT at its default, which Python turns into KeyboardInterrupt. A pytest-xdist worker,
    # or a shell running `make test` in the background, ignores SIGINT, and children inherit an ignored signal.
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        checkpoint = tmp_path / "run" / "checkpoint.pt"
        deadline = time.time() + 120
        while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert checkpoint.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint in 120 s"
        proc.send_signal(signal.SIGINT)
        # A bound, not a timing: stopping the cluster took over a minute on a 2-core machine at load 10.
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted at" in err and "last checkpoint" in err


def test_the_scaling_benchmark_cases_run_and_stop_their_clusters(no_ray_left):
    from rltorch.bench import runner
    from rltorch.bench.cases import collect
    from rltorch.bench.core import Settings

    settings = Settings.for_mode("tiny")
    cases = collect(["distributed"], settings)
    assert {c.impl for c in cases} == {"rltorch", "rltorch + learning", "one process"}
    run = runner.run(cases, settings, progress=False)
    assert [r["status"] for r in run["results"]] == ["ok"] * len(cases), [r["reason"] for r in run["results"]]
    steps_per_s = {r["impl"]: r["items"] / sorted(r["samples"])[len(r["samples"]) // 2] for r in run["results"]}
    # 8 envs at 1 ms each: one process cannot pass 1000 env steps/s, whatever the machine.
    assert steps_per_s["one process"] < 1000
