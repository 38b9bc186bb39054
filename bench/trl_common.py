"""What the TRL comparisons share: our reward as a TRL reward function, the same prompts, and
a step clock."""

import time

from stateset_hpo.grpo import ConversationEnvironment, domain_reward
from stateset_hpo.trl_engine import TRLTask


def trl_prompts_and_reward(domain: str):
    """(dataset rows of single-turn prompts, TRL reward function scoring with our reward): the
    TRL engine's own reading of a domain's scenarios (`TRLTask.from_environment`)."""
    task = TRLTask.from_environment(ConversationEnvironment(domain, max_turns=1), domain_reward(domain))
    return task.train, task.reward_funcs[0]


def step_clock():
    """A TrainerCallback recording the time at the end of each optimizer step in ``.stamps``."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            self.stamps.append(time.perf_counter())

    clock = Clock()
    clock.stamps = []
    return clock


def timed_trl_run(model, tokenizer, rows, reward_func, steps: int, warmup: int, before_train=None, **settings):
    """TRL's GRPOTrainer set up as its docs would for a fair comparison with ours (the same LoRA
    adapter without dropout, `disable_dropout=True`, a log every step, nothing saved or
    reported), trained for ``warmup`` + ``steps`` steps; (seconds per timed step, generated
    tokens per second over them). ``settings``: the rest of GRPOConfig (precision,
    checkpointing, batch, sampling, ...); ``before_train``: called once the trainer is built."""
    import tempfile

    from datasets import Dataset
    from peft import LoraConfig
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    clock = step_clock()
    args = GRPOConfig(output_dir=tempfile.mkdtemp(), disable_dropout=True, max_steps=steps + warmup, logging_steps=1,
                      report_to="none", save_strategy="no", disable_tqdm=True, **settings)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_func, args=args, processing_class=tokenizer,
                          train_dataset=Dataset.from_list(rows),
                          peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"),
                          callbacks=[clock])
    trainer.remove_callback(PrinterCallback)  # (it prints every step's logs)
    if before_train is not None:
        before_train()
    trainer.train()
    elapsed = clock.stamps[-1] - clock.stamps[warmup - 1]  # from the end of the last warm-up step
    lengths = [log["completions/mean_length"] for log in trainer.state.log_history
               if "completions/mean_length" in log][warmup:]
    return elapsed / steps, sum(lengths) * args.per_device_train_batch_size / elapsed
