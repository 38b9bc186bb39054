"""Reward functions in TRL's convention for examples/data/support_prompts.jsonl (a plain JSON
Lines dataset: a "prompt", its "topic" and the "facts" a good reply states), used by the TRL
engine example in docs/trl.md:

    python -m stateset_hpo.launch --engine trl --dataset examples/data/support_prompts.jsonl \
        --reward examples.trl_rewards:states_a_fact --reward examples.trl_rewards:brief=0.2 ...
"""


def states_a_fact(prompts, completions, facts, **kwargs):
    """1 when the reply states one of its case's facts, else 0."""
    return [float(any(fact in reply for fact in case)) for reply, case in zip(completions, facts)]


def brief(prompts, completions, **kwargs):
    """Shorter is better, from 1 (empty) down to 0 at 40 words."""
    return [max(0.0, 1.0 - len(reply.split()) / 40) for reply in completions]
