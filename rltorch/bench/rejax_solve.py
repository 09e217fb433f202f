"""rejax's PPO vmapped over many seeds on gymnax's CartPole-v1: the JAX way to train a population.

Run by path in a venv of its own (rejax 0.1.3 needs gymnax 0.0.9, whose ``step``
returns five values; JAX would not belong in rltorch's venv anyway): it
imports nothing from rltorch. The last line it prints is ``RESULT {json}``.

Hyperparameters are rejax's own CartPole config (``configs/gymnax/cartpole.yaml``:
5 envs x 100 steps, 5 epochs of 5 minibatches, Adam 7.5e-4, tanh 64x64, 100k
steps). Its evaluation is replaced by rltorch's criterion: the greedy policy's
mean return over 100 episodes, every ``--eval-every`` env steps, inside the
compiled loop. rejax trains the whole budget (the loop is one ``jit``), so the
time to "every seed solved" is the whole run; the result says which seeds
reached 475 at some evaluation, at which step first, and which ended there.

``compile_s`` is ``jit(vmap(train)).lower(keys).compile()``; ``run_s`` the
compiled call alone.

    python rejax_solve.py --seeds 64 --seed 0
"""

import argparse
import json
import os
import time

process_start = time.perf_counter()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from rejax import PPO  # noqa: E402
from rejax.evaluate import evaluate  # noqa: E402

SOLVED_AT = 475.0
EVAL_EPISODES = 100
# rejax configs/gymnax/cartpole.yaml, ppo section (keraJLi/rejax 4954fbf).
CONFIG = dict(env="CartPole-v1", agent_kwargs={"activation": "tanh"}, num_envs=5, num_steps=100, num_epochs=5,
              num_minibatches=5, learning_rate=0.00075, max_grad_norm=0.5, total_timesteps=100_000, gamma=0.99,
              gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5)


def greedy_evaluation(algo, ts, rng):
    """Mean return of the greedy policy (argmax of the logits) over 100 episodes: rltorch's criterion."""

    def act(obs, rng):
        if getattr(algo, "normalize_observations", False):
            obs = algo.normalize_obs(ts.obs_rms_state, obs)
        logits = algo.actor.apply(ts.actor_ts.params, jnp.expand_dims(obs, 0),
                                  method=lambda module, x: module.action_logits(module.features(x)))
        return jnp.argmax(logits[0])

    _, returns = evaluate(act, rng, algo.env, algo.env_params, EVAL_EPISODES, algo.env_params.max_steps_in_episode)
    return returns.mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=64, help="seeds trained at once (vmapped)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (keys split from it)")
    parser.add_argument("--eval-every", type=int, default=2000, help="env steps between greedy evaluations "
                        "(a multiple of num_envs * num_steps = 500)")
    parser.add_argument("--total-steps", type=int, default=CONFIG["total_timesteps"])
    args = parser.parse_args()
    if args.seeds < 1 or args.eval_every % 500 or args.total_steps < args.eval_every:
        parser.error("--seeds must be >= 1, --eval-every a multiple of 500 and --total-steps >= --eval-every")

    algo = PPO.create(**dict(CONFIG, total_timesteps=args.total_steps, eval_freq=args.eval_every))
    algo = algo.replace(eval_callback=greedy_evaluation, skip_initial_evaluation=True)
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)
    train = jax.jit(jax.vmap(algo.train))

    start = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    _, evaluations = compiled(keys)
    evaluations = np.asarray(jax.block_until_ready(evaluations))  # [seeds, evaluations]
    run_s = time.perf_counter() - start

    steps = args.eval_every * np.arange(1, evaluations.shape[1] + 1)
    reached = evaluations >= SOLVED_AT
    first = [int(steps[np.argmax(row)]) if row.any() else None for row in reached]
    print("RESULT " + json.dumps({
        "seeds": args.seeds, "compile_s": compile_s, "run_s": run_s, "with_compile_s": compile_s + run_s,
        "from_process_start_s": time.perf_counter() - process_start, "env_steps_per_seed": args.total_steps,
        "eval_every": args.eval_every, "solved_at_some_point": int(reached.any(axis=1).sum()),
        "solved_at_end": int(reached[:, -1].sum()), "first_solved_step": first,
        "final_eval_return": evaluations[:, -1].tolist(),
        "versions": {"jax": jax.__version__, "rejax": _version("rejax"), "gymnax": _version("gymnax")},
        "cpu_threads": os.cpu_count(),
    }), flush=True)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
