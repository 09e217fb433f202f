"""Every performance target the issues named, in one place, checked against a run.

A target names the case it judges by group (with its fixed parameters, as
``Result.where``), size and device, and one criterion:

- ``anchor`` and ``at_least``: rltorch at least that many times faster than the
  anchor measured in the same run (time-to-solve: median against median);
- ``max_seconds``: rltorch's median time per call at most this;
- ``max_seconds_per_item``: median time per item (env step, search) at most this;
- ``min_items_per_second``: median throughput at least this;
- ``solve``: (median seconds, worst seconds): every seed solved, within both.
"""

from __future__ import annotations

from dataclasses import dataclass

from rltorch.bench.core import SUBJECT, Result
from rltorch.bench.formatting import fmt_rate, fmt_ratio, fmt_size, fmt_time


@dataclass(frozen=True)
class Target:
    issue: int
    text: str
    where: str
    size: int | None = None
    device: str = "cpu"
    anchor: str | None = None
    at_least: float | None = None
    max_seconds: float | None = None
    max_seconds_per_item: float | None = None
    min_items_per_second: float | None = None
    solve: tuple[float, float] | None = None


TARGETS = (
    Target(2, "DQN target at least 4x the eager expression at B = 256", "td_target", 256,
           anchor="eager", at_least=4),
    Target(2, "DQN target no slower than torch.compile at B = 65536", "td_target", 65536,
           anchor="torch.compile", at_least=1),
    Target(2, "GAE at 128 x 64 at least 100x the eager loop", "gae T=128", 64, anchor="eager loop", at_least=100),
    Target(2, "GAE at 128 x 64 at least 10x the compiled loop", "gae T=128", 64, anchor="compiled loop", at_least=10),
    Target(2, "GAE at 128 x 64 at least 50x TorchRL", "gae T=128", 64, anchor="TorchRL", at_least=50),
    Target(3, "CartPole at least 200 M env steps/s at N = 16384 (float64, 2 cores)", "cartpole_step", 16384,
           min_items_per_second=200e6),
    Target(3, "CartPole at least 200 M env steps/s at N = 2^20", "cartpole_step", 2**20, min_items_per_second=200e6),
    Target(3, "CartPole about 7x gymnasium's CartPoleVectorEnv at N = 16384", "cartpole_step", 16384,
           anchor="gymnasium CartPoleVectorEnv", at_least=7),
    Target(3, "CartPole about 200x EnvPool at N = 16384", "cartpole_step", 16384, anchor="EnvPool", at_least=200),
    Target(4, "sum-tree search at most 30 ns per item, 2^20 leaves, B = 4096", "sumtree_search leaves=2^20", 4096,
           max_seconds_per_item=30e-9),
    Target(4, "sum-tree update at most 10 ns per item, 2^20 leaves, B = 4096", "sumtree_update leaves=2^20", 4096,
           max_seconds_per_item=10e-9),
    Target(4, "full PER cycle at B = 256 (sample, weights, gathered batch, priority update) under 25 us",
           "per_cycle capacity=2^20", 256, max_seconds=25e-6),
    Target(4, "GPU: PER cycle (sample + update, here with weights and the gathered batch too) of B = 4096 from "
              "2^24 leaves under 50 us", "per_cycle capacity=2^24", 4096, device="cuda", max_seconds=50e-6),
    Target(5, "DQN solves CartPole: median <= 10 s, worst <= 20 s, every seed", "dqn_time_to_solve",
           solve=(10.0, 20.0)),
    Target(5, "DQN at least 6x faster to solve than CleanRL", "dqn_time_to_solve", anchor="CleanRL DQN", at_least=6),
    Target(10, "PPO solves CartPole: median <= 0.5 s, worst <= 1 s, every seed", "ppo_time_to_solve",
           solve=(0.5, 1.0)),
    Target(10, "PPO at least 4x faster than SB3's PPO (its training time only)", "ppo_time_to_solve",
           anchor="SB3 PPO", at_least=4),
    Target(11, "classifier fit at least 3x the DataLoader loop's samples/s (1M x 4, MLP 64x64, batch 1024)",
           "classifier_fit features=4 MLP=64x64 batch=1024", 1_000_000, anchor="DataLoader loop", at_least=3),
    Target(21, "64 PPO agents at once: every one solves CartPole, in at most 8 s (2 cores)",
           "ppo_population agents=64", solve=(8.0, 8.0)),
    Target(21, "64 PPO agents at once in less wall time than rejax's PPO vmapped over 64 seeds (its compile "
               "included)", "ppo_population agents=64", anchor="rejax PPO (jit+vmap)", at_least=1),
    Target(22, "MountainCar at least 100 M env steps/s at N = 16384 (2 cores)", "mountain_car_step", 16384,
           min_items_per_second=100e6),
    Target(22, "Pendulum at least 100 M env steps/s at N = 16384 (2 cores)", "pendulum_step", 16384,
           min_items_per_second=100e6),
    Target(22, "Acrobot at least 20 M env steps/s at N = 16384 (2 cores; RK4)", "acrobot_step", 16384,
           min_items_per_second=20e6),
)


