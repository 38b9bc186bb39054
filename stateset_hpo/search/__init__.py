"""Search backends: each runs trials of `stateset_hpo.trial` and returns HPOResults.

ray_tune.py (Ray Tune: searchers.py, schedulers.py, ray_trainable.py) is the distributed
backend. Optuna and W&B sweeps backends are separate work and not built yet.
"""
