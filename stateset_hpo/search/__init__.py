"""Search backends: each runs trials of `stateset_hpo.trial` and returns HPOResults.

ray_tune.py (Ray Tune: searchers.py, schedulers.py, ray_trainable.py, bayesopt_searcher.py)
is the distributed backend; optuna_study.py (optuna_samplers.py, optuna_storage.py) and
wandb_sweep.py run trials in this process, through in_process.py.
"""
