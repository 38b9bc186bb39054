"""The Ray Tune backend on the tiny model: searchers, schedulers, pruning, failures,
callbacks, resources, and Train worker groups in a long sequence. Small budgets throughout."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import NO_FROZEN_RULES, SECRETS, failing_spec, secrets_found, tiny_spec

from stateset_hpo import HPOConfig, HPOSummary, SearchDimension, SearchSpace, SearchSpaceType, TrialStatus, get_search_space
from stateset_hpo.grpo import MultiTurnAgent, MultiTurnGRPOTrainer
from stateset_hpo.study import run_study


pytestmark = pytest.mark.usefixtures("ray_local")

C = SearchSpaceType.CHOICE


def spec(**overrides):
    return tiny_spec(**{"num_episodes": 16, **overrides})


def config(tmp_path, space, **ray_config):
    n_trials = ray_config.pop("n_trials", 3)
    return HPOConfig(backend="ray_tune", search_space=space, n_trials=n_trials, output_dir=str(tmp_path),
                     objective_metric="eval_reward", cpu_per_trial=1, n_parallel_trials=2, verbose=False, save_plots=False, validation_top_k=0,
                     seed=0, ray_config={"execution": "direct", "scheduler": "fifo", **ray_config})


LR_SPACE = SearchSpace([
    SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-4, high=3e-3, default=1e-3),
    SearchDimension("kl_penalty_coef", SearchSpaceType.LOGUNIFORM, low=1e-3, high=1e-1, default=1e-2),
])


@pytest.mark.slow  # (9 s: the inner loop stays under 5 minutes; CI runs it)
def test_real_trials_start_from_the_baseline_with_histories_and_checkpoints(tmp_path):
    """(Every search algorithm and scheduler against the contract: test_backend_contract.py.)"""
    summary = run_study(config(tmp_path, LR_SPACE, search_alg="optuna"), spec())
    assert summary.n_trials == 3 and summary.n_successful == 3
    assert summary.baseline_trial_id is not None
    assert summary.baseline_metric is not None
    for r in summary.all_results:
        LR_SPACE.validate_point(r.params)
        assert len(r.history) == 2 and 0 <= r.best_metric <= 1  # 16 episodes / 8 per iteration
        assert r.history[-1]["iteration"] == 2 and r.checkpoint_path
    assert len({r.params["learning_rate"] for r in summary.all_results}) == 3
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "trials.csv").is_file()


@pytest.mark.slow
def test_bayesopt_handles_the_full_mixed_space(tmp_path):
    space = get_search_space("full").narrow("num_episodes", choices=[100]).narrow("max_new_tokens", choices=[128])
    space = space.narrow("group_size", choices=[4, 8]).narrow("per_device_train_batch_size", choices=[1, 2])
    space = space.narrow("gradient_accumulation_steps", choices=[1])
    summary = run_study(config(tmp_path, space, search_alg="bayesopt", n_trials=2), spec(include_value_function=True))
    assert summary.n_failed == 0 and summary.n_trials == 2
    for r in summary.all_results:
        space.validate_point(r.params)


def test_a_grid_larger_than_the_study_fails_before_any_trial(tmp_path):
    space = SearchSpace([SearchDimension("learning_rate", C, choices=[1e-9, 1e-3]),
                         SearchDimension("seed", C, choices=[0, 1])])
    with pytest.raises(ValueError, match="the grid has 4 points but n_trials is 3"):
        config(tmp_path, space, search_alg="grid", n_trials=3)


@pytest.mark.slow
@pytest.mark.parametrize("trials_per_worker", [1, 2])  # 2: trials packed two to a worker process
def test_asha_prunes_the_hopeless_half_and_keeps_a_good_trial(tmp_path, trials_per_worker):
    space = SearchSpace([SearchDimension("learning_rate", C, choices=[1e-9, 3e-3]),
                         SearchDimension("seed", C, choices=[0, 1, 2])])
    # the first rung after 2 of 4 iterations (32 episodes): after one, lr 3e-3 may still score the
    # base model's 0.0825 on the selection split (measured: 0.0825, 0.179, 0.071 by seed), as lr 1e-9 does
    cfg = config(tmp_path, space, search_alg="grid", scheduler="asha", grace_period=32, reduction_factor=2,
                 n_trials=6, trials_per_worker=trials_per_worker)
    cfg = cfg.replace(health_rules=NO_FROZEN_RULES)  # lr 1e-9 is left to ASHA, not to the rules
    summary = run_study(cfg, spec(num_episodes=64, group_size=8))  # 4 iterations each when not pruned
    assert summary.n_pruned > 0
    assert summary.best_params["learning_rate"] == 3e-3
    hopeless = [r for r in summary.all_results if r.params["learning_rate"] == 1e-9]
    assert sum(r.status is TrialStatus.PRUNED for r in hopeless) >= 2
    assert sum(len(r.history) for r in summary.all_results) < 6 * 4  # pruning saved iterations


# (slow-marked, as is the next test: Ray studies of ~7 s each; the inner loop stays under 5 minutes)
@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["asha", "pbt"])
def test_trials_that_evaluate_every_few_iterations_run_under_a_scheduler(tmp_path, scheduler):
    """The objective (eval_reward) is measured every eval_every iterations; Tune, the scheduler
    and the searcher act on the iterations that carry it, and the others stay in the history."""
    space = LR_SPACE.subset(["learning_rate"])
    summary = run_study(config(tmp_path, space, search_alg="random" if scheduler == "pbt" else "optuna",
                               scheduler=scheduler, n_trials=2, perturbation_interval=16),
                        spec(num_episodes=32, eval_every=2))  # 4 iterations, evaluated at 2 and 4
    assert summary.n_failed == 0 and summary.n_trials == 2
    for r in summary.all_results:
        # by iteration number: a PBT exploit may resume a trial from another's later checkpoint
        assert [("eval_reward" in h) for h in r.history] == [h["iteration"] % 2 == 0 for h in r.history]
        assert r.best_metric is not None


def test_hyperband_is_refused_when_the_objective_is_not_measured_every_iteration(tmp_path):
    with pytest.raises(ValueError, match="hyperband.*every 2 iterations"):
        run_study(config(tmp_path, LR_SPACE, search_alg="random", scheduler="hyperband"), spec(eval_every=2))


@pytest.mark.slow
def test_schedulers_compare_trials_at_equal_episodes_not_iterations(tmp_path):
    """A small-batch trial needs more iterations for the same budget: on a clock of iterations
    ASHA's max_t (the baseline's iteration count) cut it short and recorded it as pruned. (Its
    one rung is max_t, so no comparison between the two trials, whose order of arrival varies,
    can stop one.)"""
    space = SearchSpace([SearchDimension("per_device_train_batch_size", C, choices=[2, 1], default=2)])
    cfg = config(tmp_path, space, search_alg="grid", scheduler="asha", n_trials=2, grace_period=16)
    cfg = cfg.replace(health_rules={"enabled": False})  # (a batch of one prompt may see equal rewards for long)
    summary = run_study(cfg, spec(num_episodes=16))  # batch 2: 2 iterations of 8 episodes; batch 1: 4 of 4
    by_batch = {r.params["per_device_train_batch_size"]: r for r in summary.all_results}
    assert by_batch[1].status is TrialStatus.SUCCESS and len(by_batch[1].history) == 4
    assert [h["episodes"] for h in by_batch[1].history] == [4, 8, 12, 16]
    assert by_batch[2].status is TrialStatus.SUCCESS and len(by_batch[2].history) == 2


@pytest.mark.slow
@pytest.mark.parametrize("trials_per_worker", [1, 2])  # 2: packed trials, checkpoints sent as bytes
def test_pbt_exploits_and_keeps_perturbed_values_inside_the_space(tmp_path, trials_per_worker):
    """Trials report checkpoints to Tune, so PBT really copies weights: Tune's own exploit log
    lists them. (That an exploiting trial continues from the donor's weights, optimizer
    state and step is tested on the engine: test_pbt_restore_takes_over_the_donor.)"""
    # (the default inside the range: an exploit of its trial changes the learning rate whichever way it moves)
    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-9, high=3e-3,
                                         default=1e-3)])
    cfg = config(tmp_path, space, search_alg="random", scheduler="pbt", perturbation_interval=8, n_trials=4,
                 trials_per_worker=trials_per_worker)
    # trials at lr ~1e-9 stay for PBT to replace; the recommendation is validated (as its schedule)
    cfg = cfg.replace(health_rules=NO_FROZEN_RULES, validation_top_k=1, validation_seeds=1)
    # 4 iterations of 8 episodes: PBT may exploit after iterations 1-3 (a trial's last report ends it)
    summary = run_study(cfg, spec(num_episodes=32))
    assert summary.n_failed == 0
    for r in summary.all_results:
        space.validate_point(r.params)
    log = tmp_path / "ray_results" / "grpo_hpo" / "pbt_global.txt"
    exploits = [json.loads(line) for line in log.read_text().splitlines()]
    assert exploits, "PBT never exploited a checkpoint"
    for target, donor, target_step, donor_step, old, new in exploits:
        space.validate_point(new)
    # a trial that took another's weights is a schedule: its donor's settings, then its own perturbed ones
    scheduled = [r for r in summary.all_results if r.schedule]
    assert scheduled, "no trial recorded the schedule PBT gave it"
    for r in scheduled:
        assert r.schedule[-1]["params"]["learning_rate"] == r.params["learning_rate"]
        assert len({json.dumps(e["params"]) for e in r.schedule}) > 1
    recommended = next(c for c in summary.validation["configurations"] if c["role"] == "recommended")
    assert recommended["schedule"] == summary.best_result.schedule and not recommended["errors"]


def test_pbt_donors_keep_their_checkpoints_for_two_perturbation_intervals():
    from stateset_hpo.search.ray.schedulers import checkpoints_kept

    rc = {"scheduler": "pbt", "perturbation_interval": None}
    assert checkpoints_kept(rc, iteration=8) == 8  # default interval: 2 iterations, so 2 x 2 + 4
    assert checkpoints_kept({**rc, "perturbation_interval": 80}, iteration=8) == 24
    assert checkpoints_kept({"scheduler": "pb2", "perturbation_interval": 20}, iteration=8) == 10
    assert checkpoints_kept({"scheduler": "asha", "perturbation_interval": None}, iteration=8) == 2


@pytest.mark.slow
def test_packed_trials_train_exactly_as_alone_and_keep_their_checkpoints(tmp_path):
    """Two trials packed into one worker process (one loaded base model, turns an iteration at
    a time) reach the metrics they reach each in a process of its own."""
    space = SearchSpace([SearchDimension("learning_rate", C, choices=[1e-3, 3e-3])])
    timing = {"step_time", "rollout_time", "tokens_per_s"}

    def histories(folder, **packing):
        summary = run_study(config(folder, space, search_alg="grid", n_trials=2, **packing), spec())
        assert summary.n_successful == 2 and all(r.checkpoint_path for r in summary.all_results)
        return {r.params["learning_rate"]: [{k: v for k, v in h.items() if k not in timing} for h in r.history]
                for r in summary.all_results}

    alone = histories(tmp_path / "alone")
    packed = histories(tmp_path / "packed", trials_per_worker=2)
    assert packed == alone and alone[1e-3] != alone[3e-3]


def test_a_packed_trial_whose_tune_process_died_gives_its_slot_back():
    """A host notices that the process it reports to is gone (a killed actor, a lost node) and
    ends the trial, so its slot serves the next trial instead of waiting forever."""
    import ray

    from stateset_hpo.search.ray.packed import start_hosts, stop_hosts
    from stateset_hpo.trial import TrialSpec

    hosts = start_hosts(TrialSpec(objective=lambda p: {"score": 1.0}), 1, 1, cpus=0, gpus=0, liveness_s=1)
    host = hosts.actors[0]
    tune_process = ray.remote(num_cpus=0)(type("TuneProcess", (), {})).remote()
    try:
        assert ray.get(host.start.remote("first", [hosts.spec], {}, None, None, tune_process))
        assert ray.get(host.next.remote("first"))[0] == "report"  # the trial now waits for Tune to take it
        assert not ray.get(host.start.remote("second", [hosts.spec], {}, None, None, tune_process))  # one slot
        ray.kill(tune_process)
        deadline = time.monotonic() + 30
        while not ray.get(host.start.remote("second", [hosts.spec], {}, None, None, tune_process)):
            assert time.monotonic() < deadline, "the dead trial's slot was never freed"
            time.sleep(0.5)
    finally:
        stop_hosts(hosts)


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["median", "pb2"])  # hyperband: its own test below
def test_other_schedulers_run(tmp_path, scheduler):
    search = "random" if scheduler == "pb2" else "optuna"
    summary = run_study(config(tmp_path, LR_SPACE, search_alg=search, scheduler=scheduler, n_trials=2,
                               perturbation_interval=1), spec(num_episodes=24))
    assert summary.n_trials == 2 and summary.n_failed == 0


@pytest.mark.slow  # (~7 s: the inner loop stays under 5 minutes; the contract tests cover the in-process backends)
def test_a_failing_trial_is_marked_failed_and_the_study_goes_on(tmp_path):
    space = SearchSpace([SearchDimension("learning_rate", C, choices=[1e-3, 3e-3])])
    seen = []

    class OnlyEnd:  # implements one hook only
        def on_trial_end(self, result):
            seen.append(result.status)

    summary = run_study(config(tmp_path, space, search_alg="grid", n_trials=2), failing_spec(num_episodes=16),
                        callbacks=[OnlyEnd()])
    failed = [r for r in summary.all_results if r.status is TrialStatus.FAILED]
    assert len(failed) == 1 and "boom" in failed[0].error and failed[0].params["learning_rate"] == 3e-3
    assert summary.n_successful == 1 and summary.best_params == {"learning_rate": 1e-3}
    assert sorted(seen) == sorted(r.status for r in summary.all_results)


@pytest.mark.slow  # (~7 s, as above)
def test_callbacks_fire_on_the_driver_in_order(tmp_path):
    events = []

    class Recorder:
        def on_hpo_start(self, space, n_trials):
            events.append(("start", n_trials))

        def on_trial_start(self, trial_id, params):
            events.append(("trial_start", trial_id))

        def on_trial_result(self, trial_id, metrics):
            events.append(("result", trial_id, metrics["iteration"]))

        def on_trial_end(self, result):
            events.append(("trial_end", result.trial_id))

        def on_hpo_end(self, summary):
            events.append(("end", summary.n_trials))

    summary = run_study(config(tmp_path, LR_SPACE, search_alg="random", n_trials=2), spec(), callbacks=[Recorder()])
    assert events[0] == ("start", 2) and events[-1] == ("end", 2)
    for r in summary.all_results:
        mine = [e for e in events if len(e) > 1 and e[1] == r.trial_id]
        assert mine[0][0] == "trial_start" and mine[-1][0] == "trial_end"
        assert [e[2] for e in mine if e[0] == "result"] == [1, 2]


def test_an_impossible_resource_request_fails_before_any_trial(tmp_path):
    cfg = config(tmp_path, LR_SPACE).replace(gpu_per_trial=1.0)
    with pytest.raises(ValueError, match="needs 1 CPUs and 1 GPUs .* has 2 CPUs and 0 GPUs"):
        run_study(cfg, spec())
    with pytest.raises(ValueError, match="map to nothing"):
        run_study(config(tmp_path, SearchSpace([SearchDimension("lr", C, choices=[1, 2])])), spec())


@pytest.mark.slow
def test_a_trial_with_two_train_workers(tmp_path):
    cfg = config(tmp_path, LR_SPACE, search_alg="random", n_trials=1, execution="train", workers_per_trial=2)
    summary = run_study(cfg.replace(cpu_per_trial=0.5, n_parallel_trials=1), spec(num_episodes=16))
    assert summary.n_successful == 1 and len(summary.all_results[0].history) == 2


@pytest.mark.slow
def test_pbt_exploits_train_worker_trials(tmp_path):
    """Under execution='train' the Train run's checkpoints reach Tune, so PBT can exploit them."""
    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-9, high=3e-3,
                                         default=3e-3)])
    # The objective is the logged learning rate, so a trial below the others' is exploited for sure
    # (eval rewards can tie on the tiny model, and ties never are). PBT exploits a trial only from a
    # donor that is still running and saved a checkpoint at one of its own perturbations while
    # another trial had a result, so two trials must overlap by a few reports: each report takes
    # 2 s and a trial runs 4 iterations, more than the seconds by which one Train worker group may
    # start after the other. (At 0.6 s a report, once Train's controller polled every 0.2 s, the
    # first trial ran all 4 iterations within 2.5 s and ended before it could be a donor.)
    cfg = config(tmp_path, space, search_alg="random", scheduler="pbt", perturbation_interval=8, n_trials=3,
                 execution="train").replace(cpu_per_trial=0.5, health_rules=NO_FROZEN_RULES,  # (as above)
                                            objective_metric="learning_rate")
    slow = dataclasses.replace(spec(num_episodes=32), derived_metrics={"slowly": lambda m: time.sleep(2.0) or 0.0})
    summary = run_study(cfg, slow)  # 4 iterations of 8 episodes: perturbed after each
    assert summary.n_failed == 0, [r.error for r in summary.all_results if r.error]
    log = tmp_path / "ray_results" / "grpo_hpo" / "pbt_global.txt"
    assert log.is_file(), "PBT never exploited a Train worker's checkpoint"
    exploits = [json.loads(line) for line in log.read_text().splitlines()]
    assert exploits and all(space["learning_rate"].contains(new["learning_rate"]) for *_, new in exploits)
    # (a trial exploited at its last iteration ends on the donor's state with no checkpoint of its own)
    assert any(r.checkpoint_path for r in summary.all_results)