@dataclass(frozen=True)
class Verdict:
    target: Target
    status: str  # "met", "missed" or "not measured"
    measured: str
    anchor: str = ""


def _find(results: list[Result], where: str, size: int | None, impl: str, device: str) -> Result | None:
    for r in results:
        if r.where == where and r.size == size and r.impl == impl and r.device == device:
            return r
    return None




def judge(target: Target, results: list[Result]) -> Verdict:
    """How the run did against one target; a missing case or peer is ``not measured``, with why."""
    ours = _find(results, target.where, target.size, SUBJECT, target.device)
    if ours is None:
        size = f" at {fmt_size(target.size)}" if target.size is not None else ""
        return Verdict(target, "not measured", f"no {target.device} case{size} in this run")
    if not ours.ok:
        return Verdict(target, "not measured", f"rltorch {ours.status}: {ours.reason}")
    if target.anchor is not None:
        anchor = _find(results, target.where, target.size, target.anchor, target.device)
        if anchor is None:
            # Peers measured on the CPU are the anchors of a CUDA run too.
            anchor = _find(results, target.where, target.size, target.anchor, "cpu")
        if anchor is None or not anchor.ok:
            why = "not in this run" if anchor is None else f"{anchor.status}: {anchor.reason}"
            return Verdict(target, "not measured", f"rltorch {fmt_time(ours.median)}",
                           f"{target.anchor} {why}")
        ratio = ours.speedup_over(anchor)
        return Verdict(target, "met" if ratio >= target.at_least else "missed", fmt_ratio(ratio),
                       f"{target.anchor} {fmt_time(anchor.median)} vs rltorch {fmt_time(ours.median)}")
    if target.solve is not None:
        median_limit, worst_limit = target.solve
        solved = sum(ours.solved)
        worst = max(ours.samples)
        met = solved == len(ours.samples) and ours.median <= median_limit and worst <= worst_limit
        return Verdict(target, "met" if met else "missed",
                       f"median {ours.median:.2f} s, worst {worst:.2f} s, {solved}/{len(ours.samples)} solved")
    if target.max_seconds is not None:
        return Verdict(target, "met" if ours.median <= target.max_seconds else "missed", fmt_time(ours.median))
    if target.max_seconds_per_item is not None:
        per_item = ours.median / ours.items
        return Verdict(target, "met" if per_item <= target.max_seconds_per_item else "missed",
                       f"{per_item * 1e9:.1f} ns per {ours.item}")
    rate = ours.throughput
    return Verdict(target, "met" if rate >= target.min_items_per_second else "missed", fmt_rate(rate, ours.item))


#: Issue #24's targets for a --contention run (rltorch.bench.contention).
ONE_THREAD_TARGET = Target(24, "with one core kept busy by another process, every rltorch case within 1.25x of the "
                               "same case forced to one thread under the same load", "*", at_least=1.25)
PPO_LOADED_TARGET = Target(24, "with one core kept busy, PPO's median time to solve CartPole under 2x its idle "
                               "figure", "ppo_time_to_solve", at_least=2.0)


def judge_contention(results: list[Result]) -> list[Verdict]:
    """The thread-policy targets, from a run with the loaded conditions."""
    from rltorch.bench.contention import IDLE, LOADED, LOADED_ONE_THREAD

    def at(condition: str) -> dict:
        return {(r.key, r.device): r for r in results if r.condition == condition and r.ok}

    idle, loaded, single = at(IDLE), at(LOADED), at(LOADED_ONE_THREAD)
    ratios = sorted(((loaded[k].median / single[k].median, k[0]) for k in loaded.keys() & single.keys()),
                    reverse=True)
    verdicts = []
    if ratios:
        worst, key = ratios[0]
        over = sum(r > ONE_THREAD_TARGET.at_least for r, _ in ratios)
        verdicts.append(Verdict(ONE_THREAD_TARGET, "met" if over == 0 else "missed",
                                f"worst {fmt_ratio(worst)} ({key}); {over} of {len(ratios)} cases over",
                                "the same case on one thread, same load"))
    else:
        verdicts.append(Verdict(ONE_THREAD_TARGET, "not measured", "no case ran both loaded conditions"))
    ppo = [k for k in loaded if k in idle and loaded[k].group == "ppo_time_to_solve" and loaded[k].impl == SUBJECT]
    if ppo:
        k = ppo[0]
        ratio = loaded[k].median / idle[k].median
        verdicts.append(Verdict(PPO_LOADED_TARGET, "met" if ratio < PPO_LOADED_TARGET.at_least else "missed",
                                f"{fmt_ratio(ratio)} ({loaded[k].median:.2f} s loaded, {idle[k].median:.2f} s idle)",
                                "its own idle median, same run"))
    else:
        verdicts.append(Verdict(PPO_LOADED_TARGET, "not measured", "no PPO time-to-solve case in this run"))
    return verdicts


def judge_all(results: list[Result], device: str) -> list[Verdict]:
    """The targets for the run's device; a CPU run also lists the GPU targets, as not measured."""
    return [judge(t, results) for t in TARGETS if device == "cpu" or t.device == device]
