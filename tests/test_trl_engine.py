"""The TRL engine: a study's trials on TRL's GRPOTrainer report every step, are stopped by
health rules, resume from TRL's own checkpoints, and bad input fails before any trial."""

import dataclasses
import json
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import study_config
from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.grpo import ConversationEnvironment, domain_reward
from stateset_hpo.launch import main
from stateset_hpo.lifecycle import TrialReporter
from stateset_hpo.space.presets import get_search_space
from stateset_hpo.trial import TrialSpec, run_trial
from stateset_hpo.trl_engine import TRLTask

# a TRL trial of 8 completions per optimizer step (2 prompts x 4), 12 new tokens: about a second a step on a CPU
TINY_TRL = {"max_completion_length": 12, "per_device_train_batch_size": 8, "num_generations": 4,
            "num_episodes": 24, "eval_max_new_tokens": 12, "learning_rate": 5e-4, "gradient_checkpointing": False}


def tiny_trl_spec(**changes) -> TrialSpec:
    env = ConversationEnvironment("customer_service")
    task = TRLTask.from_environment(env, domain_reward("customer_service"))
    return TrialSpec.for_trl(task, {**TINY_TRL, **changes}, environment=env)


def test_a_trl_trial_reports_every_optimizer_step_with_the_studys_names():
    seen = []
    last = run_trial(tiny_trl_spec(), {"beta": 0.02}, lambda metrics, run: seen.append(metrics))
    assert [m["iteration"] for m in seen] == [1.0, 2.0, 3.0]
    assert [m["episodes"] for m in seen] == [8.0, 16.0, 24.0]  # the schedulers' clock: completions trained on
    for name in ("reward", "frac_reward_zero_std", "kl", "entropy", "completion_length", "eval_reward",
                 "generated_tokens", "composite_reward_score"):
        assert name in last, name
    assert seen[-1]["generated_tokens"] > seen[0]["generated_tokens"] > 0
    assert 0.0 <= last["eval_reward"] <= 1.0


def reply_length(prompts, completions, **kwargs):
    """A reward every group spreads (the tiny model's replies score 0 on the domain's reward at first)."""
    return [len(str(completion)) / 100 for completion in completions]


def test_a_trl_trial_trains_lora_on_a_4bit_model_from_its_grpo_configs_model_init_kwargs():
    quantised = {"quantization_config": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}}
    spec = tiny_trl_spec(model_init_kwargs=quantised)
    spec = dataclasses.replace(spec, trl=dataclasses.replace(spec.trl, reward_funcs=[reply_length]))
    assert spec.agent_config.model_init_kwargs == quantised  # the engine loads the model, as the agent says
    assert "model_init_kwargs" not in spec.base_config.grpo_args
    seen = []

    def record(metrics, run):
        model = run.trainer.accelerator.unwrap_model(run.trainer.model)
        seen.append((metrics["iteration"], any(not p.is_floating_point() for p in model.parameters()),
                     {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}))

    run_trial(spec, {"beta": 0.02}, record)
    assert [(step, quantised) for step, quantised, _ in seen] == [(1.0, True), (2.0, True), (3.0, True)]
    assert any(bool(b.abs().sum() > 0) for b in seen[-1][2].values())  # the adapter (zero at init) trained
    no_lora = dataclasses.replace(spec, trl=dataclasses.replace(spec.trl, peft_config=None))
    with pytest.raises(ValueError, match="trials must train LoRA adapters"):
        no_lora.check_config(spec.base_config)


def test_a_grpo_config_built_on_a_cpu_is_read_as_the_settings_it_changes(tmp_path):
    from transformers import BitsAndBytesConfig
    from trl import GRPOConfig

    quantised = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, beta=0.02,
                      model_init_kwargs={"quantization_config": quantised})
    spec = tiny_trl_spec()
    spec = TrialSpec.for_trl(spec.trl, args, environment=spec.environment)
    assert spec.base_config.grpo_args == {"use_cpu": True, "bf16": False, "beta": 0.02}
    loading = spec.agent_config.model_init_kwargs["quantization_config"]
    assert loading["load_in_4bit"] is True and loading["bnb_4bit_quant_type"] == "nf4"
    assert json.loads(json.dumps(dataclasses.asdict(spec.agent_config)))["model_init_kwargs"] == {
        "quantization_config": loading}  # plain JSON: the summary and best_model/agent_config.json keep it