def tune_rows(experiment):
    """Tune's own per-trial records (result.json) in an experiment folder, as written during the run."""
    return {f.parent.name: [json.loads(line) for line in f.read_text().splitlines()]
            for f in experiment.glob("*/result.json")}


@pytest.mark.slow
def test_hyperband_pauses_trials_and_resumes_them_from_their_checkpoints(tmp_path):
    # On HyperBand's clock of rounds (one round = one 8-episode iteration here), Tune's first
    # bracket runs 3 trials to max_t=4; the second takes 3 more to 2 rounds, pauses them there,
    # and resumes the best 2 from their checkpoints.
    cfg = config(tmp_path, LR_SPACE, search_alg="random", scheduler="hyperband", reduction_factor=2, n_trials=6)
    summary = run_study(cfg, spec(num_episodes=32))  # 4 iterations
    assert summary.n_failed == 0
    rows = tune_rows(tmp_path / "ray_results" / "grpo_hpo")
    restored = [r for trial in rows.values() for r in trial if r["iterations_since_restore"] < r["training_iteration"]]
    assert restored, "HyperBand paused and resumed no trial"
    for trial in rows.values():  # a resumed trial continues its own training, never starts over
        assert [r["iteration"] for r in trial] == [r["training_iteration"] for r in trial]


