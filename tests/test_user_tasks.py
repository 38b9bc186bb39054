"""A user's own task: scenarios in the guide's shape (dicts, JSONL, YAML, a datasets.Dataset),
played by the scripted simulator, with one clear error naming the scenario and field that is
wrong; and a task with words no built-in scenario has trains on the tiny model built from it."""

import json
from pathlib import Path

import pytest
from helpers import TINY

from stateset_hpo.grpo import AgentConfig, ConversationEnvironment, MultiTurnAgent, TrainingConfig
from stateset_hpo.grpo.rewards import CompositeReward, CorrectnessReward, ReplyContext, TaskCompletionReward
from stateset_hpo.grpo.tiny_model import TINY_MODEL, task_agent_config
from stateset_hpo.grpo.user_scenarios import load_scenarios
from stateset_hpo.launch import main
from stateset_hpo.trial import TrialSpec, run_trial


def guide_scenario(i, topic="lighthouse_tour", **changes):
    row = {"id": f"{topic}-{i}", "topic": topic,
           "user_goal": f"can i book the {topic.replace('_', ' ')} for {i + 2} people ?",
           "context": {"boat": f"skiff {i}", "tide": "low"},
           "user_responses": ["on saturday morning please .", "wonderful , see you there ."],
           "facts": ["lifejackets", "harbour steps"], "expected_actions": ["reserve seats"]}
    return {**row, **changes}


def test_guide_shaped_dicts_become_scenarios_the_simulator_plays_in_order():
    env = ConversationEnvironment([guide_scenario(i) for i in range(15)], max_turns=3)
    assert len(env.train_scenarios) + len(env.selection_scenarios) + len(env.test_scenarios) == 15
    assert env.selection_scenarios and env.test_scenarios  # unmarked scenarios are split
    s = env.train_scenarios[0]
    system, user = env.start(s)
    assert "boat: skiff" in system["content"] and "tide: low" in system["content"]
    assert user["content"] == s.opening and s.opening.startswith("can i book the lighthouse tour")
    conversation = [system, user, {"role": "assistant", "content": "no questions from me ."}]
    assert env.respond(s, conversation)["content"] == "on saturday morning please ."  # scripted, not reactive
    conversation += [env.respond(s, conversation), {"role": "assistant", "content": "booked ."}]
    assert env.respond(s, conversation)["content"] == "wonderful , see you there ."
    conversation += [env.respond(s, conversation), {"role": "assistant", "content": "bye ."}]
    assert env.respond(s, conversation) is None  # the script ran out (and so did max_turns)
    assert s.forbidden[-1] == "card number"  # the built-in unsafe phrases are always checked
    assert load_scenarios([guide_scenario(0, id=17)])[0].id == "17"  # numeric ids, as JSONL files often have


def test_the_rewards_read_a_user_scenarios_facts_actions_and_other_topics():
    rows = [guide_scenario(i) for i in range(3)] + [
        guide_scenario(i, topic="seal_watching", facts=["binoculars"], expected_actions=["hold a place"])
        for i in range(3)]
    tour = next(s for s in load_scenarios(rows) if s.topic == "lighthouse_tour")
    assert tour.wrong_facts == ("binoculars",)
    right = ReplyContext(tour, (), "bring lifejackets to the harbour steps and i will reserve seats .")
    wrong = ReplyContext(tour, (), "bring lifejackets and binoculars to the harbour steps .")
    assert CorrectnessReward()(right) == 1.0 and CorrectnessReward()(wrong) == 0.5
    assert TaskCompletionReward()(right) == 1.0 and TaskCompletionReward()(wrong) == 0.0


@pytest.mark.parametrize("row, message", [
    (guide_scenario(0, user_responses="on saturday"),
     r"scenario 0 \('lighthouse_tour-0'\): field 'user_responses' must be a list of non-empty strings"),
    ({k: v for k, v in guide_scenario(0).items() if k != "user_goal"},
     r"scenario 0 \('lighthouse_tour-0'\): missing field user_goal"),
    (guide_scenario(0, expected_action=["x"]), r"unknown fields \['expected_action'\]; valid fields: id, topic"),
    (guide_scenario(0, split="validation"), r"field 'split' must be one of train, selection, test"),
    (guide_scenario(0, context=["a list"]), r"field 'context' must be a string or a mapping"),
    (guide_scenario(0, topic=""), r"field 'topic' must be a non-empty string"),
    ("not a mapping", r"scenario 1: a scenario must be a mapping with id, topic, user_goal, user_responses"),
])
def test_a_wrong_scenario_is_named_with_its_field(row, message):
    with pytest.raises(ValueError, match=message):
        ConversationEnvironment([guide_scenario(1), row] if isinstance(row, str) else [row])


