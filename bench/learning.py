"""Learning benchmark: does GRPO on the tiny model raise the held-out reward on this CPU?

Trains the default TrainingConfig (customer_service scenarios and reward) for a fixed
wall-clock budget (stopping early if the planned episodes run out), evaluating on the held-out scenarios as it goes, then does the same with
learning_rate=1e-7 as a control. Prints both curves' start and end.
Target: the default config's eval_reward rises by >= 0.2 within 3 minutes; the control less.

    python bench/learning.py [--seconds 180] [--domain customer_service]
"""

import argparse
import time
import warnings

warnings.filterwarnings("ignore")

from stateset_hpo.grpo import (ConversationEnvironment, MultiTurnAgent, MultiTurnGRPOTrainer, TrainingConfig,  # noqa: E402
                               domain_reward)


def curve(domain: str, seconds: float, episodes: int, **overrides):
    # The budget matters beyond stopping: warm-up is a fraction of the planned iterations.
    config = TrainingConfig(num_episodes=episodes, eval_every=5, **overrides)
    trainer = MultiTurnGRPOTrainer(MultiTurnAgent(), ConversationEnvironment(domain), domain_reward(domain), config)
    points = [(0.0, 0, trainer.evaluate()["eval_reward"])]
    start = time.perf_counter()
    for metrics in trainer.iterate():
        elapsed = time.perf_counter() - start
        if "eval_reward" in metrics:
            points.append((elapsed, metrics["iteration"], metrics["eval_reward"]))
        if elapsed >= seconds:
            break
    if points[-1][1] != trainer.step:
        points.append((time.perf_counter() - start, trainer.step, trainer.evaluate()["eval_reward"]))
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--domain", default="customer_service")
    parser.add_argument("--episodes", type=int, default=6400, help="planned budget (about 3 minutes here)")
    args = parser.parse_args()
    defaults = TrainingConfig()
    results = {}
    for label, overrides in ((f"default (lr={defaults.learning_rate:g})", {}), ("lr=1e-7", {"learning_rate": 1e-7})):
        points = curve(args.domain, args.seconds, args.episodes, **overrides)
        results[label] = points
        print(f"\n{label}: eval_reward by wall-clock seconds (iteration)")
        for t, it, r in points:
            print(f"  {t:6.1f}s  it {it:4d}  {r:.3f}")
    print("\nsummary:")
    for label, points in results.items():
        start, end = points[0][2], points[-1][2]
        best = max(p[2] for p in points)
        print(f"  {label:22s} start {start:.3f}  end {end:.3f}  rise {end - start:+.3f}  best {best:.3f}  "
              f"iterations {points[-1][1]} in {points[-1][0]:.0f}s")


if __name__ == "__main__":
    main()
