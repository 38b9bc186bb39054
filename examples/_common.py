"""Shared by the examples: the budget (small by default, tiny with --smoke, as the tests run
them) and the printout at the end."""

import argparse


def budget(description: str):
    """(n_trials, num_episodes, output_dir) from the command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="a tiny budget (seconds): what the tests run")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args()
    return (2, 8, args.output_dir) if args.smoke else (6, 96, args.output_dir)


def report(summary) -> None:
    summary.print_summary()
    if summary.baseline_metric is not None and summary.best_metric is not None:
        print(f"\nbest {summary.best_metric:.4f} vs defaults {summary.baseline_metric:.4f}")
