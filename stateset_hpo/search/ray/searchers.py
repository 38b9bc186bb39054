"""Ray Tune search algorithms by name. The space's defaults go first.

optuna and hyperopt use Ray's integrations, which convert Tune domains themselves; bayesopt
uses `MixedBayesOptSearch` (see bayesopt.py for why); bohb is TuneBOHB, with its own
scheduler (see _bohb); ax uses `AxClientSearch` on Ax's
current API (see ax_search.py for why); random is Tune's own generator; grid
is a real grid (`to_tune(space, grid_points=...)`), run once. A comparable warm start
(warm_start.py) is told as observations to optuna, bayesopt and ax; the others take none from
elsewhere, so the earlier best run first. A new algorithm is one `SearchAlgorithm` entry in
``SEARCHERS``: how to build it and what a dry run says it compiled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from ...warm_start import first_points, observations
from ..random_start import RandomStart
from .schedulers import SCHEDULERS
from .space import to_hyperopt, to_tune

# build(config, space, metric, mode, random_start) -> (search_alg or None, param_space, num_samples);
# random_start: the first trials a searcher that models proposes at random (search/random_start.py)
Build = Callable[[Any, Any, str, str, int], Tuple[Optional[Any], Dict[str, Any], int]]


@dataclass(frozen=True)
class SearchAlgorithm:
    build: Build
    compiled: Callable[[Any, Any], str]  # (config, space) -> what the space became, for a dry run
    limited: bool = True  # wrap in a ConcurrencyLimiter (model-based searchers; not Tune's generators)
    requires: Optional[Tuple[str, str]] = None  # (module, what to pip install) for an optional dependency
    takes_observations: bool = False  # told a comparable warm start's earlier results (else they run first)
    # (config) -> its RandomStart (random_start.py) if it starts at random before it models, else None
    random_start: Callable[[Any], Optional[Any]] = lambda config: None

    def check_installed(self, name: str) -> None:
        """A clear error, when the study is configured, if an optional library is missing."""
        import importlib.util

        if self.requires is not None and importlib.util.find_spec(self.requires[0]) is None:
            raise ValueError(f"search_alg {name!r} needs {self.requires[1]!r}, which is not installed: "
                             f"pip install {self.requires[1]!r}")


def _grid(config, space, metric, mode, random_start):
    # (HPOConfig checked that the grid fits in n_trials)
    return None, to_tune(space, grid_points=config.grid_points), 1


def _random(config, space, metric, mode, random_start):
    """Tune's own generator; over a conditional space, Optuna's RandomSampler define-by-run
    through OptunaSearch instead: Tune's ``sample_from``, its form for a conditional value,
    cannot draw from the generator's seeded random state, and would hand an inactive
    dimension to the trial as None."""
    from ray.tune.search import BasicVariantGenerator

    if space.conditional:
        return _optuna(config, space, metric, mode, random_start, random=True)
    # Tune ignores TuneConfig(max_concurrent_trials) for a BasicVariantGenerator it is handed
    # (a warning only), so the limit goes into the generator itself
    return (BasicVariantGenerator(points_to_evaluate=first_points(config, space), random_state=config.seed,
                                  max_concurrent=searcher_limit(config) or 0),
            to_tune(space), config.n_trials)


def _optuna(config, space, metric, mode, random_start, random: bool = False):
    """OptunaSearch with the sampler of ``optuna_config`` (TPE by default), seeded with
    HPOConfig.seed; ``random``: Optuna's RandomSampler, which takes no observations (a warm
    start's earlier best run first instead). A conditional space goes to it define-by-run
    (search/optuna/space.py), the form OptunaSearch takes for one; Tune's param_space then
    stays empty."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from ..optuna.samplers import build_sampler
    from ..optuna.space import DefineByRun, finished_trials

    class MeasuredOnly(OptunaSearch):
        """Takes only results that carry the metric: with ``eval_every`` > 1 the engine
        evaluates every few iterations (OptunaSearch would fail on the others)."""

        def on_trial_result(self, trial_id, result):
            if isinstance(self.metric, str) and self.metric in result:
                super().on_trial_result(trial_id, result)

        def _setup_study(self, mode):
            super()._setup_study(mode)
            # a comparable warm start's observations (as trials of the study itself:
            # OptunaSearch's add_evaluated_point cannot take a define-by-run space)
            self._ot_study.add_trials(finished_trials(space, told))

    told = observations(config, space)  # (none for random: its searcher takes none)
    sampler = optuna.samplers.RandomSampler(seed=config.seed) if random else build_sampler(config.optuna_config,
                                                                                           random_start,
                                                                                           seed=config.seed)
    searched = DefineByRun(space) if space.conditional else None
    searcher = MeasuredOnly(space=searched, metric=metric, mode=mode, sampler=sampler,
                            points_to_evaluate=first_points(config, space))
    return searcher, {} if searched else to_tune(space), config.n_trials


