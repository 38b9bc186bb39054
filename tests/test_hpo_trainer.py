"""GRPOHPOTrainer and quick_hpo as the user guide uses them, plus the study-level settings
(early_stopping_patience, keep_best_n, checkpoint_freq) on the in-process backends."""

import asyncio
import json

import pytest

from helpers import tiny_spec

from stateset_hpo import HPOConfig, HPOResult, HPOSummary, SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.grpo import AgentConfig, MultiTurnAgent, MultiTurnGRPOTrainer
from stateset_hpo.hpo_trainer import GRPOHPOTrainer, load_trained_agent, quick_hpo

C = SearchSpaceType.CHOICE
LR_SPACE = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-4, high=3e-3,
                                        default=1e-3)])
HOPELESS = SearchSpace([SearchDimension("learning_rate", C, choices=[1e-9, 2e-9], default=1e-9)])


def parts(**overrides):
    spec = tiny_spec(**overrides)
    return dict(agent=MultiTurnAgent(AgentConfig()), environment=spec.environment, reward_function=spec.reward,
                base_config=spec.base_config)


def hpo(tmp_path, space=LR_SPACE, n_trials=2, backend="optuna", **fields):
    section = {"optuna": {"optuna_config": {"pruner": "none"}, "seed": 0},
               "wandb": {"wandb_config": {"method": "random"}}}[backend]
    return HPOConfig(backend=backend, search_space=space, n_trials=n_trials, output_dir=str(tmp_path),
                     objective_metric="eval_reward", **{"verbose": False, "save_plots": False, "validation_top_k": 0,
                                                        **section, **fields})


@pytest.mark.slow
def test_quick_hpo_from_a_plain_script(tmp_path):
    summary = asyncio.run(quick_hpo(**parts(include_value_function=True), n_trials=2, search_space_name="conservative",
                                    output_dir=str(tmp_path), seed=0, validation_top_k=1,
                                    validation_seeds=2))
    assert summary.n_successful == 2 and summary.best_params and summary.best_metric is not None
    # validation: the recommendation (the search's best) and the baseline (the base training config),
    # each retrained with the same 2 fresh seeds at one budget and scored on the test split
    v = summary.validation
    recommended, baseline = v["configurations"]
    assert recommended["label"] == v["recommended"] == f"trial {summary.best_trial_id}"
    assert recommended["params"] == {**summary.best_params, "num_episodes": 8} == {**recommended["params"]}
    base = parts(include_value_function=True)["base_config"]
    assert baseline["params"] == {**{k: getattr(base, k) for k in summary.best_params}, "num_episodes": 8}
    assert all(c["seeds"] == [10_000, 10_001] and len(c["scores"]) == 2 for c in v["configurations"])
    assert v["metric"] == "test_reward" and v["held_out"] and v["budget_episodes"] == 8
    assert v["comparison"]["n_seeds"] == 2 and v["comparison"]["n_conversations"] == 60
    assert v["comparison"]["verdict"] in ("better", "worse", "no significant difference")
    assert v["sentence"] in summary.format_summary()
    assert HPOSummary.load(tmp_path / "summary.json").validation == summary.validation


def test_optimize_inside_a_running_event_loop_does_not_freeze_it_and_shows_progress(tmp_path, capsys):
    async def main():
        ticks = []

        async def ticker():
            while True:
                ticks.append(1)
                await asyncio.sleep(0.05)

        task = asyncio.create_task(ticker())
        summary = await GRPOHPOTrainer(**parts(), hpo_config=hpo(tmp_path, verbose=True)).optimize()
        task.cancel()
        return summary, len(ticks)

    summary, ticks = asyncio.run(main())
    assert summary.n_successful == 2 and ticks > 10
    shown = capsys.readouterr().out  # the same progress as the CLI (plain lines: not a terminal)
    assert "[1/2] trial 0 success eval_reward=" in shown and "[2/2] trial 1 success" in shown


def test_train_with_best_params_saves_a_loadable_agent(tmp_path):
    trainer = GRPOHPOTrainer(**parts(), hpo_config=hpo(tmp_path))
    with pytest.raises(RuntimeError, match="optimize"):
        asyncio.run(trainer.train_with_best_params())
    summary = asyncio.run(trainer.optimize())
    agent = asyncio.run(trainer.train_with_best_params(full_episodes=16))
    folder = tmp_path / "best_model"
    assert json.loads((folder / "best_params.json").read_text()) == summary.best_params
    assert json.loads((folder / "training_config.json").read_text())["num_episodes"] == 16
    assert (folder / "adapter_config.json").is_file()
    prompt = [{"role": "user", "content": "i want a refund for my lamp ."}]
    loaded = load_trained_agent(str(folder))
    assert loaded.respond(prompt) == agent.respond(prompt)  # greedy: the same weights answer the same


class FixedTemperature(GRPOHPOTrainer):
    """A subclass that overrides only _create_training_config (the guide's other hook)."""

    def _create_training_config(self, params):
        return super()._create_training_config(params).with_params({"temperature": 0.5})


