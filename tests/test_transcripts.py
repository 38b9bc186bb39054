"""What the agent says: a validation run keeps a few greedy test conversations (one per topic),
the recommendation's sit beside the baseline's in report.html, and replies that look like a
template, an echo or nothing are called out in the summary."""

import json

from helpers import tiny_spec

from stateset_hpo import HPOConfig, HPOSummary, SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.report import write_report
from stateset_hpo.study import run_study
from stateset_hpo.transcripts import degenerate_replies


def conversation(topic, index, *replies, user="my order is late"):
    messages = []
    for reply in replies:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return {"index": index, "topic": topic, "reward": 0.5, "conversation": messages}


def test_templates_echoes_and_silence_are_called_degenerate_and_real_replies_are_not():
    topics = ["refund", "shipping", "account", "billing"]
    template = [conversation(t, i, "i can help with refund , shipping and account .", "anything else ?")
                for i, t in enumerate(topics)]
    assert "the same first reply in 4 of 4 conversations" in degenerate_replies(template)
    silent = [conversation(t, i, "", "") for i, t in enumerate(topics)]
    assert degenerate_replies(silent) == "8 of 8 replies are empty"
    echo = [conversation(t, i, f"my {t} is late", f"my {t} is late", user=f"my {t} is late")
            for i, t in enumerate(topics)]
    assert "repeat the user's message" in degenerate_replies(echo)
    varied = [conversation(t, i, f"your {t} case : i will look into the {t} now .", "done .")
              for i, t in enumerate(topics)]
    assert degenerate_replies(varied) is None
    assert degenerate_replies([]) is None


def test_validation_runs_keep_one_conversation_per_topic_shown_beside_the_baseline(tmp_path):
    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.CHOICE, choices=[1e-3], default=1e-3)])
    config = HPOConfig(backend="optuna", search_space=space, n_trials=1, output_dir=str(tmp_path / "out"),
                       verbose=False, save_plots=False, validation_top_k=1, validation_seeds=1,
                       seed=0, optuna_config={"sampler": "random", "pruner": "none"})
    spec = tiny_spec(num_episodes=16, learning_rate=1e-4)  # the baseline differs from the recommendation
    summary = run_study(config, spec)
    configs = {c["role"]: c for c in summary.validation["configurations"]}
    topics = sorted({s.topic for s in spec.environment.test_scenarios})
    for entry in configs.values():
        assert sorted(t["topic"] for t in entry["transcripts"]) == topics
        assert entry["transcripts_seed"] == entry["seeds"][0]
        for t in entry["transcripts"]:
            roles = [m["role"] for m in t["conversation"]]
            assert roles[0] == "user" and "assistant" in roles and "system" not in roles
            # the reward shown is that conversation's own test score
            assert abs(t["reward"] - summary.validation["comparison"]["scores_by_seed"][entry["role"]][
                str(entry["seeds"][0])][t["index"]]) < 1e-9
    assert [t["index"] for t in configs["recommended"]["transcripts"]] == \
        [t["index"] for t in configs["baseline"]["transcripts"]]  # the same conversations, side by side
    # the search's trials never see the test split, so they carry none
    assert all(not r.transcripts for r in summary.all_results)
    saved = HPOSummary.load(tmp_path / "out" / "summary.json")
    assert saved.validation["configurations"][0]["transcripts"] == configs["recommended"]["transcripts"]
    page = (tmp_path / "out" / "report.html").read_text()
    said = configs["recommended"]["transcripts"][0]["conversation"][1]["content"]
    assert "What the agent says" in page and (said.replace("'", "&#x27;") in page)


def test_the_summary_warns_when_the_recommendation_says_the_same_thing_everywhere(tmp_path):
    template = [conversation(t, i, "i can help .") for i, t in enumerate(["refund", "shipping", "account"])]
    honest = [conversation(t, i, f"about your {t} : here is what i will do .") for i, t in
              enumerate(["refund", "shipping", "account"])]
    validation = {"metric": "test_reward", "held_out": True, "recommended": "trial 1", "sentence": "trial 1 ...",
                  "budget_episodes": 16, "comparison": {"verdict": "untested"},
                  "configurations": [
                      {"label": "trial 1", "role": "recommended", "seeds": [1], "scores": [0.5], "mean": 0.5,
                       "std": 0.0, "errors": [], "params": {}, "transcripts": template, "transcripts_seed": 1},
                      {"label": "baseline", "role": "baseline", "seeds": [1], "scores": [0.4], "mean": 0.4,
                       "std": 0.0, "errors": [], "params": {}, "transcripts": honest, "transcripts_seed": 1}]}
    summary = HPOSummary("eval_reward", "maximize", validation=validation)
    text = summary.format_summary()
    assert "caution: the recommendation's greedy test replies look degenerate (the same first reply in 3 of 3" in text
    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.CHOICE, choices=[1e-3], default=1e-3)])
    page = write_report(summary, space, tmp_path).read_text()
    assert "caution: these replies look degenerate" in page and "about your refund" in page
    validation["configurations"][0]["transcripts"] = honest
    assert "caution" not in HPOSummary("eval_reward", "maximize", validation=json.loads(json.dumps(validation))
                                       ).format_summary()