def _hyperopt(config, space, metric, mode, random_start):
    from ray.tune.search.hyperopt import HyperOptSearch

    return (HyperOptSearch(metric=metric, mode=mode, points_to_evaluate=first_points(config, space),
                           n_initial_points=random_start, random_state_seed=config.seed),
            to_tune(space), config.n_trials)


def _bayesopt(config, space, metric, mode, random_start):
    from .bayesopt import MixedBayesOptSearch

    searcher = MixedBayesOptSearch(space, metric=metric, mode=mode, random_state=config.seed,
                                   points_to_evaluate=first_points(config, space),
                                   told=observations(config, space))
    return searcher, {}, config.n_trials  # the searcher proposes every value itself


def _bohb(config, space, metric, mode, random_start):
    """BOHB (Falkner et al., 2018): a kernel density model of good and bad configurations per
    budget, proposing where HyperBand spends its next rung; it reads every intermediate result
    at its budget, unlike the searchers above, which see a trial's end only. Ray's TuneBOHB over
    hpbandster and ConfigSpace (both work on today's versions: ConfigSpace 1.2, hpbandster
    0.7.4), with its scheduler, HyperBandForBOHB ("bohb"). DEHB, SMAC and Syne Tune were the
    other candidates; TuneBOHB is the one Ray maintains as a Tune searcher, with save/restore."""
    from ray.tune.search.bohb import TuneBOHB

    class PlainBOHB(TuneBOHB):
        """Python numbers (ConfigSpace gives numpy ones: a summary.json could not hold them)."""

        def suggest(self, trial_id):
            config = super().suggest(trial_id)
            return config if not isinstance(config, dict) else {k: getattr(v, "item", lambda: v)()
                                                               for k, v in config.items()}

    searcher = PlainBOHB(space=to_configspace(space), metric=metric, mode=mode,
                         points_to_evaluate=first_points(config, space), seed=config.seed)
    return searcher, {}, config.n_trials  # the searcher proposes every value itself


def to_configspace(space):
    """The ConfigurationSpace TuneBOHB builds from Tune domains (its own converter), with each
    ``when`` added as ConfigSpace conditions (InCondition; several parents: AndConjunction)."""
    from ConfigSpace import AndConjunction, InCondition
    from ray.tune.search.bohb import TuneBOHB

    configspace = TuneBOHB.convert_search_space(to_tune(space))
    for dim in space:
        conditions = [InCondition(configspace[dim.name], configspace[parent], list(values))
                      for parent, values in dim.when or ()]
        if conditions:
            configspace.add(conditions[0] if len(conditions) == 1 else AndConjunction(*conditions))
    return configspace


def _bohb_compiled(config, space) -> str:
    configspace = to_configspace(space)
    return f"ConfigSpace (via TuneBOHB): {len(list(configspace.values()))} hyperparameters, " \
           f"{len(configspace.conditions)} conditions"


