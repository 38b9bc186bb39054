"""`MultiTurnGRPOTrainer`: GRPO on multi-turn conversations, one iteration at a time.

One iteration (`train_step`), top to bottom:
1. rollout: for each of ``prompts_per_iteration`` scenarios, ``group_size`` conversations
   are played in lockstep (agent samples a reply, the scenario's user answers), every agent
   reply scored by the reward;
2. reference and value pass (no grad): log-probs of the reference policy (the base model with
   the LoRA adapter disabled, no second copy), and with the value function, turn values;
3. advantages (advantages.py): group-relative episode rewards, or GAE over the turns with the
   value function as baseline, centred per turn position; either way centred within the group
   and divided by the std of the group, of the batch, or not at all; a group whose rewards
   are all equal gets zero;
4. ``num_iterations`` optimizer steps, each accumulating ``gradient_accumulation_steps``
   micro-batches: token-level clipped surrogate + k3 KL penalty - entropy bonus, normalised
   as TRL's ``loss_type`` of the same name (loss.py) (+ value loss, its gradient clipped apart);
5. evaluation on the selection scenarios (``eval_*``), and with ``test_at_end`` on the test
   scenarios after the last iteration (``test_*``), then the metrics are reported.

Training and evaluation use different rewards on purpose: rollouts are scored with the
trial's ``*_weight`` values (hyperparameters that shape training), evaluation always with the
reward's own declared weights, greedy decoding and the config's fixed evaluation protocol, so
no hyperparameter can move the yardstick that trials are compared on. Checkpoints
(checkpoint.py) and keeping several workers in step (distributed.py) live beside it.

Its size (about 470 lines, over the project's ~400): the rollout of lockstep conversations,
their collation into micro-batches and the evaluation protocol still live here beside the step,
as methods in the order `train_step` calls them; moving rollout and evaluation into modules of
their own is the next step towards a ~300-line loop.
"""

from __future__ import annotations

import asyncio
import copy
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Union

import numpy as np
import torch

from .agent import MultiTurnAgent, SamplingSettings, without_lora_layers
from .config import TrainingConfig
from .environment import ConversationEnvironment
from .logprobs import prompt_token_mask, token_logp_and_entropy
from .model_loading import QUANTISED_NEEDS_LORA, is_quantised
from .optim import build_optimizer, build_scheduler
from .rewards import CompositeReward, ReplyContext
from .scenarios import Scenario
from ..transcripts import transcripts
from . import checkpoint
from .advantages import group_advantages, scaled
from .distributed import average_gradients, mean_over_workers, rank_and_size
from .loss import policy_loss
from .value import ValueHead

