"""One seed of an rltorch agent's time to solve, in the process that runs this module:

    python -m rltorch.bench.rltorch_solve ppo --seed 1 [any `rltorch train ppo` flag ...]

The config is the one ``rltorch train ALGO`` builds from the same flags (the same
:func:`rltorch.config.add_config_flags`) and the clock is the same (``Agent.train``: from the start
of training to the solved evaluation, evaluations included). What ``rltorch train`` does after training
(checkpoint, metrics files, the learning-curve plot) is left out: it is no part
of the time and would cost every seed about a second. The result is printed as
one ``RESULT {json}`` line, the fields of ``rltorch train``'s result.json plus
``threads`` (and for a population, ``--num-agents K``, every agent's outcome in ``agents``).
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    import argparse

    from rltorch._threads import agent_threads
    from rltorch.agents import algorithm_class
    from rltorch.config import add_config_flags, config_from_flags

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        print("usage: python -m rltorch.bench.rltorch_solve ALGO [rltorch train ALGO flags]", file=sys.stderr)
        return 2
    try:
        agent_class = algorithm_class(argv[0])
    except ValueError as exc:
        print(f"rltorch_solve: {exc}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"rltorch_solve {argv[0]}")
    parser.add_argument("--config", default=None, metavar="FILE")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE")
    add_config_flags(parser, agent_class.config_class)
    args = parser.parse_args(argv[1:])
    try:
        config = config_from_flags(args, agent_class.config_class, agent_class.name)
    except (FileNotFoundError, TypeError, ValueError) as exc:
        parser.error(str(exc))
    agent = agent_class(config)
    try:
        result = agent.train()
        payload = {
            "solved": result.solved, "time_to_solve_s": result.time_to_solve_s,
            "steps_to_solve": result.steps_to_solve, "env_steps": result.env_steps, "updates": result.updates,
            "wall_time_s": result.wall_time_s, "last_eval_return": result.last_eval_return,
            "threshold": agent.threshold, "threads": agent_threads(config.threads), "device": str(agent.device),
        }
        if agent.num_agents > 1:  # a population: every agent's outcome (the fields above: the last to solve)
            payload["agents"] = result.agents
        print("RESULT " + json.dumps(payload), flush=True)
    finally:
        agent.close()
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    # The interpreter's teardown (torch's among it) takes about half a second and measures nothing.
    os._exit(status)