def test_scenario_files_and_datasets(tmp_path):
    rows = [guide_scenario(i, split=["train", "selection", "test"][i % 3]) for i in range(9)]
    jsonl = tmp_path / "tours.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    env = ConversationEnvironment(str(jsonl))
    assert [len(env.train_scenarios), len(env.selection_scenarios), len(env.test_scenarios)] == [3, 3, 3]
    yaml_file = tmp_path / "tours.yaml"
    import yaml

    yaml_file.write_text(yaml.safe_dump({"scenarios": rows}))
    assert load_scenarios(yaml_file) == load_scenarios(rows) == load_scenarios(jsonl)
    datasets = pytest.importorskip("datasets")  # the [data] extra (in [test])
    table = datasets.Dataset.from_list([{**r, "context": json.dumps(r["context"])} for r in rows])
    assert [s.id for s in ConversationEnvironment(table).scenarios] == [s.id for s in env.scenarios]

    jsonl.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match="tours.jsonl line 2: not JSON"):
        load_scenarios(jsonl)
    jsonl.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[0]) + "\n")
    with pytest.raises(ValueError, match="scenario id 'lighthouse_tour-0' appears twice"):
        load_scenarios(jsonl)
    with pytest.raises(ValueError, match="scenario file .*missing.jsonl' does not exist"):
        ConversationEnvironment(str(tmp_path / "missing.jsonl"))


@pytest.mark.slow
def test_a_task_with_new_words_trains_on_a_tiny_model_built_from_it():
    # words no built-in scenario has: the task's own tiny model knows them (not unknown tokens)
    rows = [guide_scenario(i, topic=topic, facts=facts, expected_actions=actions,
                           reference_reply=f"the {topic.replace('_', ' ')} leaves from the harbour steps . bring "
                                           f"{' and '.join(facts)} . i will {actions[0]} for you . how many ?")
            for topic, facts, actions in [("lighthouse_tour", ["lifejackets", "harbour steps"], ["reserve seats"]),
                                          ("seal_watching", ["binoculars", "warm gloves"], ["hold a place"])]
            for i in range(20)]
    env = ConversationEnvironment(rows)
    config = task_agent_config(AgentConfig(), env)
    assert config.model_name != TINY_MODEL
    tokenizer = MultiTurnAgent(config).initialize().tokenizer
    assert tokenizer.unk_token_id not in tokenizer("lifejackets binoculars skiff")["input_ids"]

    reward = CompositeReward([(CorrectnessReward(), 0.5), (TaskCompletionReward(), 0.5)])
    spec = TrialSpec(environment=env, reward=reward, health=None,
                     base_config=TrainingConfig(**{**TINY, "num_episodes": 16 * 10, "per_device_train_batch_size": 4,
                                                   "max_new_tokens": 32}))

    def held_out(lr):
        rows = []
        run_trial(spec, {"learning_rate": lr}, lambda metrics, trainer: rows.append(metrics))
        return rows[-1]["eval_reward"]

    assert held_out(1e-3) > held_out(1e-9) + 0.2  # measured: 0.52 against 0.055


def test_a_trl_reward_function_scores_replies_next_to_the_built_in_rewards():
    calls = []

    def mentions_lifejackets(prompts, completions, facts, **kwargs):  # TRL's convention
        calls.append((list(prompts), list(completions), facts, kwargs))
        return [1.0 if "lifejackets" in c else 0.0 for c in completions]

    env = ConversationEnvironment([guide_scenario(i) for i in range(6)])
    reward = CompositeReward([(mentions_lifejackets, 0.5), (TaskCompletionReward(), 0.5)])
    assert reward.names == ["mentions_lifejackets", "task_completion"]
    s = env.train_scenarios[0]
    history = tuple(env.start(s))
    contexts = [ReplyContext(s, history, "bring lifejackets ."), ReplyContext(s, history, "i will reserve seats .")]
    assert [reward.combine(x) for x in reward.scores_batch(contexts)] == [0.5, 0.5]
    ((prompts, completions, facts, kwargs),) = calls  # one call for the batch
    assert prompts == [s.opening] * 2 and completions == ["bring lifejackets .", "i will reserve seats ."]
    assert facts == [["lifejackets", "harbour steps"]] * 2 and kwargs["scenario_id"] == [s.id] * 2
    assert kwargs["context"][0].startswith("boat: skiff")


