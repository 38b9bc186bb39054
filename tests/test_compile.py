"""Compilation of search spaces to every backend.

Property tests: for random valid spaces, every value sampled through each backend's
compiled form lies inside the declared bounds/choices and keeps its type; log-scaled
dimensions sample across decades. Plus: Optuna/HyperOpt forms come from Ray's converters
and agree with the declared ranges, and every predefined space compiles everywhere.
"""

import math
import numbers
import warnings

import numpy as np
import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stateset_hpo import SearchDimension as D
from stateset_hpo.search.optuna.space import to_optuna
from stateset_hpo.search.ray.bayesopt import BayesOptSpace
from stateset_hpo.search.ray.space import to_hyperopt, to_tune
from stateset_hpo.search.wandb.space import to_wandb
from stateset_hpo import SearchSpace, get_search_space, list_search_spaces
from stateset_hpo import SearchSpaceType as T

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", message="Non-float parameters are experimental")

# -- random valid spaces -----------------------------------------------------------------------
finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def dimensions(draw, name):
    kind = draw(st.sampled_from(["uniform", "loguniform", "int", "intlog", "categorical", "choice"]))
    if kind == "uniform":
        low = draw(st.floats(-1e3, 1e3, **finite))
        return D(name, T.UNIFORM, low=low, high=low + draw(st.floats(1e-3, 1e3, **finite)))
    if kind == "loguniform":
        e = draw(st.floats(-9, 2, **finite))
        return D(name, T.LOGUNIFORM, low=10 ** e, high=10 ** (e + draw(st.floats(0.1, 6, **finite))))
    if kind == "int":
        low = draw(st.integers(-100, 100))
        return D(name, T.INT, low=low, high=low + draw(st.integers(1, 200)))
    if kind == "intlog":
        low = draw(st.integers(1, 100))
        return D(name, T.INT, low=low, high=low + draw(st.integers(1, 10_000)), log=True)
    if kind == "categorical":
        values = st.text("abcdefgh", min_size=1, max_size=4) | st.booleans() | st.integers(-5, 5)
        choices = draw(st.lists(values, min_size=1, max_size=5, unique_by=lambda v: (isinstance(v, bool), v)))
        return D(name, T.CATEGORICAL, choices=choices)
    numbers_ = st.integers(-1000, 1000) | st.floats(-1e3, 1e3, **finite)
    return D(name, T.CHOICE, choices=draw(st.lists(numbers_, min_size=1, max_size=5, unique=True)))


@st.composite
def spaces(draw):
    n = draw(st.integers(1, 5))
    return SearchSpace([draw(dimensions(f"p{i}")) for i in range(n)])


def assert_valid_sample(space, params):
    assert set(params) == set(space.names)
    for dim in space:
        value = params[dim.name]
        assert dim.contains(value), f"{dim.name}={value!r} outside {dim.to_dict()}"
        if dim.type is T.INT:
            assert isinstance(value, numbers.Integral) and not isinstance(value, bool)
        elif dim.is_range:
            assert isinstance(value, float)


# -- one sampler per backend, each driving that backend's own library --------------------------
def sample_tune(space, seed):
    rng = np.random.default_rng(seed)
    return {name: domain.sample(random_state=rng) for name, domain in to_tune(space).items()}


def sample_optuna(space, seed):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return study.ask(to_optuna(space)).params


def sample_hyperopt(space, seed):
    from hyperopt.pyll.stochastic import sample

    return sample(to_hyperopt(space), rng=np.random.default_rng(seed))


def sample_wandb(space, seed):
    from sweeps import next_run

    np.random.seed(seed)
    run = next_run({"method": "random", "parameters": to_wandb(space, "random")}, [])
    return {k: v["value"] for k, v in run.config.items()}


def sample_bayesopt(space, seed):
    from bayes_opt import BayesianOptimization

    compiled = BayesOptSpace(space)
    if not compiled.pbounds:
        return compiled.decode({})
    opt = BayesianOptimization(f=None, pbounds=compiled.pbounds, random_state=seed, verbose=0)
    return compiled.decode(opt.suggest())


SAMPLERS = {"tune": sample_tune, "optuna": sample_optuna, "hyperopt": sample_hyperopt,
            "wandb": sample_wandb, "bayesopt": sample_bayesopt}


@pytest.mark.parametrize("backend", SAMPLERS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces(), seed=st.integers(0, 2**31 - 1))
def test_samples_stay_in_bounds_and_keep_their_type(backend, space, seed):
    assert_valid_sample(space, SAMPLERS[backend](space, seed))


@pytest.mark.slow
def test_bayesopt_guided_suggestions_stay_valid_on_a_mixed_space():
    """Beyond the random start: points suggested by the fitted GP decode to valid params."""
    from bayes_opt import BayesianOptimization

    space = get_search_space("full")
    compiled = BayesOptSpace(space)
    opt = BayesianOptimization(f=None, pbounds=compiled.pbounds, random_state=0, verbose=0)
    for i in range(6):
        point = opt.suggest()
        params = compiled.decode(point)
        space.validate_point(params)
        opt.register(params=point, target=float(-math.log10(params["learning_rate"])))


