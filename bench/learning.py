"""Learning benchmark: does GRPO on the tiny model raise the held-out reward on this CPU?

Trains the default TrainingConfig (customer_service scenarios and reward) for a fixed
wall-clock budget (stopping early if the planned episodes run out), evaluating on the held-out
(selection) scenarios as it goes, and does the same with learning_rate=1e-7 as a control, for
each of `--seeds` training seeds, interleaved (default, control, default, control, ...).
Prints each curve's start and end, and the medians over seeds with their range.
Goals: the default config's eval_reward rises by >= 0.2 within the budget (3 minutes by
default), median over seeds; the control's by <= 0.05.

    python bench/learning.py [--seconds 180] [--seeds 2] [--domain customer_service]
"""

import argparse
import sys
import time
import warnings

warnings.filterwarnings("ignore")

from harness import Record, interleaved, shown, spread  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--domain", default="customer_service")
    parser.add_argument("--episodes", type=int, default=6400, help="planned budget (about 3 minutes here)")
    args = parser.parse_args()
    if args.seconds <= 0 or args.seeds < 1:
        parser.error("--seconds must be positive and --seeds at least 1")
    record = Record("learning", f"GRPO on the tiny model for {args.seconds:g} s on the CPU: the held-out "
                    "(selection split) reward of the default configuration against a learning rate of 1e-7",
                    vars(args))
    lr = TrainingConfig().learning_rate
    seeds = iter(range(args.seeds)), iter(range(args.seeds))
    runs = interleaved({f"default (lr={lr:g})": lambda: (curve(args.domain, args.seconds, args.episodes,
                                                                seed=next(seeds[0]))),
                        "lr=1e-7": lambda: curve(args.domain, args.seconds, args.episodes, learning_rate=1e-7,
                                                 seed=next(seeds[1]))}, args.seeds)
    rows, rise = [], {}
    for label, curves in runs.items():
        for seed, points in enumerate(curves):
            print(f"\n{label}, seed {seed}: eval_reward by wall-clock seconds (iteration)")
            for t, it, r in points:
                print(f"  {t:6.1f}s  it {it:4d}  {r:.3f}")
            rows.append([label, seed, f"{points[0][2]:.3f}", f"{points[-1][2]:.3f}",
                         f"{points[-1][2] - points[0][2]:+.3f}", f"{max(p[2] for p in points):.3f}",
                         points[-1][1], f"{points[-1][0]:.0f}"])
        rise[label] = spread([points[-1][2] - points[0][2] for points in curves])
    record.table("Each run", ["configuration", "seed", "start", "end", "rise", "best", "iterations", "seconds"], rows)
    record.table(f"Rise of eval_reward over {args.seeds} seeds, median (range)", ["configuration", "rise"],
                 [[label, shown(figure, 3)] for label, figure in rise.items()])
    default, control = rise.values()
    record.goal(f"rise of the default configuration within {args.seconds:g} s", default["median"], 0.2, digits=3)
    record.goal("rise of the lr=1e-7 control", control["median"], 0.05, at_least=False, digits=3)
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
