"""Bellman targets, n-step returns and GAE: rltorch's ops against the eager
expressions users write today, the same expressions under ``torch.compile``,
and TorchRL's functional GAE."""

from __future__ import annotations

import functools

import torch

from rltorch.bench.core import Case, Settings, Unavailable

GAMMA, LAMBDA = 0.99, 0.95
TIME_STEPS = 128
INSTALL_TORCHRL = "pip install 'rltorch[bench]'  (or: pip install torchrl tensordict)"


def td_inputs(batch: int, device: torch.device, num_actions: int = 2):
    g = torch.Generator().manual_seed(0)
    reward = torch.rand(batch, generator=g)
    terminated = torch.rand(batch, generator=g) < 0.05
    next_q = torch.randn(batch, num_actions, generator=g)
    online = torch.randn(batch, num_actions, generator=g)
    return [t.to(device) for t in (reward, terminated, next_q, online)]


def dqn_target_eager(reward, done_float, next_q):
    # CleanRL's dqn.py: td_target = r + gamma * target_max * (1 - done)
    return reward + GAMMA * next_q.max(dim=1).values * (1 - done_float)


def double_dqn_target_eager(reward, done_float, next_q, online):
    best = online.argmax(dim=1, keepdim=True)
    return reward + GAMMA * next_q.gather(1, best).squeeze(1) * (1 - done_float)


def rollout_inputs(T: int, N: int, device: torch.device):
    g = torch.Generator().manual_seed(1)
    reward = torch.randn(T, N, generator=g)
    value = torch.randn(T, N, generator=g)
    next_value = torch.randn(T, N, generator=g)
    terminated = torch.rand(T, N, generator=g) < 0.02
    done = terminated | (torch.rand(T, N, generator=g) < 0.01)
    return [t.to(device) for t in (reward, value, next_value, terminated, done)]


def gae_loop(reward, value, next_value, terminated, done):
    """The reverse loop over time users write (CleanRL's PPO, with terminated and done kept apart)."""
    advantage = torch.empty_like(reward)
    last = torch.zeros_like(reward[0])
    not_terminated = 1.0 - terminated.float()
    not_done = 1.0 - done.float()
    for t in range(reward.shape[0] - 1, -1, -1):
        delta = reward[t] + GAMMA * next_value[t] * not_terminated[t] - value[t]
        last = delta + GAMMA * LAMBDA * not_done[t] * last
        advantage[t] = last
    return advantage, advantage + value


@functools.cache
def compiled(fn):
    return torch.compile(fn, dynamic=False)


def warm(call, times: int = 3):
    """Runs ``call`` a few times (compiling the compiled variants) and returns it."""
    for _ in range(times):
        call()
    return call


def _td_case(group: str, impl: str, batch: int, double: bool) -> Case:
    def setup(settings: Settings):
        from rltorch import ops

        reward, terminated, next_q, online = td_inputs(batch, settings.torch_device)
        if impl == "rltorch":
            if double:
                return warm(lambda: ops.double_dqn_target(reward, terminated, next_q, online, GAMMA))
            return warm(lambda: ops.td_target(reward, terminated, next_q, GAMMA))
        fn = double_dqn_target_eager if double else dqn_target_eager
        if impl == "torch.compile":
            fn = compiled(fn)
        done_float = terminated.float()
        if double:
            return warm(lambda: fn(reward, done_float, next_q, online))
        return warm(lambda: fn(reward, done_float, next_q))

    return Case("ops", group, impl, setup, size=batch, size_label="B", items=batch, item="target")


def _gae_case(impl: str, num_envs: int) -> Case:
    def setup(settings: Settings):
        from rltorch import ops

        args = rollout_inputs(TIME_STEPS, num_envs, settings.torch_device)
        if impl == "rltorch":
            return warm(lambda: ops.gae(*args, GAMMA, LAMBDA))
        if impl == "eager loop":
            return warm(lambda: gae_loop(*args))
        if impl == "compiled loop":
            fn = compiled(gae_loop)
            return warm(lambda: fn(*args))
        try:
            from torchrl.objectives.value.functional import vec_generalized_advantage_estimate
        except Exception as exc:  # not installed, or its extension does not load against this torch
            raise Unavailable(f"TorchRL not importable: {type(exc).__name__}: {exc}", INSTALL_TORCHRL) from None
        # TorchRL is batch-first, [*B, T, 1].
        reward, value, next_value, terminated, done = (x.t().unsqueeze(-1).contiguous() for x in args)
        return warm(lambda: vec_generalized_advantage_estimate(GAMMA, LAMBDA, value, next_value, reward, done,
                                                               terminated))

    return Case("ops", "gae", impl, setup, size=num_envs, size_label="N", params=(("T", TIME_STEPS),),
                items=TIME_STEPS * num_envs, item="transition")


def _nstep_case(impl: str, num_envs: int, n: int = 3) -> Case:
    def setup(settings: Settings):
        from rltorch import _reference, ops

        reward, _, _, terminated, done = rollout_inputs(TIME_STEPS, num_envs, settings.torch_device)
        truncated = done & ~terminated
        # The reference's definition is the loop over time a replay writer otherwise runs.
        fn = ops.nstep_returns if impl == "rltorch" else _reference.nstep_returns
        return warm(lambda: fn(reward, terminated, truncated, n, GAMMA))

    return Case("ops", "nstep_returns", impl, setup, size=num_envs, size_label="N",
                params=(("T", TIME_STEPS), ("n", n)), items=TIME_STEPS * num_envs, item="transition")


def cases(settings: Settings) -> list[Case]:
    batches = settings.pick(tiny=[256], quick=[256, 65536], full=[256, 4096, 65536])
    gae_envs = settings.pick(tiny=[8], quick=[8, 64, 1024], full=[8, 64, 1024])
    nstep_envs = settings.pick(tiny=[8], quick=[64], full=[64, 1024])
    found = []
    for batch in batches:
        for impl in ("rltorch", "eager", "torch.compile"):
            found.append(_td_case("td_target", impl, batch, double=False))
            found.append(_td_case("double_dqn_target", impl, batch, double=True))
    for num_envs in gae_envs:
        for impl in ("rltorch", "eager loop", "compiled loop", "TorchRL"):
            found.append(_gae_case(impl, num_envs))
    for num_envs in nstep_envs:
        for impl in ("rltorch", "eager loop"):
            found.append(_nstep_case(impl, num_envs))
    return found
