"""Search backends: each runs trials of `stateset_hpo.trial` and returns HPOResults.

base.py defines what a backend is (`Backend`) and registers them by name; each lives in its
own package: ray/ (Ray Tune, the distributed backend), optuna/ and wandb/ (trials in this
process, through trial_runner.py).
"""