def test_a_health_rule_stops_a_trl_trial_whose_policy_cannot_move(tmp_path):
    reporter = TrialReporter(lambda report: None, tiny_trl_spec().health, None, tmp_path)
    run_trial(tiny_trl_spec(learning_rate=1e-9, beta=0.02, num_episodes=64, max_completion_length=24), {}, reporter)
    assert reporter.stopped_by == "policy_frozen", reporter.stop_reason
    assert len(reporter.history) < 8


def test_a_trl_trial_resumes_from_its_own_checkpoint_where_it_stopped(tmp_path):
    spec = tiny_trl_spec()
    saved = {}

    def stop_after_two(metrics, run):
        if metrics["iteration"] == 2:
            saved["folder"] = run.save_checkpoint(tmp_path / "ckpt")
            saved["metrics"] = metrics
            return True

    run_trial(spec, {}, stop_after_two)
    assert (saved["folder"] / "adapter_model.safetensors").is_file()  # TRL's checkpoint: the adapter only
    resumed = []
    run_trial(spec, {}, lambda metrics, run: resumed.append((metrics, list(run.history))), restore_from=saved["folder"])
    assert [m["iteration"] for m, _ in resumed] == [3.0]
    assert [h["iteration"] for h in resumed[0][1]] == [1.0, 2.0, 3.0]  # the run's history goes on
    assert resumed[0][0]["generated_tokens"] > saved["metrics"]["generated_tokens"]


def test_a_replayed_schedule_trains_each_stretch_under_its_settings():
    """A PBT recommendation is validated as its schedule: learning rate 1e-3 for 2 steps, then 1e-4."""
    from stateset_hpo.lifecycle import schedule_of
    from stateset_hpo.trial import SCHEDULE_KEY

    schedule = [{"iteration": 0, "params": {"learning_rate": 1e-3}}, {"iteration": 2, "params": {"learning_rate": 1e-4}}]
    seen = []
    run_trial(tiny_trl_spec(), {"learning_rate": 1e-3, SCHEDULE_KEY: json.dumps(schedule)},
              lambda metrics, run: seen.append((metrics, schedule_of(run.config_schedule))))
    assert [m["iteration"] for m, _ in seen] == [1.0, 2.0, 3.0]
    # TRL's linear decay over 3 steps, from each stretch's own learning rate
    assert [round(m["learning_rate"], 8) for m, _ in seen] == [1e-3, round(1e-3 * 2 / 3, 8), round(1e-4 / 3, 8)]
    assert seen[-1][1] == schedule


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["wandb"])
def test_a_trl_study_runs_on_the_in_process_backends(tmp_path, backend):
    from stateset_hpo.study import run_study

    config = study_config(tmp_path, backend, n_trials=2, engine="trl", base_training_config={**TINY_TRL, "num_episodes": 16},
                          search_space=get_search_space("trl").subset(["learning_rate", "beta"]))
    summary = run_study(config, tiny_trl_spec())
    assert summary.n_trials == 2 and summary.n_successful + summary.n_pruned == 2
    assert all(len(r.history) >= 1 and "eval_reward" in r.history[-1] for r in summary.all_results)


def test_a_trl_study_on_optuna_reaches_a_verdict(tmp_path):
    from stateset_hpo.study import run_study

    config = HPOConfig(backend="optuna", engine="trl", search_space=get_search_space("trl").subset(["learning_rate"]),
                       n_trials=2, output_dir=str(tmp_path), verbose=False, save_plots=False, validation_top_k=1,
                       validation_seeds=2, seed=0, optuna_config={"sampler": "random"},
                       base_training_config={**TINY_TRL, "num_episodes": 16})
    summary = run_study(config, tiny_trl_spec())
    assert summary.n_trials == 2
    assert all(len(r.history) == 2 for r in summary.all_results if r.status.value == "success")
    assert summary.validation["comparison"]["verdict"]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["validation"]["configurations"][0]["transcripts"]


# -- bad input: one line, exit 2, before any trial -----------------------------------------------------------------
REWARDS = textwrap.dedent('''
    def length(prompts, completions, **kwargs):
        return [len(c) / 100 for c in completions]

    def no_kwargs(prompts, completions):
        return [0.0 for _ in completions]

    def wrong_count(prompts, completions, **kwargs):
        return [0.0, 1.0]

    def annealed(prompts, completions, trainer_state, **kwargs):
        return [min(1.0, trainer_state.global_step / 10) for _ in completions]
''')