def test_a_custom_training_config_holds_in_the_default_objective_and_the_final_run(tmp_path):
    trainer = FixedTemperature(**parts(), hpo_config=hpo(tmp_path, n_trials=1))
    value = asyncio.run(trainer._objective_function({"learning_rate": 1e-4}))
    assert isinstance(value, float)
    asyncio.run(trainer.optimize())
    asyncio.run(trainer.train_with_best_params(full_episodes=8))
    saved = json.loads((tmp_path / "best_model" / "training_config.json").read_text())
    assert saved["temperature"] == 0.5 and saved["num_episodes"] == 8


class WeightedObjective(GRPOHPOTrainer):
    """The guide's custom objective: 0.7 reward + 0.3 safety."""

    async def _objective_function(self, params):
        config = self._create_training_config(params)
        trainer = MultiTurnGRPOTrainer(MultiTurnAgent(self.agent.config), self.environment, self.reward_function,
                                       config)
        metrics = await trainer.train()
        calls.append((metrics["reward"], metrics["safety_score"]))
        return 0.7 * metrics["reward"] + 0.3 * metrics["safety_score"]


calls = []


@pytest.mark.parametrize("backend", ["optuna", "wandb"])
def test_a_custom_objective_function_is_the_trial_on_every_backend(tmp_path, backend, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    calls.clear()
    summary = asyncio.run(WeightedObjective(**parts(), hpo_config=hpo(tmp_path, backend=backend)).optimize())
    assert summary.n_successful == 2 and len(calls) == 2
    assert sorted(r.best_metric for r in summary.all_results) == pytest.approx(
        sorted(0.7 * r + 0.3 * s for r, s in calls))


@pytest.mark.parametrize("backend", ["optuna", "wandb"])
def test_early_stopping_patience_ends_the_study(tmp_path, backend, monkeypatch):
    # Both learning rates are too small to change anything: every trial scores the same, so
    # after the first one nothing improves and patience 2 ends the study after 3 trials.
    monkeypatch.setenv("WANDB_MODE", "offline")
    summary = asyncio.run(GRPOHPOTrainer(**parts(), hpo_config=hpo(
        tmp_path, HOPELESS, n_trials=10, backend=backend, early_stopping_patience=2)).optimize())
    assert summary.n_trials == 3


@pytest.mark.parametrize("backend", ["optuna", "wandb"])
def test_keep_best_n_leaves_only_the_best_checkpoints(tmp_path, backend, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    summary = asyncio.run(GRPOHPOTrainer(**parts(), hpo_config=hpo(tmp_path, n_trials=3, backend=backend,
                                                                   keep_best_n=1)).optimize())
    (kept,) = [r for r in summary.all_results if r.checkpoint_path]  # a best trial (trials may tie)
    assert kept.best_metric == summary.best_metric
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [kept.trial_id]


@pytest.mark.parametrize("backend", ["optuna", "wandb"])
def test_checkpoint_freq_saves_the_study_so_far(tmp_path, backend, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    seen = []

    class Peek:
        def on_trial_start(self, trial_id, params):
            path = tmp_path / "summary.json"
            seen.append(HPOSummary.load(path).n_trials if path.exists() else 0)

    asyncio.run(GRPOHPOTrainer(**parts(), hpo_config=hpo(tmp_path, n_trials=3, backend=backend, checkpoint_freq=2),
                               callbacks=[Peek()]).optimize())
    assert seen == [0, 0, 2]


@pytest.mark.slow  # (8-9 s: the inner loop stays under 5 minutes; CI runs it)
def test_plots_and_report_render_from_any_study(tmp_path):
    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-4, high=3e-3,
                                         default=1e-3),
                         SearchDimension("group_size", C, choices=[4, 8], default=4)])
    trainer = GRPOHPOTrainer(**parts(num_episodes=16), hpo_config=hpo(tmp_path, space, n_trials=4, save_plots=True))
    with pytest.raises(RuntimeError, match="optimize"):
        trainer.plot_results()
    summary = asyncio.run(trainer.optimize())
    from stateset_hpo.plots import PNG_NAMES, param_importances

    for name in PNG_NAMES:
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert "plotly" in (tmp_path / "plots" / "plots.html").read_text()[:200000]
    assert param_importances(summary, space) == {}  # 4 trials: an importance ranking would be noise
    many = HPOSummary("eval_reward", "maximize", [
        HPOResult(str(i), {"learning_rate": 1e-4 * (1 + i), "group_size": (4, 8)[i % 2]}, best_metric=0.1 * i)
        for i in range(8)])
    importances = param_importances(many, space)
    assert set(importances) == {"learning_rate", "group_size"} and sum(importances.values()) == pytest.approx(1)
    assert importances["learning_rate"] > importances["group_size"]
    report = (tmp_path / "report.html").read_text()
    assert f"recommended: trial {summary.best_trial_id}" in report and "plots/learning_curves.png" in report
    assert all(f"<td>{r.trial_id}</td>" in report for r in summary.all_results)
    assert [p.name for p in trainer.plot_results(str(tmp_path / "again"))] == [*PNG_NAMES, "plots.html"]