def test_a_conversational_trl_reward_sees_the_whole_conversation_and_may_abstain():
    seen = []

    def judge_follow_up(prompts, completions, **kwargs):
        seen.extend(prompts)
        # abstains on the first reply of a conversation: only later turns are its business
        return [None if sum(m["role"] == "assistant" for m in p) == 0 else float("saturday" in c[0]["content"])
                for p, c in zip(prompts, completions)]

    from stateset_hpo.grpo.rewards import FunctionReward

    reward = CompositeReward([(FunctionReward(judge_follow_up, conversational=True), 3.0),
                              (TaskCompletionReward(), 1.0)])
    s = ConversationEnvironment([guide_scenario(i) for i in range(6)]).train_scenarios[0]
    first = ReplyContext(s, ({"role": "user", "content": s.opening},), "i will reserve seats .")
    later = ReplyContext(s, first.history + ({"role": "assistant", "content": "when ?"},
                                             {"role": "user", "content": "on saturday morning please ."}),
                         "saturday it is .")
    scores = reward.scores_batch([first, later])
    assert scores[0]["judge_follow_up"] is None and reward.combine(scores[0]) == 1.0  # the other component alone
    assert reward.combine(scores[1]) == 0.75 and seen[1][-1]["content"] == "on saturday morning please ."


@pytest.mark.parametrize("returned, message", [
    (lambda n: [0.5] * (n + 1), r"must return a list of 2 scores \(one per completion\)"),
    (lambda n: 0.5, r"must return a list of 2 scores"),
    (lambda n: [float("nan")] * n, r"returned nan: each score must be a finite number or None"),
    (lambda n: ["high"] * n, r"returned 'high'"),
])
def test_a_reward_function_of_the_wrong_shape_is_refused_with_what_it_returned(returned, message):
    def bad(prompts, completions, **kwargs):
        return returned(len(completions))

    s = load_scenarios([guide_scenario(0)])[0]
    with pytest.raises(ValueError, match=message):
        CompositeReward([(bad, 1.0)]).scores_batch([ReplyContext(s, (), "a"), ReplyContext(s, (), "b")])


def test_a_user_simulator_of_your_own_sync_or_async_plays_the_user():
    def impatient(scenario, conversation):  # reacts to what the agent said
        last = conversation[-1]["content"]
        return None if "booked" in last else f"you did not say if the {scenario.item} is booked ."

    async def polite(scenario, conversation):
        return {"role": "user", "content": "thank you ."}

    rows = [guide_scenario(i) for i in range(6)]
    env = ConversationEnvironment(rows, max_turns=3, user_simulator=impatient)
    s = env.train_scenarios[0]
    conversation = env.start(s) + [{"role": "assistant", "content": "hello ."}]
    assert env.respond(s, conversation) == {"role": "user", "content": "you did not say if the lighthouse tour is "
                                                                       "booked ."}
    assert env.respond(s, conversation[:-1] + [{"role": "assistant", "content": "it is booked ."}]) is None
    env = ConversationEnvironment(rows, max_turns=2, user_simulator=polite)
    assert env.respond(s, conversation)["content"] == "thank you ."

    async def inside_a_running_loop():  # e.g. await trainer.train() from a user's async code
        return env.respond(s, conversation)

    import asyncio

    assert asyncio.run(inside_a_running_loop())["content"] == "thank you ."
    assert env.respond(s, conversation + [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]) \
        is None  # max_turns still bounds it
    with pytest.raises(ValueError, match="the user simulator must return the user's message .* got 42"):
        ConversationEnvironment(rows, user_simulator=lambda s, c: 42).respond(s, conversation)
    with pytest.raises(ValueError, match="user_simulator must be a function"):
        ConversationEnvironment(rows, user_simulator="impatient")


def test_a_per_reply_reward_of_your_own_needs_only_a_name_and_a_call():
    class Polite:  # not a Reward subclass: a callable with a name scores one reply, as before
        name = "polite"

        def __call__(self, ctx):
            return float("please" in ctx.reply)

    s = load_scenarios([guide_scenario(0)])[0]
    reward = CompositeReward([(Polite(), 1.0), (lambda prompts, completions, **kw: [0.0] * len(completions), 1.0)])
    assert reward.names == ["polite", "<lambda>"]
    assert [reward.combine(x) for x in reward.scores_batch([ReplyContext(s, (), "please wait ."),
                                                            ReplyContext(s, (), "wait .")])] == [0.5, 0.0]