@pytest.fixture
def user_files(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(REWARDS)
    rows = [{"prompt": f"say hello to customer {i}"} for i in range(10)]
    (tmp_path / "prompts.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "no_prompt.jsonl").write_text("\n".join(json.dumps({"question": f"q{i}"}) for i in range(10)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_rewards", None)


@pytest.mark.parametrize("args, message", [
    (["--set", "learning_rat=1e-5"], "'learning_rat' is no GRPOConfig field"),
    (["--space", "grpo"], "is no GRPOConfig field"),
    (["--set", "max_steps=10"], "GRPOConfig.max_steps is set by the study"),
    (["--set", 'use_vllm="no"'], "GRPOConfig.use_vllm must be True or False"),
    (["--set", "model_init_kwargs={load_in_4bit: true}"], "model_init_kwargs.load_in_4bit is not passed to"),
    (["--set", "model_init_kwargs={quantization_config: {load_in_8bit: true, load_in_4bit: true}}"],
     "exactly one of load_in_4bit"),
    (["--dataset", "no_prompt.jsonl", "--reward", "my_rewards:length"], "every row needs a 'prompt'"),
    (["--dataset", "prompts.jsonl", "--reward", "my_rewards:no_kwargs"], "must take TRL's arguments"),
    (["--dataset", "prompts.jsonl", "--reward", "my_rewards:wrong_count"], "must return a list of 1 scores"),
    (["--dataset", "prompts.jsonl", "--reward", "safety"], "with --dataset a reward is a module:function"),
    (["--dataset", "missing.jsonl", "--reward", "my_rewards:length"], "no such file or folder"),
    (["--dataset", "nobody/no-such-dataset", "--reward", "my_rewards:length"], "cannot load it from the Hugging Face"),
    (["--backend", "ray_tune", "--execution", "direct", "--trials-per-worker", "2", "--n-parallel-trials", "2"],
     "each TRL trial loads its own"),
])
def test_bad_trl_input_is_one_line_before_any_trial(user_files, capsys, monkeypatch, args, message):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # (a Hub name fails at once, network or not)
    assert main(["--engine", "trl", "--backend", "optuna", *args, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_a_dataset_without_the_trl_engine_is_refused(user_files, capsys):
    assert main(["--dataset", "prompts.jsonl", "--reward", "my_rewards:length", "--dry-run"]) == 2
    assert "add --engine trl" in capsys.readouterr().err


def test_a_jsonl_dataset_with_trl_rewards_is_a_valid_study(user_files, capsys):
    assert main(["--engine", "trl", "--backend", "optuna", "--dataset", "prompts.jsonl",
                 "--reward", "my_rewards:length=2", "--reward", "my_rewards:annealed", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "engine: TRL" in out and "6 train / 2 selection / 2 test prompts" in out and "length 2, annealed 1" in out


# -- Ray: TRL trials as Train workers and as Tune trials, seen by Tune's schedulers ------------------------------------
@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_asha_stops_a_trl_trial_at_its_first_rung_on_ray(tmp_path):
    """The objective is the logged learning rate (linear decay from each trial's own): the second
    trial's is below the first's, so ASHA's median cutoff stops it at its first rung (8 episodes).
    (Direct trials; a TRL trial in a Train worker runs in the Tuner test below.)"""
    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.CHOICE, choices=[1e-3, 1e-5],
                                         default=1e-3)])
    config = study_config(tmp_path, "ray_tune", n_trials=2, search_space=space, objective_metric="learning_rate",
                          health_rules={"enabled": False}, base_training_config={**TINY_TRL, "num_episodes": 32},
                          ray_config={"execution": "direct", "scheduler": "asha", "search_alg": "grid",
                                      "grace_period": 8, "reduction_factor": 2})
    from stateset_hpo.study import run_study

    summary = run_study(config, tiny_trl_spec())
    by_lr = {r.params["learning_rate"]: r for r in summary.all_results}
    assert by_lr[1e-3].status.value == "success" and len(by_lr[1e-3].history) == 4
    assert by_lr[1e-5].status.value == "pruned" and len(by_lr[1e-5].history) == 1, by_lr[1e-5].history


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_pbt_exploits_a_trl_trials_checkpoint(tmp_path):
    from stateset_hpo.study import run_study

    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-9, high=3e-3,
                                         default=1e-3)])
    # the objective is the logged learning rate: trials below the others' are exploited for sure (ties never are)
    config = study_config(tmp_path, "ray_tune", n_trials=4, n_parallel_trials=2, search_space=space,
                          health_rules={"enabled": False},
                          objective_metric="learning_rate", base_training_config={**TINY_TRL, "num_episodes": 48},
                          ray_config={"execution": "direct", "scheduler": "pbt", "search_alg": "random",
                                      "perturbation_interval": 16})
    # each report takes 0.6 s, so two trials run side by side for PBT to compare (TRL's
    # steps on the tiny model take a fifth of one: a trial could end before Tune saw the other's result)
    spec = dataclasses.replace(tiny_trl_spec(), derived_metrics={"slowly": lambda metrics: time.sleep(0.6) or 0.0})
    summary = run_study(config, spec)
    assert summary.n_failed == 0, [r.error for r in summary.all_results if r.error]
    log = tmp_path / "out" / "ray_results" / "grpo_hpo" / "pbt_global.txt"
    exploits = [json.loads(line) for line in log.read_text().splitlines()]
    assert exploits, "PBT never exploited a TRL checkpoint"
    scheduled = [r for r in summary.all_results if r.schedule]
    assert scheduled and all(r.schedule[-1]["params"]["learning_rate"] == r.params["learning_rate"] for r in scheduled)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("engine", ["grpo", "trl"])