def _optuna_compiled(config, space) -> str:
    from ..optuna.space import to_optuna  # (search/optuna/space.py builds on ray/space.py)

    return f"optuna distributions (via OptunaSearch): {len(to_optuna(space))}" + _define_by_run(space)


def _random_compiled(config, space) -> str:
    if space.conditional:
        return f"optuna RandomSampler (via OptunaSearch): {len(space)} dimensions" + _define_by_run(space)
    return f"Ray Tune param_space: {len(to_tune(space))}"


def _define_by_run(space) -> str:
    conditional = sum(1 for d in space if d.when)
    return f", define-by-run ({conditional} conditional)" if conditional else ""


def _bayesopt_compiled(config, space) -> str:
    from .bayesopt import BayesOptSpace

    return f"bayes_opt bounds: {len(BayesOptSpace(space).pbounds)}"


def _ax(config, space, metric, mode, random_start):
    from .ax_search import AxClientSearch

    searcher = AxClientSearch(space, metric=metric, mode=mode, seed=config.seed,
                              points_to_evaluate=first_points(config, space),
                              told=observations(config, space), random_start=random_start)
    return searcher, {}, config.n_trials  # the searcher proposes every value itself


def _ax_compiled(config, space):
    from .ax_search import ax_parameters

    return f"Ax parameters: {len(ax_parameters(space))}"


def _optuna_random_start(config):
    from ..optuna.samplers import starts_at_random

    return starts_at_random(config.optuna_config, via=" (via OptunaSearch)")


def _grid_compiled(config, space):
    points = config.grid_points
    to_tune(space, grid_points=points)  # compile it, as the study will
    return f"Ray Tune grid: {space.grid_size(points)} points"


SEARCHERS: Dict[str, SearchAlgorithm] = {
    "optuna": SearchAlgorithm(_optuna, _optuna_compiled, takes_observations=True, random_start=_optuna_random_start),
    "hyperopt": SearchAlgorithm(_hyperopt, lambda c, s: f"hyperopt space: {len(to_hyperopt(s))}",
                                random_start=lambda config: RandomStart("HyperOpt", 20)),
    "bayesopt": SearchAlgorithm(_bayesopt, _bayesopt_compiled, takes_observations=True),
    "ax": SearchAlgorithm(_ax, _ax_compiled, requires=("ax", "stateset-hpo[ax]"), takes_observations=True,
                          random_start=lambda config: RandomStart("Ax (Sobol)", 5)),
    "bohb": SearchAlgorithm(_bohb, _bohb_compiled, requires=("hpbandster", "stateset-hpo[bohb]")),
    "random": SearchAlgorithm(_random, _random_compiled, limited=False),
    "grid": SearchAlgorithm(_grid, _grid_compiled, limited=False),
}


def searcher_limit(config) -> Optional[int]:
    """How many trials the search may have started and not finished: the study's concurrency,
    except under HyperBand. It pauses trials at its rungs until its bracket fills, and every
    limit Tune offers counts paused trials, so the bracket would never fill and HyperBand would
    stop nothing (measured: no trial paused); its running trials are bounded by the cluster's
    resources instead, which `describe` says."""
    return None if SCHEDULERS[config.ray_config["scheduler"]].pauses else config.max_concurrent_trials


def build_search(config, space, metric: str, mode: str,
                 random_start: int) -> Tuple[Optional[Any], Dict[str, Any], int]:
    """(search_alg, param_space, num_samples) for tune.Tuner, from ray_config['search_alg']; a
    searcher that models proposes its first ``random_start`` trials at random."""
    algorithm = SEARCHERS[config.ray_config["search_alg"]]
    searcher, param_space, num_samples = algorithm.build(config, space, metric, mode, random_start)
    if algorithm.limited and searcher_limit(config):
        from ray.tune.search import ConcurrencyLimiter

        searcher = ConcurrencyLimiter(searcher, max_concurrent=searcher_limit(config))
    return searcher, param_space, num_samples