MetricsCallback = Callable[[Dict[str, float]], Optional[bool]]


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or reward: the trial has failed."""


@dataclass
class Turn:
    prompt: List[int]
    completion: List[int]
    reward: float
    scores: Dict[str, Optional[float]]  # None: the component abstained
    advantage: float = 0.0
    value: float = 0.0  # the value head's estimate, when the value function is on ...
    target: float = 0.0  # ... and the return it is trained towards


@dataclass
class Episode:
    scenario: Scenario
    group: int  # index of the prompt group within the iteration
    turns: List[Turn] = field(default_factory=list)
    conversation: List[Dict[str, str]] = field(default_factory=list)  # the messages, as played

    @property
    def reward(self) -> float:
        return sum(t.reward for t in self.turns) / len(self.turns)


@dataclass
class MicroBatch:
    turns: List[Turn]
    ids: torch.Tensor
    attention: torch.Tensor
    positions: torch.Tensor
    completion_mask: torch.Tensor  # (B, C): 1 on completion tokens
    prompt_width: int
    ref_logp: Optional[torch.Tensor] = None
    old_logp: Optional[torch.Tensor] = None


def reported_metrics(reward_names: Sequence[str], value_function: bool, test: bool = False) -> Set[str]:
    """The names `train_step` reports (per-conversation ``test_reward[i]`` aside), so that a
    study can refuse an objective no trial will report before the first trial starts.
    test_grpo_trainer.py checks this against what an iteration really reports."""
    names = {"reward", "reward_std", "frac_reward_zero_std", "completion_length", "turns_per_episode",
             "loss", "kl", "entropy", "clip_ratio", "grad_norm", "eval_reward", "eval_replies_changed",
             "iteration", "episodes", "step_time", "rollout_time", "tokens_per_s", "learning_rate",
             "generated_tokens", "optimizer_steps"}
    names |= {f"{n}_score" for n in reward_names} | {f"eval_{n}_score" for n in reward_names}
    if value_function:
        names.add("value_loss")
    if test:
        names |= {"test_reward"} | {f"test_{n}_score" for n in reward_names}
    return names


def component_means(names: Sequence[str], turns: Sequence[Turn], prefix: str = "") -> Dict[str, float]:
    """``<prefix><name>_score``: each component's mean over the turns it scored (a component
    that abstained on every turn reports nothing)."""
    out = {}
    for name in names:
        scored = [t.scores[name] for t in turns if t.scores[name] is not None]
        if scored:
            out[f"{prefix}{name}_score"] = float(np.mean(scored))
    return out


class MultiTurnGRPOTrainer:
    def __init__(self, agent: MultiTurnAgent, environment: ConversationEnvironment,
                 reward_function: CompositeReward, config: Optional[TrainingConfig] = None,
                 callbacks: Sequence[MetricsCallback] = (), test_at_end: bool = False) -> None:
        self.config = config = config or TrainingConfig()
        if not isinstance(environment, ConversationEnvironment):
            raise ValueError(f"environment must be a ConversationEnvironment, got {type(environment).__name__}")
        if not isinstance(reward_function, CompositeReward):
            raise ValueError("reward_function must be a CompositeReward (wrap a single reward as "
                             "CompositeReward([(reward, 1.0)]))")
        self.environment = environment
        self.reward = reward_function.with_weights(config.reward_weights)  # shapes training
        self.yardstick = reward_function  # scores evaluation: declared weights, never sampled ones
        self.test_at_end = test_at_end
        self.callbacks = list(callbacks)
        self.agent = agent.initialize()
        if self.agent.model.__class__.__name__.startswith("Peft"):
            raise ValueError("this agent was already trained; give each trainer a fresh MultiTurnAgent")
        torch.manual_seed(config.seed)  # the same adapter and value head init on every worker
        self.rank, self.world_size = rank_and_size()
        self.rng = random.Random(config.seed + self.rank)
        self.policy = self._prepare_policy()
        self.reference = None if config.use_lora else copy.deepcopy(self.policy).requires_grad_(False)
        self.value_head = None
        if config.include_value_function:
            hidden = self.policy.config.hidden_size
            self.value_head = ValueHead(hidden, config.value_head_hidden_size, config.value_head_dropout)
            self.value_head.to(self.agent.device)
        self.optimizer = build_optimizer(config, [p for p in self.policy.parameters() if p.requires_grad],
                                         self.value_head.parameters() if self.value_head else ())
        self.scheduler = build_scheduler(config, self.optimizer)
        self.step = 0
        self.generated_tokens = 0  # every completion token this run generated: training and evaluation rollouts
        self.history: List[Dict[str, float]] = []
        # the agent's replies (token ids) in each held-out conversation of the first selection
        # evaluation: later ones report the share that changed since (the replies_unchanged rule)
        self.first_replies: Optional[List[List[List[int]]]] = None
        self.test_transcripts: List[Dict[str, Any]] = []  # a few greedy test conversations (transcripts.py)
        # [{iteration, config}]: the config each stretch of this run's updates was trained with, from
        # that iteration on; a PBT recipient inherits its donor's with the weights (load_checkpoint)
        self.config_schedule: List[Dict[str, Any]] = [{"iteration": 0, "config": config.to_dict()}]
        if self.rank:
            torch.manual_seed(config.seed + self.rank)  # each worker samples its own rollouts

    def _prepare_policy(self):
        model = self.agent.model
        if is_quantised(model) and not self.config.use_lora:
            raise ValueError(QUANTISED_NEEDS_LORA)
        if self.config.gradient_checkpointing:
            # non-reentrant: no input needs requires_grad, so frozen embeddings under LoRA work as they are;
            # transformers 5.x renamed gradient_checkpointing_enable (deprecated) to activation_checkpointing_enable
            kwargs = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if self.config.use_lora:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(r=self.config.lora_r, lora_alpha=self.config.lora_alpha,
                              lora_dropout=self.config.lora_dropout, target_modules=self.config.lora_target_modules,
                              task_type="CAUSAL_LM")
            with warnings.catch_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
                model = get_peft_model(model, lora)
            self.agent.model = model
        return model

    # -- the loop ------------------------------------------------------------------------------
    def iterate(self) -> Iterator[Dict[str, float]]:
        """Run the remaining iterations, yielding each one's metrics."""
        while self.step < self.config.total_iterations:
            yield self.train_step()

    def train_sync(self) -> Dict[str, float]:
        """Train to the end (or until a callback returns True); the last metrics."""
        for metrics in self.iterate():
            if any(callback(metrics) for callback in self.callbacks):
                break
        return dict(self.history[-1]) if self.history else {}

    async def train(self) -> Dict[str, float]:
        """`train_sync` in a worker thread, so a running event loop (Jupyter) stays responsive."""
        return await asyncio.to_thread(self.train_sync)

    def train_step(self) -> Dict[str, float]:
        c = self.config
        start = time.perf_counter()
        scenarios = self.environment.sample(c.prompts_per_iteration, self.rng)
        episodes = self.rollout(scenarios, c.group_size, self._sampling(do_sample=True), self.reward, c.detail_level)
        rollout_time = time.perf_counter() - start
        if not all(math.isfinite(t.reward) for e in episodes for t in e.turns):
            raise DivergenceError(f"iteration {self.step + 1}: the reward function returned a non-finite reward")
        batches = self._micro_batches(episodes)
        self._reference_and_values(batches)
        self._assign_advantages(episodes)
        stats = self._optimize(batches)
        self.step += 1
        metrics = self._rollout_metrics(episodes)
        metrics.update(stats)
        generated = sum(len(t.completion) for e in episodes for t in e.turns)
        if self.step % c.eval_every == 0 or self.step == c.total_iterations:
            metrics.update(self.evaluate("selection"))
        if self.test_at_end and self.step == c.total_iterations:
            metrics.update(self.evaluate("test"))
        metrics["generated_tokens"] = float(self.generated_tokens)
        if self.world_size > 1:
            metrics = mean_over_workers(metrics, self.world_size, self.agent.device)
            metrics["generated_tokens"] *= self.world_size  # the whole group's
        step_time = time.perf_counter() - start
        metrics.update(iteration=self.step, episodes=self.step * c.episodes_per_iteration, step_time=step_time,
                       rollout_time=rollout_time, tokens_per_s=generated / rollout_time,
                       learning_rate=self.scheduler.get_last_lr()[0], optimizer_steps=self.step * c.num_iterations)
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:
            raise DivergenceError(f"iteration {self.step}: non-finite {', '.join(bad)}")
        self.history.append(metrics)
        return metrics

    # -- checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self, directory: Union[str, Path]) -> Path:
        """Everything needed to continue exactly (checkpoint.py)."""
        return checkpoint.save_checkpoint(self, directory)

    def load_checkpoint(self, directory: Union[str, Path], same_config: bool = True) -> None:
        """Restore a `save_checkpoint` folder: the same config, or another run's weights under this one (checkpoint.py)."""
        checkpoint.load_checkpoint(self, directory, same_config)

    # -- 1. rollout ------------------------------------------------------------------------------
    def _sampling(self, do_sample: bool) -> SamplingSettings:
        c = self.config
        return SamplingSettings(do_sample=do_sample, temperature=c.temperature, top_p=c.top_p, top_k=c.top_k,
                                max_new_tokens=c.max_new_tokens, repetition_penalty=c.repetition_penalty,
                                batch_size=c.generation_batch_size)

    def rollout(self, scenarios: Sequence[Scenario], group_size: int, settings: SamplingSettings,
                reward: CompositeReward, detail_level: str) -> List[Episode]:
        """Play ``group_size`` conversations per scenario, all in lockstep, scoring every reply."""
        self.policy.eval()
        episodes = [Episode(s, g) for g, s in enumerate(scenarios) for _ in range(group_size)]
        conversations = [self.environment.start(e.scenario, detail_level) for e in episodes]
        active = list(range(len(episodes)))
        while active:
            prompts = [self.agent.prompt_ids(conversations[i]) for i in active]
            completions = self.agent.generate(prompts, settings)
            self.generated_tokens += sum(len(c) for c in completions)
            still_active = []
            contexts = [ReplyContext(episodes[i].scenario, tuple(conversations[i]), self.agent.decode(completion),
                                     detail_level) for i, completion in zip(active, completions)]
            for i, prompt, completion, ctx, scores in zip(active, prompts, completions, contexts,
                                                          reward.scores_batch(contexts)):
                episodes[i].turns.append(Turn(prompt, completion, reward.combine(scores), scores))
                conversations[i].append({"role": "assistant", "content": ctx.reply})
                user = self.environment.respond(episodes[i].scenario, conversations[i])
                if user is not None:
                    conversations[i].append(user)
                    still_active.append(i)
            active = still_active
        for episode, conversation in zip(episodes, conversations):
            episode.conversation = conversation
        return episodes

    # -- 2. reference log-probs and values ---------------------------------------------------------
    def _micro_batches(self, episodes: List[Episode]) -> List[MicroBatch]:
        per = self.config.per_device_train_batch_size
        groups = sorted({e.group for e in episodes})
        batches = []
        for k in range(0, len(groups), per):
            members = set(groups[k:k + per])
            batches.append(self._collate([t for e in episodes if e.group in members for t in e.turns]))
        return batches

    def _collate(self, turns: List[Turn]) -> MicroBatch:
        """Prompts left-padded and completions right-padded, so completions share columns."""
        pad = self.agent.tokenizer.pad_token_id
        width_p = max(len(t.prompt) for t in turns)
        width_c = max(max(len(t.completion) for t in turns), 1)
        ids, attention, completion_mask = [], [], []
        for t in turns:
            lp, lc = len(t.prompt), len(t.completion)
            ids.append([pad] * (width_p - lp) + t.prompt + t.completion + [pad] * (width_c - lc))
            attention.append([0] * (width_p - lp) + [1] * (lp + lc) + [0] * (width_c - lc))
            completion_mask.append([1] * lc + [0] * (width_c - lc))
        device = self.agent.device
        attention_t = torch.tensor(attention, device=device)
        return MicroBatch(turns, torch.tensor(ids, device=device), attention_t,
                          (attention_t.cumsum(-1) - 1).clamp(min=0),
                          torch.tensor(completion_mask, device=device, dtype=torch.float32), width_p)

    def _forward(self, model, batch: MicroBatch, want_hidden: bool = False):
        """Per-token log-probs and entropies of the completion tokens (and the hidden state at
        the end of each prompt). Only the completion columns' logits are materialised."""
        c = self.config
        width_c = batch.completion_mask.shape[1]
        out = model(input_ids=batch.ids, attention_mask=batch.attention, position_ids=batch.positions,
                    logits_to_keep=width_c + 1, output_hidden_states=want_hidden, use_cache=False)
        logits = out.logits[:, :-1]
        # the distribution the rollout sampled from (logprobs.py): ratio and KL of the real sampler
        dist = self._sampling(do_sample=True)
        prompt = None
        if dist.repetition_penalty != 1.0:
            width_p = batch.prompt_width
            prompt = prompt_token_mask(batch.ids[:, :width_p], batch.attention[:, :width_p], logits.shape[-1])
        # the entropy is a metric, and a loss term only with a bonus
        logp, entropy = token_logp_and_entropy(logits, batch.ids[:, batch.prompt_width:], dist,
                                               entropy_grad=c.entropy_coef > 0, prompt_tokens=prompt)
        hidden = out.hidden_states[-1][:, batch.prompt_width - 1] if want_hidden else None
        return logp, entropy, hidden

    @torch.no_grad()
    def _reference_and_values(self, batches: List[MicroBatch]) -> None:
        self.policy.eval()
        for batch in batches:
            if self.reference is not None:
                batch.ref_logp = self._forward(self.reference, batch)[0]
            else:
                with without_lora_layers(self.policy, merge=False):
                    batch.ref_logp = self._forward(self.policy, batch)[0]
            if self.config.num_iterations > 1 or self.value_head is not None:
                logp, _, hidden = self._forward(self.policy, batch, want_hidden=self.value_head is not None)
                batch.old_logp = logp if self.config.num_iterations > 1 else None
                if self.value_head is not None:
                    self.value_head.eval()
                    for turn, value in zip(batch.turns, self.value_head(hidden).tolist()):
                        turn.value = value

    # -- 3. advantages ---------------------------------------------------------------------------
    def _assign_advantages(self, episodes: List[Episode]) -> None:
        """Each turn's advantage (and with the value function its return), group by group (advantages.py)."""
        groups: Dict[int, List[Episode]] = {}
        for e in episodes:
            groups.setdefault(e.group, []).append(e)
        c = self.config
        found = [group_advantages([[t.reward for t in e.turns] for e in members],
                                  [[t.value for t in e.turns] for e in members] if self.value_head is not None else None,
                                  c.gamma, c.gae_lambda) for members in groups.values()]
        for members, group, advantages in zip(groups.values(), found, scaled(found, c.advantage_std)):
            for i, e in enumerate(members):
                for k, t in enumerate(e.turns):
                    t.advantage = advantages[i][k]
                    if group.returns is not None:
                        t.target = group.returns[i][k]

    # -- 4. policy update ----------------------------------------------------------------------
    def _optimize(self, batches: List[MicroBatch]) -> Dict[str, float]:
        c = self.config
        # With several updates per rollout the clipped ratio compares two passes of the policy,
        # which must be dropout-free to be 1 before the first update (TrainingConfig refuses
        # LoRA dropout there); with one update the ratio is 1 by construction.
        self.policy.train(c.num_iterations == 1)
        if self.value_head is not None:
            self.value_head.train()
        groups = [list(group["params"]) for group in self.optimizer.param_groups]  # [policy, value head]
        # dapo normalises by the tokens of the whole accumulated batch: every micro-batch, every worker
        batch_tokens = self._batch_tokens(batches) if c.loss_type == "dapo" else None
        totals = {"kl": 0.0, "entropy": 0.0, "clip_ratio": 0.0, "value_loss": 0.0, "tokens": 0.0}
        losses, grad_norms = [], []
        for _ in range(c.num_iterations):
            step_loss = 0.0
            for batch in batches:
                logp, entropy, hidden = self._forward(self.policy, batch, want_hidden=self.value_head is not None)
                old = batch.old_logp if batch.old_logp is not None else logp.detach()
                advantages = torch.tensor([t.advantage for t in batch.turns], device=logp.device)[:, None]
                loss, stats = policy_loss(c, logp, old, batch.ref_logp, entropy, advantages, batch.completion_mask,
                                          batch_tokens)
                total = loss
                if self.value_head is not None:  # on detached hidden states: it moves only the head
                    targets = torch.tensor([t.target for t in batch.turns], device=logp.device)
                    value_loss = 0.5 * ((self.value_head(hidden.detach()) - targets) ** 2).mean()
                    total = total + value_loss / c.gradient_accumulation_steps
                    totals["value_loss"] += value_loss.item()
                if not torch.isfinite(total):
                    raise DivergenceError(f"iteration {self.step + 1}: loss is {total.item()}")
                total.backward()
                step_loss += loss.item()
                for key, value in stats.items():
                    totals[key] += value
            if self.world_size > 1:
                average_gradients([p for group in groups for p in group], self.world_size)
            # The policy's gradient is clipped on its own: clipped together, the value head's
            # (10.3 against the policy's 0.27 at the first step, measured) scaled the policy's
            # update down 10x, so switching the value function on silently cut the learning rate.
            grad_norm = torch.nn.utils.clip_grad_norm_(groups[0], c.max_grad_norm).item()
            for value_params in groups[1:]:
                torch.nn.utils.clip_grad_norm_(value_params, c.max_grad_norm)
            if not math.isfinite(grad_norm):
                raise DivergenceError(f"iteration {self.step + 1}: gradient norm is {grad_norm}")
            grad_norms.append(grad_norm)
            losses.append(step_loss)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        tokens = max(totals.pop("tokens"), 1.0)
        out = {"loss": float(np.mean(losses)), "kl": totals["kl"] / tokens, "entropy": totals["entropy"] / tokens,
               "clip_ratio": totals["clip_ratio"] / tokens, "grad_norm": float(np.mean(grad_norms))}
        if self.value_head is not None:
            out["value_loss"] = totals["value_loss"] / (c.num_iterations * len(batches))
        return out

    def _batch_tokens(self, batches: List[MicroBatch]) -> float:
        """Completion tokens of the accumulated batch; with several workers, the mean per worker,
        so that the averaged gradient is that of the mean over every worker's tokens."""
        tokens = float(sum(b.completion_mask.sum().item() for b in batches))
        if self.world_size > 1:
            tokens = mean_over_workers({"tokens": tokens}, self.world_size, self.agent.device)["tokens"]
        return max(tokens, 1.0)

    # -- 5. evaluation and metrics ---------------------------------------------------------------
    def evaluation_settings(self) -> SamplingSettings:
        """The fixed decoding of every evaluation: greedy, no repetition penalty, no top-k/top-p."""
        return SamplingSettings(do_sample=False, max_new_tokens=self.config.eval_max_new_tokens,
                                batch_size=self.config.generation_batch_size)

    def evaluate(self, split: str = "selection") -> Dict[str, float]:
        """One greedy conversation per held-out scenario of ``split``, scored by the yardstick.

        "selection" gives ``eval_reward``, ``eval_<component>_score`` and, from the second
        evaluation on, ``eval_replies_changed``: the share of conversations in which a reply of
        the agent differs from the first evaluation's (0: the updates since have not changed a
        single token the policy says greedily, whatever the reward's resolution); "test" gives the
        ``test_`` versions and each conversation's reward as ``test_reward[i]`` (i: its index
        in ``environment.test_scenarios``), which validation pairs across configurations, and
        keeps a few of the conversations in ``test_transcripts`` for people to read.
        """
        prefix = "eval" if split == "selection" else "test"
        episodes = self.rollout(self.environment.held_out(split), 1, self.evaluation_settings(), self.yardstick,
                                self.config.eval_detail_level)
        out = {f"{prefix}_reward": float(np.mean([e.reward for e in episodes]))}
        out.update(component_means(self.yardstick.names, [t for e in episodes for t in e.turns], f"{prefix}_"))
        if split == "test":
            out.update({f"test_reward[{i}]": e.reward for i, e in enumerate(episodes)})
            self.test_transcripts = transcripts(episodes)
        else:
            replies = [[list(t.completion) for t in e.turns] for e in episodes]
            if self.first_replies is None:
                self.first_replies = replies
            else:
                out["eval_replies_changed"] = float(np.mean([now != first for now, first in
                                                             zip(replies, self.first_replies)]))
        return out

    def _rollout_metrics(self, episodes: List[Episode]) -> Dict[str, float]:
        rewards = np.array([e.reward for e in episodes])
        by_group: Dict[int, List[float]] = {}
        for e in episodes:
            by_group.setdefault(e.group, []).append(e.reward)
        turns = [t for e in episodes for t in e.turns]
        out = {"reward": float(rewards.mean()), "reward_std": float(rewards.std()),
               "frac_reward_zero_std": float(np.mean([np.std(g) < 1e-8 for g in by_group.values()])),
               "completion_length": float(np.mean([len(t.completion) for t in turns])),
               "turns_per_episode": len(turns) / len(episodes)}
        out.update(component_means(self.reward.names, turns))
        return out