def test_the_documented_tuner_snippet_runs_for_both_engines(tmp_path, engine):
    """docs/backends.md: our trainable in a user's own `tune.Tuner`, with their scheduler."""
    from ray import tune

    from helpers import tiny_spec
    from stateset_hpo.search.ray.backend import grpo_trainable
    from stateset_hpo.search.ray.space import to_tune

    spec = tiny_trl_spec() if engine == "trl" else tiny_spec(num_episodes=24)
    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-4, high=1e-3,
                                         default=5e-4)])
    tuner = tune.Tuner(grpo_trainable(spec, workers_per_trial=1, cpu_per_trial=1, gpu_per_trial=0),
                       param_space=to_tune(space),
                       tune_config=tune.TuneConfig(metric="eval_reward", mode="max", num_samples=1,
                                                   scheduler=tune.schedulers.ASHAScheduler(
                                                       time_attr="training_iteration")),
                       run_config=tune.RunConfig(storage_path=str(tmp_path)))
    results = tuner.fit()
    assert len(results) == 1 and not results.errors
    assert all(r.metrics["training_iteration"] == 3 and "eval_reward" in r.metrics for r in results)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_a_trl_trial_trains_data_parallel_on_two_train_workers(tmp_path):
    """workers_per_trial 2: TRL's trainer runs in both Train workers through accelerate (their
    gloo group), each generating its per-device batch of 4, so one optimizer step trains on the
    group's 8 completions and the schedulers' clock says so; both ranks take part in TRL's
    checkpoint, which holds each rank's RNG state. (Two steps: a budget of 16 episodes.)"""
    from stateset_hpo.study import run_study

    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.CHOICE, choices=[5e-4], default=5e-4)])
    config = study_config(tmp_path, "ray_tune", n_trials=1, n_parallel_trials=1, search_space=space,
                          cpu_per_trial=0.5, checkpoint_freq=1,
                          base_training_config={**TINY_TRL, "per_device_train_batch_size": 4, "num_episodes": 16},
                          ray_config={"execution": "train", "workers_per_trial": 2, "search_alg": "random",
                                      "scheduler": "fifo"})
    summary = run_study(config, tiny_trl_spec())
    assert summary.n_successful == 1, [r.error for r in summary.all_results]
    history = summary.all_results[0].history
    assert [h["iteration"] for h in history] == [1, 2] and [h["episodes"] for h in history] == [8, 16]
    checkpoint = Path(summary.all_results[0].checkpoint_path)
    assert {"rng_state_0.pth", "rng_state_1.pth", "adapter_model.safetensors"} <= {p.name for p in checkpoint.iterdir()}
