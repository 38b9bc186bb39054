"""Ray Tune trial schedulers by name; the time unit is the episode.

Schedulers compare trials at equal compute: their clock is ``episodes``, the sampled
conversations a trial has trained on, not the optimizer iteration, whose size depends on the
batch size being searched (a small-batch trial would otherwise be cut at the first
trial's iteration count). ``grace_period``, ``max_t`` and ``perturbation_interval`` are episodes;
left unset, grace and perturbation default to one and two iterations of the first trial (the
space's defaults).

HyperBand (and BOHB's HyperBand) runs on a scaled clock, ``rounds`` = episodes / episodes of one iteration of
the first trial (a metric that `hyperband_clock` adds to every report): Tune's
HyperBandScheduler puts its smallest rung at 1 unit of its clock and has no setting for it,
so on a clock of episodes its first bracket would want ``max_t`` trials of one episode each.

A new scheduler is one `Scheduler` entry in ``SCHEDULERS``.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from .space import to_tune

TIME_ATTR = "episodes"
ROUNDS = "rounds"

# build(ray_config, space, max_t, iteration) -> a Tune TrialScheduler; max_t and iteration (one
# iteration of the first trial) in episodes
Build = Callable[[Dict[str, Any], Any, int, int], Any]


@dataclass(frozen=True)
class Scheduler:
    build: Build
    # continues trials from other trials' checkpoints (PBT): explores by itself, so it takes
    # search_alg "random", and finished trials' checkpoints must outlive them
    exploits: bool = False
    # pauses trials and resumes them later from a checkpoint (HyperBand)
    pauses: bool = False
    # extra metrics every report needs: {name: function(unit) -> derived metric}
    clock: Optional[Callable[[int], Dict[str, Any]]] = None
    # the search algorithm it works with alone (BOHB's HyperBand tells its searcher each rung's budget)
    searcher: Optional[str] = None


def _rounds(unit: int, metrics: Dict[str, float]) -> float:
    return metrics.get("episodes", unit) / unit  # (a custom objective reports no episodes: one round)


def hyperband_clock(unit: int) -> Dict[str, Any]:
    """The derived metric that gives HyperBand its clock (see the module docstring)."""
    return {ROUNDS: functools.partial(_rounds, unit)}


# PBT continues a trial from another trial's weights, so it can only perturb what the
# checkpoint does not fix: the adapter and value head shapes stay the donor's.
STRUCTURAL = ("lora_r", "lora_alpha", "value_head_hidden_size")


def pbt_explore(space, names):
    """A PBT explore function that keeps perturbed values inside the space.

    Tune's PBT multiplies continuous values by 0.8/1.2 and does not clip them (its `explore`), so
    a learning rate could leave its range; this clips to the bounds and keeps ints ints.
    """
    def explore(config: Dict[str, Any]) -> Dict[str, Any]:
        out = dict(config)
        for name in names:
            dim = space[name]
            if dim.is_range and name in out:
                value = min(dim.high, max(dim.low, out[name]))
                out[name] = int(round(value)) if dim.type.value == "int" else float(value)
            elif name in out and not dim.contains(out[name]):
                out[name] = random.choice(dim.choices)
        return out
    return explore


def _mutable(name: str, space):
    mutable = [d.name for d in space if d.name not in STRUCTURAL]
    if not mutable:
        raise ValueError(f"{name}: the search space has nothing PBT can perturb (only {', '.join(STRUCTURAL)})")
    return mutable


def _fifo(rc, space, max_t, iteration):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def _asha(rc, space, max_t, iteration):
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr=TIME_ATTR, max_t=max_t, grace_period=min(rc["grace_period"] or iteration, max_t),
                         reduction_factor=rc["reduction_factor"])


def _hyperband(rc, space, max_t, iteration):
    from ray.tune.schedulers import HyperBandScheduler

    return HyperBandScheduler(time_attr=ROUNDS, max_t=max(1, math.ceil(max_t / iteration)),
                              reduction_factor=rc["reduction_factor"])


def _bohb(rc, space, max_t, iteration):
    from ray.tune.schedulers import HyperBandForBOHB

    # HyperBand's brackets on the same clock of rounds, telling TuneBOHB the budget of each result
    return HyperBandForBOHB(time_attr=ROUNDS, max_t=max(1, math.ceil(max_t / iteration)),
                            reduction_factor=rc["reduction_factor"])


def _median(rc, space, max_t, iteration):
    from ray.tune.schedulers import MedianStoppingRule

    return MedianStoppingRule(time_attr=TIME_ATTR, grace_period=rc["grace_period"] or iteration,
                              min_samples_required=2)


def _pbt(rc, space, max_t, iteration):
    from ray.tune.schedulers import PopulationBasedTraining

    mutable = _mutable("pbt", space)
    return PopulationBasedTraining(time_attr=TIME_ATTR, perturbation_interval=perturbation_interval(rc, iteration),
                                   hyperparam_mutations={n: to_tune(space.subset([n]))[n] for n in mutable},
                                   custom_explore_fn=pbt_explore(space, mutable), synch=False,
                                   require_attrs=False)  # (iterations without an evaluation carry no metric)


def _pb2(rc, space, max_t, iteration):
    from ray.tune.schedulers.pb2 import PB2

    mutable = _mutable("pb2", space)
    bounds = {d.name: [d.low, d.high] for d in space if d.name in mutable and d.is_range}
    if not bounds:
        raise ValueError("pb2 perturbs continuous dimensions only, and this search space has none")
    return PB2(time_attr=TIME_ATTR, perturbation_interval=perturbation_interval(rc, iteration),
               hyperparam_bounds=bounds, require_attrs=False)


SCHEDULERS: Dict[str, Scheduler] = {
    "asha": Scheduler(_asha),
    "hyperband": Scheduler(_hyperband, pauses=True, clock=hyperband_clock),
    "bohb": Scheduler(_bohb, pauses=True, clock=hyperband_clock, searcher="bohb"),
    "pbt": Scheduler(_pbt, exploits=True),
    "pb2": Scheduler(_pb2, exploits=True),
    "median": Scheduler(_median),
    "fifo": Scheduler(_fifo),
}


def build_scheduler(ray_config: Dict[str, Any], space, max_t: int, iteration: int):
    """The scheduler of ray_config['scheduler']; ``max_t`` and ``iteration`` in episodes."""
    return SCHEDULERS[ray_config["scheduler"]].build(ray_config, space, max_t, iteration)


def perturbation_interval(ray_config: Dict[str, Any], iteration: int) -> int:
    """PBT's and PB2's perturbation interval in episodes (default: two iterations of the first trial)."""
    return ray_config["perturbation_interval"] or 2 * iteration


def checkpoints_kept(ray_config: Dict[str, Any], iteration: int) -> int:
    """How many of a trial's latest checkpoints Tune keeps (``num_to_keep``). PBT and PB2 restore
    a recipient from the checkpoint its donor had at the donor's last perturbation, up to one
    perturbation interval earlier, once the recipient has restarted; with a checkpoint every
    iteration, keeping 4 deleted that checkpoint whenever the interval and the restart together
    outlasted 4 of the donor's iterations (a recipient failed on a missing file, as in
    ray-project/ray#8441). So an exploiting scheduler keeps two intervals of the first trial's
    iterations and 4 more (a trial of smaller batches counts more iterations per interval:
    a space that shrinks batches far below its default's wants a longer interval); others keep 2."""
    if not SCHEDULERS[ray_config["scheduler"]].exploits:
        return 2
    return 2 * math.ceil(perturbation_interval(ray_config, iteration) / iteration) + 4


def checkpoint_interval(ray_config: Dict[str, Any]) -> Optional[int]:
    """How often (in iterations) a trial reports a checkpoint to Tune (None: only at its end).
    A pausing scheduler may pause trials at any rung, PBT may exploit a trial at any report
    (its interval is in episodes, which trials of other batch sizes reach at other
    iterations), and a retried trial (max_failures) continues from its last checkpoint: all
    three checkpoint every iteration."""
    scheduler = SCHEDULERS[ray_config["scheduler"]]
    if scheduler.pauses or scheduler.exploits or ray_config["max_failures"] > 0:
        return 1
    return None
