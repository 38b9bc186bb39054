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
    """The summary, ending with the verdict on the recommendation (the search's own best score
    against the first trial's would flatter: it is the maximum of noisy runs)."""
    summary.print_summary()