@pytest.mark.slow
def test_bohb_reads_every_rung_and_pauses_and_resumes_real_trials(tmp_path):
    """BOHB (TuneBOHB with HyperBandForBOHB) on engine trials: HyperBand's brackets pause trials
    at their rungs and resume the best from their checkpoints, and the searcher is told each
    trial's results at their budgets (its model is fitted per budget)."""
    # (with a budget, whose wrapper around the searcher BOHB's HyperBand must see through; it stops no trial here)
    cfg = config(tmp_path, LR_SPACE, search_alg="bohb", scheduler="bohb", reduction_factor=2,
                 n_trials=6).replace(budget={"episodes": 10_000})
    summary = run_study(cfg, spec(num_episodes=32))  # 4 iterations
    assert summary.n_failed == 0 and summary.n_trials == 6
    assert all(LR_SPACE["learning_rate"].contains(r.params["learning_rate"]) for r in summary.all_results)
    assert all(isinstance(r.params["learning_rate"], float) for r in summary.all_results)  # (no numpy numbers)
    rows = tune_rows(tmp_path / "ray_results" / "grpo_hpo")
    assert any(r["iterations_since_restore"] < r["training_iteration"] for trial in rows.values() for r in trial), \
        "BOHB's HyperBand paused and resumed no trial"
    for trial in rows.values():
        assert [r["iteration"] for r in trial] == [r["training_iteration"] for r in trial]


