"""What the TRL comparisons share: our reward as a TRL reward function, the same prompts, and
a step clock."""

import time

from stateset_hpo.grpo import ConversationEnvironment, domain_reward
from stateset_hpo.grpo.rewards import ReplyContext


def trl_prompts_and_reward(domain: str):
    """(dataset rows of single-turn prompts, TRL reward function scoring with our reward)."""
    env = ConversationEnvironment(domain, max_turns=1)
    reward = domain_reward(domain)
    by_opening = {s.opening: s for s in env.train_scenarios}

    def reward_func(prompts, completions, **kwargs):
        out = []
        for prompt, completion in zip(prompts, completions):
            text = completion[0]["content"] if isinstance(completion, list) else completion
            out.append(reward(ReplyContext(by_opening[prompt[-1]["content"]], tuple(prompt), text, "moderate")))
        return out

    return [{"prompt": env.start(s)} for s in env.train_scenarios], reward_func


def step_clock():
    """A TrainerCallback recording the time at the end of each optimizer step in ``.stamps``."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            self.stamps.append(time.perf_counter())

    clock = Clock()
    clock.stamps = []
    return clock
