"""Shared by the examples: the budget (small by default, tiny with --smoke, as the tests run
them) and the printout at the end."""

import argparse


def budget(description: str):
    """(n_trials, num_episodes, output_dir, settings) from the command line; ``settings`` are
    HPOConfig fields for smoke mode (one validation re-run instead of 3 x 3)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="a tiny budget (seconds): what the tests run")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args()
    if args.smoke:
        return 2, 8, args.output_dir, {"validation_top_k": 1, "validation_seeds": 1}
    return 6, 96, args.output_dir, {}


def report(summary) -> None:
    summary.print_summary()
    if summary.baseline_metric is not None and summary.best_metric is not None:
        print(f"\nbest {summary.best_metric:.4f} vs defaults {summary.baseline_metric:.4f}")