def test_the_bohb_searcher_saves_and_restores_what_it_learnt(tmp_path):
    """What a resumed study's searcher continues from: its trials and the results at each budget."""
    from stateset_hpo.search.ray.searchers import build_search

    cfg = config(tmp_path, LR_SPACE, search_alg="bohb", scheduler="bohb", n_trials=4)
    searcher, _, _ = build_search(cfg, LR_SPACE, "eval_reward", "max", 2)
    assert searcher.suggest("t0") == LR_SPACE.baseline()  # the space's defaults go first
    searcher.on_trial_result("t0", {"eval_reward": 0.5, "hyperband_info": {"budget": 1}})
    searcher.suggest("t1")
    searcher.save(str(tmp_path / "bohb.pkl"))
    restored, _, _ = build_search(cfg, LR_SPACE, "eval_reward", "max", 2)
    restored.restore(str(tmp_path / "bohb.pkl"))
    assert restored.running == {"t0", "t1"} and set(restored.trial_to_params) == {"t0", "t1"}
    assert restored.bohber.losses == {1: [-0.5]}  # (hpbandster minimises: the score, negated, at budget 1)


@pytest.mark.slow
def test_a_killed_train_worker_is_retried_from_its_last_checkpoint(tmp_path):
    from ray.util.state import list_actors

    killed, after = [], []

    def alive_workers():
        return [a.pid for a in list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])]

    class KillWorkerAtIteration2:
        def on_trial_result(self, trial_id, metrics):
            if metrics["iteration"] == 2 and not killed:
                for pid in alive_workers():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            elif metrics["iteration"] == 3:
                after.extend(alive_workers())  # the worker that reported iteration 3

    cfg = config(tmp_path, LR_SPACE, search_alg="random", n_trials=1, execution="train", max_failures=1)
    summary = run_study(cfg.replace(n_parallel_trials=1), spec(num_episodes=32), callbacks=[KillWorkerAtIteration2()])
    assert killed and after and not set(after) & set(killed)  # a new worker process trained on
    (result,) = summary.all_results
    assert result.status is TrialStatus.SUCCESS and [h["iteration"] for h in result.history] == [1, 2, 3, 4]
    (rows,) = tune_rows(tmp_path / "ray_results" / "grpo_hpo").values()
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]  # continued from the checkpoint, not from scratch