# -- log dimensions sample across decades ------------------------------------------------------
@pytest.mark.parametrize("backend", SAMPLERS)
def test_log_dimensions_sample_across_decades(backend):
    space = SearchSpace([D("lr", T.LOGUNIFORM, low=1e-6, high=1e-1), D("n", T.INT, low=1, high=100_000, log=True)])
    draws = [SAMPLERS[backend](space, seed) for seed in range(200)]
    # Two of the five decades lie below 1e-4 (resp. 100): about 40% of log-uniform draws,
    # against 0.1% for a uniform draw over the same range.
    low_lr = np.mean([d["lr"] < 1e-4 for d in draws])
    low_n = np.mean([d["n"] < 100 for d in draws])
    assert 0.25 < low_lr < 0.55, low_lr
    assert 0.25 < low_n < 0.55, low_n


# -- Ray's converters give our ranges ----------------------------------------------------------
@pytest.mark.parametrize("name", list_search_spaces())
def test_optuna_distributions_match_the_declared_ranges(name):
    space = get_search_space(name)
    dists = to_optuna(space)
    assert list(dists) == space.names
    for dim in space:
        dist = dists[dim.name]
        if dim.is_range:
            kind = optuna.distributions.IntDistribution if dim.type is T.INT else optuna.distributions.FloatDistribution
            assert isinstance(dist, kind)
            assert (dist.low, dist.high, dist.log) == (dim.low, dim.high, dim.is_log)
        else:
            assert dist.choices == tuple(dim.choices)


def test_tune_int_bounds_are_inclusive_and_grid_is_a_real_grid():
    space = SearchSpace([D("n", T.INT, low=1, high=3), D("c", T.CATEGORICAL, choices=["a", "b"]),
                         D("x", T.UNIFORM, low=0.0, high=1.0)])
    seen = {sample_tune(space, s)["n"] for s in range(60)}
    assert seen == {1, 2, 3}
    grid = to_tune(space, grid_points=3)
    assert grid["n"] == {"grid_search": [1, 2, 3]}
    assert grid["c"] == {"grid_search": ["a", "b"]}
    assert grid["x"] == {"grid_search": [0.0, 0.5, 1.0]}


def test_hyperopt_reaches_both_ends_of_each_range():
    space = get_search_space("grpo")
    draws = [sample_hyperopt(space, seed) for seed in range(300)]
    for dim in space:
        values = [d[dim.name] for d in draws]
        if dim.is_range:
            span = (math.log(dim.high) - math.log(dim.low)) if dim.is_log else dim.high - dim.low
            lo = (math.log(min(values)) - math.log(dim.low)) if dim.is_log else min(values) - dim.low
            hi = (math.log(dim.high) - math.log(max(values))) if dim.is_log else dim.high - max(values)
            assert lo < 0.05 * span and hi < 0.05 * span, dim.name
        else:
            assert set(values) == set(dim.choices), dim.name


# -- W&B and bayes_opt forms -------------------------------------------------------------------
def test_wandb_block_passes_the_sweep_schema_for_every_method():
    from sweeps.config import schema_violations_from_proposed_config

    space = get_search_space("full")
    for method in ("random", "bayes", "grid"):
        config = {"method": method, "metric": {"name": "reward", "goal": "maximize"},
                  "parameters": to_wandb(space, method)}
        assert schema_violations_from_proposed_config(config) == []
    grid = to_wandb(space, "grid", grid_points=2)
    assert grid["learning_rate"] == {"values": [1e-6, 1e-3]}
    assert grid["optimizer_type"] == {"values": ["adamw", "adam", "sgd", "adafactor"]}
    with pytest.raises(ValueError, match="unknown W&B sweep method"):
        to_wandb(space, "hyperband")


def test_bayesopt_round_trips_the_baseline_and_handles_odd_categories():
    space = SearchSpace([
        D("lr", T.LOGUNIFORM, low=1e-6, high=1e-3, default=1e-5),
        D("n", T.INT, low=1, high=64, log=True, default=8),
        D("c", T.CATEGORICAL, choices=[1, "1", True]),
        D("fixed", T.CATEGORICAL, choices=["only"]),
    ])
    compiled = BayesOptSpace(space)
    assert "fixed" not in compiled.pbounds and compiled.pbounds["c"] == ("#0", "#1", "#2")
    for choice in (1, "1", True):
        point = {**space.baseline(), "c": choice}
        decoded = compiled.decode(compiled.encode(point))
        assert decoded["c"] == choice and type(decoded["c"]) is type(choice)
        assert decoded["lr"] == pytest.approx(1e-5) and decoded["n"] == 8 and decoded["fixed"] == "only"


@pytest.mark.parametrize("name", list_search_spaces())
def test_every_predefined_space_compiles_for_every_backend(name):
    space = get_search_space(name)
    assert set(to_tune(space)) == set(space.names)
    assert set(to_tune(space, grid_points=2)) == set(space.names)
    assert set(to_hyperopt(space)) == set(space.names)
    assert set(to_wandb(space, "bayes")) == set(space.names)
    compiled = BayesOptSpace(space)
    assert set(compiled.pbounds) | set(compiled.fixed) == set(space.names)
    for sampler in SAMPLERS.values():
        assert_valid_sample(space, sampler(space, 0))