def test_a_local_llm_judges_replies_next_to_the_built_in_rewards():
    from ray import cloudpickle

    from stateset_hpo.grpo import JudgeReward, SafetyReward, get_scenarios

    s = get_scenarios("customer_service")[0]
    history = tuple(ConversationEnvironment("customer_service").start(s))
    replies = [s.reply, "that is not my problem . ask someone else .", "ok"]
    contexts = [ReplyContext(s, history, r) for r in replies]
    judge = JudgeReward(TINY_MODEL)  # the tiny model: offline; its judgement means little, the plumbing is real
    scores = judge.batch(contexts)
    assert all(0 < x < 1 for x in scores) and len(set(scores)) == 3  # P(yes) against P(no), per reply
    assert [judge(c) for c in contexts] == pytest.approx(scores, abs=1e-5)  # batched (left-padded) = one by one
    travelled = cloudpickle.loads(cloudpickle.dumps(judge))  # to a Ray worker: without the loaded model
    assert len(cloudpickle.dumps(judge)) < 2000 and travelled.batch(contexts) == pytest.approx(scores, abs=1e-6)
    composite = CompositeReward([(JudgeReward(TINY_MODEL, weight=None), 0.5), (SafetyReward(), 0.5)])
    assert composite(contexts[1]) == pytest.approx(0.5 * scores[1])  # (the reply is unsafe: safety 0)
    with pytest.raises(ValueError, match="no token for the answer 'definitely'"):
        JudgeReward(TINY_MODEL, yes="definitely")(contexts[0])


SCENARIOS_FILE = str(Path(__file__).parent.parent / "examples" / "data" / "order_status.jsonl")


@pytest.mark.parametrize("flags, message", [
    (["--scenarios", "/no/such/tours.jsonl"], "--scenarios /no/such/tours.jsonl: no such file"),
    (["--reward", "safety"], "--reward needs --scenarios"),
    (["--scenarios", SCENARIOS_FILE, "--reward", "judge=0.3"], "'judge' is no built-in reward"),
    (["--scenarios", SCENARIOS_FILE, "--reward", "safety=heavy"], "--reward safety=heavy: the weight 'heavy' is not"),
    (["--scenarios", SCENARIOS_FILE, "--reward", "no_such_module_xyz:score"], "cannot import 'no_such_module_xyz'"),
    (["--task", "no_such_module_xyz:make"], "--task no_such_module_xyz:make: cannot import"),
    (["--task", "tasks:make", "--judge", TINY_MODEL], "use it without --scenarios, --reward and --judge"),
    (["--judge", "/no/such/judge"], "--judge /no/such/judge: model path '/no/such/judge' does not exist"),
    (["--judge", f"{TINY_MODEL}=much"], "the weight 'much' is not a number"),
    (["--judge", f"{TINY_MODEL}=-1"], "reward 'judge': weight must be a finite number >= 0"),
])
def test_bad_task_flags_exit_2_with_one_line_before_any_trial(capsys, flags, message):
    assert main(["--backend", "optuna", *flags, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_the_judge_flag_adds_a_local_llm_judge_to_your_scenarios_or_the_built_in_task(capsys):
    assert main(["--backend", "optuna", "--scenarios", SCENARIOS_FILE, "--reward", "safety=0.5",
                 "--judge", f"{TINY_MODEL}=0.3", "--dry-run"]) == 0
    assert "safety 0.5, judge 0.3 (stateset-tiny)" in capsys.readouterr().out
    assert main(["--backend", "optuna", "--space", "customer_service", "--judge", TINY_MODEL, "--dry-run"]) == 0
    assert "helpfulness 0.35, safety 0.25, engagement 0.2, conciseness 0.2, judge 1 (stateset-tiny)" in \
        capsys.readouterr().out


def test_a_judge_scores_a_real_trials_replies_in_training_and_evaluation():
    from stateset_hpo.grpo import JudgeReward, domain_reward

    reward = CompositeReward([*domain_reward("customer_service").components, (JudgeReward(TINY_MODEL), 0.3)])
    spec = TrialSpec(environment=ConversationEnvironment("customer_service"), reward=reward,
                     base_config=TrainingConfig(**TINY))
    rows = []
    run_trial(spec, {"learning_rate": 1e-3}, lambda metrics, trainer: rows.append(metrics))
    assert 0 < rows[-1]["judge_score"] < 1 and 0 < rows[-1]["eval_judge_score"] < 1