@pytest.mark.slow
def test_an_interrupted_study_resumes_without_rerunning_finished_trials(tmp_path):
    """Ctrl+C on the CLI (attached to this session's cluster), then --resume from the shared
    storage alone: the resumed run has a fresh output dir, as on a new head node."""
    import ray

    bucket = tmp_path / "bucket"  # stands for s3://bucket/prefix
    args = [sys.executable, "-m", "stateset_hpo.launch", "--space", "conservative", "--n-trials", "3",
            "--n-parallel-trials", "1", "--execution", "direct", "--cpu-per-trial", "1", "--seed", "0",
            "--validation-top-k", "0", "--storage-path", str(bucket),
            "--set", "num_episodes=48", "--set", "group_size=4", "--set", "per_device_train_batch_size=2",
            "--set", "max_new_tokens=16",
            # the conservative space's learning rates cannot move the tiny model in 6 iterations:
            # the policy_frozen and replies_unchanged rules would stop every trial, and this test is about resuming
            "--health", "kl_floor=null", "--health", "unchanged_fraction=null"]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "RAY_AUTH_MODE": "token",
           **SECRETS}
    first_head, second_head = tmp_path / "head1", tmp_path / "head2"
    proc = subprocess.Popen(args + ["--output-dir", str(first_head)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("[1/3]"):
            proc.send_signal(signal.SIGTERM)  # what `ray job stop` sends: handled as Ctrl+C
            break
    rest, _ = proc.communicate(timeout=240)
    assert proc.returncode == 130, "".join(lines) + rest
    assert "--resume" in rest and not (first_head / "summary.json").exists()
    first = lines[-1].split()[2]  # "[1/3] trial <id> success ..."

    resumed = subprocess.run(args + ["--output-dir", str(second_head), "--resume"], capture_output=True, text=True,
                             env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    summary = HPOSummary.load(second_head / "summary.json")
    assert summary.n_trials == 3 and summary.n_successful == 3
    assert len({r.trial_id for r in summary.all_results}) == 3 and first in {r.trial_id for r in summary.all_results}
    finished_first = [r for r in summary.all_results if r.trial_id == first][0]
    assert [h["iteration"] for h in finished_first.history] == [1, 2, 3, 4, 5, 6]  # not run a second time
    rows = tune_rows(bucket / "grpo_hpo")
    assert sum(len(trial) for trial in rows.values()) <= 3 * 6 + 6  # at most the interrupted trial ran twice
    shared = HPOSummary.load(bucket / "grpo_hpo" / "results" / "summary.json")  # the copy in the shared storage
    assert shared.best_trial_id == summary.best_trial_id and shared.n_trials == 3
    assert not secrets_found([tmp_path], [rest, resumed.stdout, resumed.stderr, "".join(lines)])


@pytest.mark.slow
def test_log_to_wandb_logs_every_trial_as_an_offline_run(tmp_path, monkeypatch):
    from helpers import logged_history

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = config(tmp_path, LR_SPACE, search_alg="random", n_trials=2).replace(log_to_wandb=True)
    summary = run_study(cfg, spec())
    runs = list((tmp_path / "trials").glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 2 and summary.n_successful == 2

    def logged():
        return {path.parent.name: [s for s in logged_history(path) if "iteration" in s] for path in runs}

    # W&B's writer process may still be flushing a run file when the study returns (seen once in
    # CI under load): give it a bounded time before deciding
    deadline = time.monotonic() + 60
    while any(len(steps) < 2 for steps in logged().values()) and time.monotonic() < deadline:
        time.sleep(1)
    for name, steps in logged().items():
        assert sorted(s["iteration"] for s in steps) == [1, 2], (name, len(steps))
        assert all("eval_reward" in s for s in steps)


@pytest.mark.slow
def test_custom_objective_and_early_stopping_on_ray(tmp_path):
    """A GRPOHPOTrainer subclass's objective runs in the Tune trial (pickled there); patience
    ends the Tune run through its stopper."""
    import asyncio

    from stateset_hpo.hpo_trainer import GRPOHPOTrainer

    log = tmp_path / "objective.log"

    class Weighted(GRPOHPOTrainer):
        async def _objective_function(self, params):
            metrics = await MultiTurnGRPOTrainer(MultiTurnAgent(self.agent.config), self.environment,
                                                 self.reward_function, self._create_training_config(params)).train()
            value = 0.7 * metrics["reward"] + 0.3 * metrics["safety_score"]
            with open(log, "a") as f:  # the trial runs in another process: tell the test what it computed
                f.write(f"{value!r}\n")
            return value

    s = spec()
    parts = dict(agent=MultiTurnAgent(s.agent_config), environment=s.environment, reward_function=s.reward,
                 base_config=s.base_config)
    cfg = config(tmp_path, SearchSpace([SearchDimension("learning_rate", C, choices=[1e-3, 2e-3], default=1e-3)]),
                 search_alg="grid", n_trials=2)
    summary = asyncio.run(Weighted(**parts, hpo_config=cfg).optimize())
    assert sorted(r.best_metric for r in summary.all_results) == \
        pytest.approx(sorted(float(v) for v in log.read_text().split()))

    hopeless = SearchSpace([SearchDimension("learning_rate", C, choices=[1e-9, 2e-9], default=1e-9)])
    cfg = config(tmp_path / "patience", hopeless, search_alg="random", n_trials=10).replace(
        n_parallel_trials=1, early_stopping_patience=2)
    summary = run_study(cfg, spec())
    # 3 trials finish; one more may have started before the stop reached Tune: it is cut short
    assert summary.n_successful == 3 and summary.n_trials - 3 == summary.n_pruned <= 1


@pytest.mark.slow
def test_the_guide_workflow_on_ray_with_retention_and_periodic_saving(tmp_path):
    """optimize -> train_with_best_params -> plot_results on Ray Tune, keeping one checkpoint
    and saving the study after every trial."""
    import asyncio

    from stateset_hpo.hpo_trainer import GRPOHPOTrainer, load_trained_agent

    s = spec()
    cfg = config(tmp_path, LR_SPACE, search_alg="random", n_trials=3).replace(
        keep_best_n=1, checkpoint_freq=1, validation_top_k=1, validation_seeds=1)
    written = {}

    class Checkpoints:
        def on_trial_end(self, result):
            written[result.trial_id] = result.checkpoint_path

    trainer = GRPOHPOTrainer(MultiTurnAgent(s.agent_config), s.environment, s.reward, s.base_config, cfg,
                             callbacks=[Checkpoints()])
    summary = asyncio.run(trainer.optimize())
    (kept,) = [r for r in summary.all_results if r.checkpoint_path]  # a best trial (trials may tie)
    assert kept.best_metric == summary.best_metric and os.path.isdir(kept.checkpoint_path)
    assert len(written) == 3 and all(path for path in written.values())
    assert [os.path.isdir(path) for trial, path in sorted(written.items())] == \
        [trial == kept.trial_id for trial in sorted(written)]
    # validation: the recommendation and the baseline retrained as Tune trials with a fresh seed, on the test split
    configs = summary.validation["configurations"]
    assert [(c["label"], c["role"]) for c in configs] == [(f"trial {summary.best_trial_id}", "recommended"),
                                                          ("baseline", "baseline")]
    assert all(c["seeds"] == [10_000] and len(c["scores"]) == 1 and not c["errors"] for c in configs)
    assert summary.validation["metric"] == "test_reward" and summary.validation["comparison"]["n_conversations"] == 60
    assert "untested" in summary.validation["sentence"]  # one seed: no interval
    # what the agent says reaches the driver from the Tune trials: one test conversation per topic
    assert all(len({t["topic"] for t in c["transcripts"]}) == len(c["transcripts"]) == 5 for c in configs)
    assert (tmp_path / "ray_results" / "grpo_hpo_validation").is_dir()
    asyncio.run(trainer.train_with_best_params(full_episodes=8))
    assert load_trained_agent(str(tmp_path / "best_model")).respond([{"role": "user", "content": "hello ."}])
    assert len(trainer.plot_results()) == 5
